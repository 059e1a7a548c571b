// One origin per tenant, named from the viewer's Host, in JavaScript: the
// same behavior as the Rust example in examples/tenant-router.
//
// `acme.example.com` goes to `origin_template` with `{tenant}` replaced
// (`acme.backend.internal`), which the distribution's `dynamic_origins`
// must allow. Config: `origin_template` (required), `protocol` (https, the
// default, or http), `port`, `origin_path`.
//
// Build: node ../../../guest-sdk/js/build.mjs tenant-router.js tenant-router.wasm
import { config, defineHooks, forwardToHost, header, respond, setHeader, textResponse } from "../../../guest-sdk/js/edge.js";

// The first label of the Host, when it is a valid one.
function tenantOf(host) {
  const name = (host ?? "").split(":")[0].toLowerCase();
  const dot = name.indexOf(".");
  if (dot <= 0 || dot === name.length - 1) return undefined;
  const label = name.slice(0, dot);
  return /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(label) ? label : undefined;
}

export const events = defineHooks({
  viewerRequest(ctx, req) {
    const template = config.get("origin_template");
    if (template === undefined) return respond(textResponse(500, "origin_template is not configured"));
    const tenant = tenantOf(header(req, "host"));
    if (tenant === undefined) return respond(textResponse(400, "no tenant in the Host"));
    setHeader(req, "x-tenant", tenant);
    const port = config.value("port");
    return forwardToHost(req, {
      domainName: template.replaceAll("{tenant}", tenant),
      port: typeof port === "number" ? port : port === undefined ? undefined : Number(port),
      protocol: config.get("protocol") === "http" ? "http" : "https",
      originPath: config.get("origin_path"),
    });
  },
});
