// The bundle-size budget of pulse.js: minified by esbuild, gzipped by
// zlib at level 9, at most 8192 bytes. Prints the sizes; exits 1 over budget.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";

const LIMIT = 8192;
const out = await build({
  entryPoints: [new URL("../src/pulse.js", import.meta.url).pathname],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2020",
  write: false,
});
const min = out.outputFiles[0].contents;
const gz = gzipSync(min, { level: 9 }).length;
console.log(`pulse.js: ${min.length} B minified, ${gz} B minified+gzip (limit ${LIMIT} B)`);
if (gz > LIMIT) {
  console.error(`pulse.js is over its size budget by ${gz - LIMIT} B`);
  process.exit(1);
}
