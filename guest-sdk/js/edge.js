// The Edge hook SDK for JavaScript: helpers over the `hooks` world of
// guest-sdk/wit/, the same contract the Rust SDK (edge-sdk) binds. A hook is
// an ES module that exports `events`, the four event functions; `defineHooks`
// fills in the ones it leaves out with pass-through defaults:
//
//   import { defineHooks, forward } from "./edge.js";
//   export const events = defineHooks({ viewerRequest: (ctx, req) => forward(req, "green") });
//
// One instance of the hook serves every event of one request it is attached
// to: a module-level variable set in viewerRequest is there in viewerResponse
// of the same request, and in no other request.
//
// `node build.mjs hook.js hook.wasm` turns it into a component with
// componentize-js (StarlingMonkey); see README "JavaScript hooks".
//
// How the WIT types look here: records are objects with camelCase fields
// (`ctx.requestId`, `req.clientAddress`), enums are strings
// ("viewer-request", "primary"), header values and bodies are Uint8Array,
// an absent option is `undefined`, and a request-action is
// `{tag: "forward", val: {request, originId}}` or `{tag: "respond", val: response}`.

import { get as kvGet } from "edge:hooks/kv@0.2.0";
import { get as configGet, json as configJson } from "edge:hooks/config@0.2.0";
import { log as hostLog } from "edge:hooks/log@0.2.0";
import { send as fetchSend } from "edge:hooks/fetch@0.2.0";
import { get as secretGet } from "edge:hooks/secrets@0.2.0";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Text from bytes; `undefined` when they are not UTF-8. */
export function text(bytes) {
  if (bytes === undefined || bytes === null) return undefined;
  try {
    return decoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Bytes of a string (UTF-8). */
export function bytes(value) {
  return typeof value === "string" ? encoder.encode(value) : value;
}

// --- events -----------------------------------------------------------------

/** Go on with `request`, optionally to origin (or origin group) `originId`. */
export function forward(request, originId) {
  return { tag: "forward", val: { request, originId: originId ?? undefined } };
}

/**
 * Go on with `request` to an origin named by host, which the distribution's
 * `dynamic_origins` must allow: `{domainName, port, protocol: "https" | "http",
 * originPath}` (only `domainName` is required; https on its default port).
 */
export function forwardToHost(request, { domainName, port, protocol = "https", originPath } = {}) {
  return {
    tag: "forward",
    val: { request, dynamicOrigin: { domainName, port, protocol, originPath } },
  };
}

/** Answer the viewer with `response` instead of going on. */
export function respond(response) {
  return { tag: "respond", val: response };
}

const passThrough = {
  viewerRequest: (_ctx, req) => forward(req),
  originRequest: (_ctx, req) => forward(req),
  originResponse: (_ctx, _req, resp) => resp,
  viewerResponse: (_ctx, _req, resp) => resp,
};

/** The four event functions (export them as `events`): `events`' own, pass-through for the rest. */
export function defineHooks(events) {
  for (const name of Object.keys(events)) {
    if (!(name in passThrough)) throw new Error(`defineHooks: unknown event ${name}`);
  }
  return Object.assign({}, passThrough, events);
}

// --- headers, cookies, query ------------------------------------------------

/** The first value of header `name` (case-insensitive) as text. */
export function header(message, name) {
  const lower = name.toLowerCase();
  const found = message.headers.find((h) => h.name === lower);
  return found ? text(found.value) : undefined;
}

/** Every value of header `name`, as text. */
export function headers(message, name) {
  const lower = name.toLowerCase();
  return message.headers.filter((h) => h.name === lower).map((h) => text(h.value));
}

/** Replaces every `name` header with one of `value`. */
export function setHeader(message, name, value) {
  removeHeader(message, name);
  appendHeader(message, name, value);
}

/** Adds a `name` header, keeping the ones there. */
export function appendHeader(message, name, value) {
  message.headers.push({ name: name.toLowerCase(), value: bytes(String(value)) });
}

/** Removes every `name` header. */
export function removeHeader(message, name) {
  const lower = name.toLowerCase();
  message.headers = message.headers.filter((h) => h.name !== lower);
}

/** The value of cookie `name` in the request's `Cookie` headers. */
export function cookie(request, name) {
  for (const value of headers(request, "cookie")) {
    if (value === undefined) continue;
    for (const pair of value.split(";")) {
      const eq = pair.indexOf("=");
      if (eq > 0 && pair.slice(0, eq).trim() === name) {
        const raw = pair.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1");
        try {
          return decodeURIComponent(raw);
        } catch {
          return raw;
        }
      }
    }
  }
  return undefined;
}

/**
 * Adds a `Set-Cookie` to `response`. Options: `path` (default "/"),
 * `maxAge` (seconds), `domain`, `secure`, `httpOnly`, `sameSite`.
 */
export function setCookie(response, name, value, options = {}) {
  let line = `${name}=${encodeURIComponent(value)}`;
  line += `; Path=${options.path ?? "/"}`;
  if (options.maxAge !== undefined) line += `; Max-Age=${Math.trunc(options.maxAge)}`;
  if (options.domain) line += `; Domain=${options.domain}`;
  if (options.secure) line += "; Secure";
  if (options.httpOnly) line += "; HttpOnly";
  if (options.sameSite) line += `; SameSite=${options.sameSite}`;
  appendHeader(response, "set-cookie", line);
}

/** The first value of query parameter `name`, decoded. */
export function queryParam(request, name) {
  if (!request.query) return undefined;
  for (const pair of request.query.split("&")) {
    const [key, value = ""] = pair.split("=", 2);
    if (key === name) {
      try {
        return decodeURIComponent(value.replace(/\+/g, " "));
      } catch {
        return value;
      }
    }
  }
  return undefined;
}

// --- requests to backends ---------------------------------------------------

/**
 * Why `send` got no answer: `kind` is the WIT error's name ("not-permitted",
 * "not-declared", "too-many-requests", "timeout", "too-large",
 * "invalid-request", "failed"), `detail` its text when it has one.
 */
export class FetchError extends Error {
  constructor(kind, detail) {
    super(detail ? `${kind}: ${detail}` : kind);
    this.name = "FetchError";
    this.kind = kind;
    this.detail = detail;
  }
}

/**
 * Sends a request to a server the distribution declares (an origin or one
 * of its `backends`), for an association with a `fetch` object, and waits
 * for the whole answer: `{status, headers, body}` (body bytes; `text(resp.body)`
 * reads it). Options: `method` (default GET), `headers` ({name: value}),
 * `body` (text or bytes). Throws a `FetchError`.
 */
export function send(url, { method = "GET", headers = {}, body } = {}) {
  const list = Object.entries(headers).map(([name, value]) => ({
    name: name.toLowerCase(),
    value: bytes(String(value)),
  }));
  try {
    return fetchSend({ method, url, headers: list, body: body === undefined ? undefined : bytes(body) });
  } catch (e) {
    const err = e && e.payload !== undefined ? e.payload : e;
    if (err && typeof err.tag === "string") throw new FetchError(err.tag, err.val);
    throw e;
  }
}

// --- bodies -----------------------------------------------------------------

/**
 * A request's or response's body as text (UTF-8): what the event was given
 * with `include_body` on its association, `undefined` without.
 */
export function bodyText(message) {
  return message.body === undefined ? undefined : text(message.body);
}

/** Replaces the body (text or bytes); the host sets its length. */
export function setBody(message, body) {
  message.body = bytes(body);
  removeHeader(message, "content-length");
}

// --- generated responses ----------------------------------------------------

/** A response with a body. */
export function response(status, contentType, body) {
  return {
    status,
    headers: [{ name: "content-type", value: bytes(contentType) }],
    body: bytes(body),
  };
}

/** A text/plain response. */
export function textResponse(status, body) {
  return response(status, "text/plain; charset=utf-8", body);
}

/** A redirect (301, 302, 303, 307 or 308) to `location`. */
export function redirect(status, location) {
  return { status, headers: [{ name: "location", value: bytes(location) }], body: new Uint8Array() };
}

// --- data: KV, config, logging ----------------------------------------------

export const kv = {
  /** The value of `key` in `namespace` as bytes. */
  get: (namespace, key) => kvGet(namespace, key),
  /** The value as text. */
  getString: (namespace, key) => text(kvGet(namespace, key)),
  /** The value as a number (`undefined` when unset or not a number). */
  getNumber(namespace, key) {
    const value = text(kvGet(namespace, key));
    if (value === undefined || value.trim() === "") return undefined;
    const n = Number(value.trim());
    return Number.isNaN(n) ? undefined : n;
  },
};

export const config = {
  /** The association's `config[name]`: strings as is, other JSON as JSON text. */
  get: (name) => configGet(name),
  /** `config[name]` parsed as JSON (`undefined` when unset). */
  value(name) {
    const raw = configGet(name);
    if (raw === undefined) return undefined;
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  },
  /** The whole config object. */
  all: () => JSON.parse(configJson()),
};

/**
 * Secrets from the stores the association's `secret_stores` names:
 * `get` gives the bytes (`undefined` when not set) and throws when the
 * store is not one the association may read; `getString` the text.
 */
export const secrets = {
  get(store, name) {
    try {
      return secretGet(store, name);
    } catch (e) {
      const err = e && e.payload !== undefined ? e.payload : e;
      const tag = err && (err.tag ?? err);
      if (tag === "not-found") return undefined;
      if (tag === "not-permitted") throw new Error(`secret store ${store} is not in the association's secret_stores`);
      throw e;
    }
  },
  getString(store, name) {
    return text(secrets.get(store, name));
  },
};

/** Logging tied to the request: the host's log line carries the request id. */
export const log = {
  debug: (message) => hostLog("debug", String(message)),
  info: (message) => hostLog("info", String(message)),
  warn: (message) => hostLog("warn", String(message)),
  error: (message) => hostLog("error", String(message)),
};

// --- weighted choices -------------------------------------------------------

const MASK = (1n << 64n) - 1n;

/** FNV-1a 64 with a murmur finish, as a BigInt: the Rust SDK's `stable_hash`. */
export function stableHash(key) {
  let h = 0xcbf29ce484222325n;
  for (const b of encoder.encode(key)) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & MASK;
  }
  h ^= h >> 33n;
  h = (h * 0xff51afd7ed558ccdn) & MASK;
  h ^= h >> 33n;
  h = (h * 0xc4ceb9fe1a85ec53n) & MASK;
  return h ^ (h >> 33n);
}

/** A uniformly random 64-bit BigInt (WASI random). */
export function randomU64() {
  const words = new Uint32Array(2);
  crypto.getRandomValues(words);
  return (BigInt(words[1]) << 32n) | BigInt(words[0]);
}

/**
 * The index of the arm a 64-bit draw (BigInt) lands on, given non-negative
 * weights of any scale; `undefined` when no weight is positive. Same rule as
 * the Rust SDK's `weighted_index`.
 */
export function weightedIndex(draw, weights) {
  const total = weights.filter((w) => w > 0).reduce((a, w) => a + w, 0);
  if (!(total > 0) || !Number.isFinite(total)) return undefined;
  const point = (Number(draw >> 11n) / 2 ** 53) * total;
  let acc = 0;
  let last;
  for (let i = 0; i < weights.length; i++) {
    if (weights[i] > 0) {
      acc += weights[i];
      last = i;
      if (point < acc) return i;
    }
  }
  return last;
}

/**
 * The arm `key` lands on: `arms` is a list of `[value, weight]`; the same key
 * gives the same arm while the weights stay the same.
 */
export function weightedChoice(key, arms) {
  const index = weightedIndex(stableHash(key), arms.map(([, w]) => w));
  return index === undefined ? undefined : arms[index][0];
}
