// Blue/green by cookie, in JavaScript: the same behavior as the Rust example
// in examples/bluegreen.
//
// A viewer with `deployment=blue` or `deployment=green` goes to that origin.
// A viewer without the cookie gets a weighted choice: green's share is the
// percentage in KV `bluegreen/green_weight` (0 when unset), so an operator moves
// traffic with one `PUT /v1/kv/bluegreen/green_weight` and no redeploy. The
// choice sticks: viewer-response sets the cookie.
//
// Config (all optional): `cookie` (default `deployment`), `blue_origin` and
// `green_origin` (default `blue` and `green`), `kv_namespace` (default
// `bluegreen`), `max_age` in seconds (default 86400).
//
// Build: node ../../../guest-sdk/js/build.mjs bluegreen.js bluegreen.wasm
import { config, cookie, defineHooks, forward, kv, log, randomU64, setCookie, weightedIndex } from "../../../guest-sdk/js/edge.js";

const setting = (name, fallback) => config.get(name) ?? fallback;

// One instance serves both events of a request: viewer-request leaves the
// arm a fresh viewer drew here for viewer-response (undefined: the viewer
// had the cookie, or viewer-request did not run in this instance).
let drawn;

export const events = defineHooks({
  viewerRequest(ctx, req) {
    let arm = cookie(req, setting("cookie", "deployment"));
    drawn = undefined;
    if (arm !== "blue" && arm !== "green") {
      const green = Math.min(100, Math.max(0, kv.getNumber(setting("kv_namespace", "bluegreen"), "green_weight") ?? 0));
      arm = weightedIndex(randomU64(), [100 - green, green]) === 1 ? "green" : "blue";
      drawn = arm;
    }
    const origin = setting(`${arm}_origin`, arm);
    log.debug(`${ctx.requestId}: ${arm} (${origin})`);
    return forward(req, origin);
  },

  viewerResponse(ctx, req, resp) {
    const name = setting("cookie", "deployment");
    // Attached to viewer-response alone: the arm the request went to.
    const arm = drawn ?? (cookie(req, name) === undefined
      ? (ctx.originId === setting("green_origin", "green") ? "green" : "blue")
      : undefined);
    if (arm !== undefined) {
      const maxAge = Number.parseInt(setting("max_age", "86400"), 10);
      setCookie(resp, name, arm, { maxAge: Number.isNaN(maxAge) ? 86400 : maxAge });
    }
    return resp;
  },
});
