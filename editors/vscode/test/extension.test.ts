// The extension with the real vscode-languageclient against the real server; only VS Code's API
// is the stand-in from vscode-api.ts.
import "./vscode-hook";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import { ExecuteCommandRequest } from "vscode-languageclient/node";
import { COMMANDS, Codet5Api, activate, deactivate } from "../src/extension";
import { SERVER_COMMANDS, StatusReply } from "../src/protocol";
import { TOKEN_ENV } from "../src/token";
import {
  ADD_COMPLETION,
  ADD_SOURCE,
  closedPort,
  modelArgs,
  prepareEnvironment,
  serverCommand,
  skipWithoutServer,
  startDaemon,
  testModel,
  waitFor,
} from "./server";
import { CancellationTokenSource, InlineCompletionTriggerKind, LogLevel, Position, Selection, createDocument, mock } from "./vscode-api";

const ALL_COMMANDS = Object.values(COMMANDS);

function start(settings: Record<string, unknown>): Promise<Codet5Api> {
  mock.reset();
  for (const [key, value] of Object.entries(settings)) {
    mock.settings.set(key, value);
  }
  const api = activate({ subscriptions: [] } as never);
  return api.ready.then(() => api);
}

function statusBar() {
  assert.equal(mock.statusBarItems.length, 1);
  return mock.statusBarItems[0];
}

async function serverStatus(api: Codet5Api): Promise<StatusReply> {
  return (await api.client!.sendRequest(ExecuteCommandRequest.type, { command: SERVER_COMMANDS.status })) as StatusReply;
}

async function complete(document: ReturnType<typeof createDocument>, position: Position) {
  const provider = mock.inlineCompletionProvider();
  assert.ok(provider, "the language client registered no inline completion provider");
  const context = { triggerKind: InlineCompletionTriggerKind.Automatic, selectedCompletionInfo: undefined };
  const result = await provider.provideInlineCompletionItems(document, position, context, new CancellationTokenSource().token);
  return result ? (Array.isArray(result) ? result : result.items) : undefined;
}

function stdioSettings(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const [command, ...args] = serverCommand!;
  return { "codet5.server.path": command, "codet5.server.args": [...args, "--threads", "1"], "codet5.model": testModel, ...extra };
}

describe("a server that cannot start", () => {
  afterEach(() => deactivate());

  test("stdio: a clear message naming the setting, an error in the status bar, no hang", async () => {
    const api = await start({ "codet5.server.path": "/nonexistent/codet5-lsp" });
    assert.deepEqual(ALL_COMMANDS.filter((id) => !mock.commands.has(id)), []);
    assert.equal(api.client?.isRunning() ?? false, false);
    assert.equal(statusBar().text, "$(error) codet5");
    assert.equal(statusBar().command, COMMANDS.toggle);
    const errors = mock.messages.filter((m) => m.kind === "error" && m.message.includes("could not start"));
    assert.equal(errors.length, 1, JSON.stringify(mock.messages));
    assert.match(errors[0].message, /\/nonexistent\/codet5-lsp/);
    assert.match(errors[0].message, /codet5\.server\.path/);
  });

  test("daemon: says which address refused and how to start the daemon", async () => {
    const port = await closedPort();
    await start({ "codet5.daemon.address": `127.0.0.1:${port}` });
    assert.equal(statusBar().text, "$(error) codet5");
    const errors = mock.messages.filter((m) => m.kind === "error");
    assert.equal(errors.length, 1, JSON.stringify(mock.messages));
    const error = errors[0];
    assert.match(error.message, new RegExp(`cannot connect to the codet5-lsp daemon at 127\\.0\\.0\\.1:${port}`));
    assert.match(error.message, new RegExp(`codet5-lsp --tcp --port ${port}`));
  });

  test("a malformed daemon address is reported without starting anything", async () => {
    const api = await start({ "codet5.daemon.address": "localhost" });
    assert.equal(api.client, undefined);
    assert.match(mock.messages.find((m) => m.kind === "error")?.message ?? "", /codet5\.daemon\.address must look like/);
  });
});

