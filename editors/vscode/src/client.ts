// Builds the vscode-languageclient client for a launch: a spawned server (stdio) or a daemon (TCP).
import * as net from "net";
import * as vscode from "vscode";
import { LanguageClient, LanguageClientOptions, ServerOptions, StreamInfo } from "vscode-languageclient/node";
import { Launch } from "./settings";

export const CLIENT_ID = "codet5";
export const CLIENT_NAME = "codet5-lsp";
const CONNECT_TIMEOUT_MS = 10_000;

/** The parts of LanguageClientOptions that depend on the user's settings. */
export interface ClientSettings {
  initializationOptions: Record<string, unknown>;
  outputChannel: vscode.LogOutputChannel;
  /** Asked before every completion request: false skips the request. */
  wantsCompletions(document: vscode.TextDocument): boolean;
}

export type ClientFactory = (launch: Launch, settings: ClientSettings) => LanguageClient;

export function createClient(launch: Launch, settings: ClientSettings): LanguageClient {
  return new Codet5LanguageClient(CLIENT_ID, CLIENT_NAME, serverOptions(launch), clientOptions(settings));
}

/**
 * A LanguageClient that leaves start failures to the extension: the library's own notice
 * ("couldn't create connection to server" and a stack trace) still goes to the log, while
 * the extension shows one message that says what to do.
 */
class Codet5LanguageClient extends LanguageClient {
  private starting = false;

  override async start(): Promise<void> {
    this.starting = true;
    try {
      await super.start();
    } finally {
      this.starting = false;
    }
  }

  override error(message: string, data?: unknown, showNotification: boolean | "force" = true): void {
    super.error(message, data, this.starting ? false : showNotification);
  }
}

export function serverOptions(launch: Launch): ServerOptions {
  if (launch.kind === "tcp") {
    return () => connect(launch.host, launch.port);
  }
  return { command: launch.command, args: launch.args, options: { env: process.env } };
}

export function clientOptions(settings: ClientSettings): LanguageClientOptions {
  return {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    initializationOptions: settings.initializationOptions,
    outputChannel: settings.outputChannel,
    middleware: {
      provideInlineCompletionItems: (document, position, context, token, next) =>
        settings.wantsCompletions(document) ? next(document, position, context, token) : undefined,
      // The server's textDocument/completion is a fallback for clients without inline
      // completion; VS Code has it, and a second request would cancel the inline one.
      provideCompletionItem: () => undefined,
    },
  };
}

/** A TCP connection to a daemon, or a rejection that says which address failed. */
export function connect(host: string, port: number): Promise<StreamInfo> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const fail = (error: Error) => {
      socket.destroy();
      reject(new Error(`cannot connect to the codet5-lsp daemon at ${host}:${port}: ${error.message}`));
    };
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => fail(new Error("timed out")));
    socket.once("error", fail);
    socket.once("connect", () => {
      socket.setTimeout(0);
      socket.removeListener("error", fail);
      resolve({ reader: socket, writer: socket });
    });
  });
}
