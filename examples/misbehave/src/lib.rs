//! A test fixture for the hook contract: what each event does is chosen by the
//! config keys `viewer_request`, `origin_request`, `origin_response` and
//! `viewer_response` (absent: pass through).
//!
//! Request events: `count` (a global counter in `x-count`, proving each
//! request gets a fresh instance, shared by its events), `loop` (spins forever), `alloc` (asks for 64 MiB),
//! `panic`, `bad-header` (a CR/LF value), `hop-header` (adds `connection`),
//! `via` (adds `via`), `bad-status` (answers 99), `bad-origin` (routes to an
//! unknown origin), `long-uri` (a 9000-byte path), `big-body` (answers 50 KB),
//! `respond` (answers 200 with a body naming the event), `reroute` (routes to
//! origin `other`), `rewrite` (path becomes `/rewritten` plus the old path),
//! `log` (logs and prints, then passes), `context` (answers with the context),
//! `sleep-<ms>` (waits that long in a WASI sleep, then passes), `escape`
//! (tries to read a file, read the environment and list the root folder,
//! and answers with what each attempt got; a hook that opens sockets is the
//! `escape` example, refused at upload), `recurse` (recurses
//! until the stack runs out), `body-seen` (adds `x-body-seen: <bytes given>`
//! and `x-body-truncated`, and keeps the body), `body-upper` (the same, and
//! replaces the body with it in upper case), `fetch` (sends `fetch_times`
//! GETs, default 1, to `fetch_url` and adds `x-fetch`: each answer's status
//! or error, comma-separated, and `x-fetch-body`: the first answer's body),
//! `secret` (reads secret `secret_name` of `secret_store` and adds it as
//! `x-secret`, or the error: `not-permitted`, `not-found`).
//! Response events: `tag` (adds `x-<event>: 1`), `status` (sets 418),
//! `body` (replaces the body), `body-seen` and `body-upper` (as above),
//! `panic`, `bad-header`.

use std::sync::atomic::{AtomicU32, Ordering};

use edge_sdk::{
    Context, Event, Hooks, Request, RequestAction, Response, config, fetch, log, secrets,
};

struct Misbehave;

static CALLS: AtomicU32 = AtomicU32::new(0);

fn event_name(event: Event) -> &'static str {
    match event {
        Event::ViewerRequest => "viewer_request",
        Event::OriginRequest => "origin_request",
        Event::OriginResponse => "origin_response",
        Event::ViewerResponse => "viewer_response",
    }
}

fn request_event(ctx: Context, mut req: Request) -> RequestAction {
    let event = event_name(ctx.event);
    match config::get(event).as_deref() {
        Some("count") => {
            let n = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
            req.set_header("x-count", &n.to_string());
            RequestAction::forward(req)
        }
        Some("loop") => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        Some("alloc") => {
            let big = vec![1u8; 64 << 20];
            req.set_header("x-len", &std::hint::black_box(big).len().to_string());
            RequestAction::forward(req)
        }
        Some("panic") => panic!("misbehave panics on purpose"),
        Some(mode) if mode.starts_with("sleep-") => {
            let ms = mode["sleep-".len()..].parse().unwrap_or(0);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            RequestAction::forward(req)
        }
        Some("bad-header") => {
            req.headers.push(edge_sdk::Header {
                name: "x-bad".into(),
                value: b"a\r\nb: c".to_vec(),
            });
            RequestAction::forward(req)
        }
        Some("hop-header") => {
            req.set_header("connection", "close");
            RequestAction::forward(req)
        }
        Some("via") => {
            req.set_header("via", "1.1 spoofed");
            RequestAction::forward(req)
        }
        Some("bad-status") => RequestAction::respond(Response::text(99, "no")),
        Some("bad-origin") => RequestAction::forward_to(req, "no-such-origin"),
        Some("long-uri") => {
            req.path = format!("/{}", "a".repeat(9000));
            RequestAction::forward(req)
        }
        Some("big-body") => RequestAction::respond(Response::text(200, &"x".repeat(50 * 1024))),
        Some("respond") => {
            let mut resp = Response::text(200, &format!("answered by {event}"));
            resp.set_header("cache-control", "max-age=60");
            RequestAction::respond(resp)
        }
        Some("reroute") => RequestAction::forward_to(req, "other"),
        Some("rewrite") => {
            req.path = format!("/rewritten{}", req.path);
            RequestAction::forward(req)
        }
        Some("secret") => {
            let store = config::get("secret_store").unwrap_or_default();
            let name = config::get("secret_name").unwrap_or_default();
            let shown = match secrets::get(&store, &name) {
                Ok(value) => String::from_utf8_lossy(&value).into_owned(),
                Err(secrets::Error::NotPermitted) => "not-permitted".to_owned(),
                Err(secrets::Error::NotFound) => "not-found".to_owned(),
            };
            req.set_header("x-secret", &shown);
            RequestAction::forward(req)
        }
        Some("fetch") => {
            let url = config::get("fetch_url").unwrap_or_default();
            let times: u32 = config::get_parsed("fetch_times").unwrap_or(1);
            let mut outcomes = Vec::new();
            let mut first_body = None;
            for _ in 0..times {
                match fetch::get(&url, &[("x-from", "misbehave")]) {
                    Ok(resp) => {
                        outcomes.push(resp.status.to_string());
                        first_body.get_or_insert_with(|| resp.text().unwrap_or("?").to_owned());
                    }
                    Err(err) => outcomes.push(fetch_error(&err).to_owned()),
                }
            }
            req.set_header("x-fetch", &outcomes.join(","));
            if let Some(body) = first_body {
                req.set_header("x-fetch-body", &body);
            }
            RequestAction::forward(req)
        }
        Some(mode @ ("body-seen" | "body-upper")) => {
            let (seen, upper) = body_seen(req.body.as_deref());
            req.set_header("x-body-seen", &seen);
            req.set_header("x-body-truncated", &ctx.body_truncated.to_string());
            if mode == "body-upper" {
                req.set_body(upper);
            }
            RequestAction::forward(req)
        }
        Some("log") => {
            log::info(&format!("{event} saw {}", req.path));
            println!("printed by {event}");
            RequestAction::forward(req)
        }
        Some("recurse") => {
            let depth = recurse(std::hint::black_box(0));
            req.set_header("x-depth", &depth.to_string());
            RequestAction::forward(req)
        }
        Some("escape") => {
            let file = match std::fs::read("/etc/passwd") {
                Ok(bytes) => format!("read {} bytes", bytes.len()),
                Err(e) => format!("denied ({:?})", e.kind()),
            };
            let dir = match std::fs::read_dir("/") {
                Ok(entries) => format!("listed {}", entries.count()),
                Err(e) => format!("denied ({:?})", e.kind()),
            };
            let env = std::env::vars().count();
            let body = format!("file={file}\ndir={dir}\nenv={env}\n");
            RequestAction::respond(Response::text(200, &body))
        }
        Some("context") => {
            let body = format!(
                "event={event} distribution={} domain={} request={} arm={:?} origin={} client={}",
                ctx.distribution_id,
                ctx.distribution_domain,
                ctx.request_id,
                ctx.arm,
                ctx.origin_id,
                req.client_address
            );
            RequestAction::respond(Response::text(200, &body))
        }
        _ => RequestAction::forward(req),
    }
}

