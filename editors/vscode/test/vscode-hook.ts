// Makes `require("vscode")` load the stand-in API; import this before anything that uses vscode.
import Module = require("module");

const target = require.resolve("./vscode-api");
const loader = Module as unknown as { _resolveFilename(request: string, ...rest: unknown[]): string };
const resolve = loader._resolveFilename;
loader._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
  return request === "vscode" ? target : resolve.call(this, request, ...rest);
};
