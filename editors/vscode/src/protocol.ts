// What the server adds to LSP (its status notification and commands) and how results are worded.
// No `vscode` import: the wire test uses this module with the protocol library alone.
import { ErrorCodes, ResponseError } from "vscode-languageserver-protocol";

export const STATUS_NOTIFICATION = "codet5/status";
/** Sent by the server each time a completion request gets no suggestion, with the reason. */
export const NO_SUGGESTION_NOTIFICATION = "codet5/noSuggestion";
/** Sent to the server when the cursor rests somewhere ({textDocument: {uri}, position}): it may compute the prompt there. */
export const CURSOR_NOTIFICATION = "codet5/cursor";

/** The payload of `codet5/status` (and of the `codet5.status` command). */
export interface ModelStatus {
  state: "idle" | "loading" | "ready" | "error";
  model?: string;
  message?: string;
  device?: string;
  computeType?: string;
  /** What runs the model: "onnxruntime", "ctranslate2", "transformers" or "openai". */
  runtime?: string;
}

/** "tiny on cpu (int8, onnxruntime)": the model and where and how it runs, as far as the status says. */
export function describeModel(status: ModelStatus): string {
  if (!status.model) {
    return "no model";
  }
  const how = [status.computeType, status.runtime].filter((part) => part).join(", ");
  return `${status.model}${status.device ? ` on ${status.device}` : ""}${how ? ` (${how})` : ""}`;
}

/** Why a completion request got nothing (`codet5/noSuggestion`, and `codet5.status`'s recent ones). */
export interface NoSuggestion {
  /** A stable name from a closed set, e.g. "superseded", "language-disabled", "duplicates-suffix". */
  reason: string;
  /** One sentence for a person. */
  message: string;
  uri: string;
  position: { line: number; character: number };
}

/** One line for a person: the message, the reason's name and where (1-based line). */
export function describeNoSuggestion(event: NoSuggestion): string {
  const file = event.uri.slice(event.uri.lastIndexOf("/") + 1);
  return `${event.message} (${event.reason}, ${file}:${event.position.line + 1})`;
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
  /** Empty answers of this session: counts per reason and the last few, newest last. */
  noSuggestion?: { counts: Record<string, number>; recent: NoSuggestion[] };
  /** Where the server last computed a prompt ahead (its `prewarm` setting), if it has. */
  prewarm?: { uri: string; line: number; character: number } | null;
}

/** One line for an information message. */
export function describeStatus(reply: StatusReply): string {
  const model = describeModel(reply);
  const cache = reply.cache ? `; typed-ahead cache ${reply.cache.hits} hits, ${reply.cache.misses} misses` : "";
  const message = reply.message && reply.message.toLowerCase() !== reply.state ? ` (${reply.message})` : "";
  const last = reply.noSuggestion?.recent.at(-1);
  const why = last ? `; last without a suggestion: ${describeNoSuggestion(last)}` : "";
  return `codet5-lsp: ${reply.state}${message}, ${model}${cache}${why}`;
}
