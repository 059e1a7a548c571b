//! Continuous-deployment policies: which share of a primary distribution's
//! viewers the staging distribution serves, and when to roll it back.
//!
//! The raw shape mirrors the JSON of `POST /v1/continuous-deployment-policies`
//! (unknown fields refused); [`Policy`] is the validated form the request path
//! and the automatic gate read.

use http::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::error::ConfigError;

/// The longest a sticky viewer keeps its arm without a request (7 days).
pub const MAX_IDLE_TTL: u64 = 7 * 86_400;
/// The longest a sticky viewer keeps its arm at all (30 days).
pub const MAX_MAX_TTL: u64 = 30 * 86_400;
/// The longest window the automatic gate counts over (1 hour).
pub const MAX_GATE_WINDOW_S: u64 = 3_600;
/// Weights are kept in parts per million: 0.0001 % steps.
pub const WEIGHT_SCALE: u32 = 1_000_000;

/// A policy as operators write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The staging distribution that serves the policy's share.
    pub staging_distribution_id: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub traffic: TrafficConfig,
    /// Roll back on its own when the staging arm fails too often.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoGateConfig>,
}

fn yes() -> bool {
    true
}

/// How viewers are split between the arms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TrafficConfig {
    /// This fraction of viewers (0 to 1) goes to staging.
    Weight {
        weight: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_stickiness: Option<StickinessConfig>,
    },
    /// Requests carrying `header: value` go to staging.
    Header { header: String, value: String },
}

/// How long a viewer keeps the arm it was given, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StickinessConfig {
    /// Forgotten after this long without a request.
    pub idle_ttl: u64,
    /// Forgotten this long after it was given, requests or not.
    pub max_ttl: u64,
}

/// The automatic gate: when the staging arm's 5xx share over the last
/// `window_s` seconds is above `max_error_rate` (with at least `min_requests`
/// requests counted), the host does `then`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoGateConfig {
    pub max_error_rate: f64,
    pub min_requests: u64,
    pub window_s: u64,
    #[serde(default)]
    pub then: GateAction,
}

/// What the gate does when it trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateAction {
    /// Weight to 0 (a header policy is disabled): every viewer to primary.
    #[default]
    Rollback,
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub staging_distribution_id: String,
    pub enabled: bool,
    pub traffic: Traffic,
    pub auto: Option<AutoGate>,
}

/// A validated traffic split.
#[derive(Debug, Clone)]
pub enum Traffic {
    Weight {
        /// Parts per million of viewers sent to staging.
        ppm: u32,
        stickiness: Option<StickinessConfig>,
    },
    Header {
        name: HeaderName,
        value: HeaderValue,
    },
}

/// A validated automatic gate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoGate {
    pub max_error_rate: f64,
    pub min_requests: u64,
    pub window_s: u64,
    pub then: GateAction,
}

impl Policy {
    /// Whether any viewer can be sent to staging.
    pub fn sends_traffic(&self) -> bool {
        self.enabled
            && match &self.traffic {
                Traffic::Weight { ppm, .. } => *ppm > 0,
                Traffic::Header { .. } => true,
            }
    }
}

impl TryFrom<&PolicyConfig> for Policy {
    type Error = ConfigError;

    fn try_from(raw: &PolicyConfig) -> Result<Self, ConfigError> {
        super::names::validate_id(&raw.staging_distribution_id, "staging_distribution_id")?;
        let traffic = match &raw.traffic {
            TrafficConfig::Weight {
                weight,
                session_stickiness,
            } => {
                if !weight.is_finite() || !(0.0..=1.0).contains(weight) {
                    return Err(ConfigError::new(
                        "traffic.weight",
                        format!("{weight} is not a fraction between 0 and 1 (0.05 is 5 %)"),
                    ));
                }
                if let Some(s) = session_stickiness {
                    if !(1..=MAX_IDLE_TTL).contains(&s.idle_ttl) {
                        return Err(ConfigError::new(
                            "traffic.session_stickiness.idle_ttl",
                            format!("must be between 1 and {MAX_IDLE_TTL} seconds"),
                        ));
                    }
                    if !(s.idle_ttl..=MAX_MAX_TTL).contains(&s.max_ttl) {
                        return Err(ConfigError::new(
                            "traffic.session_stickiness.max_ttl",
                            format!(
                                "must be between idle_ttl ({}) and {MAX_MAX_TTL} seconds",
                                s.idle_ttl
                            ),
                        ));
                    }
                }
                Traffic::Weight {
                    ppm: weight_to_ppm(*weight),
                    stickiness: *session_stickiness,
                }
            }
            TrafficConfig::Header { header, value } => {
                let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                    ConfigError::new("traffic.header", format!("{header:?} is not a header name"))
                })?;
                if crate::fields::is_hop_by_hop(&name) || name == http::header::HOST {
                    return Err(ConfigError::new(
                        "traffic.header",
                        format!("{header:?} is managed by the host and cannot select an arm"),
                    ));
                }
                let value = HeaderValue::from_str(value)
                    .ok()
                    .filter(|_| !value.is_empty())
                    .ok_or_else(|| {
                        ConfigError::new(
                            "traffic.value",
                            format!("{value:?} is not a non-empty header value"),
                        )
                    })?;
                Traffic::Header { name, value }
            }
        };
        let auto = match &raw.auto {
            None => None,
            Some(a) => {
                if !a.max_error_rate.is_finite() || !(0.0..=1.0).contains(&a.max_error_rate) {
                    return Err(ConfigError::new(
                        "auto.max_error_rate",
                        "must be a fraction between 0 and 1 (0.02 is 2 %)",
                    ));
                }
                if a.min_requests == 0 {
                    return Err(ConfigError::new("auto.min_requests", "must be at least 1"));
                }
                if !(1..=MAX_GATE_WINDOW_S).contains(&a.window_s) {
                    return Err(ConfigError::new(
                        "auto.window_s",
                        format!("must be between 1 and {MAX_GATE_WINDOW_S} seconds"),
                    ));
                }
                Some(AutoGate {
                    max_error_rate: a.max_error_rate,
                    min_requests: a.min_requests,
                    window_s: a.window_s,
                    then: a.then,
                })
            }
        };
        Ok(Self {
            staging_distribution_id: raw.staging_distribution_id.clone(),
            enabled: raw.enabled,
            traffic,
            auto,
        })
    }
}

