//! A behavior's TTL bounds, CloudFront's defaults, and the lifetimes of
//! responses without explicit freshness, by status.

use super::error::ConfigError;
use super::raw;

/// CloudFront's TTL defaults, in seconds.
pub const DEFAULT_MIN_TTL: u64 = 0;
pub const DEFAULT_DEFAULT_TTL: u64 = 86_400;
pub const DEFAULT_MAX_TTL: u64 = 31_536_000;

/// The statuses whose lifetime without explicit freshness is their own
/// (`default_ttl_by_status`) instead of `default_ttl`: the heuristically
/// cacheable ones (RFC 9110 15.1) that are not a success.
pub const STATUS_TTL_CODES: [u16; 8] = [300, 301, 308, 404, 405, 410, 414, 501];
/// Their lifetime unless the behavior says otherwise: CloudFront's error
/// caching minimum TTL, so a transient error or redirect is not pinned for a
/// day.
pub const DEFAULT_STATUS_TTL: u64 = 10;

/// The behavior's TTL bounds, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPolicy {
    pub min: u64,
    pub default: u64,
    pub max: u64,
    /// The lifetime of a response without explicit freshness for each of
    /// [`STATUS_TTL_CODES`], in that order.
    pub by_status: [u64; STATUS_TTL_CODES.len()],
}

impl TtlPolicy {
    /// Bounds with [`DEFAULT_STATUS_TTL`] for every status of
    /// [`STATUS_TTL_CODES`], never above `default` (a `default_ttl` of 0
    /// still stores nothing without explicit freshness) nor below `min`.
    pub const fn new(min: u64, default: u64, max: u64) -> Self {
        let status = if DEFAULT_STATUS_TTL > default {
            default
        } else {
            DEFAULT_STATUS_TTL
        };
        let status = if status < min { min } else { status };
        let status = if status > max { max } else { status };
        Self {
            min,
            default,
            max,
            by_status: [status; STATUS_TTL_CODES.len()],
        }
    }

    /// The lifetime of a heuristically cacheable `status` response that
    /// carries no explicit freshness.
    pub fn heuristic(&self, status: u16) -> u64 {
        STATUS_TTL_CODES
            .iter()
            .position(|s| *s == status)
            .and_then(|i| self.by_status.get(i).copied())
            .unwrap_or(self.default)
    }
}

/// Fills CloudFront's TTL defaults and checks `min <= default <= max`. When
/// `default_ttl` is not given it is CloudFront's 86400 s, brought within the
/// given `min_ttl`/`max_ttl`.
pub(super) fn ttl_policy(
    b: &raw::CacheBehaviorConfig,
    field: &str,
) -> Result<TtlPolicy, ConfigError> {
    let min = b.min_ttl.unwrap_or(DEFAULT_MIN_TTL);
    let max = b.max_ttl.unwrap_or(DEFAULT_MAX_TTL.max(min));
    let default = b
        .default_ttl
        .unwrap_or_else(|| DEFAULT_DEFAULT_TTL.clamp(min.min(max), max));
    if min > max {
        return Err(ConfigError::new(
            format!("{field}.min_ttl"),
            format!("min_ttl ({min}) is greater than max_ttl ({max})"),
        ));
    }
    if default < min {
        return Err(ConfigError::new(
            format!("{field}.default_ttl"),
            format!("default_ttl ({default}) is less than min_ttl ({min})"),
        ));
    }
    if default > max {
        return Err(ConfigError::new(
            format!("{field}.default_ttl"),
            format!("default_ttl ({default}) is greater than max_ttl ({max})"),
        ));
    }
    let mut policy = TtlPolicy::new(min, default, max);
    for (code, ttl) in &b.default_ttl_by_status {
        let sfield = format!("{field}.default_ttl_by_status.{code}");
        let slot = code
            .parse::<u16>()
            .ok()
            .and_then(|c| STATUS_TTL_CODES.iter().position(|s| *s == c))
            .ok_or_else(|| {
                let codes: Vec<String> = STATUS_TTL_CODES.iter().map(u16::to_string).collect();
                ConfigError::new(
                    &sfield,
                    format!(
                        "{code:?} is not a status stored without explicit freshness other than a success (one of {})",
                        codes.join(", ")
                    ),
                )
            })?;
        if !(min..=max).contains(ttl) {
            return Err(ConfigError::new(
                sfield,
                format!("{ttl} is not within min_ttl ({min}) and max_ttl ({max})"),
            ));
        }
        policy.by_status[slot] = *ttl;
    }
    Ok(policy)
}
