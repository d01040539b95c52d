// Entry point: starts the client, keeps the status bar in step with the server, registers commands.
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  State,
} from "vscode-languageclient/node";
import { ClientFactory, createClient } from "./client";
import {
  CURSOR_NOTIFICATION,
  ModelStatus,
  NO_SUGGESTION_NOTIFICATION,
  NoSuggestion,
  SERVER_COMMANDS,
  STATUS_NOTIFICATION,
  StatusReply,
  describeCommandError,
  describeStatus,
} from "./protocol";
import {
  LAUNCH_SETTINGS,
  Launch,
  completionsEnabled,
  describeLaunch,
  explicitSettings,
  launchFrom,
  serverSettings,
  settingsUpdate,
} from "./settings";
import { StatusBar } from "./status";
import { TOKEN_ENV, daemonToken, isTokenRefusal } from "./token";

/**
 * The extension's own commands. They live under `codet5.editor.` because vscode-languageclient
 * registers every command the server advertises (`codet5.status`, `codet5.generateDocstring`, ...)
 * under the server's own name, and VS Code refuses a second registration of a name.
 */
export const COMMANDS = {
  toggle: "codet5.editor.toggle",
  generateDocstring: "codet5.editor.generateDocstring",
  restartServer: "codet5.editor.restartServer",
  showLog: "codet5.editor.showLog",
  showStatus: "codet5.editor.showStatus",
} as const;

const SECTION = "codet5";
const STOP_TIMEOUT_MS = 5_000;
/** The cursor is reported this long after it last moved (one report per pause, not per key). */
export const CURSOR_REPORT_MS = 150;
/** The schemes the client syncs (clientOptions' documentSelector): the server knows no other document. */
const SYNCED_SCHEMES = ["file", "untitled"];

/** What `activate` returns to other extensions (and to the tests). */
export interface Codet5Api {
  /** Settles when the current (re)start attempt has finished, successfully or not. */
  readonly ready: Promise<void>;
  readonly client: LanguageClient | undefined;
}

export class Codet5Extension implements vscode.Disposable, Codet5Api {
  readonly output: vscode.LogOutputChannel;
  private readonly statusBar: StatusBar;
  private readonly disposables: vscode.Disposable[] = [];
  private current: { client: LanguageClient; launch: Launch; sent: Set<string> } | undefined;
  private queue: Promise<void> = Promise.resolve();
  private cursorTimer: ReturnType<typeof setTimeout> | undefined;
  private cursorEditor: vscode.TextEditor | undefined;

