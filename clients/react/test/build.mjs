// Bundles the hooks tests for Chromium (t/integration/test_react.py):
// build/react-test/index.html runs them and sets window.RESULTS.
import { build } from "esbuild";
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const out = fileURLToPath(new URL("../../../build/react-test/", import.meta.url));
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [fileURLToPath(new URL("hooks.test.jsx", import.meta.url))],
  bundle: true,
  format: "iife",
  jsx: "automatic",
  outfile: out + "hooks.js",
  define: { "process.env.NODE_ENV": '"development"' },
  logLevel: "warning",
});
writeFileSync(out + "index.html", '<!doctype html><meta charset="utf-8"><div id="root"></div><script src="hooks.js"></script>\n');
