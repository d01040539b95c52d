// The wire protocol the extension relies on, spoken to the real server with vscode-languageclient's
// own protocol library (no VS Code, no stand-in): a spawned server over stdio.
import assert from "node:assert/strict";
import * as cp from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  ApplyWorkspaceEditRequest,
  DidChangeConfigurationNotification,
  DidOpenTextDocumentNotification,
  ExecuteCommandRequest,
  ExitNotification,
  InitializeRequest,
  InitializedNotification,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  ProtocolConnection,
  ResponseError,
  ShowMessageNotification,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
  WorkDoneProgressCreateRequest,
  createProtocolConnection,
} from "vscode-languageserver-protocol/node";
import { ModelStatus, SERVER_COMMANDS, STATUS_NOTIFICATION, StatusReply, describeCommandError } from "../src/protocol";
import { SERVER_SETTINGS, serverSettings } from "../src/settings";
import { ADD_COMPLETION, ADD_SOURCE, modelArgs, prepareEnvironment, serverCommand, skipWithoutServer, waitFor } from "./server";

const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8"));

describe("the real server, spoken to with vscode-languageserver-protocol", { skip: skipWithoutServer }, () => {
  let server: cp.ChildProcess;
  let connection: ProtocolConnection;
  const statuses: ModelStatus[] = [];
  const messages: string[] = [];
  let progressTokens = 0;
  let applyEdits = 0;
  let commands: string[] = [];
  const uri = "file:///tmp/codet5-wire/add.py";

  before(async () => {
    prepareEnvironment();
    const [command, ...args] = serverCommand!;
    server = cp.spawn(command, [...args, ...modelArgs()], { stdio: ["pipe", "pipe", "ignore"] });
    connection = createProtocolConnection(new StreamMessageReader(server.stdout!), new StreamMessageWriter(server.stdin!));
    connection.onNotification(STATUS_NOTIFICATION, (status: ModelStatus) => {
      statuses.push(status);
    });
    connection.onNotification(ShowMessageNotification.type, (params) => {
      messages.push(params.message);
    });
    connection.onRequest(WorkDoneProgressCreateRequest.type, () => {
      progressTokens += 1;
    });
    // This bare connection has no editor buffer: it declines the docstring edits it is sent.
    connection.onRequest(ApplyWorkspaceEditRequest.type, () => {
      applyEdits += 1;
      return { applied: false, failureReason: "no editor buffer in the wire test" };
    });
    connection.listen();
  });

  after(async () => {
    connection?.dispose();
    server?.kill();
  });

  test("initialize with the extension's settings advertises inline completion and the status command", async () => {
    const launch = { kind: "stdio" as const, command: serverCommand![0], args: [] };
    const options = serverSettings({ get: <T>(key: string) => ({ completionMode: "line", maxNewTokens: 16 })[key] as T }, launch);
    const result = await connection.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri: null,
      capabilities: { window: { workDoneProgress: true }, textDocument: { inlineCompletion: { dynamicRegistration: false } } },
      initializationOptions: options,
    });
    assert.ok(result.capabilities.inlineCompletionProvider);
    commands = result.capabilities.executeCommandProvider?.commands ?? [];
    assert.ok(commands.includes(SERVER_COMMANDS.status));
    await connection.sendNotification(InitializedNotification.type, {});
    await waitFor("codet5/status ready", () => statuses.some((s) => s.state === "ready"));
    assert.ok(progressTokens >= 1, "the model load is reported as workDoneProgress");
    const reply = (await connection.sendRequest(ExecuteCommandRequest.type, { command: SERVER_COMMANDS.status })) as StatusReply;
    assert.equal(reply.settings?.completionMode, "line");
    assert.equal(reply.settings?.maxNewTokens, 16);
    // The extension contributes the server's settings with the server's defaults (model and threads come from the command line here).
    assert.deepEqual(Object.keys(reply.settings!).sort(), [...SERVER_SETTINGS].sort());
    const properties = manifest.contributes.configuration.properties;
    for (const key of SERVER_SETTINGS.filter((k) => !["model", "summaryModel", "threads", "completionMode", "maxNewTokens"].includes(k))) {
      assert.deepEqual(reply.settings![key], properties[`codet5.${key}`].default, `default of codet5.${key}`);
    }
  });

  test("textDocument/inlineCompletion returns the model's suggestion at the cursor", async () => {
    await connection.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri, languageId: "python", version: 1, text: ADD_SOURCE },
    });
    const position = { line: 1, character: "    return".length };
    const result = await connection.sendRequest(InlineCompletionRequest.type, {
      textDocument: { uri },
      position,
      context: { triggerKind: InlineCompletionTriggerKind.Automatic },
    });
    const items = Array.isArray(result) ? result : result?.items;
    assert.equal(items?.length, 1);
    assert.equal(items![0].insertText, ADD_COMPLETION);
    assert.deepEqual(items![0].range, { start: position, end: position });
  });

  test("didChangeConfiguration in the shape the extension sends reaches the server", async () => {
    await connection.sendNotification(DidChangeConfigurationNotification.type, { settings: { codet5: { maxNewTokens: 8 } } });
    await waitFor("maxNewTokens=8", async () => {
      const reply = (await connection.sendRequest(ExecuteCommandRequest.type, { command: SERVER_COMMANDS.status })) as StatusReply;
      return reply.settings?.maxNewTokens === 8;
    });
    assert.deepEqual(messages, []);
  });

  test("codet5.generateDocstring is answered, or refused in a way the extension words as 'not offered yet'", async () => {
    const request = connection.sendRequest(ExecuteCommandRequest.type, {
      command: SERVER_COMMANDS.generateDocstring,
      arguments: [uri, { line: 0, character: 4 }],
    });
    if (commands.includes(SERVER_COMMANDS.generateDocstring)) {
      const result = (await request) as { applied: boolean };
      assert.ok(applyEdits >= 1, "the docstring arrives as workspace/applyEdit");
      assert.equal(result.applied, false, "a declined edit is reported, not claimed");
    } else {
      const error = await request.then(() => undefined, (e: unknown) => e);
      assert.ok(error instanceof ResponseError, `expected an error, got ${String(error)}`);
      assert.match(describeCommandError(SERVER_COMMANDS.generateDocstring, error), /does not offer "codet5\.generateDocstring" yet/);
    }
  });

  test("shutdown and exit end the server", async () => {
    const exited = new Promise<number | null>((resolve) => server.once("exit", (code) => resolve(code)));
    await connection.sendRequest(ShutdownRequest.type);
    await connection.sendNotification(ExitNotification.type);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve("still running after 15 s"), 15_000);
    });
    const code = await Promise.race([exited, timeout]);
    clearTimeout(timer);
    assert.equal(code, 0);
  });
});
