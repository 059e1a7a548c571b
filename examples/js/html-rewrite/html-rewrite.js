// A banner injected into HTML pages on their way from the origin, in
// JavaScript: the same behavior as the Rust example in examples/html-rewrite.
//
// Attach it to origin-response with `include_body: true`; the cache keeps the
// rewritten page. Pages that are not text/html, are encoded, or are longer
// than the association's `body_limit_kib` (the hook is given only their
// start) pass as they came. Config: `banner` (HTML).
//
// Build: node ../../../guest-sdk/js/build.mjs html-rewrite.js html-rewrite.wasm
import { bodyText, config, defineHooks, header, log, setBody, setHeader } from "../../../guest-sdk/js/edge.js";

const DEFAULT_BANNER = '<div id="edge-banner">Served by Edge</div>';

// `html` with `banner` after its `<body ...>` tag, or at its start.
function inject(html, banner) {
  const match = /<body(?=[\s>\/])[^>]*>/i.exec(html);
  const at = match ? match.index + match[0].length : 0;
  return html.slice(0, at) + banner + html.slice(at);
}

export const events = defineHooks({
  originResponse(ctx, req, resp) {
    const type = (header(resp, "content-type") ?? "").trim().toLowerCase();
    const encoding = (header(resp, "content-encoding") ?? "identity").trim().toLowerCase();
    if (!type.startsWith("text/html") || encoding !== "identity") return resp;
    if (ctx.bodyTruncated) {
      log.warn("page longer than body_limit_kib: left as it came");
      return resp;
    }
    const page = bodyText(resp);
    if (page === undefined) return resp;
    setBody(resp, inject(page, config.get("banner") ?? DEFAULT_BANNER));
    setHeader(resp, "x-html-rewrite", "banner");
    const etag = header(resp, "etag");
    if (etag !== undefined && !etag.startsWith("W/")) setHeader(resp, "etag", `W/${etag}`);
    return resp;
  },
});
