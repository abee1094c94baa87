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
// has no fetch; the SDK's HTTP client goes to wasi:http itself.
//
// The world is `reconciler-http` (wit/ is the repository's wit/http, the
// published world): the host links wasi:http for every module, so every
// component imports it, as the Python SDK's do. componentize-qjs 0.4.5
// cannot snapshot such a component as it is: its Wizer step links the real
// wasi:io and stubs every import it does not know (wasi:http) with a
// resource type of its own, so wasi:http/types' `input-stream`, which is
// wasi:io's, has "the wrong type" and the build fails. So the build sees
// the WASI packages the world names renamed `wbsi:` (all unknown, all
// stubbed alike; the SDK's glue imports them by those names), and the
// component's bytes are renamed back afterwards, to `wasi:…@0.2.11`: the
// same length, and a version distinct from the runtime's own
// `wasi:…@0.2.12` imports, which a component may not import twice. The
// host links any 0.2.x import with its 0.2 WASI, so both resolve to the
// same instances.
import { mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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
/** The WASI version wit/deps carries, and the one the renamed imports come back as. */
const WASI_VERSION = "0.2.12";
const RENAMED_VERSION = "0.2.11";

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
const shadowWit = join(tmpdir(), `bosun-wit-${process.pid}`);
try {
  renamedCopy(wit, shadowWit);
  const { componentize } = await import("componentize-qjs");
  const built = await componentize({
    witPath: shadowWit,
    jsSource: readFileSync(entry, "utf8"),
    jsPath: entry,
    // The app's imports reach the SDK (through node_modules, often a
    // symlink to elsewhere): the root must hold both, or QuickJS refuses to
    // load what lies outside it.
    moduleRoot: commonAncestor([dirname(realpathSync(entry)), realpathSync(sdk)]),
    world: "reconciler-http",
    // QuickJS's synchronous runtime: without it the component needs
    // component-model async, which the host does not enable.
    sync: true,
  });
  const component = renamedBack(built.component);
  writeFileSync(outPath, component);
  console.error(`bosun-build: wrote ${outPath} (${component.length} bytes)`);
} catch (e) {
  console.error(`bosun-build: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
} finally {
  rmSync(entry, { force: true });
  rmSync(shadowWit, { recursive: true, force: true });
}

/** A copy of the WIT directory `from` at `to`, each `wasi:` package named `wbsi:`. */
function renamedCopy(from, to) {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) {
    const path = join(from, name);
    if (statSync(path).isDirectory()) {
      renamedCopy(path, join(to, name));
      continue;
    }
    const text = readFileSync(path, "utf8");
    for (const [, version] of text.matchAll(/\bwasi:[a-z][a-z0-9-]*(?:\/[a-z][a-z0-9-]*)?@([0-9]+\.[0-9]+\.[0-9]+)/g)) {
      if (version !== WASI_VERSION) {
        throw new Error(`${path} names WASI ${version}; bosun-build renames only ${WASI_VERSION}`);
      }
    }
    writeFileSync(join(to, name), text.replace(/\bwasi:/g, "wbsi:"));
  }
}

/** The component with every `wbsi:…@WASI_VERSION` name back to `wasi:…@RENAMED_VERSION`, in place. */
function renamedBack(component) {
  const bytes = Buffer.from(component);
  // latin1 maps each byte to one character and back: offsets and length hold.
  const text = bytes.toString("latin1");
  const renamed = text.replace(
    new RegExp(`wbsi:([a-z][a-z0-9-]*(?:/[a-z][a-z0-9-]*)?)@${WASI_VERSION.replaceAll(".", "\\.")}`, "g"),
    (_, name) => `wasi:${name}@${RENAMED_VERSION}`,
  );
  if (renamed.length !== text.length || renamed.includes("wbsi:")) {
    throw new Error("the component still names a renamed WASI package; componentize-qjs changed what it writes");
  }
  return Buffer.from(renamed, "latin1");
}

function commonAncestor(paths) {
  const split = paths.map((p) => p.split(sep));
  const common = [];
  for (let i = 0; split.every((parts) => i < parts.length && parts[i] === split[0][i]); i++) {
    common.push(split[0][i]);
  }
  return common.join(sep) || sep;
}
