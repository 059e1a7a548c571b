// Builds a JavaScript hook into a WebAssembly component for the `hooks` world:
//
//   node build.mjs hook.js [hook.wasm]
//   node build.mjs --serve
//
// `--serve` keeps one builder running for many builds (what `edge dev` does
// with it): each line read on stdin is a build, `{"source": "hook.js", "out":
// "hook.wasm"}`, answered on stdout by a line `@@edge-build {"bytes": n,
// "seconds": s}` or `@@edge-build {"error": "..."}` (other lines on stdout
// are not answers). Builds after the first take well under half the time:
// componentize-js and the WebAssembly it runs are loaded and compiled once.
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
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

// The WIT contract: vendored next to this script in a scaffolded project,
// one folder up in the SDK's own tree.
const here = dirname(fileURLToPath(import.meta.url));
const witPath = [join(here, "wit"), join(here, "..", "wit")].find((p) => existsSync(p));
if (!witPath) {
  console.error(`no wit/ folder next to ${here} or above it`);
  process.exit(2);
}

/** Builds `source` into `out`; its size and the seconds it took. */
async function build(source, out) {
  const started = performance.now();
  const { component } = await componentize({
    sourcePath: source,
    witPath,
    worldName: "hooks",
    disableFeatures: ["http", "fetch-event"],
  });
  await writeFile(out, component);
  return { bytes: component.length, seconds: (performance.now() - started) / 1000 };
}

const args = process.argv.slice(2);
if (args[0] === "--serve") {
  const answer = (value) => process.stdout.write(`@@edge-build ${JSON.stringify(value)}\n`);
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    try {
      const { source, out } = JSON.parse(line);
      answer(await build(source, out));
    } catch (err) {
      answer({ error: String(err?.message ?? err) });
    }
  }
} else {
  const [source, out = source?.replace(/\.[cm]?js$/, "") + ".wasm"] = args;
  if (!source) {
    console.error("usage: node build.mjs hook.js [hook.wasm] | node build.mjs --serve");
    process.exit(2);
  }
  const { bytes, seconds } = await build(source, out);
  console.error(`built ${out}: ${bytes} bytes in ${seconds.toFixed(1)} s`);
}
