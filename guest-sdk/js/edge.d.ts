// Types for the Edge hook SDK (edge.js) and the `hooks` WIT world as
// componentize-js presents it to JavaScript. TypeScript authors compile to
// an ES module first (`tsc`), then build that with build.mjs.

export type Event = "viewer-request" | "origin-request" | "origin-response" | "viewer-response";
export type Arm = "primary" | "staging";

/** One header field: a lower-case name and its raw value. */
export interface Header {
  name: string;
  value: Uint8Array;
}

/** Read-only facts about the request being served. */
export interface Context {
  event: Event;
  distributionId: string;
  distributionDomain: string;
  requestId: string;
  arm: Arm;
  /** The origin (or origin group) id the request is routed to so far. */
  originId: string;
  /**
   * The body this event was given is only its first bytes (the whole is
   * longer than the association's `body_limit_kib`). Handed back unchanged,
   * the whole body goes on.
   */
  bodyTruncated: boolean;
}

export interface Request {
  method: string;
  /** The path, starting with `/`, percent-encoding kept. */
  path: string;
  /** The query string without `?`. */
  query?: string;
  headers: Header[];
  clientAddress: string;
  /**
   * The request body, with `include_body` on the association. Handed back
   * unchanged (or `undefined`) it is kept; other bytes replace it.
   */
  body?: Uint8Array;
}

export interface Response {
  status: number;
  headers: Header[];
  /**
   * The origin's body in origin-response with `include_body`. Handed back
   * unchanged (or `undefined`) it is kept; other bytes replace it.
   */
  body?: Uint8Array;
}

export interface DynamicOrigin {
  domainName: string;
  port?: number;
  protocol: "http" | "https";
  originPath?: string;
}

export type RequestAction =
  | { tag: "forward"; val: { request: Request; originId?: string; dynamicOrigin?: DynamicOrigin } }
  | { tag: "respond"; val: Response };

export interface Hooks {
  viewerRequest(ctx: Context, req: Request): RequestAction;
  originRequest(ctx: Context, req: Request): RequestAction;
  originResponse(ctx: Context, req: Request, resp: Response): Response;
  viewerResponse(ctx: Context, req: Request, resp: Response): Response;
}

export function defineHooks(events: Partial<Hooks>): Hooks;
export function forward(request: Request, originId?: string): RequestAction;
export function forwardToHost(
  request: Request,
  origin: { domainName: string; port?: number; protocol?: "http" | "https"; originPath?: string },
): RequestAction;
export function respond(response: Response): RequestAction;

export function text(bytes: Uint8Array | undefined): string | undefined;
export function bytes(value: string | Uint8Array): Uint8Array;

type Message = { headers: Header[] };
export function header(message: Message, name: string): string | undefined;
export function headers(message: Message, name: string): (string | undefined)[];
export function setHeader(message: Message, name: string, value: string | number): void;
export function appendHeader(message: Message, name: string, value: string | number): void;
export function removeHeader(message: Message, name: string): void;
export function cookie(request: Request, name: string): string | undefined;
export interface CookieOptions {
  path?: string;
  maxAge?: number;
  domain?: string;
  secure?: boolean;
  httpOnly?: boolean;
  sameSite?: "Strict" | "Lax" | "None";
}
export function setCookie(response: Response, name: string, value: string, options?: CookieOptions): void;
export function queryParam(request: Request, name: string): string | undefined;

export interface OutboundResponse {
  status: number;
  headers: Header[];
  body: Uint8Array;
}
export type FetchErrorKind =
  | "not-permitted" | "not-declared" | "too-many-requests" | "timeout"
  | "too-large" | "invalid-request" | "failed";
export class FetchError extends Error {
  kind: FetchErrorKind;
  detail?: string;
}
/** A request to a declared backend or origin; throws `FetchError`. */
export function send(
  url: string,
  options?: { method?: string; headers?: Record<string, string | number>; body?: string | Uint8Array },
): OutboundResponse;

type WithBody = { body?: Uint8Array; headers: Header[] };
export function bodyText(message: WithBody): string | undefined;
export function setBody(message: WithBody, body: string | Uint8Array): void;

export function response(status: number, contentType: string, body: string | Uint8Array): Response;
export function textResponse(status: number, body: string): Response;
export function redirect(status: 301 | 302 | 303 | 307 | 308, location: string): Response;

export const kv: {
  get(namespace: string, key: string): Uint8Array | undefined;
  getString(namespace: string, key: string): string | undefined;
  getNumber(namespace: string, key: string): number | undefined;
};
export const config: {
  get(name: string): string | undefined;
  value(name: string): unknown;
  all(): Record<string, unknown>;
};
export const secrets: {
  get(store: string, name: string): Uint8Array | undefined;
  getString(store: string, name: string): string | undefined;
};
export const log: {
  debug(message: unknown): void;
  info(message: unknown): void;
  warn(message: unknown): void;
  error(message: unknown): void;
};

export function stableHash(key: string): bigint;
export function randomU64(): bigint;
export function weightedIndex(draw: bigint, weights: number[]): number | undefined;
export function weightedChoice<T>(key: string, arms: [T, number][]): T | undefined;