/// Recurses without end (each frame keeps a buffer alive), so the guest's
/// stack overflows and the instance traps.
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    // Never true; the compiler cannot tell.
    if std::hint::black_box(frame[0]) == u64::MAX {
        return depth;
    }
    recurse(frame[0] + 1) + frame[63]
}

/// The name of a `fetch` error, as the WIT spells it.
fn fetch_error(err: &fetch::Error) -> &'static str {
    match err {
        fetch::Error::NotPermitted => "not-permitted",
        fetch::Error::NotDeclared(_) => "not-declared",
        fetch::Error::TooManyRequests => "too-many-requests",
        fetch::Error::Timeout => "timeout",
        fetch::Error::TooLarge => "too-large",
        fetch::Error::InvalidRequest(_) => "invalid-request",
        fetch::Error::Failed(_) => "failed",
    }
}

/// What `body-seen` reports of a body given (`none` when none was), and
/// the body in upper case.
fn body_seen(body: Option<&[u8]>) -> (String, Vec<u8>) {
    match body {
        None => ("none".to_owned(), Vec::new()),
        Some(bytes) => (bytes.len().to_string(), bytes.to_ascii_uppercase()),
    }
}

fn response_event(ctx: Context, mut resp: Response) -> Response {
    let event = event_name(ctx.event);
    match config::get(event).as_deref() {
        Some(mode @ ("body-seen" | "body-upper")) => {
            let (seen, upper) = body_seen(resp.body.as_deref());
            resp.set_header("x-body-seen", &seen);
            resp.set_header("x-body-truncated", &ctx.body_truncated.to_string());
            if mode == "body-upper" {
                resp.set_body(upper);
            }
            resp
        }
        Some("tag") => {
            resp.set_header(&format!("x-{}", event.replace('_', "-")), "1");
            resp
        }
        Some("status") => {
            resp.status = 418;
            resp
        }
        Some("body") => {
            resp.body = Some(format!("body replaced by {event}").into_bytes());
            resp.remove_header("content-length");
            resp
        }
        Some("panic") => panic!("misbehave panics on purpose"),
        Some("bad-header") => {
            resp.headers.push(edge_sdk::Header {
                name: "x-bad".into(),
                value: b"a\0b".to_vec(),
            });
            resp
        }
        _ => resp,
    }
}

impl Hooks for Misbehave {
    fn viewer_request(ctx: Context, req: Request) -> RequestAction {
        request_event(ctx, req)
    }
    fn origin_request(ctx: Context, req: Request) -> RequestAction {
        request_event(ctx, req)
    }
    fn origin_response(ctx: Context, _req: Request, resp: Response) -> Response {
        response_event(ctx, resp)
    }
    fn viewer_response(ctx: Context, _req: Request, resp: Response) -> Response {
        response_event(ctx, resp)
    }
}

edge_sdk::export!(Misbehave);
