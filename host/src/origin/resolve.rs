//! Name resolution for origin connections: the system's resolver, and for
//! dynamic origins a guard on what it answers.
//!
//! A dynamic origin is named by a hook at run time, so where its name
//! points is checked when it is resolved, on every new connection: unless
//! the distribution allows private addresses, addresses that are not public
//! (see [`crate::config::dynamic::is_private_address`]) are dropped, and a
//! name left with none fails to connect. A name that resolved to a public
//! address once and to an internal one later (DNS rebinding) is caught
//! then. Names under `localhost` resolve to the loopback addresses without
//! asking DNS (RFC 6761 6.3), so they are private like any loopback.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};

use crate::config::dynamic::is_private_address;

/// What a resolver lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Everything the system resolver answers (configured origins).
    None,
    /// A dynamic origin's: `localhost` names mapped to loopback, and only
    /// public addresses unless `allow_private`.
    Dynamic { allow_private: bool },
}

/// The resolver of an origin pool's connector.
#[derive(Debug, Clone)]
pub struct Resolver {
    gai: GaiResolver,
    guard: Guard,
}

impl Resolver {
    pub fn new(guard: Guard) -> Self {
        Self {
            gai: GaiResolver::new(),
            guard,
        }
    }
}

/// Keeps the addresses `guard` lets through; an error when none is left.
fn admit(name: &str, addrs: Vec<SocketAddr>, guard: Guard) -> io::Result<Vec<SocketAddr>> {
    let Guard::Dynamic { allow_private } = guard else {
        return Ok(addrs);
    };
    if allow_private {
        return Ok(addrs);
    }
    let public: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| !is_private_address(a.ip()))
        .collect();
    if public.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{name} resolves to no public address (dynamic_origins.allow_private_addresses is off)"
            ),
        ));
    }
    Ok(public)
}

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guard = self.guard;
        let mut gai = self.gai.clone();
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let loopback =
                guard != Guard::None && (host == "localhost" || host.ends_with(".localhost"));
            let addrs: Vec<SocketAddr> = if loopback {
                vec![
                    SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                    SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
                ]
            } else {
                std::future::poll_fn(|cx| tower_service::Service::<Name>::poll_ready(&mut gai, cx))
                    .await?;
                tower_service::Service::call(&mut gai, name)
                    .await?
                    .collect()
            };
            Ok(admit(&host, addrs, guard)?.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_origin_keeps_public_addresses_only_unless_allowed() {
        let addrs = |list: &[&str]| -> Vec<SocketAddr> {
            list.iter().map(|a| a.parse().expect("address")).collect()
        };
        let mixed = addrs(&["10.0.0.5:443", "93.184.216.34:443"]);
        let guard = Guard::Dynamic {
            allow_private: false,
        };
        assert_eq!(
            admit("x", mixed.clone(), guard).expect("one is public"),
            addrs(&["93.184.216.34:443"])
        );
        let internal = addrs(&["169.254.169.254:80", "[::1]:80"]);
        assert!(admit("metadata", internal.clone(), guard).is_err());
        let allowing = Guard::Dynamic {
            allow_private: true,
        };
        assert_eq!(
            admit("x", internal.clone(), allowing).expect("allowed"),
            internal
        );
        assert_eq!(
            admit("x", internal.clone(), Guard::None).expect("origins"),
            internal
        );
    }

    #[tokio::test]
    async fn localhost_names_are_loopback_without_dns() {
        let mut resolver = Resolver::new(Guard::Dynamic {
            allow_private: true,
        });
        let name: Name = "acme.localhost".parse().expect("name");
        let got: Vec<SocketAddr> = tower_service::Service::call(&mut resolver, name)
            .await
            .expect("resolved")
            .collect();
        assert!(got.iter().all(|a| a.ip().is_loopback()), "{got:?}");
        let mut guarded = Resolver::new(Guard::Dynamic {
            allow_private: false,
        });
        let name: Name = "acme.localhost".parse().expect("name");
        assert!(
            tower_service::Service::call(&mut guarded, name)
                .await
                .is_err()
        );
    }
}
