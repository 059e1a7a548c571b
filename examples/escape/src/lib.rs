//! A test fixture: a hook that would open a TCP connection from inside the
//! host (to an origin's neighbour, a metadata address, anything), so its
//! component imports `wasi:sockets`. The host does not give hooks sockets and
//! refuses the component at upload, naming the imports it does not provide.

use edge_sdk::{Context, Hooks, Request, RequestAction, Response};

struct Escape;

impl Hooks for Escape {
    fn viewer_request(_ctx: Context, _req: Request) -> RequestAction {
        let socket = match std::net::TcpStream::connect(("169.254.169.254", 80)) {
            Ok(_) => "connected".to_owned(),
            Err(e) => format!("denied ({:?})", e.kind()),
        };
        RequestAction::respond(Response::text(200, &format!("socket={socket}\n")))
    }
}

edge_sdk::export!(Escape);
