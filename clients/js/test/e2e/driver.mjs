// Drives Debian's headless Chromium for the Python end-to-end tests
// (t/integration/browser.py): one JSON request per line on stdin, one JSON
// answer per line on stdout. Never downloads a browser.
//   {"op": "open", "url": ...}              a new page (the only one)
//   {"op": "eval", "expr": ...}             page.evaluate(expr), its JSON value
//   {"op": "wait", "expr": ..., "timeout"}  until expr is truthy, its value
//   {"op": "screenshot", "path": ...}
//   {"op": "errors"}                        page errors and console errors so far
//   {"op": "route", "pattern", "action"}    "abort" matching requests, or "continue"
//   {"op": "metrics"}                       CDP Performance.getMetrics of the page
//   {"op": "quit"}
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const browser = await chromium.launch({
  executablePath: process.env.PULSE_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
});
let page = null;
const errors = [];
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

async function handle(req) {
  switch (req.op) {
    case "open": {
      if (page) await page.close();
      page = await browser.newPage({ viewport: { width: req.width || 1280, height: req.height || 900 } });
      page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
      page.on("console", (m) => m.type() === "error" && errors.push(`console: ${m.text()}`));
      await page.goto(req.url, { waitUntil: "load" });
      return null;
    }
    case "eval":
      return await page.evaluate(req.expr);
    case "wait": {
      const h = await page.waitForFunction(req.expr, null, { timeout: req.timeout || 10000, polling: 50 });
      return await h.jsonValue();
    }
    case "screenshot":
      await page.screenshot({ path: req.path, fullPage: true });
      return req.path;
    case "errors":
      return errors.splice(0);
    case "route":
      await page.unroute(req.pattern).catch(() => {});
      if (req.action === "abort") await page.route(req.pattern, (r) => r.abort());
      return null;
    case "metrics": {
      if (!page.__cdp) {
        page.__cdp = await page.context().newCDPSession(page);
        await page.__cdp.send("Performance.enable", { timeDomain: "timeTicks" });
      }
      const { metrics } = await page.__cdp.send("Performance.getMetrics");
      return Object.fromEntries(metrics.map((m) => [m.name, m.value]));
    }
    case "quit":
      await browser.close();
      out({ ok: true, value: null });
      process.exit(0);
      break;
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

const rl = createInterface({ input: process.stdin });
let chain = Promise.resolve();
out({ ok: true, value: browser.version() });
rl.on("line", (line) => {
  chain = chain.then(async () => {
    try {
      out({ ok: true, value: (await handle(JSON.parse(line))) ?? null });
    } catch (e) {
      out({ ok: false, error: String((e && e.message) || e) });
    }
  });
});
rl.on("close", () => chain.then(() => browser.close()).then(() => process.exit(0)));
