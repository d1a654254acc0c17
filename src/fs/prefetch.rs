//! Metadata prefetch: the answer to "`ls -l` versus persisted POSIX attributes".
//!
//! ListObjectsV2 gives size, ETag and Last-Modified but never user metadata, and mode, owner and
//! mtime live in `x-amz-meta-*` (so that a second `rsync -a` copies nothing). The kernel cannot
//! tell `ls -l` from rsync's `lstat`, so a correct `stat` needs each object's metadata: one HEAD.
//! Done one after another that is the `ls -l` that takes a minute on some peers. Here:
//! - POSIX attributes read by HEAD are cached by key **and ETag**, so a later listing of unchanged
//!   objects needs no HEAD at all, however long ago the first one was;
//! - each directory's recent listing is remembered (for the last [`LISTINGS`] directories), and
//!   the first lookup that misses the cache in a directory fetches the metadata of every listed
//!   file of that directory in parallel ([`CONCURRENCY`] HEADs in flight), including pages listed
//!   afterwards. Plain `ls` or `find`, which never stat, cost no HEAD. A lookup whose key is
//!   queued or in flight waits for that HEAD rather than sending its own, so `ls -l` runs at the
//!   prefetch's concurrency, not one HEAD at a time.
//! - `--listing-attributes` skips all of this and shows listing attributes only.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use tokio::sync::{watch, Semaphore};

use super::lock;
use super::meta::Posix;
use crate::store::ObjectStore;

/// Directories whose listings are remembered.
pub const LISTINGS: usize = 64;
/// HEAD requests in flight for prefetching.
pub const CONCURRENCY: usize = 32;
/// Cached attribute sets (each is small: about 100 bytes plus the key).
const CACHE_ENTRIES: usize = 200_000;

type PosixCache = Mutex<LruCache<String, (Option<String>, Posix)>>;

#[derive(Default)]
struct Listing {
    files: Vec<(String, Option<String>)>,
    active: bool,
}

/// Cache of POSIX attributes by key and ETag, with directory-wide prefetch.
pub struct Prefetcher<S: ObjectStore> {
    store: Arc<S>,
    cache: Arc<PosixCache>,
    listings: Mutex<LruCache<u64, Listing>>,
    permits: Arc<Semaphore>,
    /// HEADs queued or in flight, by key, with a channel that turns true when done.
    inflight: Arc<Mutex<HashMap<String, watch::Receiver<bool>>>>,
}

fn cap(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

impl<S: ObjectStore> Prefetcher<S> {
    /// A prefetcher over `store`.
    pub fn new(store: Arc<S>) -> Self {
        Self {
            store,
            cache: Arc::new(Mutex::new(LruCache::new(cap(CACHE_ENTRIES)))),
            listings: Mutex::new(LruCache::new(cap(LISTINGS))),
            permits: Arc::new(Semaphore::new(CONCURRENCY)),
            inflight: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Remember `posix` for `key` at `etag`.
    pub fn remember(&self, key: &str, etag: &Option<String>, posix: &Posix) {
        lock(&self.cache).put(key.to_string(), (etag.clone(), posix.clone()));
    }

    /// POSIX attributes of `key` known for `etag`.
    pub fn cached(&self, key: &str, etag: &Option<String>) -> Option<Posix> {
        lock(&self.cache)
            .get(key)
            .filter(|(e, _)| e == etag)
            .map(|(_, p)| p.clone())
    }

    /// If the metadata of `key` is being prefetched, wait for it (instead of a HEAD of one's
    /// own); true if there was something to wait for.
    pub async fn wait(&self, key: &str) -> bool {
        let rx = lock(&self.inflight).get(key).cloned();
        match rx {
            Some(mut rx) => {
                let _ = rx.wait_for(|done| *done).await;
                true
            }
            None => false,
        }
    }

    /// A new listing of directory `dir` starts.
    pub fn start_listing(&self, dir: u64) {
        lock(&self.listings).put(dir, Listing::default());
    }

    /// Files `(key, etag)` were listed in `dir`.
    pub fn listed(&self, dir: u64, files: Vec<(String, Option<String>)>) {
        let active = {
            let mut listings = lock(&self.listings);
            let Some(l) = listings.get_mut(&dir) else { return };
            l.files.extend(files.iter().cloned());
            l.active
        };
        if active {
            self.fetch(files);
        }
    }

    /// A lookup in `dir` missed the cache: fetch the metadata of everything listed there.
    pub fn activate(&self, dir: u64) {
        let files = {
            let mut listings = lock(&self.listings);
            match listings.get_mut(&dir) {
                Some(l) if !l.active => {
                    l.active = true;
                    l.files.clone()
                }
                _ => return,
            }
        };
        self.fetch(files);
    }

    fn fetch(&self, files: Vec<(String, Option<String>)>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for (key, etag) in files {
            if self.cached(&key, &etag).is_some() {
                continue;
            }
            let (tx, rx) = watch::channel(false);
            {
                let mut inflight = lock(&self.inflight);
                if inflight.contains_key(&key) {
                    continue;
                }
                inflight.insert(key.clone(), rx);
            }
            let (store, cache, permits) = (self.store.clone(), self.cache.clone(), self.permits.clone());
            let inflight = self.inflight.clone();
            rt.spawn(async move {
                if let Ok(_permit) = permits.acquire_owned().await {
                    let known = lock(&cache).get(&key).is_some_and(|(e, _)| *e == etag);
                    if !known {
                        if let Ok(meta) = store.head_object(&key).await {
                            let posix = Posix::from_metadata(&meta.metadata);
                            lock(&cache).put(key.clone(), (meta.etag, posix));
                        }
                    }
                }
                lock(&inflight).remove(&key);
                let _ = tx.send(true);
            });
        }
    }
}
