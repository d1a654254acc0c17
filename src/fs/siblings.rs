//! Small-file read-ahead across a directory: when files of a directory are opened for reading in
//! listing order (`cat *`, `find | xargs cat`, `cp -r` or `tar c` out of the mount, `rsync` from
//! it), the next small files of that listing are fetched in parallel before they are opened, so
//! each open-read-close finds its bytes in the block cache instead of waiting one GET at a time.
//!
//! Rules:
//! - triggered by a read-only open of the first file of a listing, or of the file right after the
//!   one opened before in the same directory; any other order fetches nothing extra;
//! - only files up to [`SMALL`] bytes with a known ETag, at most [`AHEAD`] files ahead, and
//!   [`PARALLEL`] GETs at once for the whole mount;
//! - each GET carries `If-Match` with the listed ETag and fills the block cache under that ETag, so a
//!   file changed since the listing is simply not found there (its reader fetches the new version);
//! - memory comes from the budget with `try_charge`: under pressure nothing is fetched ahead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{watch, Semaphore};

use super::blocks::{BlockCache, BlockId};
use super::readdir::Listed;
use crate::store::ObjectStore;

/// Largest file fetched ahead.
pub const SMALL: u64 = 1024 * 1024;
/// Files fetched ahead of the one being opened.
pub const AHEAD: usize = 16;
/// GETs of sibling read-ahead in flight at once.
pub const PARALLEL: usize = 16;
/// Directories whose position is remembered.
const MAX_DIRS: usize = 4096;

#[derive(Clone, Copy)]
struct Cursor {
    last: usize,
    ahead: usize,
}

/// Where readers are in each directory, and the GETs in flight.
pub struct Siblings {
    cursors: Mutex<HashMap<String, Cursor>>,
    /// Keys being fetched ahead, with a channel that turns true when done.
    inflight: Arc<Mutex<HashMap<Arc<str>, watch::Receiver<bool>>>>,
    permits: Arc<Semaphore>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for Siblings {
    fn default() -> Self {
        Self {
            cursors: Mutex::new(HashMap::new()),
            inflight: Arc::new(Mutex::new(HashMap::new())),
            permits: Arc::new(Semaphore::new(PARALLEL)),
        }
    }
}

impl Siblings {
    /// If `key` is being fetched ahead, wait until it is there (rather than fetching it twice).
    pub async fn wait(&self, key: &str) {
        let rx = lock(&self.inflight).get(key).cloned();
        if let Some(mut rx) = rx {
            let _ = rx.wait_for(|done| *done).await;
        }
    }

    /// `name` of directory `dir` (listed as `listing`) was opened for reading: fetch the next
    /// small files ahead if the opens follow the listing. Returns how many GETs were started.
    pub fn opened<S: ObjectStore>(
        &self,
        dir: &str,
        name: &str,
        listing: &[Listed],
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
    ) -> usize {
        let (from, to) = {
            let mut cursors = lock(&self.cursors);
            let prev = cursors.get(dir).copied();
            let hint = prev.map_or(0, |c| c.last + 1);
            let idx = if listing.get(hint).is_some_and(|l| l.name == name) {
                hint
            } else {
                match listing.iter().position(|l| l.name == name) {
                    Some(i) => i,
                    None => return 0,
                }
            };
            let in_order = idx == 0 || prev.is_some_and(|c| c.last + 1 == idx);
            let ahead = prev.filter(|_| in_order).map_or(idx + 1, |c| c.ahead.max(idx + 1));
            if cursors.len() >= MAX_DIRS && !cursors.contains_key(dir) {
                cursors.clear();
            }
            if !in_order {
                cursors.insert(
                    dir.to_string(),
                    Cursor {
                        last: idx,
                        ahead: idx + 1,
                    },
                );
                return 0;
            }
            let to = (idx + 1 + AHEAD).min(listing.len());
            cursors.insert(
                dir.to_string(),
                Cursor {
                    last: idx,
                    ahead: to.max(ahead),
                },
            );
            (ahead, to)
        };
        let mut started = 0;
        for l in listing.get(from..to).unwrap_or_default() {
            let Some(o) = &l.object else { continue };
            let Some(etag) = &o.etag else { continue };
            if o.size == 0 || o.size > SMALL {
                continue;
            }
            let (key, etag): (Arc<str>, Arc<str>) = (o.key.as_str().into(), etag.as_str().into());
            let id = BlockId {
                key: key.clone(),
                etag: etag.clone(),
                index: 0,
            };
            let (tx, rx) = watch::channel(false);
            {
                let mut inflight = lock(&self.inflight);
                if cache.contains(&id) || inflight.contains_key(&key) {
                    continue;
                }
                inflight.insert(key.clone(), rx);
            }
            let Some(charge) = cache.budget().try_charge(o.size) else {
                lock(&self.inflight).remove(&key);
                break;
            };
            let (store, cache, inflight, permits, size) = (
                store.clone(),
                cache.clone(),
                self.inflight.clone(),
                self.permits.clone(),
                o.size,
            );
            tokio::spawn(async move {
                let _charge = charge;
                if let Ok(_permit) = permits.acquire().await {
                    match store.get_range(&key, 0..size, Some(&etag)).await {
                        Ok(data) if data.len() as u64 == size => cache.insert_range(&key, &etag, 0, &data, size),
                        Ok(_) => {}
                        Err(e) => tracing::debug!(key = &*key, "sibling read-ahead failed: {e}"),
                    }
                }
                lock(&inflight).remove(&key);
                let _ = tx.send(true);
            });
            started += 1;
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;
    use crate::fs::inode::Kind;
    use crate::store::memory::MemoryStore;
    use std::sync::atomic::Ordering;

    async fn listing(store: &MemoryStore, n: usize) -> Vec<Listed> {
        let mut out = Vec::new();
        for i in 0..n {
            let key = format!("d/f{i:02}");
            store.insert(&key, vec![i as u8; 1000 + i]);
            out.push(Listed {
                name: format!("f{i:02}"),
                kind: Kind::File,
                object: Some(store.head_object(&key).await.expect("head")),
            });
        }
        out
    }

    #[tokio::test]
    async fn opens_in_listing_order_fetch_the_next_files() {
        let store = Arc::new(MemoryStore::new());
        let l = listing(&store, 40).await;
        let cache = BlockCache::new(Budget::new(64 << 20), None);
        let s = Siblings::default();
        assert_eq!(s.opened("d", "f00", &l, &store, &cache), AHEAD);
        // Next in order: only the one new file at the end of the window.
        assert_eq!(s.opened("d", "f01", &l, &store, &cache), 1);
        // Out of order: nothing.
        assert_eq!(s.opened("d", "f30", &l, &store, &cache), 0);
        for _ in 0..100 {
            if lock(&s.inflight).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let id = |i: usize| BlockId {
            key: format!("d/f{i:02}").into(),
            etag: l[i].object.as_ref().and_then(|o| o.etag.clone()).expect("etag").into(),
            index: 0,
        };
        let got = cache.get(&id(5)).expect("fetched ahead");
        assert_eq!(&got[..], &vec![5u8; 1005][..]);
        assert!(cache.get(&id(25)).is_none(), "not past the window");
        assert_eq!(store.counts.get.load(Ordering::Relaxed), AHEAD + 1);
    }

    #[tokio::test]
    async fn nothing_ahead_without_budget() {
        let store = Arc::new(MemoryStore::new());
        let l = listing(&store, 10).await;
        let cache = BlockCache::new(Budget::new(100), None);
        let s = Siblings::default();
        assert_eq!(s.opened("d", "f00", &l, &store, &cache), 0);
    }
}
