// A stand-in for the `vscode` module: enough of the API for the extension and for the real
// vscode-languageclient to run in plain Node, with everything the extension does recorded.
// Settings defaults come from package.json, so a setting the code reads but the manifest
// does not contribute reads as undefined here, as it would in VS Code.
import * as fs from "fs";
import * as path from "path";

type Listener<T> = (event: T) => unknown;

export class Disposable {
  static from(...items: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => items.forEach((item) => item.dispose()));
  }
  constructor(private readonly callOnDispose: () => unknown) {}
  dispose(): void {
    this.callOnDispose();
  }
}

export class EventEmitter<T> {
  private listeners = new Set<Listener<T>>();
  readonly event = (listener: Listener<T>, thisArg?: unknown, disposables?: Disposable[]): Disposable => {
    const bound: Listener<T> = thisArg ? listener.bind(thisArg) : listener;
    this.listeners.add(bound);
    const disposable = new Disposable(() => this.listeners.delete(bound));
    disposables?.push(disposable);
    return disposable;
  };
  fire(event: T): void {
    [...this.listeners].forEach((listener) => listener(event));
  }
  dispose(): void {
    this.listeners.clear();
  }
}

export class CancellationError extends Error {}

export class CancellationTokenSource {
  private emitter = new EventEmitter<void>();
  token = { isCancellationRequested: false, onCancellationRequested: this.emitter.event };
  cancel(): void {
    this.token.isCancellationRequested = true;
    this.emitter.fire();
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly authority: string,
    readonly path: string,
    readonly query: string,
    readonly fragment: string,
  ) {}
  static parse(value: string): Uri {
    const url = new URL(value);
    return new Uri(url.protocol.replace(/:$/, ""), url.host, decodeURIComponent(url.pathname), url.search.replace(/^\?/, ""), url.hash.replace(/^#/, ""));
  }
  static file(fsPath: string): Uri {
    return new Uri("file", "", fsPath, "", "");
  }
  get fsPath(): string {
    return this.path;
  }
  with(change: Partial<Pick<Uri, "scheme" | "authority" | "path" | "query" | "fragment">>): Uri {
    return new Uri(change.scheme ?? this.scheme, change.authority ?? this.authority, change.path ?? this.path, change.query ?? this.query, change.fragment ?? this.fragment);
  }
  toString(): string {
    const encodedPath = this.path.split("/").map(encodeURIComponent).join("/");
    return `${this.scheme}://${this.authority}${encodedPath}${this.query ? `?${this.query}` : ""}${this.fragment ? `#${this.fragment}` : ""}`;
  }
  toJSON(): string {
    return this.toString();
  }
}

export class Position {
  constructor(readonly line: number, readonly character: number) {}
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(start: Position | number, end: Position | number, endLine?: number, endCharacter?: number) {
    if (typeof start === "number" && typeof end === "number") {
      this.start = new Position(start, end);
      this.end = new Position(endLine ?? start, endCharacter ?? end);
    } else {
      this.start = start as Position;
      this.end = end as Position;
    }
  }
}

export class Selection extends Range {
  constructor(readonly anchor: Position, readonly active: Position) {
    super(anchor, active);
  }
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export class MarkdownString {
  constructor(public value = "", public supportThemeIcons = false) {}
  appendText(text: string): this {
    this.value += text;
    return this;
  }
  appendMarkdown(text: string): this {
    this.value += text;
    return this;
  }
}

export class InlineCompletionItem {
  constructor(public insertText: string | { value: string }, public range?: Range, public command?: unknown) {}
}

export class InlineCompletionList {
  constructor(public items: InlineCompletionItem[]) {}
}

export class CompletionItem {
  constructor(public label: string, public kind?: number) {}
}

export class CompletionList {
  constructor(public items: CompletionItem[] = [], public isIncomplete = false) {}
}

export class TextEdit {
  constructor(public range: Range, public newText: string) {}
}

export class WorkspaceEdit {
  readonly edits: [Uri, TextEdit[]][] = [];
  set(uri: Uri, edits: TextEdit[]): void {
    this.edits.push([uri, edits]);
  }
  replace(uri: Uri, range: Range, newText: string): void {
    this.edits.push([uri, [new TextEdit(range, newText)]]);
  }
  insert(uri: Uri, position: Position, newText: string): void {
    this.replace(uri, new Range(position, position), newText);
  }
  entries(): [Uri, TextEdit[]][] {
    return this.edits;
  }
}

export class Hover {
  constructor(public contents: unknown, public range?: Range) {}
}

// Base classes that vscode-languageclient extends when it loads.
export class CodeLens {}
export class DocumentLink {}
export class InlayHint {}
export class SymbolInformation {}
export class CallHierarchyItem {}
export class TypeHierarchyItem {}
export class CodeAction {}
export class Diagnostic {}

export const CodeActionKind = Object.fromEntries(
  ["Empty", "QuickFix", "Refactor", "RefactorExtract", "RefactorInline", "RefactorRewrite", "Source", "SourceOrganizeImports"].map((name) => [name, { value: name }]),
);

export const StatusBarAlignment = { Left: 1, Right: 2 };
export const ConfigurationTarget = { Global: 1, Workspace: 2, WorkspaceFolder: 3 };
export const InlineCompletionTriggerKind = { Invoke: 0, Automatic: 1 };
export const LogLevel = { Off: 0, Trace: 1, Debug: 2, Info: 3, Warning: 4, Error: 5 };
export const ProgressLocation = { SourceControl: 1, Window: 10, Notification: 15 };
export const DiagnosticSeverity = { Error: 0, Warning: 1, Information: 2, Hint: 3 };
export const CompletionItemKind = { Text: 0 };
export const CompletionTriggerKind = { Invoke: 0, TriggerCharacter: 1, TriggerForIncompleteCompletions: 2 };
export const EndOfLine = { LF: 1, CRLF: 2 };
export const version = "1.91.0";
export const env = { appName: "vscode-mock", language: "en", machineId: "test", openExternal: async () => true };

// ---- documents and editors --------------------------------------------------------------

export interface MockDocument {
  uri: Uri;
  fileName: string;
  languageId: string;
  version: number;
  isClosed: boolean;
  isDirty: boolean;
  isUntitled: boolean;
  eol: number;
  lineCount: number;
  getText(range?: Range): string;
  offsetAt(position: Position): number;
  positionAt(offset: number): Position;
  lineAt(line: number): { text: string; range: Range };
  save(): Promise<boolean>;
}

export function createDocument(fsPath: string, languageId: string, text: string): MockDocument {
  const lines = () => text.split("\n");
  const offsetAt = (position: Position) =>
    lines().slice(0, position.line).reduce((sum, line) => sum + line.length + 1, 0) + position.character;
  return {
    uri: Uri.file(fsPath),
    fileName: fsPath,
    languageId,
    version: 1,
    isClosed: false,
    isDirty: false,
    isUntitled: false,
    eol: EndOfLine.LF,
    get lineCount() {
      return lines().length;
    },
    getText: (range?: Range) => (range ? text.slice(offsetAt(range.start), offsetAt(range.end)) : text),
    offsetAt,
    positionAt(offset: number) {
      const before = text.slice(0, offset).split("\n");
      return new Position(before.length - 1, before[before.length - 1].length);
    },
    lineAt(line: number) {
      const content = lines()[line];
      return { text: content, range: new Range(line, 0, line, content.length) };
    },
    save: async () => true,
  };
}

// ---- recording state --------------------------------------------------------------------

interface ShownMessage {
  kind: "info" | "warning" | "error";
  message: string;
}

interface RegisteredProvider {
  kind: string;
  selector: unknown;
  provider: any;
}

const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8"));
const defaults: Record<string, unknown> = Object.fromEntries(
  Object.entries(manifest.contributes.configuration.properties as Record<string, { default: unknown }>).map(([key, spec]) => [key, spec.default]),
);

export const mock = {
  /** User (global) settings by full key, e.g. "codet5.model". */
  settings: new Map<string, unknown>(),
  commands: new Map<string, (...args: any[]) => unknown>(),
  messages: [] as ShownMessage[],
  statusBarItems: [] as any[],
  providers: [] as RegisteredProvider[],
  appliedEdits: [] as WorkspaceEdit[],
  documents: [] as MockDocument[],
  activeEditor: undefined as { document: MockDocument; selection: Selection } | undefined,
  onDidChangeConfiguration: new EventEmitter<{ affectsConfiguration(section: string): boolean }>(),
  onDidOpenTextDocument: new EventEmitter<MockDocument>(),
  onDidCloseTextDocument: new EventEmitter<MockDocument>(),
  onDidChangeActiveTextEditor: new EventEmitter<{ document: MockDocument; selection: Selection } | undefined>(),
  onDidChangeTextEditorSelection: new EventEmitter<{ textEditor: { document: MockDocument; selection: Selection } }>(),
  /** Resolves the next message box with this choice (then goes back to dismissing). */
  messageChoice: undefined as string | undefined,
  reset(): void {
    this.settings.clear();
    this.commands.clear();
    this.messages.length = 0;
    this.statusBarItems.length = 0;
    this.providers.length = 0;
    this.appliedEdits.length = 0;
    this.documents.length = 0;
    this.activeEditor = undefined;
  },
  /** Sets user settings the way the Settings editor would, firing onDidChangeConfiguration. */
  configure(values: Record<string, unknown>): void {
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined) {
        this.settings.delete(key);
      } else {
        this.settings.set(key, value);
      }
    }
    const changed = Object.keys(values);
    this.onDidChangeConfiguration.fire({
      affectsConfiguration: (section: string) => changed.some((key) => key === section || key.startsWith(`${section}.`)),
    });
  },
  open(document: MockDocument): void {
    this.documents.push(document);
    this.onDidOpenTextDocument.fire(document);
  },
  /** Makes `document` the active editor's, its cursor at `position`, as switching to it would. */
  focus(document: MockDocument, position: Position): void {
    this.activeEditor = { document, selection: new Selection(position, position) };
    this.onDidChangeActiveTextEditor.fire(this.activeEditor);
  },
  /** Moves the active editor's cursor, as a click would. */
  moveCursor(position: Position): void {
    this.activeEditor = { document: this.activeEditor!.document, selection: new Selection(position, position) };
    this.onDidChangeTextEditorSelection.fire({ textEditor: this.activeEditor });
  },
  inlineCompletionProvider(): any {
    return this.providers.filter((p) => p.kind === "inlineCompletion").at(-1)?.provider;
  },
};

function show(kind: ShownMessage["kind"]) {
  return async (message: string, ..._items: unknown[]) => {
    mock.messages.push({ kind, message });
    const choice = mock.messageChoice;
    mock.messageChoice = undefined;
    return choice;
  };
}

function configuration(section?: string) {
  const full = (key: string) => (section ? `${section}.${key}` : key);
  return {
    get<T>(key: string, fallback?: T): T | undefined {
      const name = full(key);
      if (mock.settings.has(name)) {
        return mock.settings.get(name) as T;
      }
      if (name in defaults) {
        return defaults[name] as T;
      }
      const nested = Object.entries(defaults).filter(([k]) => k.startsWith(`${name}.`));
      if (nested.length > 0) {
        return Object.fromEntries(nested.map(([k, v]) => [k.slice(name.length + 1), mock.settings.has(k) ? mock.settings.get(k) : v])) as T;
      }
      return fallback;
    },
    has: (key: string) => mock.settings.has(full(key)) || full(key) in defaults,
    inspect<T>(key: string) {
      const name = full(key);
      return { key: name, defaultValue: defaults[name] as T | undefined, globalValue: mock.settings.get(name) as T | undefined };
    },
    async update(key: string, value: unknown, _target?: number): Promise<void> {
      mock.configure({ [full(key)]: value });
    },
  };
}

function register(kind: string) {
  return (selector: unknown, provider: unknown) => {
    const entry = { kind, selector, provider };
    mock.providers.push(entry);
    return new Disposable(() => mock.providers.splice(mock.providers.indexOf(entry), 1));
  };
}

function never<T>() {
  return new EventEmitter<T>().event;
}

function logChannel(name: string) {
  const lines: string[] = [];
  const log = (level: string) => (message: string, ...rest: unknown[]) => {
    lines.push(`[${level}] ${message} ${rest.map(String).join(" ")}`.trimEnd());
  };
  return {
    name,
    lines,
    logLevel: LogLevel.Info,
    onDidChangeLogLevel: never<number>(),
    shown: false,
    trace: log("trace"),
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: (error: string | Error, ...rest: unknown[]) => log("error")(String(error), ...rest),
    append: (text: string) => lines.push(text),
    appendLine: (text: string) => lines.push(text),
    replace: (text: string) => lines.splice(0, lines.length, text),
    clear: () => lines.splice(0),
    show(this: { shown: boolean }) {
      this.shown = true;
    },
    hide: () => undefined,
    dispose: () => undefined,
  };
}

export const window = {
  get activeTextEditor() {
    return mock.activeEditor;
  },
  get visibleTextEditors() {
    return mock.activeEditor ? [mock.activeEditor] : [];
  },
  onDidChangeActiveTextEditor: mock.onDidChangeActiveTextEditor.event,
  onDidChangeTextEditorSelection: mock.onDidChangeTextEditorSelection.event,
  onDidChangeVisibleTextEditors: never<unknown>(),
  tabGroups: { all: [], onDidChangeTabs: never<unknown>(), onDidChangeTabGroups: never<unknown>() },
  showInformationMessage: show("info"),
  showWarningMessage: show("warning"),
  showErrorMessage: show("error"),
  setStatusBarMessage: (_text: string, _timeout?: number) => new Disposable(() => undefined),
  createOutputChannel: (name: string, _options?: unknown) => logChannel(name),
  createStatusBarItem(alignment?: number, priority?: number) {
    const item = {
      alignment,
      priority,
      /** Every text the item has shown, oldest first. */
      texts: [] as string[],
      get text(): string {
        return item.texts.at(-1) ?? "";
      },
      set text(value: string) {
        item.texts.push(value);
      },
      tooltip: undefined as unknown,
      command: undefined as unknown,
      name: undefined as unknown,
      backgroundColor: undefined as ThemeColor | undefined,
      visible: false,
      disposed: false,
      show() {
        item.visible = true;
      },
      hide() {
        item.visible = false;
      },
      dispose() {
        item.disposed = true;
      },
    };
    mock.statusBarItems.push(item);
    return item;
  },
  withProgress: async (_options: unknown, task: (progress: { report(value: unknown): void }, token: unknown) => unknown) =>
    task({ report: () => undefined }, new CancellationTokenSource().token),
  showTextDocument: async () => mock.activeEditor,
};

export const commands = {
  registerCommand(id: string, handler: (...args: any[]) => unknown) {
    if (mock.commands.has(id)) {
      throw new Error(`command '${id}' already exists`);
    }
    mock.commands.set(id, handler);
    return new Disposable(() => mock.commands.delete(id));
  },
  async executeCommand(id: string, ...args: unknown[]) {
    const handler = mock.commands.get(id);
    return handler ? handler(...args) : undefined;
  },
};

export const workspace = {
  getConfiguration: (section?: string, _scope?: unknown) => configuration(section),
  onDidChangeConfiguration: mock.onDidChangeConfiguration.event,
  get textDocuments() {
    return mock.documents;
  },
  notebookDocuments: [],
  workspaceFolders: undefined,
  getWorkspaceFolder: () => undefined,
  onDidOpenTextDocument: mock.onDidOpenTextDocument.event,
  onDidCloseTextDocument: mock.onDidCloseTextDocument.event,
  onDidChangeTextDocument: never<unknown>(),
  onDidSaveTextDocument: never<unknown>(),
  onWillSaveTextDocument: never<unknown>(),
  onDidOpenNotebookDocument: never<unknown>(),
  onDidCloseNotebookDocument: never<unknown>(),
  onDidChangeNotebookDocument: never<unknown>(),
  onDidSaveNotebookDocument: never<unknown>(),
  onDidChangeWorkspaceFolders: never<unknown>(),
  createFileSystemWatcher: () => ({
    onDidCreate: never<unknown>(),
    onDidChange: never<unknown>(),
    onDidDelete: never<unknown>(),
    dispose: () => undefined,
  }),
  registerTextDocumentContentProvider: () => new Disposable(() => undefined),
  async applyEdit(edit: WorkspaceEdit) {
    mock.appliedEdits.push(edit);
    return true;
  },
};

export const languages = {
  match(selector: unknown, document: MockDocument): number {
    const filters = (Array.isArray(selector) ? selector : [selector]) as ({ scheme?: string; language?: string } | string)[];
    return filters.some((filter) =>
      typeof filter === "string"
        ? filter === "*" || filter === document.languageId
        : (!filter.scheme || filter.scheme === document.uri.scheme) && (!filter.language || filter.language === document.languageId),
    )
      ? 10
      : 0;
  },
  createDiagnosticCollection: (name?: string) => ({
    name,
    set: () => undefined,
    delete: () => undefined,
    clear: () => undefined,
    forEach: () => undefined,
    get: () => undefined,
    has: () => false,
    dispose: () => undefined,
  }),
  registerInlineCompletionItemProvider: register("inlineCompletion"),
  registerCompletionItemProvider: register("completion"),
  registerHoverProvider: register("hover"),
  registerCodeActionsProvider: register("codeAction"),
  registerSignatureHelpProvider: register("signatureHelp"),
};
