// Builds the vscode-languageclient client for a launch: a spawned server (stdio) or a daemon (TCP).
import * as net from "net";
import * as vscode from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  Message,
  MessageTransports,
  ServerOptions,
  SocketMessageReader,
  SocketMessageWriter,
} from "vscode-languageclient/node";
import { Launch } from "./settings";
import { withToken } from "./token";

export const CLIENT_ID = "codet5";
export const CLIENT_NAME = "codet5-lsp";
const CONNECT_TIMEOUT_MS = 10_000;

/** The parts of LanguageClientOptions that depend on the user's settings. */
export interface ClientSettings {
  initializationOptions: Record<string, unknown>;
  outputChannel: vscode.LogOutputChannel;
  /** Asked before every completion request: false skips the request. */
  wantsCompletions(document: vscode.TextDocument): boolean;
  /** The daemon's token, sent in `initialize` (TCP launches only). */
  daemonToken?: string;
}

export type ClientFactory = (launch: Launch, settings: ClientSettings) => LanguageClient;

export function createClient(launch: Launch, settings: ClientSettings): LanguageClient {
  return new Codet5LanguageClient(CLIENT_ID, CLIENT_NAME, serverOptions(launch, settings.daemonToken), clientOptions(settings));
}

/**
 * A LanguageClient that leaves start failures to the extension: the library's own notices
 * ("couldn't create connection to server", a failed initialize, a restart after the server
 * closed the connection it refused) still go to the log, while the extension shows one
 * message that says what to do.
 */
class Codet5LanguageClient extends LanguageClient {
  private starting = false;
  private startFailed = false;

  override async start(): Promise<void> {
    this.starting = true;
    try {
      await super.start();
      this.startFailed = false;
    } catch (error) {
      this.startFailed = true;
      throw error;
    } finally {
      this.starting = false;
    }
  }

  override error(message: string, data?: unknown, showNotification: boolean | "force" = true): void {
    super.error(message, data, this.starting || this.startFailed ? false : showNotification);
  }
}

export function serverOptions(launch: Launch, daemonToken?: string): ServerOptions {
  if (launch.kind === "tcp") {
    return () => connect(launch.host, launch.port, daemonToken);
  }
  return { command: launch.command, args: launch.args, options: { env: process.env } };
}

export function clientOptions(settings: ClientSettings): LanguageClientOptions {
  return {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    initializationOptions: settings.initializationOptions,
    outputChannel: settings.outputChannel,
    // No retry and no notice of its own: the failed start is reported once by the extension.
    initializationFailedHandler: () => false,
    middleware: {
      provideInlineCompletionItems: (document, position, context, token, next) =>
        settings.wantsCompletions(document) ? next(document, position, context, token) : undefined,
      // The server's textDocument/completion is a fallback for clients without inline
      // completion; VS Code has it, and a second request would cancel the inline one.
      provideCompletionItem: () => undefined,
    },
  };
}

/** Writes to the daemon's socket, adding the token to `initialize` once it has been traced. */
class TokenWriter extends SocketMessageWriter {
  constructor(socket: net.Socket, private readonly token: string) {
    super(socket);
  }

  override write(message: Message): Promise<void> {
    return super.write(withToken(message, this.token));
  }
}

/** A TCP connection to a daemon (sending `token` when given), or a rejection that says which address failed. */
export function connect(host: string, port: number, token?: string): Promise<MessageTransports> {
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
      resolve({ reader: new SocketMessageReader(socket), writer: token ? new TokenWriter(socket, token) : new SocketMessageWriter(socket) });
    });
  });
}
