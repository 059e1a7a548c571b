//! A validated distribution: its origins, targets and behaviors, built from
//! the raw config with every rule checked, and the lookups the proxy makes.

use std::collections::HashMap;
use std::sync::Arc;

use super::behavior::{Behavior, validate_behavior};
use super::error::ConfigError;
use super::names::{validate_aliases, validate_id};
use super::origin::{Origin, Target, validate_origin};
use super::pattern::PathPattern;
use super::raw::{self, DistributionConfig};

/// A validated distribution config.
#[derive(Debug)]
pub struct Distribution {
    pub enabled: bool,
    pub aliases: Vec<String>,
    pub origins: Vec<Arc<Origin>>,
    /// Servers hooks may send requests to beside the origins.
    pub backends: Vec<Arc<Origin>>,
    /// The origins hooks may route to beyond `origins`.
    pub dynamic_origins: Option<Arc<super::dynamic::DynamicOrigins>>,
    /// Targets by id: each origin and each origin group.
    pub targets: HashMap<String, Target>,
    /// Per target and backend id, where requests to it go: every member's
    /// scheme, address, `origin_path`, `Host` and custom headers. It is part
    /// of the cache key, so an object fetched from an address the config no
    /// longer points at is never served (no invalidation needed after a move).
    pub fingerprints: HashMap<String, Arc<str>>,
    pub default_behavior: Behavior,
    pub behaviors: Vec<(PathPattern, Behavior)>,
    pub continuous_deployment_policy_id: Option<String>,
    /// Misses ask the key's owner in the cache cluster first.
    pub cluster: bool,
    pub raw: DistributionConfig,
}

/// Where `target` sends requests, as one line of text (see
/// [`Distribution::fingerprints`]).
fn fingerprint(origins: &[Arc<Origin>], target: &Target) -> Arc<str> {
    let members: &[usize] = match target {
        Target::Origin(i) => std::slice::from_ref(i),
        Target::Group { members, .. } => members,
    };
    fingerprint_of(members.iter().filter_map(|&i| origins.get(i)))
}