describe("with the real server over stdio", { skip: skipWithoutServer }, () => {
  let api: Codet5Api;
  const document = createDocument("/tmp/codet5-vscode-test/add.py", "python", ADD_SOURCE);
  const end = new Position(1, "    return".length);

  before(() => prepareEnvironment());
  after(() => deactivate());

  test("activation starts the server, forwards settings and shows the model state", async () => {
    api = await start(stdioSettings({ "codet5.contextTokens": 512, "codet5.server.args": [...serverCommand!.slice(1), "--threads", "1", "--offline"] }));
    assert.deepEqual(ALL_COMMANDS.filter((id) => !mock.commands.has(id)), []);
    assert.ok(api.client?.isRunning());
    await waitFor("the ready state in the status bar", () => statusBar().text === "$(check) codet5");
    assert.match(statusBar().tooltip, /ready/);
    const texts: string[] = statusBar().texts;
    const loading = texts.findIndex((text) => text.startsWith("$(loading~spin) codet5: ") && text.length > "$(loading~spin) codet5: ".length);
    assert.ok(loading >= 0 && loading < texts.lastIndexOf("$(check) codet5"), `loading with its message, then ready: ${JSON.stringify(texts)}`);
    const reply = await serverStatus(api);
    assert.equal(reply.state, "ready");
    assert.equal(reply.settings?.model, testModel);
    assert.equal(reply.settings?.contextTokens, 512);
    // Not set in VS Code, so the server's --offline flag stands.
    assert.equal(reply.settings?.localFilesOnly, true);
    assert.deepEqual(mock.messages, []);
  });

  test("the inline completion provider returns the model's suggestion", async () => {
    mock.open(document);
    const items = await complete(document, end);
    assert.equal(items?.length, 1);
    assert.equal(items![0].insertText, ADD_COMPLETION);
    assert.deepEqual([items![0].range.start.line, items![0].range.start.character], [1, end.character]);
  });

  test("an empty answer's reason reaches the status bar tooltip and the status command", async () => {
    const repeated = createDocument("/tmp/codet5-vscode-test/repeated.py", "python", "def add(a, b):\n    return a + b\n");
    mock.open(repeated);
    assert.deepEqual(await complete(repeated, new Position(1, 4)), []); // the model only retypes the rest of the line
    await waitFor("the reason in the tooltip", () => /duplicates-suffix, repeated\.py:2\)/.test(statusBar().tooltip));
    assert.match(statusBar().tooltip, /Last request without a suggestion: the suggestion only repeated the text after the cursor/);
    const last = (await serverStatus(api)).noSuggestion?.recent.at(-1);
    assert.deepEqual([last?.reason, last?.position], ["duplicates-suffix", { line: 1, character: 4 }]);
    mock.messages.length = 0;
    await mock.commands.get(COMMANDS.showStatus)!();
    assert.match(mock.messages[0]?.message ?? "", /last without a suggestion: .*\(duplicates-suffix, repeated\.py:2\)$/);
    mock.messages.length = 0;
  });

  test("the completion-list fallback is not requested (it would cancel the inline request)", async () => {
    const provider = mock.providers.find((p) => p.kind === "completion")?.provider;
    assert.ok(provider, "the server advertises textDocument/completion");
    const result = await provider.provideCompletionItems(document, end, { triggerKind: 0 }, new CancellationTokenSource().token);
    assert.equal(result, undefined);
  });

  test("toggle turns completions off in the client, the server and the status bar, and back on", async () => {
    await mock.commands.get(COMMANDS.toggle)!();
    assert.equal(mock.settings.get("codet5.enabled"), false);
    assert.equal(statusBar().text, "$(circle-slash) codet5");
    assert.equal(await complete(document, end), undefined);
    await waitFor("enabled=false on the server", async () => (await serverStatus(api)).settings?.enabled === false);
    await mock.commands.get(COMMANDS.toggle)!();
    assert.equal(statusBar().text, "$(check) codet5");
    await waitFor("enabled=true on the server", async () => (await serverStatus(api)).settings?.enabled === true);
    assert.equal((await complete(document, end))?.[0].insertText, ADD_COMPLETION);
  });

  test("disabled languages get no request", async () => {
    mock.configure({ "codet5.disabledLanguages": ["python"] });
    assert.equal(await complete(document, end), undefined);
    mock.configure({ "codet5.disabledLanguages": undefined });
  });

  test("changed settings reach the server through didChangeConfiguration; removed ones go back to the default", async () => {
    mock.configure({ "codet5.maxNewTokens": 8 });
    await waitFor("maxNewTokens=8 on the server", async () => (await serverStatus(api)).settings?.maxNewTokens === 8);
    mock.configure({ "codet5.maxNewTokens": undefined });
    await waitFor("maxNewTokens back to 48", async () => (await serverStatus(api)).settings?.maxNewTokens === 48);
    assert.deepEqual(mock.messages, []);
  });

  test("the cursor is reported when the user switches to a file or moves in it, and the server prepares the prompt there", async () => {
    const other = createDocument("/tmp/codet5-vscode-test/cursor.py", "python", "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n");
    mock.open(other);
    const at = (line: number, character: number) => async () => {
      const prewarm = (await serverStatus(api)).prewarm;
      return prewarm?.uri.endsWith("cursor.py") === true && prewarm.line === line && prewarm.character === character;
    };
    mock.focus(other, new Position(4, 3));
    await waitFor("a prewarm at the focused cursor", at(4, 3));
    mock.moveCursor(new Position(1, 4));
    await waitFor("a prewarm at the moved cursor", at(1, 4));
  });

  test("generate docstring sends codet5.generateDocstring for the cursor and reports the outcome", async () => {
    mock.activeEditor = { document, selection: new Selection(new Position(0, 4), new Position(0, 4)) };
    const offered = api.client!.initializeResult?.capabilities.executeCommandProvider?.commands.includes(SERVER_COMMANDS.generateDocstring);
    await mock.commands.get(COMMANDS.generateDocstring)!();
    if (offered) {
      await waitFor("the docstring edit", () => mock.appliedEdits.length > 0);
    } else {
      const warning = mock.messages.find((m) => m.kind === "warning");
      assert.match(warning?.message ?? "", /does not offer "codet5\.generateDocstring" yet/);
    }
  });

  test("show status and show log", async () => {
    mock.messages.length = 0;
    await mock.commands.get(COMMANDS.showStatus)!();
    assert.match(mock.messages[0]?.message ?? "", /^codet5-lsp: ready, .*typed-ahead cache \d+ hits/);
    await mock.commands.get(COMMANDS.showLog)!();
    assert.equal((api as unknown as { output: { shown: boolean } }).output.shown, true);
  });

  test("restart starts a new server that completes again", async () => {
    const before = api.client;
    await mock.commands.get(COMMANDS.restartServer)!();
    assert.notEqual(api.client, before);
    assert.equal(before!.isRunning(), false);
    assert.ok(api.client!.isRunning());
    await waitFor("ready after the restart", () => statusBar().text === "$(check) codet5");
    assert.equal((await complete(document, end))?.[0].insertText, ADD_COMPLETION);
  });

  test("deactivation stops the server", async () => {
    const client = api.client!;
    await deactivate();
    assert.equal(client.isRunning(), false);
  });
});

