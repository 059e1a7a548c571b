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
use std::sync::{Arc, Mutex, PoisonError, Weak};

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

/// Which stored objects carry each tag, per distribution: by the object's
/// address, the object (weakly: the cache owns it) and the key it is stored
/// under. An object is added once when it is stored and removed once when
/// the cache lets it go, so a key replaced by another object is never
/// confused with it.
#[derive(Debug)]
pub struct TagIndex<V> {
    shards: [Mutex<Shard<V>>; SHARDS],
}

/// One shard: for each (distribution, tag) name, its objects.
type Shard<V> = HashMap<Box<str>, HashMap<usize, (Weak<V>, Arc<str>)>>;

impl<V> Default for TagIndex<V> {
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

impl<V> TagIndex<V> {
    fn with_shard<T>(&self, name: &str, f: impl FnOnce(&mut Shard<V>) -> T) -> T {
        let mut shard = self.shards[shard_of(name)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut shard)
    }

    /// Records that `object`, stored under `key`, carries `tags` for each of
    /// the distributions `scopes`.
    pub fn add(&self, scopes: &[&str], tags: &[Arc<str>], object: &Arc<V>, key: &Arc<str>) {
        let id = Arc::as_ptr(object) as usize;
        for scope in scopes {
            for tag in tags {
                let name = scoped(scope, tag);
                self.with_shard(&name, |shard| {
                    shard
                        .entry(name.as_str().into())
                        .or_default()
                        .insert(id, (Arc::downgrade(object), key.clone()));
                });
            }
        }
    }

    /// Records that an object [`Self::add`] recorded is no longer stored.
    pub fn remove(&self, scopes: &[&str], tags: &[Arc<str>], object: &Arc<V>) {
        let id = Arc::as_ptr(object) as usize;
        for scope in scopes {
            for tag in tags {
                let name = scoped(scope, tag);
                self.with_shard(&name, |shard| {
                    let Some(objects) = shard.get_mut(name.as_str()) else {
                        return;
                    };
                    objects.remove(&id);
                    if objects.is_empty() {
                        shard.remove(name.as_str());
                    }
                });
            }
        }
    }

    /// The stored objects of distribution `scope` that carry `tag`, with
    /// their keys.
    pub fn objects(&self, scope: &str, tag: &str) -> Vec<(Arc<V>, Arc<str>)> {
        let name = scoped(scope, tag);
        self.with_shard(&name, |shard| {
            shard
                .get(name.as_str())
                .map(|objects| {
                    objects
                        .values()
                        .filter_map(|(object, key)| Some((object.upgrade()?, key.clone())))
                        .collect()
                })
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
    fn the_index_holds_each_stored_object_once() {
        let index = TagIndex::default();
        let key: Arc<str> = "k".into();
        let tags: Vec<Arc<str>> = vec!["t".into()];
        let (old, new) = (Arc::new(1), Arc::new(2));
        index.add(&["E1", "EP"], &tags, &old, &key);
        // Replaced under the same key by an object with the same tag: the
        // old one's removal leaves the new one.
        index.add(&["E1", "EP"], &tags, &new, &key);
        index.remove(&["E1", "EP"], &tags, &old);
        for scope in ["E1", "EP"] {
            let found = index.objects(scope, "t");
            assert_eq!(found.len(), 1);
            assert!(Arc::ptr_eq(&found[0].0, &new) && found[0].1 == key);
        }
        assert!(index.objects("E2", "t").is_empty());
        // An object the cache no longer holds is not handed out.
        let gone = Arc::new(3);
        index.add(&["E1"], &tags, &gone, &"g".into());
        drop(gone);
        assert_eq!(index.objects("E1", "t").len(), 1);
        index.remove(&["E1", "EP"], &tags, &new);
        assert_eq!(
            index.len(),
            1,
            "the dead object's entry stays until its removal"
        );
    }
}
