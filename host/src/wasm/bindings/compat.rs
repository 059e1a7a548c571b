//! A 0.1.0 component in the current world: its imports are served by the
//! current world's (their types brought up), and its calls are made in the
//! current world's types: what the host passes goes down to 0.1.0, what the
//! component returns comes up.
//!
//! The current world has fields a 0.1.0 component never sees (the request's
//! body, the context's `body-truncated`): its conversions here drop them
//! going down and fill them with "keep as it is" coming up. A 0.1.0
//! component is never given a body (`include_body` needs the current world).

use super::v0_1::edge::hooks::types as old;
use super::v0_2::edge::hooks::types as new;
use super::{v0_1, v0_2};
use crate::wasm::HookState;

// A 0.1.0 component's imports: each the current world's, its types brought up.

impl v0_1::edge::hooks::kv::Host for HookState {
    fn get(&mut self, namespace: String, key: String) -> Option<Vec<u8>> {
        v0_2::edge::hooks::kv::Host::get(self, namespace, key)
    }
}

impl v0_1::edge::hooks::config::Host for HookState {
    fn get(&mut self, name: String) -> Option<String> {
        v0_2::edge::hooks::config::Host::get(self, name)
    }

    fn json(&mut self) -> String {
        v0_2::edge::hooks::config::Host::json(self)
    }
}

impl v0_1::edge::hooks::log::Host for HookState {
    fn log(&mut self, level: v0_1::edge::hooks::log::Level, message: String) {
        use v0_1::edge::hooks::log::Level as Old;
        use v0_2::edge::hooks::log::Level as New;
        let level = match level {
            Old::Debug => New::Debug,
            Old::Info => New::Info,
            Old::Warn => New::Warn,
            Old::Error => New::Error,
        };
        v0_2::edge::hooks::log::Host::log(self, level, message);
    }
}

fn headers_down(headers: Vec<new::Header>) -> Vec<old::Header> {
    headers
        .into_iter()
        .map(|h| old::Header {
            name: h.name,
            value: h.value,
        })
        .collect()
}

fn headers_up(headers: Vec<old::Header>) -> Vec<new::Header> {
    headers
        .into_iter()
        .map(|h| new::Header {
            name: h.name,
            value: h.value,
        })
        .collect()
}

impl From<new::Context> for old::Context {
    fn from(ctx: new::Context) -> Self {
        Self {
            event: match ctx.event {
                new::Event::ViewerRequest => old::Event::ViewerRequest,
                new::Event::OriginRequest => old::Event::OriginRequest,
                new::Event::OriginResponse => old::Event::OriginResponse,
                new::Event::ViewerResponse => old::Event::ViewerResponse,
            },
            distribution_id: ctx.distribution_id,
            distribution_domain: ctx.distribution_domain,
            request_id: ctx.request_id,
            arm: match ctx.arm {
                new::Arm::Primary => old::Arm::Primary,
                new::Arm::Staging => old::Arm::Staging,
            },
            origin_id: ctx.origin_id,
        }
    }
}

impl From<new::Request> for old::Request {
    fn from(req: new::Request) -> Self {
        Self {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: headers_down(req.headers),
            client_address: req.client_address,
        }
    }
}

impl From<old::Request> for new::Request {
    fn from(req: old::Request) -> Self {
        Self {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: headers_up(req.headers),
            client_address: req.client_address,
            body: None,
        }
    }
}

impl From<new::Response> for old::Response {
    fn from(resp: new::Response) -> Self {
        Self {
            status: resp.status,
            headers: headers_down(resp.headers),
            body: resp.body,
        }
    }
}

impl From<old::Response> for new::Response {
    fn from(resp: old::Response) -> Self {
        Self {
            status: resp.status,
            headers: headers_up(resp.headers),
            body: resp.body,
        }
    }
}

impl From<old::RequestAction> for new::RequestAction {
    fn from(action: old::RequestAction) -> Self {
        match action {
            old::RequestAction::Forward(forward) => Self::Forward(new::Forward {
                request: forward.request.into(),
                origin_id: forward.origin_id,
                dynamic_origin: None,
            }),
            old::RequestAction::Respond(resp) => Self::Respond(resp.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_0_1_0_forward_comes_up_with_its_request_and_origin() {
        let action = old::RequestAction::Forward(old::Forward {
            request: old::Request {
                method: "GET".into(),
                path: "/a".into(),
                query: Some("b=1".into()),
                headers: vec![old::Header {
                    name: "x-a".into(),
                    value: b"1".to_vec(),
                }],
                client_address: "192.0.2.1".into(),
            },
            origin_id: Some("green".into()),
        });
        let new::RequestAction::Forward(forward) = new::RequestAction::from(action) else {
            panic!("a forward came up as something else");
        };
        assert_eq!(forward.origin_id.as_deref(), Some("green"));
        assert_eq!(forward.request.path, "/a");
        assert_eq!(forward.request.query.as_deref(), Some("b=1"));
        assert_eq!(forward.request.headers[0].name, "x-a");
        assert_eq!(forward.request.headers[0].value, b"1");
        // Coming up, the body is "keep as it is"; going down, it is dropped.
        assert_eq!(forward.request.body, None);
        let mut request = forward.request;
        request.body = Some(b"secret".to_vec());
        let down = old::Request::from(request);
        assert_eq!(down.client_address, "192.0.2.1");
        assert_eq!(down.headers[0].value, b"1");
    }

    #[test]
    fn the_context_goes_down_with_its_event_and_arm() {
        let ctx = old::Context::from(new::Context {
            event: new::Event::OriginResponse,
            distribution_id: "E1".into(),
            distribution_domain: "d.test".into(),
            request_id: "r".into(),
            arm: new::Arm::Staging,
            origin_id: "o".into(),
            body_truncated: true,
        });
        assert!(matches!(ctx.event, old::Event::OriginResponse));
        assert!(matches!(ctx.arm, old::Arm::Staging));
        assert_eq!(
            (ctx.distribution_id.as_str(), ctx.origin_id.as_str()),
            ("E1", "o")
        );
    }
}