/// The fingerprint of the servers `members`, in order.
fn fingerprint_of<'a>(members: impl Iterator<Item = &'a Arc<Origin>>) -> Arc<str> {
    let mut text = String::new();
    for origin in members {
        text.push_str(&format!(
            "{}://{}{}|{}",
            origin.scheme,
            origin.authority,
            origin.origin_path,
            String::from_utf8_lossy(origin.host_header.as_bytes())
        ));
        for (name, value) in &origin.custom_headers {
            text.push_str(&format!(
                "|{name}={}",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        text.push(';');
    }
    // A short digest keeps the key small; the text can be long.
    let digest = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&text));
    crate::ids::hex(&digest[..12]).into()
}

impl Distribution {
    /// The fingerprint of target `id` (empty for an unknown id).
    pub fn fingerprint_of(&self, id: &str) -> &str {
        self.fingerprints.get(id).map_or("", |f| f)
    }

    /// Step 3: the first behavior whose pattern matches `path`, else the
    /// default, with its index (0 for the default, `i + 1` for `cache_behaviors[i]`).
    pub fn behavior_for(&self, path: &str) -> (usize, &Behavior) {
        self.behaviors
            .iter()
            .enumerate()
            .find(|(_, (pattern, _))| pattern.matches(path))
            .map_or((0, &self.default_behavior), |(i, (_, b))| (i + 1, b))
    }

    /// The behavior at `index` (as [`Self::behavior_for`] numbers them).
    pub fn behavior_at(&self, index: usize) -> &Behavior {
        match index {
            0 => &self.default_behavior,
            i => self
                .behaviors
                .get(i - 1)
                .map_or(&self.default_behavior, |(_, b)| b),
        }
    }

    /// The hooks of the behavior at `index` (as [`Self::behavior_for`] numbers them).
    pub fn hooks_of(&self, index: usize) -> Option<&raw::HooksConfig> {
        match index {
            0 => Some(&self.raw.default_cache_behavior.hooks),
            i => self.raw.cache_behaviors.get(i - 1).map(|b| &b.hooks),
        }
    }

    /// How many behaviors there are, the default included.
    pub fn behavior_count(&self) -> usize {
        self.behaviors.len() + 1
    }

    /// Every hook module the config refers to, with the field naming it.
    pub fn hook_modules(&self) -> Vec<(String, &str)> {
        self.hook_refs()
            .into_iter()
            .map(|(field, hook)| (format!("{field}.module"), hook.module.as_str()))
            .collect()
    }

    /// Every hook association with its field (`…hooks.viewer_request`).
    pub fn hook_refs(&self) -> Vec<(String, &raw::HookRef)> {
        let mut out = Vec::new();
        let all = std::iter::once((
            "default_cache_behavior".to_owned(),
            &self.raw.default_cache_behavior,
        ))
        .chain(
            self.raw
                .cache_behaviors
                .iter()
                .enumerate()
                .map(|(i, b)| (format!("cache_behaviors[{i}]"), b)),
        );
        for (field, behavior) in all {
            for (event, hook) in behavior.hooks.iter() {
                out.push((format!("{field}.hooks.{event}"), hook));
            }
        }
        out
    }
}

impl TryFrom<DistributionConfig> for Distribution {
    type Error = ConfigError;

    fn try_from(raw: DistributionConfig) -> Result<Self, ConfigError> {
        let aliases = validate_aliases(&raw.aliases)?;

        if raw.origins.is_empty() {
            return Err(ConfigError::new(
                "origins",
                "at least one origin is required",
            ));
        }
        let mut targets = HashMap::new();
        let mut origins = Vec::with_capacity(raw.origins.len());
        for (i, o) in raw.origins.iter().enumerate() {
            let field = format!("origins[{i}]");
            let origin = validate_origin(o, &field)?;
            if targets
                .insert(origin.id.clone(), Target::Origin(i))
                .is_some()
            {
                return Err(ConfigError::new(
                    format!("{field}.id"),
                    format!("duplicate origin id {:?}", origin.id),
                ));
            }
            origins.push(Arc::new(origin));
        }
        for (i, g) in raw.origin_groups.iter().enumerate() {
            let field = format!("origin_groups[{i}]");
            validate_id(&g.id, &format!("{field}.id"))?;
            if g.members.len() < 2 {
                return Err(ConfigError::new(
                    format!("{field}.members"),
                    "an origin group needs at least two members",
                ));
            }
            let mut members = Vec::with_capacity(g.members.len());
            for (j, m) in g.members.iter().enumerate() {
                match targets.get(m) {
                    Some(Target::Origin(idx)) if !members.contains(idx) => members.push(*idx),
                    Some(Target::Origin(_)) => {
                        return Err(ConfigError::new(
                            format!("{field}.members[{j}]"),
                            format!("origin {m:?} is listed twice"),
                        ));
                    }
                    _ => {
                        return Err(ConfigError::new(
                            format!("{field}.members[{j}]"),
                            format!("{m:?} names no origin"),
                        ));
                    }
                }
            }
            for (j, code) in g.failover_status_codes.iter().enumerate() {
                if !(400..=599).contains(code) {
                    return Err(ConfigError::new(
                        format!("{field}.failover_status_codes[{j}]"),
                        format!("{code} is not a 4xx or 5xx status"),
                    ));
                }
            }
            let target = Target::Group {
                members,
                failover_status_codes: g.failover_status_codes.clone(),
            };
            if targets.insert(g.id.clone(), target).is_some() {
                return Err(ConfigError::new(
                    format!("{field}.id"),
                    format!("id {:?} is already used by an origin or group", g.id),
                ));
            }
        }

        let mut backends = Vec::with_capacity(raw.backends.len());
        for (i, b) in raw.backends.iter().enumerate() {
            let field = format!("backends[{i}]");
            let backend = validate_origin(b, &field)?;
            if !b.addresses.is_empty() || b.health_check.is_some() {
                let name = if b.addresses.is_empty() {
                    "health_check"
                } else {
                    "addresses"
                };
                return Err(ConfigError::new(
                    format!("{field}.{name}"),
                    "a backend is reached at its domain_name; addresses and health checks are for origins",
                ));
            }
            if targets.contains_key(&backend.id)
                || backends.iter().any(|o: &Arc<Origin>| o.id == backend.id)
            {
                return Err(ConfigError::new(
                    format!("{field}.id"),
                    format!(
                        "id {:?} is already used by an origin, group or backend",
                        backend.id
                    ),
                ));
            }
            backends.push(Arc::new(backend));
        }

        let dynamic_origins = raw
            .dynamic_origins
            .as_ref()
            .map(super::dynamic::DynamicOrigins::new)
            .transpose()?
            .map(Arc::new);

        if raw.default_cache_behavior.path_pattern.is_some() {
            return Err(ConfigError::new(
                "default_cache_behavior.path_pattern",
                "the default behavior matches every path and takes no pattern",
            ));
        }
        let default_behavior = validate_behavior(
            &raw.default_cache_behavior,
            "default_cache_behavior",
            &targets,
        )?;
        let mut behaviors = Vec::with_capacity(raw.cache_behaviors.len());
        for (i, b) in raw.cache_behaviors.iter().enumerate() {
            let field = format!("cache_behaviors[{i}]");
            let Some(pattern) = &b.path_pattern else {
                return Err(ConfigError::new(
                    format!("{field}.path_pattern"),
                    "missing field `path_pattern`",
                ));
            };
            let pattern = PathPattern::parse(pattern)
                .map_err(|msg| ConfigError::new(format!("{field}.path_pattern"), msg))?;
            behaviors.push((pattern, validate_behavior(b, &field, &targets)?));
        }
        if let Some(id) = &raw.continuous_deployment_policy_id {
            validate_id(id, "continuous_deployment_policy_id")?;
        }

        let fingerprints = targets
            .iter()
            .map(|(id, target)| (id.clone(), fingerprint(&origins, target)))
            .chain(
                backends
                    .iter()
                    .map(|b| (b.id.clone(), fingerprint_of(std::iter::once(b)))),
            )
            .collect();
        Ok(Self {
            enabled: raw.enabled,
            aliases,
            origins,
            backends,
            dynamic_origins,
            targets,
            fingerprints,
            default_behavior,
            behaviors,
            continuous_deployment_policy_id: raw.continuous_deployment_policy_id.clone(),
            cluster: raw.cluster,
            raw,
        })
    }
}
