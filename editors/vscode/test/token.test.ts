// The daemon token: where it is read from, how it is added to initialize, how a refusal is recognized.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";
import { Message } from "vscode-languageclient/node";
import { TOKEN_ENV, daemonToken, isTokenRefusal, withToken } from "../src/token";

describe("daemonToken", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "codet5-token-unit-"));

  test("reads the file, without surrounding whitespace, before the environment", () => {
    const file = path.join(dir, "token");
    fs.writeFileSync(file, "  abc123\n");
    assert.equal(daemonToken(file, { [TOKEN_ENV]: "from-env" }), "abc123");
  });

  test("falls back to the environment, else no token", () => {
    assert.equal(daemonToken("", { [TOKEN_ENV]: "from-env" }), "from-env");
    assert.equal(daemonToken(undefined, {}), undefined);
    assert.equal(daemonToken("  ", { [TOKEN_ENV]: "" }), undefined);
  });

  test("an empty or missing file is an error naming the setting and the path", () => {
    const empty = path.join(dir, "empty");
    fs.writeFileSync(empty, "\n");
    assert.throws(() => daemonToken(empty, {}), { message: `codet5.daemon.tokenFile ${empty} is empty` });
    const missing = path.join(dir, "missing");
    assert.throws(() => daemonToken(missing, {}), { message: `cannot read codet5.daemon.tokenFile ${missing} (ENOENT)` });
  });

  test("~ is the home directory", () => {
    const home = fs.mkdtempSync(path.join(os.homedir(), ".codet5-token-unit-"));
    try {
      fs.writeFileSync(path.join(home, "token"), "from-home");
      assert.equal(daemonToken(`~/${path.basename(home)}/token`, {}), "from-home");
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});

describe("withToken", () => {
  test("adds the token to initialize's initializationOptions, keeping the others", () => {
    const initialize = { jsonrpc: "2.0", id: 0, method: "initialize", params: { processId: 1, initializationOptions: { maxNewTokens: 16 } } };
    assert.deepEqual(withToken(initialize as Message, "t"), {
      ...initialize,
      params: { processId: 1, initializationOptions: { maxNewTokens: 16, token: "t" } },
    });
    assert.deepEqual(initialize.params.initializationOptions, { maxNewTokens: 16 }, "the traced message is left as it was");
    const bare = { jsonrpc: "2.0", id: 0, method: "initialize", params: { processId: 1 } };
    assert.deepEqual((withToken(bare as Message, "t") as unknown as { params: unknown }).params, { processId: 1, initializationOptions: { token: "t" } });
  });

  test("leaves every other message alone", () => {
    const change = { jsonrpc: "2.0", method: "workspace/didChangeConfiguration", params: { settings: {} } };
    assert.equal(withToken(change as Message, "t"), change);
  });
});

describe("isTokenRefusal", () => {
  test("recognizes the daemon's InvalidRequest about initializationOptions.token only", () => {
    const message = "codet5-lsp: this daemon needs its token: send it as initializationOptions.token in initialize";
    assert.equal(isTokenRefusal({ code: -32600, message }), true);
    assert.equal(isTokenRefusal({ code: -32603, message }), false);
    assert.equal(isTokenRefusal({ code: -32600, message: "Invalid request" }), false);
    assert.equal(isTokenRefusal(new Error("connection refused")), false);
    assert.equal(isTokenRefusal(undefined), false);
  });
});
