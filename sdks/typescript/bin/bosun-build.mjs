#!/usr/bin/env node
// bosun-build APP.js -o OUT.wasm [--export NAME]
//
// Makes a bosun reconciler component from a compiled module whose export
// NAME (default: `default`) is the reconciler class, with the pinned jco
// (1.35.0) and its QuickJS backend against the WIT shipped in this package.
// Compile TypeScript with tsc first: jco cannot read WIT from disk when it
// is handed TypeScript (its WASI shim has no preopens).
import { spawnSync } from "node:child_process";
import { writeFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const usage = "usage: bosun-build APP.js -o OUT.wasm [--export NAME]";
const args = process.argv.slice(2);
let app;
let out;
let exportName = "default";
for (let i = 0; i < args.length; i++) {
  if (args[i] === "-o" || args[i] === "--output") out = args[++i];
  else if (args[i] === "--export") exportName = args[++i];
  else if (args[i] === "-h" || args[i] === "--help") {
    console.log(usage);
    process.exit(0);
  } else if (app === undefined) app = args[i];
  else {
    console.error(usage);
    process.exit(2);
  }
}
if (!app || !out || !exportName) {
  console.error(usage);
  process.exit(2);
}
if (!/^[A-Za-z_$][\w$]*$/.test(exportName)) {
  console.error(`bosun-build: --export ${exportName} is not a JavaScript name`);
  process.exit(2);
}

const sdk = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const appPath = resolve(app);
// jco resolves relative paths against another directory than ours and
// doubles them: everything it gets is absolute.
const outPath = resolve(out);
const wit = join(sdk, "wit");
// jco exports no package.json: its root is two levels above its API module.
const jcoRoot = dirname(dirname(createRequire(import.meta.url).resolve("@bytecodealliance/jco")));

// The entry sits beside the app so that the app's own imports resolve as
// they do natively; it alone imports the component glue, whose
// `bosun:reconciler/host` import exists only inside the component.
const entry = join(dirname(appPath), `.bosun-entry-${process.pid}.js`);
const glue = join(sdk, "dist", "src", "component.js");
const binding = exportName === "default" ? "default as reconciler" : `${exportName} as reconciler`;
writeFileSync(
  entry,
  `import { component } from ${JSON.stringify(glue)};\n` +
    `import { ${binding} } from ${JSON.stringify(`./${basename(appPath)}`)};\n` +
    `const world = component(reconciler);\n` +
    `export const metadata = world.metadata;\n` +
    `export const reconcile = world.reconcile;\n` +
    `export const finalize = world.finalize;\n`,
);
try {
  const run = spawnSync(
    process.execPath,
    [
      join(jcoRoot, "dist", "jco.js"),
      "componentize",
      entry,
      "--wit",
      wit,
      "--world-name",
      "reconciler",
      // QuickJS: a 1.6 MB component that compiles in about 2 s, where
      // SpiderMonkey makes 12 MB and 9 s; it has no fetch, and this SDK no
      // HTTP client yet. Without the flag the component needs
      // component-model async, which the host does not enable.
      "--backend",
      "quickjs",
      "--backend-qjs-disable-async",
      "-o",
      outPath,
    ],
    { stdio: "inherit" },
  );
  if (run.error) throw run.error;
  process.exitCode = run.status ?? 1;
} finally {
  rmSync(entry, { force: true });
}
