// Builds a JavaScript hook into a WebAssembly component for the `hooks` world:
//
//   node build.mjs hook.js [hook.wasm]
//
// componentize-js embeds the StarlingMonkey engine with the hook's module
// (and the modules it imports by relative path) pre-initialized. The host
// links WASI without wasi:http, so the `http` and `fetch-event` features are
// left out; stdio (what the hook prints reaches the host's log, with the stack
// of an uncaught exception), clocks and random stay.
import { componentize } from "@bytecodealliance/componentize-js";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const [source, out = source?.replace(/\.[cm]?js$/, "") + ".wasm"] = process.argv.slice(2);
if (!source) {
  console.error("usage: node build.mjs hook.js [hook.wasm]");
  process.exit(2);
}
// The WIT contract: vendored next to this script in a scaffolded project,
// one folder up in the SDK's own tree.
const here = dirname(fileURLToPath(import.meta.url));
const witPath = [join(here, "wit"), join(here, "..", "wit")].find((p) => existsSync(p));
if (!witPath) {
  console.error(`no wit/ folder next to ${here} or above it`);
  process.exit(2);
}
const started = performance.now();
const { component } = await componentize({
  sourcePath: source,
  witPath,
  worldName: "hooks",
  disableFeatures: ["http", "fetch-event"],
});
await writeFile(out, component);
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.error(`built ${out}: ${component.length} bytes in ${seconds} s`);
