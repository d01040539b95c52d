// The real codet5-lsp server for the tests: which command, which tiny model, and a daemon.
import * as cp from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

/**
 * CODET5_TEST_SERVER: the server command as a JSON array (e.g. ["python", "-m", "lsp_server"]);
 * CODET5_TEST_MODEL: the tiny test model (`python -m tests.tiny_models` prints it as llama_int8).
 * tests/test_vscode_extension.py sets both.
 */
export const serverCommand: string[] | undefined = process.env.CODET5_TEST_SERVER ? JSON.parse(process.env.CODET5_TEST_SERVER) : undefined;
export const testModel = process.env.CODET5_TEST_MODEL;
export const skipWithoutServer: string | false =
  serverCommand && testModel ? false : "set CODET5_TEST_SERVER and CODET5_TEST_MODEL to run against the real server";

/** The document the tiny model completes with exactly " a + b" at its end. */
export const ADD_SOURCE = "def add(a, b):\n    return";
export const ADD_COMPLETION = " a + b";

/** Offline, with a private model cache: the environment every spawned server gets. */
export function prepareEnvironment(): void {
  process.env.HF_HUB_OFFLINE = "1";
  process.env.CODET5_LSP_CACHE ??= fs.mkdtempSync(path.join(os.tmpdir(), "codet5-vscode-test-"));
}

/** Server arguments that load the tiny model on one thread. */
export function modelArgs(): string[] {
  return ["--model", testModel!, "--threads", "1"];
}

/** A daemon on a free loopback port (with `extraArgs`, e.g. `--token-file`); resolves once it listens. */
export function startDaemon(extraArgs: string[] = []): Promise<{ process: cp.ChildProcess; port: number }> {
  prepareEnvironment();
  const [command, ...args] = serverCommand!;
  const child = cp.spawn(command, [...args, "--tcp", "--port", "0", ...modelArgs(), ...extraArgs], { stdio: ["ignore", "ignore", "pipe"] });
  return new Promise((resolve, reject) => {
    let stderr = "";
    const timer = setTimeout(() => fail(new Error(`daemon did not listen within 60 s: ${stderr}`)), 60_000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill();
      reject(error);
    };
    child.once("exit", (code) => fail(new Error(`daemon exited (${code}): ${stderr}`)));
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /listening on \S+:(\d+)/.exec(stderr);
      if (match) {
        clearTimeout(timer);
        child.removeAllListeners("exit");
        resolve({ process: child, port: Number(match[1]) });
      }
    });
  });
}

/** A loopback port nothing listens on. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
