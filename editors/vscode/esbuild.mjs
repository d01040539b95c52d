// Bundles the extension and vscode-languageclient into one file; `vscode` is provided by the editor.
import { build } from "esbuild";

await build({
  entryPoints: ["src/extension.ts"],
  outfile: "dist/extension.js",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  external: ["vscode"],
  sourcemap: !process.argv.includes("--production"),
  minify: process.argv.includes("--production"),
  logLevel: "warning",
});