/// A weight as parts per million, rounded to the nearest.
fn weight_to_ppm(weight: f64) -> u32 {
    let ppm = (weight * f64::from(WEIGHT_SCALE)).round();
    if ppm <= 0.0 {
        0
    } else if ppm >= f64::from(WEIGHT_SCALE) {
        WEIGHT_SCALE
    } else {
        // In range by the checks above.
        ppm as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Policy, String> {
        let raw: PolicyConfig =
            crate::config::parse_json(json.as_bytes()).map_err(|e| e.to_string())?;
        Policy::try_from(&raw).map_err(|e| e.to_string())
    }

    #[test]
    fn weights_keep_a_hundredth_of_a_percent() {
        let p = parse(
            r#"{"staging_distribution_id":"E1","traffic":{"type":"weight","weight":0.0001}}"#,
        )
        .unwrap();
        assert!(matches!(p.traffic, Traffic::Weight { ppm: 100, .. }));
        let p = parse(r#"{"staging_distribution_id":"E1","traffic":{"type":"weight","weight":1}}"#)
            .unwrap();
        assert!(matches!(
            p.traffic,
            Traffic::Weight {
                ppm: WEIGHT_SCALE,
                ..
            }
        ));
        assert!(p.sends_traffic());
        let p = parse(r#"{"staging_distribution_id":"E1","traffic":{"type":"weight","weight":0}}"#)
            .unwrap();
        assert!(!p.sends_traffic());
    }

    #[test]
    fn bad_policies_name_the_field() {
        let cases = [
            (
                r#"{"staging_distribution_id":"E1","traffic":{"type":"weight","weight":1.5}}"#,
                "traffic.weight:",
            ),
            (
                r#"{"staging_distribution_id":"E1","traffic":{"type":"weight","weight":0.1,"session_stickiness":{"idle_ttl":600,"max_ttl":300}}}"#,
                "traffic.session_stickiness.max_ttl:",
            ),
            (
                r#"{"staging_distribution_id":"E1","traffic":{"type":"header","header":"bad header","value":"1"}}"#,
                "traffic.header:",
            ),
            (
                r#"{"staging_distribution_id":"E1","traffic":{"type":"header","header":"connection","value":"1"}}"#,
                "traffic.header:",
            ),
            (
                r#"{"staging_distribution_id":"E1","traffic":{"type":"header","header":"x-s","value":""}}"#,
                "traffic.value:",
            ),
            (
                r#"{"staging_distribution_id":"E1","traffic":{"type":"weight","weight":0.1},"auto":{"max_error_rate":2,"min_requests":1,"window_s":60}}"#,
                "auto.max_error_rate:",
            ),
            (
                r#"{"staging_distribution_id":"E1","traffic":{"type":"weight","weight":0.1},"auto":{"max_error_rate":0.1,"min_requests":0,"window_s":60}}"#,
                "auto.min_requests:",
            ),
            (
                r#"{"staging_distribution_id":"E1","traffic":{"type":"split","weight":0.1}}"#,
                "traffic.type:",
            ),
            (
                r#"{"staging_distribution_id":"E1","traffic":{"type":"weight","weight":0.1,"colour":1}}"#,
                "traffic",
            ),
        ];
        for (json, field) in cases {
            let err = parse(json).unwrap_err();
            assert!(err.starts_with(field), "expected {field} in {err}");
        }
    }
}