  constructor(private readonly factory: ClientFactory = createClient) {
    this.output = vscode.window.createOutputChannel("codet5-lsp", { log: true });
    this.statusBar = new StatusBar(vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100), COMMANDS.toggle);
    this.statusBar.setEnabled(config().get<boolean>("enabled") ?? true);
    this.disposables.push(
      this.output,
      this.statusBar,
      vscode.commands.registerCommand(COMMANDS.toggle, () => this.toggle()),
      vscode.commands.registerCommand(COMMANDS.generateDocstring, () => this.generateDocstring()),
      vscode.commands.registerCommand(COMMANDS.restartServer, () => this.restart()),
      vscode.commands.registerCommand(COMMANDS.showLog, () => this.output.show(true)),
      vscode.commands.registerCommand(COMMANDS.showStatus, () => this.showStatus()),
      vscode.workspace.onDidChangeConfiguration((event) => this.onConfigurationChanged(event)),
      vscode.window.onDidChangeActiveTextEditor((editor) => this.cursorMoved(editor)),
      vscode.window.onDidChangeTextEditorSelection((event) => this.cursorMoved(event.textEditor)),
    );
  }

  get ready(): Promise<void> {
    return this.queue;
  }

  get client(): LanguageClient | undefined {
    return this.current?.client;
  }

  /** Stops any running client and starts a new one from the current settings. */
  restart(): Promise<void> {
    return this.enqueue(async () => {
      await this.stopClient();
      await this.startClient();
    });
  }

  async toggle(): Promise<void> {
    const settings = config();
    const enabled = settings.get<boolean>("enabled") ?? true;
    const inspected = settings.inspect<boolean>("enabled");
    const target =
      inspected?.workspaceFolderValue !== undefined
        ? vscode.ConfigurationTarget.WorkspaceFolder
        : inspected?.workspaceValue !== undefined
          ? vscode.ConfigurationTarget.Workspace
          : vscode.ConfigurationTarget.Global;
    await settings.update("enabled", !enabled, target);
    vscode.window.setStatusBarMessage(`codet5-lsp: completions ${enabled ? "off" : "on"}`, 3000);
  }

  async generateDocstring(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    const client = this.runningClient();
    if (!editor || !client) {
      void vscode.window.showInformationMessage(
        editor ? "codet5-lsp is not running: run \"codet5: Restart server\"." : "Open a file and put the cursor in a function first.",
      );
      return;
    }
    const args = [
      client.code2ProtocolConverter.asUri(editor.document.uri),
      client.code2ProtocolConverter.asPosition(editor.selection.active),
    ];
    try {
      await client.sendRequest(ExecuteCommandRequest.type, { command: SERVER_COMMANDS.generateDocstring, arguments: args });
    } catch (error) {
      void vscode.window.showWarningMessage(describeCommandError(SERVER_COMMANDS.generateDocstring, error));
    }
  }

  async showStatus(): Promise<void> {
    const client = this.runningClient();
    if (!client) {
      const state = this.statusBar.state;
      void vscode.window.showWarningMessage(state.kind === "failed" ? `codet5-lsp: ${state.message}` : "codet5-lsp is not running.");
      return;
    }
    try {
      const reply = (await client.sendRequest(ExecuteCommandRequest.type, { command: SERVER_COMMANDS.status })) as StatusReply;
      void vscode.window.showInformationMessage(describeStatus(reply));
    } catch (error) {
      void vscode.window.showWarningMessage(describeCommandError(SERVER_COMMANDS.status, error));
    }
  }

  async dispose(): Promise<void> {
    clearTimeout(this.cursorTimer);
    await this.enqueue(() => this.stopClient());
    for (const disposable of this.disposables.splice(0)) {
      disposable.dispose();
    }
  }

  private onConfigurationChanged(event: vscode.ConfigurationChangeEvent): void {
    if (!event.affectsConfiguration(SECTION)) {
      return;
    }
    const settings = config();
    this.statusBar.setEnabled(settings.get<boolean>("enabled") ?? true);
    if (LAUNCH_SETTINGS.some((key) => event.affectsConfiguration(`${SECTION}.${key}`))) {
      void this.restart();
      return;
    }
    const current = this.current;
    if (current && current.client.isRunning()) {
      const update = settingsUpdate(serverSettings(explicitSettings(settings), current.launch), current.sent, settings);
      Object.keys(update).forEach((key) => current.sent.add(key));
      void current.client.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: update } });
    }
  }

  /** The user switched to `editor` or moved its cursor: reported CURSOR_REPORT_MS after the last move. */
  private cursorMoved(editor: vscode.TextEditor | undefined): void {
    if (!editor) {
      return;
    }
    this.cursorEditor = editor;
    clearTimeout(this.cursorTimer);
    this.cursorTimer = setTimeout(() => this.reportCursor(), CURSOR_REPORT_MS);
  }

  /** Tell the server where the cursor rests (`codet5/cursor`), so it can compute the prompt there while the editor is quiet. */
  private reportCursor(): void {
    const editor = this.cursorEditor;
    const client = this.runningClient();
    this.cursorTimer = undefined;
    if (!editor || !client || !SYNCED_SCHEMES.includes(editor.document.uri.scheme) || !completionsEnabled(config(), editor.document.languageId)) {
      return;
    }
    void client.sendNotification(CURSOR_NOTIFICATION, {
      textDocument: { uri: client.code2ProtocolConverter.asUri(editor.document.uri) },
      position: client.code2ProtocolConverter.asPosition(editor.selection.active),
    });
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(step, step);
    return this.queue;
  }

  private runningClient(): LanguageClient | undefined {
    const client = this.current?.client;
    return client && client.isRunning() ? client : undefined;
  }

  private async startClient(): Promise<void> {
    this.statusBar.setClient({ kind: "starting" });
    let launch: Launch;
    try {
      launch = launchFrom(config());
    } catch (error) {
      this.fail(error instanceof Error ? error.message : String(error));
      return;
    }
    let token: string | undefined;
    try {
      token = launch.kind === "tcp" ? daemonToken(config().get<string>("daemon.tokenFile"), process.env) : undefined;
    } catch (error) {
      this.fail(`codet5-lsp: ${error instanceof Error ? error.message : String(error)}.`);
      return;
    }
    this.output.info(`starting the client: ${describeLaunch(launch)}${token ? " (with the daemon token)" : ""}`);
    const initializationOptions = serverSettings(explicitSettings(config()), launch);
    const client = this.factory(launch, {
      initializationOptions,
      outputChannel: this.output,
      wantsCompletions: (document) => completionsEnabled(config(), document.languageId),
      daemonToken: token,
    });
    this.current = { client, launch, sent: new Set(Object.keys(initializationOptions)) };
    client.onNotification(STATUS_NOTIFICATION, (status: ModelStatus) => {
      if (this.current?.client === client) {
        this.statusBar.setClient({ kind: "running", status });
      }
    });
    client.onNotification(NO_SUGGESTION_NOTIFICATION, (event: NoSuggestion) => {
      if (this.current?.client === client) {
        this.statusBar.setNoSuggestion(event);
      }
    });
    client.onDidChangeState((event) => {
      if (event.newState === State.Stopped && this.current?.client === client && this.statusBar.state.kind === "running") {
        this.statusBar.setClient({ kind: "failed", message: "the server stopped" });
      }
    });
    try {
      await client.start();
    } catch (error) {
      this.fail(startFailure(launch, error));
    }
  }

  private async stopClient(): Promise<void> {
    const current = this.current;
    this.current = undefined;
    if (!current) {
      return;
    }
    try {
      if (current.client.isRunning()) {
        await current.client.stop(STOP_TIMEOUT_MS);
      }
    } catch (error) {
      this.output.warn(`stopping the client: ${error instanceof Error ? error.message : String(error)}`);
    }
    await current.client.dispose(STOP_TIMEOUT_MS).catch(() => undefined);
  }

  private fail(message: string): void {
    this.output.error(message);
    this.statusBar.setClient({ kind: "failed", message });
    void vscode.window.showErrorMessage(message, "Show log", "Open settings").then((choice) => {
      if (choice === "Show log") {
        this.output.show(true);
      } else if (choice === "Open settings") {
        void vscode.commands.executeCommand("workbench.action.openSettings", SECTION);
      }
    });
  }
}

/** Why the client did not start, with what to do about it. */
export function startFailure(launch: Launch, error: unknown): string {
  const reason = error instanceof Error ? error.message : String(error);
  if (launch.kind === "tcp" && isTokenRefusal(error)) {
    return `codet5-lsp: the daemon at ${launch.host}:${launch.port} refused this editor: the token is wrong or missing. Set codet5.daemon.tokenFile to the daemon's token file (or ${TOKEN_ENV} in VS Code's environment) and run "codet5: Restart server".`;
  }
  if (launch.kind === "tcp") {
    return `codet5-lsp: ${reason}. Start the daemon with "codet5-lsp --tcp --port ${launch.port}" or clear codet5.daemon.address.`;
  }
  return `codet5-lsp: could not start "${describeLaunch(launch)}": ${reason}. Install the codet5-lsp Python package or set codet5.server.path to its full path.`;
}

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration(SECTION);
}

let extension: Codet5Extension | undefined;

export function activate(context: vscode.ExtensionContext): Codet5Api {
  extension = new Codet5Extension();
  context.subscriptions.push(extension);
  void extension.restart();
  return extension;
}

export async function deactivate(): Promise<void> {
  await extension?.dispose();
  extension = undefined;
}
