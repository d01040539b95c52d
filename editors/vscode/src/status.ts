// The model state shown in the status bar, from the server's `codet5/status` notifications.
import * as vscode from "vscode";
import { ModelStatus, NoSuggestion, describeModel, describeNoSuggestion } from "./protocol";

/** What the status bar item shows. */
export interface StatusView {
  text: string;
  tooltip: string;
  error: boolean;
}

/** Before the server has said anything, or after it failed to start. */
export type ClientState = { kind: "starting" } | { kind: "failed"; message: string } | { kind: "running"; status: ModelStatus };

export function renderStatus(client: ClientState, enabled: boolean, lastNoSuggestion?: NoSuggestion): StatusView {
  const why = lastNoSuggestion ? `Last request without a suggestion: ${describeNoSuggestion(lastNoSuggestion)}\n` : "";
  const click = `${why}${enabled ? "Click to turn completions off." : "Click to turn completions on."}`;
  if (client.kind === "starting") {
    return { text: "$(loading~spin) codet5", tooltip: `codet5-lsp: starting the server\n${click}`, error: false };
  }
  if (client.kind === "failed") {
    return { text: "$(error) codet5", tooltip: `codet5-lsp: ${client.message}\nRun "codet5: Show log" for details.`, error: true };
  }
  const status = client.status;
  const model = describeModel(status);
  const detail = status.message ? `\n${status.message}` : "";
  switch (status.state) {
    case "loading":
      return { text: `$(loading~spin) codet5: ${status.message || "loading"}`, tooltip: `codet5-lsp: loading ${model}${detail}\n${click}`, error: false };
    case "error":
      return { text: "$(error) codet5", tooltip: `codet5-lsp: model error: ${model}${detail}\n${click}`, error: true };
    case "ready":
      return enabled
        ? { text: "$(check) codet5", tooltip: `codet5-lsp: ready, ${model}${detail}\n${click}`, error: false }
        : { text: "$(circle-slash) codet5", tooltip: `codet5-lsp: completions off, ${model}\n${click}`, error: false };
    default:
      return {
        text: enabled ? "$(circle-outline) codet5" : "$(circle-slash) codet5",
        tooltip: `codet5-lsp: no model loaded yet${detail}\n${click}`,
        error: false,
      };
  }
}

/** The status bar item: shows the model state and toggles completions on click. */
export class StatusBar implements vscode.Disposable {
  private client: ClientState = { kind: "starting" };
  private enabled = true;
  private lastNoSuggestion: NoSuggestion | undefined;

  constructor(private readonly item: vscode.StatusBarItem, toggleCommand: string) {
    item.name = "codet5-lsp";
    item.command = toggleCommand;
    this.render();
    item.show();
  }

  get state(): ClientState {
    return this.client;
  }

  setClient(client: ClientState): void {
    this.client = client;
    this.render();
  }

  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    this.render();
  }

  /** The server's reason for its latest empty answer, shown in the tooltip. */
  setNoSuggestion(event: NoSuggestion): void {
    this.lastNoSuggestion = event;
    this.render();
  }

  dispose(): void {
    this.item.dispose();
  }

  private render(): void {
    const view = renderStatus(this.client, this.enabled, this.lastNoSuggestion);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.backgroundColor = view.error ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
  }
}
