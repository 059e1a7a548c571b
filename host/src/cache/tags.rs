//! Cache tags: the `Surrogate-Key` and `Cache-Tag` fields that name groups of
//! stored objects, and the index that finds a tag's objects without a scan.
//!
//! A response may carry `Surrogate-Key` (Fastly's form: keys separated by
//! spaces) and `Cache-Tag` (Cloudflare's: tags separated by commas); both
//! name the same thing, a tag an invalidation can purge by. Tags are compared
//! as they are written (case-sensitive). A tag longer than [`MAX_TAG_BYTES`]
//! is ignored, and an object keeps at most [`MAX_TAG_TOTAL`] bytes of tags
//! (the rest are ignored), Fastly's and Cloudflare's limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use http::HeaderMap;
use http::header::HeaderName;

/// `Surrogate-Key`: space-separated tags.
pub static SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
/// `Cache-Tag`: comma-separated tags.
pub static CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

/// The longest tag kept; a longer one is ignored.
pub const MAX_TAG_BYTES: usize = 1024;
/// The bytes of tags one object keeps; tags past them are ignored.
pub const MAX_TAG_TOTAL: usize = 16 * 1024;

/// The tags a response's `Surrogate-Key` and `Cache-Tag` fields name (each
/// once, in order), and the fields removed unless `keep` says the viewer
/// sees them.
pub fn take(headers: &mut HeaderMap, keep: bool) -> Arc<[Arc<str>]> {
    let mut tags: Vec<Arc<str>> = Vec::new();
    let mut total = 0;
    for name in [&SURROGATE_KEY, &CACHE_TAG] {
        for value in headers.get_all(name) {
            let Ok(value) = value.to_str() else {
                continue;
            };
            let split: Vec<&str> = if name == SURROGATE_KEY {
                value.split_ascii_whitespace().collect()
            } else {
                value.split(',').map(str::trim).collect()
            };
            for tag in split {
                if tag.is_empty()
                    || tag.len() > MAX_TAG_BYTES
                    || total + tag.len() > MAX_TAG_TOTAL
                    || tags.iter().any(|t| &**t == tag)
                {
                    continue;
                }
                total += tag.len();
                tags.push(tag.into());
            }
        }
        if !keep {
            headers.remove(name);
        }
    }
    tags.into()
}

/// Shards of the index, each behind its own lock.
const SHARDS: usize = 16;

/// Which stored keys carry each tag, per distribution: the keys of a tag
/// with how many stored objects under the key carry it (an object replaced
/// by one with the same tag counts twice until the old one is gone).
#[derive(Debug)]
pub struct TagIndex {
    shards: [Mutex<Shard>; SHARDS],
}

/// One shard: for each (distribution, tag) name, its keys and their counts.
type Shard = HashMap<Box<str>, HashMap<Arc<str>, u32>>;

impl Default for TagIndex {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

/// The index's name for tag `tag` of distribution `scope`.
fn scoped(scope: &str, tag: &str) -> String {
    let mut name = String::with_capacity(scope.len() + 1 + tag.len());
    name.push_str(scope);
    name.push('\n');
    name.push_str(tag);
    name
}

fn shard_of(name: &str) -> usize {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % SHARDS as u64) as usize
}

impl TagIndex {
    fn with_shard<T>(&self, name: &str, f: impl FnOnce(&mut Shard) -> T) -> T {
        let mut shard = self.shards[shard_of(name)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut shard)
    }

    /// Records that an object stored under `key` carries `tags` for each of
    /// the distributions `scopes`.
    pub fn add(&self, scopes: &[&str], tags: &[Arc<str>], key: &Arc<str>) {
        for scope in scopes {
            for tag in tags {
                let name = scoped(scope, tag);
                self.with_shard(&name, |shard| {
                    *shard
                        .entry(name.as_str().into())
                        .or_default()
                        .entry(key.clone())
                        .or_default() += 1;
                });
            }
        }
    }

    /// Records that an object [`Self::add`] recorded is no longer stored.
    pub fn remove(&self, scopes: &[&str], tags: &[Arc<str>], key: &str) {
        for scope in scopes {
            for tag in tags {
                let name = scoped(scope, tag);
                self.with_shard(&name, |shard| {
                    let Some(keys) = shard.get_mut(name.as_str()) else {
                        return;
                    };
                    if let Some(count) = keys.get_mut(key) {
                        *count -= 1;
                        if *count == 0 {
                            keys.remove(key);
                        }
                    }
                    if keys.is_empty() {
                        shard.remove(name.as_str());
                    }
                });
            }
        }
    }

    /// The keys of objects of distribution `scope` that carry `tag`.
    pub fn keys(&self, scope: &str, tag: &str) -> Vec<Arc<str>> {
        let name = scoped(scope, tag);
        self.with_shard(&name, |shard| {
            shard
                .get(name.as_str())
                .map(|keys| keys.keys().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// How many (distribution, tag) names the index holds.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether the index holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn both_fields_are_read_once_each_and_removed_unless_kept() {
        let mut headers = HeaderMap::new();
        headers.append(&SURROGATE_KEY, HeaderValue::from_static(" a  b\tc "));
        headers.append(&SURROGATE_KEY, HeaderValue::from_static("d a"));
        headers.append(&CACHE_TAG, HeaderValue::from_static("e, b ,,f g"));
        let tags = take(&mut headers.clone(), true);
        let names: Vec<&str> = tags.iter().map(|t| &**t).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e", "f g"]);
        let mut kept = headers.clone();
        take(&mut kept, true);
        assert_eq!(kept, headers);
        take(&mut headers, false);
        assert!(headers.is_empty());
    }

    #[test]
    fn long_tags_and_tags_past_the_total_are_ignored() {
        let mut headers = HeaderMap::new();
        let long = "x".repeat(MAX_TAG_BYTES + 1);
        let many: Vec<String> = (0..40).map(|i| format!("{i:0>1000}")).collect();
        headers.insert(
            &SURROGATE_KEY,
            HeaderValue::from_str(&format!("{long} ok {}", many.join(" "))).unwrap(),
        );
        let tags = take(&mut headers, false);
        assert_eq!(&*tags[0], "ok");
        assert_eq!(tags.len(), 1 + (MAX_TAG_TOTAL - 2) / 1000);
    }

    #[test]
    fn the_index_counts_each_stored_object() {
        let index = TagIndex::default();
        let key: Arc<str> = "k".into();
        let tags: Vec<Arc<str>> = vec!["t".into()];
        index.add(&["E1", "EP"], &tags, &key);
        // Replaced by an object with the same tag: both counted until the
        // old one's removal.
        index.add(&["E1", "EP"], &tags, &key);
        index.remove(&["E1", "EP"], &tags, &key);
        assert_eq!(index.keys("E1", "t"), std::slice::from_ref(&key));
        assert_eq!(index.keys("EP", "t"), std::slice::from_ref(&key));
        assert!(index.keys("E2", "t").is_empty());
        index.remove(&["E1", "EP"], &tags, &key);
        assert!(index.keys("E1", "t").is_empty());
        assert!(index.is_empty());
    }
}
