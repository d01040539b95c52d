import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  MODEL_SETTINGS,
  SERVER_SETTINGS,
  completionsEnabled,
  describeLaunch,
  explicitSettings,
  launchFrom,
  parseDaemonAddress,
  serverSettings,
  settingsUpdate,
} from "../src/settings";

const source = (values: Record<string, unknown>) => ({ get: <T>(key: string) => values[key] as T | undefined });
const inspectable = (defaults: Record<string, unknown>, user: Record<string, unknown>) => ({
  get: <T>(key: string) => (key in user ? user[key] : defaults[key]) as T | undefined,
  inspect: <T>(key: string) => ({ defaultValue: defaults[key] as T | undefined, globalValue: user[key] as T | undefined }),
});

describe("launchFrom", () => {
  test("spawns codet5-lsp over stdio by default", () => {
    assert.deepEqual(launchFrom(source({})), { kind: "stdio", command: "codet5-lsp", args: [] });
    assert.deepEqual(launchFrom(source({ "server.path": "  ", "daemon.address": "" })), { kind: "stdio", command: "codet5-lsp", args: [] });
  });

  test("uses the configured executable and arguments", () => {
    const launch = launchFrom(source({ "server.path": "/opt/venv/bin/codet5-lsp", "server.args": ["--offline"] }));
    assert.deepEqual(launch, { kind: "stdio", command: "/opt/venv/bin/codet5-lsp", args: ["--offline"] });
    assert.equal(describeLaunch(launch), "/opt/venv/bin/codet5-lsp --offline");
  });

  test("connects to the daemon when an address is set", () => {
    const launch = launchFrom(source({ "server.path": "ignored", "daemon.address": "127.0.0.1:2087" }));
    assert.deepEqual(launch, { kind: "tcp", host: "127.0.0.1", port: 2087 });
    assert.equal(describeLaunch(launch), "daemon at 127.0.0.1:2087");
  });
});

describe("parseDaemonAddress", () => {
  test("accepts host:port, [v6]:port, :port and a bare port", () => {
    assert.deepEqual(parseDaemonAddress("localhost:9000"), { host: "localhost", port: 9000 });
    assert.deepEqual(parseDaemonAddress("[::1]:2087"), { host: "::1", port: 2087 });
    assert.deepEqual(parseDaemonAddress(":2087"), { host: "127.0.0.1", port: 2087 });
    assert.deepEqual(parseDaemonAddress("2087"), { host: "127.0.0.1", port: 2087 });
    assert.equal(describeLaunch({ kind: "tcp", host: "::1", port: 2087 }), "daemon at [::1]:2087");
  });

  for (const bad of ["localhost", "host:0", "host:70000", "host:port", "::1:2087", "a:b:1"]) {
    test(`rejects ${JSON.stringify(bad)} with a message naming the setting`, () => {
      assert.throws(() => parseDaemonAddress(bad), /codet5\.daemon\.address must look like 127\.0\.0\.1:2087/);
    });
  }
});

describe("serverSettings", () => {
  const all = Object.fromEntries(SERVER_SETTINGS.map((key, i) => [key, `value-${i}`]));

  test("forwards every server setting under the server's own name, and nothing else", () => {
    const settings = serverSettings(source({ ...all, "server.path": "x", "daemon.address": "", "trace.server": "off" }), {
      kind: "stdio",
      command: "codet5-lsp",
      args: [],
    });
    assert.deepEqual(settings, all);
  });

  test("leaves the model to a daemon's command line", () => {
    const settings = serverSettings(source(all), { kind: "tcp", host: "127.0.0.1", port: 1 });
    assert.deepEqual(Object.keys(settings).sort(), SERVER_SETTINGS.filter((key) => !MODEL_SETTINGS.has(key)).sort());
    assert.ok(MODEL_SETTINGS.has("model") && !MODEL_SETTINGS.has("maxNewTokens"));
  });

  test("sends only what the user set, so defaults do not override the server's flags", () => {
    const config = inspectable({ model: "default", localFilesOnly: false, maxNewTokens: 48 }, { maxNewTokens: 16 });
    assert.deepEqual(serverSettings(explicitSettings(config), { kind: "stdio", command: "c", args: [] }), { maxNewTokens: 16 });
  });

  test("an update resets settings the user removed to their defaults", () => {
    const config = inspectable({ maxNewTokens: 48, contextTokens: 1024, model: "default" }, {});
    assert.deepEqual(settingsUpdate({ model: "m" }, ["maxNewTokens", "model"], config), { model: "m", maxNewTokens: 48 });
  });
});

test("completionsEnabled follows enabled and disabledLanguages", () => {
  assert.equal(completionsEnabled(source({}), "python"), true);
  assert.equal(completionsEnabled(source({ enabled: false }), "python"), false);
  assert.equal(completionsEnabled(source({ disabledLanguages: ["markdown"] }), "markdown"), false);
  assert.equal(completionsEnabled(source({ disabledLanguages: ["markdown"] }), "python"), true);
});
