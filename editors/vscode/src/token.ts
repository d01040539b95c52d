// The daemon's shared token: where it comes from, and how it reaches the daemon without being logged.
// No `vscode` import, so the tests can call it directly.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Message, RequestMessage } from "vscode-languageclient/node";

export const TOKEN_ENV = "CODET5_LSP_TOKEN";
/** The daemon's reply to a wrong or missing token is InvalidRequest naming initializationOptions.token. */
const INVALID_REQUEST = -32600;

/**
 * The token to send to a daemon: the contents of `tokenFile` (surrounding whitespace removed)
 * when it is set, else `$CODET5_LSP_TOKEN`, else undefined. Throws a message naming the
 * setting and the path (never the contents) when the file cannot be read or is empty.
 */
export function daemonToken(tokenFile: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  const file = (tokenFile ?? "").trim();
  if (!file) {
    return env[TOKEN_ENV] || undefined;
  }
  const resolved = file === "~" || file.startsWith("~/") ? path.join(os.homedir(), file.slice(1)) : file;
  let token: string;
  try {
    token = fs.readFileSync(resolved, "utf8").trim();
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
    throw new Error(`cannot read codet5.daemon.tokenFile ${resolved} (${reason})`);
  }
  if (!token) {
    throw new Error(`codet5.daemon.tokenFile ${resolved} is empty`);
  }
  return token;
}

/**
 * `message` with the token added to `initializationOptions` when it is the `initialize` request.
 * Added on the way to the socket, after vscode-languageclient's trace has logged the message,
 * so the token never appears in the "codet5-lsp" output, even with `codet5.trace.server` on.
 */
export function withToken(message: Message, token: string): Message {
  const request = message as RequestMessage;
  if (request.method !== "initialize" || typeof request.params !== "object" || request.params === null) {
    return message;
  }
  const params = request.params as { initializationOptions?: Record<string, unknown> };
  return { ...request, params: { ...params, initializationOptions: { ...(params.initializationOptions ?? {}), token } } } as Message;
}

/** Whether a failed start is the daemon refusing this editor's token (wrong or missing). */
export function isTokenRefusal(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === INVALID_REQUEST && typeof message === "string" && message.includes("initializationOptions.token");
}
