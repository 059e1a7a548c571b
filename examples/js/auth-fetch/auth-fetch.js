// Asks an auth backend about every viewer, in viewer-request, in
// JavaScript: the same behavior as the Rust example in examples/auth-fetch.
//
// The viewer's token (`Authorization`, or the cookie named by `cookie`) goes
// to `auth_url`; a 200 names the user, passed on in `user_header` (default
// `x-user`, never the viewer's own). No token, or 401/403 from the backend:
// 401. The backend failing or unreachable: 503.
//
// Build: node ../../../guest-sdk/js/build.mjs auth-fetch.js auth-fetch.wasm
import { config, cookie, defineHooks, forward, header, log, removeHeader, respond, send, setHeader, text, textResponse } from "../../../guest-sdk/js/edge.js";

function answer(status, message) {
  const resp = textResponse(status, message);
  if (status === 401) setHeader(resp, "www-authenticate", "Bearer");
  setHeader(resp, "cache-control", "no-store");
  return respond(resp);
}

export const events = defineHooks({
  viewerRequest(ctx, req) {
    const userHeader = config.get("user_header") ?? "x-user";
    removeHeader(req, userHeader);
    const url = config.get("auth_url");
    if (url === undefined) {
      log.error("auth-fetch: no auth_url in the association's config");
      return answer(503, "authentication is not configured");
    }
    const name = config.get("cookie");
    const session = name === undefined ? undefined : cookie(req, name);
    const token = header(req, "authorization") ?? (session === undefined ? undefined : `Bearer ${session}`);
    if (token === undefined) return answer(401, "a token is required");
    let resp;
    try {
      resp = send(url, { headers: { authorization: token } });
    } catch (e) {
      log.warn(`auth-fetch: ${e.message}`);
      return answer(503, "the auth service cannot be reached");
    }
    if (resp.status === 401 || resp.status === 403) return answer(401, "the token was not accepted");
    const user = resp.status === 200 ? (text(resp.body) ?? "").trim() : "";
    if (user === "") {
      log.warn(`auth-fetch: the auth service answered ${resp.status}`);
      return answer(503, "the auth service failed");
    }
    setHeader(req, userHeader, user);
    return forward(req);
  },
});