describe("with a shared daemon over TCP", { skip: skipWithoutServer }, () => {
  let daemon: Awaited<ReturnType<typeof startDaemon>>;

  before(async () => {
    daemon = await startDaemon();
  });

  afterEach(() => deactivate());
  after(() => {
    daemon?.process.kill();
  });

  test("connects to the daemon; the editor's model settings are left to the daemon", async () => {
    const api = await start({ "codet5.daemon.address": `127.0.0.1:${daemon.port}`, "codet5.model": "something-else", "codet5.maxNewTokens": 16 });
    await waitFor("ready from the daemon", () => statusBar().text === "$(check) codet5");
    const reply = await serverStatus(api);
    assert.equal(reply.settings?.model, modelArgs()[1]);
    assert.equal(reply.settings?.maxNewTokens, 16);
    assert.deepEqual(mock.messages, [], "no warning about model settings from the editor");
    const document = createDocument("/tmp/codet5-vscode-test/shared.py", "python", ADD_SOURCE);
    mock.open(document);
    assert.equal((await complete(document, new Position(1, 10)))?.[0].insertText, ADD_COMPLETION);
  });

  test("the daemon outlives one editor: the next one connects to the same loaded model", async () => {
    const api = await start({ "codet5.daemon.address": `127.0.0.1:${daemon.port}` });
    await waitFor("ready from the daemon", () => statusBar().text === "$(check) codet5");
    assert.equal(daemon.process.exitCode, null);
    const document = createDocument("/tmp/codet5-vscode-test/second.py", "python", ADD_SOURCE);
    mock.open(document);
    assert.equal((await complete(document, new Position(1, 10)))?.[0].insertText, ADD_COMPLETION);
    assert.equal((await serverStatus(api)).state, "ready");
  });
});

