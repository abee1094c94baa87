#!/usr/bin/env node
// bosun-build APP.js -o OUT.wasm [--export NAME]
//
// Makes a bosun reconciler component from a compiled module whose export
// NAME (default: `default`) is the reconciler class, with the pinned
// componentize-qjs (0.4.5, what `jco componentize --backend quickjs` runs)
// against the WIT shipped in this package. Called directly rather than
// through jco's CLI: jco roots module resolution at the entry's directory,
// so an app's imports of the SDK (in node_modules, or a symlink elsewhere)
// fail to load. Compile TypeScript with tsc first.
//
// QuickJS rather than SpiderMonkey (componentize-js): a 1.7 MB component
// that compiles in about 3 s, where SpiderMonkey makes 12 MB and 9 s. It
// has no fetch, and this SDK no HTTP client yet.
import { readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve, sep } from "node:path";
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
const outPath = resolve(out);
const wit = join(sdk, "wit");

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
  const { componentize } = await import("componentize-qjs");
  const { component } = await componentize({
    witPath: wit,
    jsSource: readFileSync(entry, "utf8"),
    jsPath: entry,
    // The app's imports reach the SDK (through node_modules, often a
    // symlink to elsewhere): the root must hold both, or QuickJS refuses to
    // load what lies outside it.
    moduleRoot: commonAncestor([dirname(realpathSync(entry)), realpathSync(sdk)]),
    world: "reconciler",
    // QuickJS's synchronous runtime: without it the component needs
    // component-model async, which the host does not enable.
    sync: true,
  });
  writeFileSync(outPath, component);
  console.error(`bosun-build: wrote ${outPath} (${component.length} bytes)`);
} catch (e) {
  console.error(`bosun-build: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
} finally {
  rmSync(entry, { force: true });
}

function commonAncestor(paths) {
  const split = paths.map((p) => p.split(sep));
  const common = [];
  for (let i = 0; split.every((parts) => i < parts.length && parts[i] === split[0][i]); i++) {
    common.push(split[0][i]);
  }
  return common.join(sep) || sep;
}
