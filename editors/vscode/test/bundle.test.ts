// The file VS Code loads: package.json's `main`, as esbuild bundled it (run `npm run build` first).
import "./vscode-hook";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { LAUNCH_SETTINGS, SERVER_SETTINGS } from "../src/settings";
import { mock } from "./vscode-api";

const root = path.join(__dirname, "..", "..");
const manifest = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));

test("the bundle named by package.json activates, registers every contributed command and reports a missing server", async () => {
  const bundle = path.join(root, manifest.main);
  assert.ok(fs.existsSync(bundle), `${manifest.main} is missing: run npm run build`);
  const extension = require(bundle);
  mock.reset();
  mock.settings.set("codet5.server.path", "/nonexistent/codet5-lsp");
  const api = extension.activate({ subscriptions: [] });
  await api.ready;
  const contributed: string[] = manifest.contributes.commands.map((c: { command: string }) => c.command);
  assert.deepEqual([...mock.commands.keys()].sort(), [...contributed].sort());
  assert.equal(mock.statusBarItems[0].text, "$(error) codet5");
  assert.match(mock.messages.map((m) => m.message).join("\n"), /could not start "\/nonexistent\/codet5-lsp"/);
  await extension.deactivate();
  assert.equal(mock.statusBarItems[0].disposed, true);
});

test("every setting the extension reads or forwards is contributed with a default", () => {
  const properties = manifest.contributes.configuration.properties as Record<string, { default?: unknown }>;
  for (const key of [...SERVER_SETTINGS, ...LAUNCH_SETTINGS, "trace.server"]) {
    assert.ok(`codet5.${key}` in properties, `codet5.${key} is not in package.json`);
    assert.notEqual(properties[`codet5.${key}`].default, undefined, `codet5.${key} has no default`);
  }
});
