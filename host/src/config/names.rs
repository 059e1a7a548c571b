//! The naming rules configs share: ids (origins, groups, policies, KV) and
//! aliases.

use std::collections::HashSet;

use super::error::ConfigError;

/// Whether `id` is 1-128 of `A-Z a-z 0-9 - _ .`, the rule for origin, group and
/// policy ids and for KV namespaces and keys.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(crate) fn validate_id(id: &str, field: &str) -> Result<(), ConfigError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("{id:?} is not a valid id (1-128 of A-Z a-z 0-9 - _ .)"),
        ))
    }
}

/// Checks an alias: a lower-case host name, optionally starting with `*.`.
pub fn validate_alias(alias: &str) -> Result<(), String> {
    let name = alias.strip_prefix("*.").unwrap_or(alias);
    if alias.len() > 253 || name.is_empty() {
        return Err(format!("{alias:?} is not a valid host name"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(format!(
                "{alias:?} is not a valid host name (lower-case labels of a-z 0-9 -, optionally starting with \"*.\")"
            ));
        }
    }
    if alias.starts_with("*.") && !name.contains('.') {
        return Err(format!(
            "{alias:?}: a wildcard alias needs at least two labels after \"*.\""
        ));
    }
    Ok(())
}

pub(super) fn validate_aliases(aliases: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut seen = HashSet::new();
    for (i, alias) in aliases.iter().enumerate() {
        let field = format!("aliases[{i}]");
        validate_alias(alias).map_err(|msg| ConfigError::new(&field, msg))?;
        if !seen.insert(alias.as_str()) {
            return Err(ConfigError::new(
                field,
                format!("{alias:?} is listed twice"),
            ));
        }
    }
    Ok(aliases.to_vec())
}
