//! State that lives as long as one request.
//!
//! A component attached to several events of a request runs in one instance
//! for that request, so what viewer-request keeps in a global is there in
//! viewer-response, and never in another request. This hook counts the
//! events it ran for, remembers the path and the request id viewer-request
//! saw, and viewer-response reports them:
//!
//! - `x-calls`: how many events this instance ran (viewer-response included);
//! - `x-events`: their names, in order;
//! - `x-first-path`: the path viewer-request saw (`-` if it did not run here);
//! - `x-first-request-id`: the request id viewer-request saw.
//!
//! A hook built for the `edge:hooks@0.1.0` world gets a fresh instance per
//! event instead: `x-calls: 1`.

use std::sync::Mutex;

use edge_sdk::{Context, Event, Hooks, Request, RequestAction, Response};

/// What this instance has seen.
struct Seen {
    events: Vec<&'static str>,
    first_path: Option<String>,
    first_request_id: Option<String>,
}

static SEEN: Mutex<Seen> = Mutex::new(Seen {
    events: Vec::new(),
    first_path: None,
    first_request_id: None,
});

fn note(ctx: &Context) -> std::sync::MutexGuard<'static, Seen> {
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    seen.events.push(match ctx.event {
        Event::ViewerRequest => "viewer-request",
        Event::OriginRequest => "origin-request",
        Event::OriginResponse => "origin-response",
        Event::ViewerResponse => "viewer-response",
    });
    seen
}

struct RequestState;

impl Hooks for RequestState {
    fn viewer_request(ctx: Context, req: Request) -> RequestAction {
        let mut seen = note(&ctx);
        seen.first_path = Some(req.path.clone());
        seen.first_request_id = Some(ctx.request_id.clone());
        RequestAction::forward(req)
    }

    fn origin_request(ctx: Context, req: Request) -> RequestAction {
        drop(note(&ctx));
        RequestAction::forward(req)
    }

    fn origin_response(ctx: Context, _req: Request, resp: Response) -> Response {
        drop(note(&ctx));
        resp
    }

    fn viewer_response(ctx: Context, _req: Request, mut resp: Response) -> Response {
        let seen = note(&ctx);
        resp.set_header("x-calls", &seen.events.len().to_string());
        resp.set_header("x-events", &seen.events.join(","));
        resp.set_header("x-first-path", seen.first_path.as_deref().unwrap_or("-"));
        resp.set_header(
            "x-first-request-id",
            seen.first_request_id.as_deref().unwrap_or("-"),
        );
        resp
    }
}

edge_sdk::export!(RequestState);
