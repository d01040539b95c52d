// What the server adds to LSP (its status notification and commands) and how results are worded.
// No `vscode` import: the wire test uses this module with the protocol library alone.
import { ErrorCodes, ResponseError } from "vscode-languageserver-protocol";

export const STATUS_NOTIFICATION = "codet5/status";

/** The payload of `codet5/status` (and of the `codet5.status` command). */
export interface ModelStatus {
  state: "idle" | "loading" | "ready" | "error";
  model?: string;
  message?: string;
  device?: string;
  computeType?: string;
}

/** Server-side commands, sent as `workspace/executeCommand`. */
export const SERVER_COMMANDS = {
  status: "codet5.status",
  generateDocstring: "codet5.generateDocstring",
} as const;

/** A readable message for a failed `workspace/executeCommand`. */
export function describeCommandError(command: string, error: unknown): string {
  if (error instanceof ResponseError) {
    const unknownCommand =
      error.code === ErrorCodes.MethodNotFound ||
      (error.code === ErrorCodes.InvalidParams && /not (defined|found|registered)/i.test(error.message));
    if (unknownCommand) {
      return `This codet5-lsp server does not offer "${command}" yet: update the codet5-lsp package and restart the server.`;
    }
    return `codet5-lsp: ${command} failed: ${error.message}`;
  }
  return `codet5-lsp: ${command} failed: ${error instanceof Error ? error.message : String(error)}`;
}

/** The reply of `codet5.status`: the model status plus the session's settings and cache counts. */
export interface StatusReply extends ModelStatus {
  settings?: Record<string, unknown>;
  cache?: { hits: number; misses: number };
}

/** One line for an information message. */
export function describeStatus(reply: StatusReply): string {
  const model = reply.model ? `${reply.model}${reply.device ? ` on ${reply.device}` : ""}${reply.computeType ? ` (${reply.computeType})` : ""}` : "no model";
  const cache = reply.cache ? `; typed-ahead cache ${reply.cache.hits} hits, ${reply.cache.misses} misses` : "";
  const message = reply.message && reply.message.toLowerCase() !== reply.state ? ` (${reply.message})` : "";
  return `codet5-lsp: ${reply.state}${message}, ${model}${cache}`;
}
