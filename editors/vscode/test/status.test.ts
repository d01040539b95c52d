import "./vscode-hook";
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ErrorCodes, ResponseError } from "vscode-languageclient/node";
import { describeCommandError, describeStatus } from "../src/protocol";
import { StatusBar, renderStatus } from "../src/status";
import { ThemeColor, window } from "./vscode-api";

const model = { model: "tiny", device: "cpu", computeType: "int8" };

describe("renderStatus", () => {
  test("shows the loading message while the model loads", () => {
    const view = renderStatus({ kind: "running", status: { state: "loading", message: "converting to int8", ...model } }, true);
    assert.equal(view.text, "$(loading~spin) codet5: converting to int8");
    assert.match(view.tooltip, /loading tiny on cpu \(int8\)/);
    assert.equal(view.error, false);
  });

  test("ready, and off when completions are disabled", () => {
    assert.equal(renderStatus({ kind: "running", status: { state: "ready", ...model } }, true).text, "$(check) codet5");
    const off = renderStatus({ kind: "running", status: { state: "ready", ...model } }, false);
    assert.equal(off.text, "$(circle-slash) codet5");
    assert.match(off.tooltip, /Click to turn completions on/);
  });

  test("model errors and start failures are errors", () => {
    const error = renderStatus({ kind: "running", status: { state: "error", message: "no such model", ...model } }, true);
    assert.equal(error.error, true);
    assert.match(error.tooltip, /no such model/);
    const failed = renderStatus({ kind: "failed", message: "spawn codet5-lsp ENOENT" }, true);
    assert.equal(failed.text, "$(error) codet5");
    assert.match(failed.tooltip, /ENOENT/);
  });

  test("the last reason for no suggestion is in the tooltip", () => {
    const event = { reason: "language-disabled", message: "completions are off for this language", uri: "file:///w/notes.md", position: { line: 4, character: 0 } };
    const view = renderStatus({ kind: "running", status: { state: "ready", ...model } }, true, event);
    assert.equal(view.text, "$(check) codet5");
    assert.match(view.tooltip, /Last request without a suggestion: completions are off for this language \(language-disabled, notes\.md:5\)\nClick/);
    assert.doesNotMatch(renderStatus({ kind: "running", status: { state: "ready", ...model } }, true).tooltip, /Last request/);
  });

  test("idle before any model is loaded", () => {
    assert.equal(renderStatus({ kind: "running", status: { state: "idle" } }, true).text, "$(circle-outline) codet5");
    assert.equal(renderStatus({ kind: "starting" }, true).text, "$(loading~spin) codet5");
  });
});

test("StatusBar writes the view to its item, with an error background for errors", () => {
  const item = window.createStatusBarItem();
  const bar = new StatusBar(item as never, "toggle.command");
  assert.equal(item.command, "toggle.command");
  assert.equal(item.visible, true);
  bar.setClient({ kind: "running", status: { state: "error", message: "boom" } });
  assert.equal(item.text, "$(error) codet5");
  assert.ok(item.backgroundColor instanceof ThemeColor);
  bar.setClient({ kind: "running", status: { state: "ready" } });
  assert.equal(item.backgroundColor, undefined);
  bar.setEnabled(false);
  assert.equal(item.text, "$(circle-slash) codet5");
  bar.dispose();
  assert.equal(item.disposed, true);
});

describe("command messages", () => {
  test("an unknown server command reads as 'not offered yet'", () => {
    const pygls = new ResponseError(ErrorCodes.InvalidParams, "Command name 'codet5.generateDocstring' is not defined");
    const standard = new ResponseError(ErrorCodes.MethodNotFound, "Unhandled method workspace/executeCommand");
    for (const error of [pygls, standard]) {
      assert.match(describeCommandError("codet5.generateDocstring", error), /does not offer "codet5\.generateDocstring" yet: update the codet5-lsp package/);
    }
  });

  test("other failures keep the server's message", () => {
    const error = new ResponseError(-32803, "no function at the cursor");
    assert.equal(describeCommandError("codet5.generateDocstring", error), "codet5-lsp: codet5.generateDocstring failed: no function at the cursor");
    assert.equal(describeCommandError("x", new Error("connection closed")), "codet5-lsp: x failed: connection closed");
  });

  test("status reply", () => {
    const line = describeStatus({ state: "ready", message: "Ready", ...model, cache: { hits: 3, misses: 4 } });
    assert.equal(line, "codet5-lsp: ready, tiny on cpu (int8); typed-ahead cache 3 hits, 4 misses");
    assert.equal(describeStatus({ state: "ready", message: "Ready", ...model, runtime: "onnxruntime" }), "codet5-lsp: ready, tiny on cpu (int8, onnxruntime)");
    assert.match(renderStatus({ kind: "running", status: { state: "ready", ...model, runtime: "ctranslate2" } }, true).tooltip, /tiny on cpu \(int8, ctranslate2\)/);
    assert.equal(describeStatus({ state: "loading", message: "converting" }), "codet5-lsp: loading (converting), no model");
    const recent = [{ reason: "superseded", message: "a newer request cancelled this one", uri: "file:///w/a.py", position: { line: 0, character: 3 } }];
    assert.equal(
      describeStatus({ state: "ready", noSuggestion: { counts: { superseded: 1 }, recent } }),
      "codet5-lsp: ready, no model; last without a suggestion: a newer request cancelled this one (superseded, a.py:1)",
    );
  });
});
