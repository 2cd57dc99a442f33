// Builds the dashboard into build/demo-www with esbuild: one ES module
// bundle (React, uPlot, pulse.js and the bindings inside), one stylesheet,
// the page. No CDN: the demo runs with no network.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const out = here("../../build/demo-www/");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: here("src/main.jsx") },
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: "es2020",
  jsx: "automatic",
  outdir: out,
  define: { "process.env.NODE_ENV": '"production"' },
  loader: { ".css": "css" },
  logLevel: "warning",
});
copyFileSync(here("src/index.html"), out + "index.html");
console.log(`demo-ui: built ${out}`);
