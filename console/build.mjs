// Builds the console into dist/, which the server embeds. The output is deterministic, so CI
// rebuilds it and fails when it differs from the committed files.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";

// `--outdir` builds elsewhere, for a server started with FERRY_CONSOLE_DIR while developing.
const { values } = parseArgs({ options: { outdir: { type: "string", default: "dist" } } });
const dist = pathToFileURL(`${resolve(values.outdir)}/`);
rmSync(dist, { recursive: true, force: true });
mkdirSync(new URL("assets/", dist), { recursive: true });

await build({
  entryPoints: { console: "src/main.ts" },
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  outdir: new URL("assets/", dist).pathname,
  legalComments: "eof",
  charset: "utf8",
  logLevel: "warning",
});
await build({
  entryPoints: { console: "src/style.css" },
  bundle: true,
  minify: true,
  outdir: new URL("assets/", dist).pathname,
  legalComments: "eof",
  charset: "utf8",
  logLevel: "warning",
});
copyFileSync("index.html", new URL("index.html", dist));

let total = 0;
for (const name of ["index.html", "assets/console.js", "assets/console.css"]) {
  const bytes = readFileSync(new URL(name, dist));
  const gz = gzipSync(bytes, { level: 9 }).length;
  total += gz;
  console.log(`${name.padEnd(20)} ${String(bytes.length).padStart(8)} B  ${String(gz).padStart(7)} B gzip`);
}
console.log(`${"total".padEnd(20)} ${"".padStart(8)}    ${String(total).padStart(7)} B gzip`);
if (total > 300 * 1024) {
  console.error("the console's assets exceed 300 KiB compressed");
  process.exit(1);
}
