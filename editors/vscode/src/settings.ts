// The extension's settings (the `codet5` section) and what they become for the server.
// No `vscode` import: anything with a `get` method reads them, so tests pass plain objects.

/** The part of `vscode.WorkspaceConfiguration` this module reads. */
export interface SettingsSource {
  get<T>(key: string): T | undefined;
}

/** A `vscode.WorkspaceConfiguration`'s `inspect`, as far as it is read here. */
export interface InspectableSettings extends SettingsSource {
  inspect<T>(key: string): { defaultValue?: T; globalValue?: T; workspaceValue?: T; workspaceFolderValue?: T } | undefined;
}

/** How to reach the server: spawn it over stdio, or connect to a running daemon. */
export type Launch =
  | { kind: "stdio"; command: string; args: string[] }
  | { kind: "tcp"; host: string; port: number };

/** Settings forwarded to the server, under the same (camelCase) names the server accepts. */
export const SERVER_SETTINGS = [
  "model",
  "device",
  "computeType",
  "runtime",
  "threads",
  "contextTokens",
  "maxNewTokens",
  "completionMode",
  "enabled",
  "disabledLanguages",
  "localFilesOnly",
  "trustRemoteCode",
  "maxCachedPrompts",
  "draftTokens",
  "summaryModel",
  "debounceMs",
  "timeBudgetMs",
  "speculative",
  "prewarm",
  "otherFiles",
  "summaryIdleUnloadS",
  "promptCacheIdleReleaseS",
] as const;

/** Settings that choose and load the model, or say when it frees memory: a daemon takes them from its own command line. */
export const MODEL_SETTINGS: ReadonlySet<string> = new Set([
  "model",
  "device",
  "computeType",
  "runtime",
  "threads",
  "localFilesOnly",
  "trustRemoteCode",
  "maxCachedPrompts",
  "draftTokens",
  "summaryIdleUnloadS",
  "promptCacheIdleReleaseS",
]);

/** Settings whose change needs a new connection rather than `workspace/didChangeConfiguration`. */
export const LAUNCH_SETTINGS = ["server.path", "server.args", "daemon.address", "daemon.tokenFile"] as const;

export const DEFAULT_COMMAND = "codet5-lsp";

/**
 * The values the user set (in user, workspace or folder settings), without the defaults: the
 * server has the same defaults, and a default sent as a value would override its command-line
 * flags (`--offline`, `--model` in `codet5.server.args`).
 */
export function explicitSettings(settings: InspectableSettings): SettingsSource {
  return {
    get<T>(key: string): T | undefined {
      const inspected = settings.inspect<T>(key);
      return inspected?.workspaceFolderValue ?? inspected?.workspaceValue ?? inspected?.globalValue;
    },
  };
}

/** The server's options: initializationOptions, and the `codet5` object of didChangeConfiguration. */
export function serverSettings(source: SettingsSource, launch: Launch): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const key of SERVER_SETTINGS) {
    if (launch.kind === "tcp" && MODEL_SETTINGS.has(key)) {
      continue;
    }
    const value = source.get<unknown>(key);
    if (value !== undefined && value !== null) {
      settings[key] = value;
    }
  }
  return settings;
}

/**
 * A didChangeConfiguration update: the explicit values, plus the defaults of those that were
 * sent before and are no longer set (the server keeps what it was told until told otherwise).
 */
export function settingsUpdate(
  explicit: Record<string, unknown>,
  previouslySent: Iterable<string>,
  defaults: InspectableSettings,
): Record<string, unknown> {
  const update = { ...explicit };
  for (const key of previouslySent) {
    const fallback = defaults.inspect<unknown>(key)?.defaultValue;
    if (!(key in update) && fallback !== undefined) {
      update[key] = fallback;
    }
  }
  return update;
}

/** Where the server is: the daemon address when one is set, else the command to spawn. */
export function launchFrom(source: SettingsSource): Launch {
  const address = (source.get<string>("daemon.address") ?? "").trim();
  if (address) {
    return { kind: "tcp", ...parseDaemonAddress(address) };
  }
  const command = (source.get<string>("server.path") ?? "").trim() || DEFAULT_COMMAND;
  const args = source.get<string[]>("server.args") ?? [];
  return { kind: "stdio", command, args: [...args] };
}

/** `host:port`, `:port` or `port` (host 127.0.0.1), `[::1]:port`; throws with a readable message. */
export function parseDaemonAddress(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address) ?? /^()()(\d+)$/.exec(address);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`codet5.daemon.address must look like 127.0.0.1:2087, got "${address}"`);
  }
  return { host: match[1] || match[2] || "127.0.0.1", port };
}

/** Whether completions are on for documents of `languageId` (the server checks the same). */
export function completionsEnabled(source: SettingsSource, languageId: string): boolean {
  const disabled = source.get<string[]>("disabledLanguages") ?? [];
  return (source.get<boolean>("enabled") ?? true) && !disabled.includes(languageId);
}

/** A short description of `launch` for messages and the log. */
export function describeLaunch(launch: Launch): string {
  return launch.kind === "tcp"
    ? `daemon at ${launch.host.includes(":") ? `[${launch.host}]` : launch.host}:${launch.port}`
    : [launch.command, ...launch.args].join(" ");
}
