//! Step 2, the deployment arm: which of a primary's viewers a continuous-deployment
//! policy sends to its staging distribution, the cookie that keeps a viewer on
//! its arm (the counts the automatic gate reads are `metrics::ArmStats`).
//!
//! The sticky cookie is `edge-cd=<p|s>.<assigned>.<policy id>`: the arm, the
//! Unix second it was given, and the policy that gave it. It is set again on
//! every response with `Max-Age` = the idle TTL (never past the max TTL), so a
//! viewer that goes quiet forgets its arm and one that stays keeps it until the
//! max TTL. A cookie from another policy, or past its max TTL, is ignored and a
//! new arm drawn. The host removes the cookie from the request before anything
//! else sees it: hooks read the arm from their context, origins never see it.

use http::header::{COOKIE, HeaderMap, HeaderValue};

use std::sync::Arc;

use super::Proxy;
use super::ctx::RequestCtx;
use super::routing::{Deployment, ServedDistribution};
use crate::config::policy::{StickinessConfig, Traffic, WEIGHT_SCALE};
use crate::origin::Origins;

/// The sticky cookie's name.
pub const STICKY_COOKIE: &str = "edge-cd";

/// The arm chosen for one request.
#[derive(Debug)]
pub struct ArmChoice {
    pub staging: bool,
    /// A `Set-Cookie` value that keeps the viewer on this arm.
    pub set_cookie: Option<HeaderValue>,
}

impl<O: Origins> Proxy<O> {
    /// Phase 2: the distribution that serves the request. Under a
    /// continuous-deployment policy that sends this viewer to staging, the
    /// staging distribution (the primary's id is kept for invalidations,
    /// and the arm for the gate); the sticky cookie is taken out of the
    /// request and the one to set noted.
    pub(super) fn arm(
        &self,
        dist: Arc<ServedDistribution>,
        headers: &mut HeaderMap,
        ctx: &mut RequestCtx,
    ) -> Arc<ServedDistribution> {
        let Some(deployment) = &dist.deployment else {
            return dist;
        };
        let choice = deployment.choose(headers, super::unix_now());
        strip_sticky_cookie(headers);
        ctx.sticky = choice.set_cookie;
        if !choice.staging {
            return dist;
        }
        ctx.staging = true;
        ctx.gate.clone_from(&deployment.stats);
        ctx.primary_id = Some(dist.id.clone());
        deployment.staging.clone()
    }
}

impl Deployment {
    /// Picks the arm for a request with `headers` at Unix second `now`.
    pub fn choose(&self, headers: &HeaderMap, now: u64) -> ArmChoice {
        match &self.policy.traffic {
            Traffic::Header { name, value } => ArmChoice {
                staging: headers.get_all(name).iter().any(|v| v == value),
                set_cookie: None,
            },
            Traffic::Weight {
                ppm,
                stickiness: None,
            } => ArmChoice {
                staging: draw(*ppm),
                set_cookie: None,
            },
            Traffic::Weight {
                ppm,
                stickiness: Some(sticky),
            } => {
                let held = sticky_arm(headers, &self.policy_id)
                    .filter(|&(_, assigned)| assigned <= now && now - assigned < sticky.max_ttl);
                let (staging, assigned) = held.unwrap_or_else(|| (draw(*ppm), now));
                ArmChoice {
                    staging,
                    set_cookie: cookie(&self.policy_id, staging, assigned, now, sticky),
                }
            }
        }
    }
}

/// Whether a fresh viewer goes to staging, `ppm` in a million.
fn draw(ppm: u32) -> bool {
    crate::ids::random_u64() % u64::from(WEIGHT_SCALE) < u64::from(ppm)
}

/// The arm and assignment time a request's sticky cookie holds for `policy_id`.
fn sticky_arm(headers: &HeaderMap, policy_id: &str) -> Option<(bool, u64)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(STICKY_COOKIE)?.strip_prefix('='))
        .find_map(|value| {
            let mut parts = value.splitn(3, '.');
            let staging = match parts.next()? {
                "s" => true,
                "p" => false,
                _ => return None,
            };
            let assigned = parts.next()?.parse().ok()?;
            (parts.next()? == policy_id).then_some((staging, assigned))
        })
}

fn cookie(
    policy_id: &str,
    staging: bool,
    assigned: u64,
    now: u64,
    sticky: &StickinessConfig,
) -> Option<HeaderValue> {
    let left = sticky.max_ttl.saturating_sub(now.saturating_sub(assigned));
    let max_age = sticky.idle_ttl.min(left);
    let arm = if staging { 's' } else { 'p' };
    HeaderValue::from_str(&format!(
        "{STICKY_COOKIE}={arm}.{assigned}.{policy_id}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
    ))
    .ok()
}

/// Removes the sticky cookie from a request's `Cookie` fields.
pub fn strip_sticky_cookie(headers: &mut HeaderMap) {
    let mut values = headers.get_all(COOKIE).iter();
    if !values.any(|v| {
        v.as_bytes()
            .windows(STICKY_COOKIE.len())
            .any(|w| w == STICKY_COOKIE.as_bytes())
    }) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| {
            let text = v.to_str().ok()?;
            let rest: Vec<&str> = text
                .split(';')
                .map(str::trim)
                .filter(|pair| {
                    !pair.is_empty()
                        && pair.split_once('=').map_or(*pair, |(name, _)| name) != STICKY_COOKIE
                })
                .collect();
            (!rest.is_empty()).then(|| HeaderValue::from_str(&rest.join("; ")).ok())?
        })
        .collect();
    headers.remove(COOKIE);
    for value in kept {
        headers.append(COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn the_sticky_cookie_is_read_for_its_policy_only() {
        let h = headers(&["a=1; edge-cd=s.100.P1; b=2"]);
        assert_eq!(sticky_arm(&h, "P1"), Some((true, 100)));
        assert_eq!(sticky_arm(&h, "P2"), None);
        assert_eq!(sticky_arm(&headers(&["edge-cd=x.100.P1"]), "P1"), None);
        assert_eq!(sticky_arm(&headers(&["edge-cd=p.soon.P1"]), "P1"), None);
    }

    #[test]
    fn the_cookie_never_outlives_the_max_ttl() {
        let sticky = StickinessConfig {
            idle_ttl: 300,
            max_ttl: 600,
        };
        let c = cookie("P1", true, 1000, 1000, &sticky).unwrap();
        assert!(c.to_str().unwrap().starts_with("edge-cd=s.1000.P1;"));
        assert!(c.to_str().unwrap().contains("Max-Age=300"));
        let c = cookie("P1", false, 1000, 1500, &sticky).unwrap();
        assert!(c.to_str().unwrap().contains("Max-Age=100"), "{c:?}");
    }

    #[test]
    fn stripping_keeps_the_other_cookies() {
        let mut h = headers(&["a=1; edge-cd=s.1.P; b=2", "edge-cd=p.1.P"]);
        strip_sticky_cookie(&mut h);
        let values: Vec<&str> = h
            .get_all(COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(values, ["a=1; b=2"]);
        let mut h = headers(&["edge-cdx=1"]);
        strip_sticky_cookie(&mut h);
        assert_eq!(h.get(COOKIE).unwrap(), "edge-cdx=1");
    }
}