describe("with a daemon that needs a token", { skip: skipWithoutServer }, () => {
  const token = "s3cret-token-for-the-test";
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "codet5-vscode-token-"));
  const tokenFile = path.join(dir, "token");
  const wrongFile = path.join(dir, "wrong");
  let daemon: Awaited<ReturnType<typeof startDaemon>>;

  before(async () => {
    fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    fs.writeFileSync(wrongFile, "not-the-token\n", { mode: 0o600 });
    daemon = await startDaemon(["--token-file", tokenFile]);
  });

  afterEach(() => deactivate());
  after(() => {
    daemon?.process.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function logLines(api: Codet5Api): string[] {
    return (api as unknown as { output: { lines: string[] } }).output.lines;
  }

  /** The extension connected to the daemon with `extra` settings, the LSP traffic traced to its log. */
  async function startTraced(extra: Record<string, unknown>): Promise<Codet5Api> {
    mock.reset();
    for (const [key, value] of Object.entries({ "codet5.daemon.address": `127.0.0.1:${daemon.port}`, "codet5.trace.server": "verbose", ...extra })) {
      mock.settings.set(key, value);
    }
    const api = activate({ subscriptions: [] } as never);
    (api as unknown as { output: { logLevel: number } }).output.logLevel = LogLevel.Trace; // before the client reads it
    await api.ready;
    return api;
  }

  async function completesWith(api: Codet5Api, name: string): Promise<void> {
    await waitFor("ready from the daemon", () => statusBar().text === "$(check) codet5");
    const document = createDocument(`/tmp/codet5-vscode-test/${name}.py`, "python", ADD_SOURCE);
    mock.open(document);
    assert.equal((await complete(document, new Position(1, 10)))?.[0].insertText, ADD_COMPLETION);
    assert.equal((await serverStatus(api)).state, "ready");
    assert.ok(logLines(api).some((line) => line.includes("initialize")), "the LSP trace is on");
    assert.ok(!logLines(api).some((line) => line.includes(token)), "the token is not in the log, even with the trace on");
  }

  async function refused(api: Codet5Api): Promise<string> {
    assert.equal(api.client?.isRunning() ?? false, false);
    assert.equal(statusBar().text, "$(error) codet5");
    const errors = mock.messages.filter((m) => m.kind === "error");
    assert.equal(errors.length, 1, JSON.stringify(mock.messages));
    assert.ok(!errors[0].message.includes(token) && !logLines(api).some((line) => line.includes(token)), "the token is not shown");
    return errors[0].message;
  }

  test("connects with the token from codet5.daemon.tokenFile; the token is never logged", async () => {
    await completesWith(await startTraced({ "codet5.daemon.tokenFile": tokenFile }), "token-file");
  });

  test(`connects with the token from ${TOKEN_ENV}`, async () => {
    process.env[TOKEN_ENV] = token;
    try {
      await completesWith(await startTraced({}), "token-env");
    } finally {
      delete process.env[TOKEN_ENV];
    }
  });

  for (const [what, settings] of [["a wrong token", { "codet5.daemon.tokenFile": wrongFile }], ["no token", {}]] as const) {
    test(`${what}: the daemon refuses, and the message says which setting to fix`, async () => {
      const message = await refused(await startTraced(settings));
      assert.match(message, new RegExp(`daemon at 127\\.0\\.0\\.1:${daemon.port} refused this editor: the token is wrong or missing`));
      assert.match(message, /codet5\.daemon\.tokenFile/);
      assert.match(message, new RegExp(TOKEN_ENV));
      assert.equal(daemon.process.exitCode, null, "the daemon keeps serving");
    });
  }

  test("an unreadable token file is reported without connecting", async () => {
    const missing = path.join(dir, "missing");
    const message = await refused(await startTraced({ "codet5.daemon.tokenFile": missing }));
    assert.ok(message.includes(`cannot read codet5.daemon.tokenFile ${missing} (ENOENT)`), message);
  });
});
