// Drives real VS Code (code-server) in Debian's chromium like a user, for tests/test_vscode_browser.py.
//
// Usage: node drive.mjs PLAN.json. The plan says where code-server listens, which file of the
// workspace to open, what to type at its end and where to save screenshots. The script only acts
// and observes: it prints one JSON line of what it saw (the status bar item, the ghost text, the
// editor text after Tab and after "Generate docstring"); the Python test judges it.
import { readFileSync } from "node:fs";
import puppeteer from "puppeteer-core";

const plan = JSON.parse(readFileSync(process.argv[2], "utf8"));
const STEP_TIMEOUT_MS = plan.stepTimeoutMs ?? 90_000;
const EDITOR = ".part.editor .monaco-editor";

function log(message) {
  process.stderr.write(`[drive ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** The text of the editor's lines in visual order, without ghost text, with plain spaces. */
function editorText(selector) {
  const lines = [...document.querySelectorAll(`${selector} .view-lines .view-line`)];
  lines.sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top));
  return lines
    .map((line) => {
      const copy = line.cloneNode(true);
      copy.querySelectorAll('[class*="ghost-text"]').forEach((ghost) => ghost.remove());
      return copy.textContent.replace(/\u00a0/g, " ");
    })
    .join("\n");
}

/** The ghost text: the inline part on the cursor's line, then any further lines of a block. */
function ghostText(selector) {
  const clean = (node) => node.textContent.replace(/\u00a0/g, " ");
  const inline = [...document.querySelectorAll(`${selector} [class*="ghost-text-decoration"]`)].map(clean).join("");
  const block = [...document.querySelectorAll(`${selector} .ghost-text .view-line`)].map(clean);
  return [inline, ...block].join("\n");
}

/** The codet5 status bar item: its text, its icons and its accessible label. */
function statusItem() {
  const item = [...document.querySelectorAll(".statusbar-item")].find((node) => node.textContent.includes("codet5"));
  if (!item) {
    return null;
  }
  const icons = [...item.querySelectorAll('[class*="codicon-"]')].flatMap((icon) =>
    [...icon.classList].filter((name) => name.startsWith("codicon-") && name !== "codicon-modifier-spin"),
  );
  return { text: item.textContent.trim(), icons, label: item.querySelector("a")?.getAttribute("aria-label") ?? "" };
}

async function waitFor(page, what, fn, ...args) {
  log(`waiting for ${what}`);
  try {
    return await (await page.waitForFunction(fn, { timeout: STEP_TIMEOUT_MS, polling: 250 }, ...args)).jsonValue();
  } catch (error) {
    throw new Error(`timed out after ${STEP_TIMEOUT_MS / 1000} s waiting for ${what}: ${error.message}`);
  }
}

async function press(page, ...keys) {
  for (const key of keys.slice(0, -1)) {
    await page.keyboard.down(key);
  }
  await page.keyboard.press(keys[keys.length - 1]);
  for (const key of keys.slice(0, -1).reverse()) {
    await page.keyboard.up(key);
  }
}

/** Runs a command by its title from the command palette, as a user would. */
async function runCommand(page, title) {
  await press(page, "F1");
  await page.waitForSelector(".quick-input-widget input", { visible: true, timeout: STEP_TIMEOUT_MS });
  await page.keyboard.type(title);
  await waitFor(page, `"${title}" in the command palette`, (wanted) =>
    [...document.querySelectorAll(".quick-input-list .monaco-list-row")].some((row) => row.textContent.includes(wanted)), title);
  await press(page, "Enter");
}

/** Waits until the editor text satisfies `pattern` and then stays the same for a second. */
async function settledText(page, what, pattern) {
  await waitFor(page, what, (selector, source) => new RegExp(source).test(editorText(selector)), EDITOR, pattern);
  let previous = await page.evaluate(editorText, EDITOR);
  for (const deadline = Date.now() + STEP_TIMEOUT_MS; Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const text = await page.evaluate(editorText, EDITOR);
    if (text === previous) {
      return text;
    }
    previous = text;
  }
  throw new Error(`${what} kept changing for ${STEP_TIMEOUT_MS / 1000} s`);
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: plan.chromium,
    headless: true,
    userDataDir: plan.browserProfile,
    defaultViewport: { width: 1000, height: 560 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-dev-shm-usage",
    ],
  });
  const seen = {};
  try {
    const page = await browser.newPage();
    page.on("pageerror", (error) => log(`page error: ${error.message}`));
    // Register the evaluated helpers in the page, so that waitForFunction can call them.
    await page.evaluateOnNewDocument(`${editorText}\n${ghostText}\n${statusItem}`);
    log(`opening ${plan.url}`);
    await page.goto(plan.url, { waitUntil: "domcontentloaded", timeout: STEP_TIMEOUT_MS });
    await page.waitForSelector(".monaco-workbench .part.statusbar", { timeout: STEP_TIMEOUT_MS });
    log("the workbench is drawn");

    await waitFor(page, "the codet5 status bar item to say the model is ready", () => {
      const item = statusItem();
      return item && item.icons.includes("codicon-check") ? item : null;
    });
    seen.status = await page.evaluate(statusItem);
    await page.hover(".statusbar-item:has(.codicon-check)");
    seen.tooltip = await waitFor(page, "the status bar item's tooltip", () => {
      const hover = [...document.querySelectorAll(".workbench-hover, .monaco-hover")].find((node) => node.textContent.includes("codet5-lsp:"));
      return hover ? hover.textContent : null;
    });
    await page.mouse.move(500, 250);

    log(`opening ${plan.file} with Quick Open`);
    await press(page, "Control", "p");
    await page.waitForSelector(".quick-input-widget input", { visible: true, timeout: STEP_TIMEOUT_MS });
    await page.keyboard.type(plan.file);
    await waitFor(page, `${plan.file} in Quick Open`, (name) =>
      [...document.querySelectorAll(".quick-input-list .monaco-list-row")].some((row) => row.textContent.includes(name)), plan.file);
    await press(page, "Enter");
    seen.opened = await settledText(page, `${plan.file} in the editor`, plan.openedPattern);

    await press(page, "Control", "End");
    log(`typing ${JSON.stringify(plan.type)}`);
    await page.keyboard.type(plan.type, { delay: 40 });
    seen.typed = await page.evaluate(editorText, EDITOR);
    seen.ghost = await waitFor(page, "ghost text", (selector) => {
      const text = ghostText(selector);
      return text.trim() ? text : null;
    }, EDITOR);
    await new Promise((resolve) => setTimeout(resolve, 500));
    seen.ghost = await page.evaluate(ghostText, EDITOR);
    await page.screenshot({ path: plan.screenshot });
    log(`ghost text ${JSON.stringify(seen.ghost)}; screenshot at ${plan.screenshot}`);

    await press(page, "Tab");
    await waitFor(page, "the ghost text to be accepted", (selector) => !ghostText(selector).trim(), EDITOR);
    seen.accepted = await page.evaluate(editorText, EDITOR);

    log("Generate docstring on the first line");
    await press(page, "Control", "Home");
    await runCommand(page, plan.docstringCommand);
    seen.documented = await settledText(page, "a docstring", '"""[^]*"""');
    await press(page, "Control", "s");
    await waitFor(page, "the file to be saved", () => !document.querySelector(".tab.dirty"));
    seen.status_after = await page.evaluate(statusItem);
  } catch (error) {
    seen.error = String(error.message ?? error);
    const page = (await browser.pages()).at(-1);
    if (page) {
      await page.screenshot({ path: plan.failureScreenshot }).catch(() => undefined);
      seen.notifications = await page
        .evaluate(() => [...document.querySelectorAll(".notification-list-item-message")].map((node) => node.textContent))
        .catch(() => []);
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(`${JSON.stringify(seen)}\n`);
}

await main();
