//! Metadata prefetch: the answer to "`ls -l` versus persisted POSIX attributes".
//!
//! ListObjectsV2 gives size, ETag and Last-Modified but never user metadata, and mode, owner and
//! mtime live in `x-amz-meta-*` (so that a second `rsync -a` copies nothing). The kernel cannot
//! tell `ls -l` from rsync's `lstat`, so a correct `stat` needs each object's metadata: one HEAD.
//! Done one after another that is the `ls -l` that takes a minute on some peers. Here:
//! - POSIX attributes read by HEAD are cached by key **and ETag**, so a later listing of unchanged
//!   objects needs no HEAD at all, however long ago the first one was. A listing without ETags
//!   (some S3-compatible servers send none) cannot vouch for an old HEAD: then a HEAD counts for
//!   the metadata TTL from when it was sent, like any other metadata;
//! - a HEAD sent less than a TTL ago is itself fresh metadata: a lookup whose listed entry has
//!   expired takes it ([`Prefetcher::recent`]) instead of listing or asking again;
//! - each directory's recent listing is remembered (for the last [`LISTINGS`] directories), and
//!   the first lookup that misses the cache in a directory fetches the metadata of every listed
//!   file of that directory in parallel ([`CONCURRENCY`] HEADs in flight), including pages listed
//!   afterwards. Plain `ls` or `find`, which never stat, cost no HEAD. A lookup whose key is
//!   queued or in flight waits for that HEAD rather than sending its own, so `ls -l` runs at the
//!   prefetch's concurrency, not one HEAD at a time.
//! - what HEADs said (and what uploads stored) is also kept on disk, by key and ETag, for later
//!   mounts of the bucket (`meta_disk.rs`): their `ls -l` of unchanged objects needs no HEAD.
//!   Such a record only ever vouches for its ETag, never for a listing without one;
//! - `--listing-attributes` skips all of this and shows listing attributes only.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use lru::LruCache;
use tokio::sync::{watch, Semaphore};

use super::inode::Stat;
use super::lock;
use super::meta::Posix;
use super::meta_disk::{MetaDisk, Record};
use super::readdir::Listed;
use crate::store::{ObjectStore, StoreError};

/// Directories whose listings are remembered.
pub const LISTINGS: usize = 64;
/// HEAD requests in flight for prefetching.
pub const CONCURRENCY: usize = 32;
/// Cached attribute sets (each is small: about 100 bytes plus the key).
const CACHE_ENTRIES: usize = 200_000;

/// What one HEAD said of an object, and when it was sent.
#[derive(Clone)]
struct Head {
    etag: Option<String>,
    size: u64,
    mtime: SystemTime,
    posix: Posix,
    sent: Instant,
    /// Read from the disk cache of an earlier mount: holds for its ETag only.
    persisted: bool,
}

impl Head {
    /// Whether this HEAD's attributes hold for an object listed with `etag`: the same ETag, or,
    /// when the listing gave none, a HEAD younger than `ttl`.
    fn holds_for(&self, etag: &Option<String>, ttl: Duration) -> bool {
        match etag {
            Some(_) => self.etag == *etag,
            None => !self.persisted && self.sent.elapsed() < ttl,
        }
    }
}

/// Keep `head` of `key` in memory, and on disk when it has an ETag to vouch for and says
/// something new (a HEAD repeated after the TTL usually finds what the cache holds).
fn put(cache: &PosixCache, disk: Option<&MetaDisk>, key: &str, head: Head) {
    let mut cache = lock(cache);
    let known = cache
        .peek(key)
        .is_some_and(|h| h.etag == head.etag && h.posix == head.posix);
    if let (Some(disk), Some(etag), false) = (disk, &head.etag, known) {
        disk.append(&Record {
            key: key.to_string(),
            etag: etag.clone(),
            size: head.size,
            last_modified: head.mtime,
            posix: head.posix.clone(),
        });
    }
    cache.put(key.to_string(), head);
}

type PosixCache = Mutex<LruCache<String, Head>>;

#[derive(Default)]
struct Listing {
    files: Vec<(String, Option<String>)>,
    /// Kept listings (with the directory's key prefix), whose files are taken only once a
    /// lookup activates the prefetch: a listing nobody stats (`find`, `ls -f`) is never copied.
    shared: Vec<(String, Arc<Vec<Listed>>)>,
    active: bool,
}

/// `(key, etag)` of each object of `listed` under `prefix`.
pub fn files_of<'a>(prefix: &'a str, listed: &'a [Listed]) -> impl Iterator<Item = (String, Option<String>)> + 'a {
    listed
        .iter()
        .filter_map(|l| l.object.as_ref())
        .filter(move |o| o.key.starts_with(prefix))
        .map(|o| (o.key.clone(), o.etag.clone()))
}

/// Cache of POSIX attributes by key and ETag, with directory-wide prefetch.
pub struct Prefetcher<S: ObjectStore> {
    store: Arc<S>,
    ttl: Duration,
    cache: Arc<PosixCache>,
    listings: Mutex<LruCache<u64, Listing>>,
    permits: Arc<Semaphore>,
    /// HEADs queued or in flight, by key, with a channel that turns true when done.
    inflight: Arc<Mutex<HashMap<String, watch::Receiver<bool>>>>,
    /// The cache on disk, shared with later mounts.
    disk: std::sync::OnceLock<Arc<MetaDisk>>,
}

fn cap(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

impl<S: ObjectStore> Prefetcher<S> {
    /// A prefetcher over `store`; metadata is fresh for `ttl`.
    pub fn new(store: Arc<S>, ttl: Duration) -> Self {
        Self::with_concurrency(store, ttl, CONCURRENCY)
    }

    /// A prefetcher with `concurrency` HEADs in flight (the mount's `--max-connections`).
    pub fn with_concurrency(store: Arc<S>, ttl: Duration, concurrency: usize) -> Self {
        Self {
            store,
            ttl,
            cache: Arc::new(Mutex::new(LruCache::new(cap(CACHE_ENTRIES)))),
            listings: Mutex::new(LruCache::new(cap(LISTINGS))),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            inflight: Arc::new(Mutex::new(HashMap::new())),
            disk: std::sync::OnceLock::new(),
        }
    }

    /// Keep attributes on `disk` from now on, and take those an earlier mount kept there.
    pub fn attach_disk(&self, disk: Arc<MetaDisk>, records: Vec<Record>) {
        let now = Instant::now();
        let mut cache = lock(&self.cache);
        for r in records {
            cache.put(
                r.key,
                Head {
                    etag: Some(r.etag),
                    size: r.size,
                    mtime: r.last_modified,
                    posix: r.posix,
                    sent: now,
                    persisted: true,
                },
            );
        }
        drop(cache);
        let _ = self.disk.set(disk);
    }

    /// Write what the disk cache has buffered.
    pub fn flush_disk(&self) {
        if let Some(d) = self.disk.get() {
            d.flush();
        }
    }

    /// Remember what a HEAD sent at `sent` said of `key` (nothing if it carried no attributes).
    pub fn remember(&self, key: &str, stat: &Stat, sent: Instant) {
        if let Some(posix) = &stat.posix {
            let head = Head {
                etag: stat.etag.clone(),
                size: stat.size,
                mtime: stat.mtime,
                posix: posix.clone(),
                sent,
                persisted: false,
            };
            put(&self.cache, self.disk.get().map(|d| &**d), key, head);
        }
    }

    /// Forget what is known of `key` (it is gone, or changed through the mount).
    pub fn forget(&self, key: &str) {
        lock(&self.cache).pop(key);
    }

    /// POSIX attributes of `key` that hold for an object listed with `etag`.
    pub fn cached(&self, key: &str, etag: &Option<String>) -> Option<Posix> {
        lock(&self.cache)
            .get(key)
            .filter(|h| h.holds_for(etag, self.ttl))
            .map(|h| h.posix.clone())
    }

    /// The attributes of `key` from a HEAD sent less than a TTL ago, and until when they are
    /// fresh.
    pub fn recent(&self, key: &str) -> Option<(Stat, Instant)> {
        let cache = lock(&self.cache);
        let h = cache.peek(key).filter(|h| !h.persisted)?;
        let until = h.sent.checked_add(self.ttl)?;
        if until <= Instant::now() {
            return None;
        }
        let stat = Stat::file(h.size, h.mtime, h.etag.clone(), Some(h.posix.clone()));
        Some((stat, until))
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
            if !l.active {
                l.files.extend(files);
                return;
            }
            l.files.extend(files.iter().cloned());
            true
        };
        if active {
            self.fetch(files);
        }
    }

    /// The objects of kept listing `listed` under `prefix` were listed in `dir`.
    pub fn listed_shared(&self, dir: u64, prefix: &str, listed: &Arc<Vec<Listed>>) {
        {
            let mut listings = lock(&self.listings);
            let Some(l) = listings.get_mut(&dir) else { return };
            if !l.active {
                l.shared.push((prefix.to_string(), listed.clone()));
                return;
            }
        }
        self.listed(dir, files_of(prefix, listed).collect());
    }

    /// A lookup in `dir` missed the cache: fetch the metadata of everything listed there.
    pub fn activate(&self, dir: u64) {
        let files = {
            let mut listings = lock(&self.listings);
            match listings.get_mut(&dir) {
                Some(l) if !l.active => {
                    l.active = true;
                    for (prefix, listed) in std::mem::take(&mut l.shared) {
                        l.files.extend(files_of(&prefix, &listed));
                    }
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
            let (inflight, ttl, disk) = (self.inflight.clone(), self.ttl, self.disk.get().cloned());
            rt.spawn(async move {
                if let Ok(_permit) = permits.acquire_owned().await {
                    let known = lock(&cache).get(&key).is_some_and(|h| h.holds_for(&etag, ttl));
                    if !known {
                        let sent = Instant::now();
                        match store.head_object(&key).await {
                            Ok(meta) => {
                                let head = Head {
                                    posix: Posix::from_metadata(&meta.metadata),
                                    etag: meta.etag,
                                    size: meta.size,
                                    mtime: meta.last_modified,
                                    sent,
                                    persisted: false,
                                };
                                put(&cache, disk.as_deref(), &key, head);
                            }
                            Err(StoreError::NotFound { .. }) => {
                                lock(&cache).pop(&key);
                            }
                            Err(_) => {}
                        }
                    }
                }
                lock(&inflight).remove(&key);
                let _ = tx.send(true);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::inode::Kind;
    use crate::store::memory::MemoryStore;

    /// `key` listed (without an ETag) in directory 1, and its prefetch done.
    async fn list_and_prefetch(p: &Prefetcher<MemoryStore>, key: &str) {
        p.start_listing(1);
        p.listed(1, vec![(key.into(), None)]);
        p.activate(1);
        p.wait(key).await;
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_head_holds_by_etag_or_for_the_ttl_when_the_listing_has_no_etag() {
        let store = Arc::new(MemoryStore::new());
        store.insert("d/a", &b"one"[..]);
        let etag = store.head_object("d/a").await.expect("head").etag;
        assert!(etag.is_some());
        let p = Prefetcher::new(store.clone(), Duration::from_millis(200));
        // A listing without ETags: the prefetch HEADs it, and the answer holds for the TTL.
        list_and_prefetch(&p, "d/a").await;
        assert!(p.cached("d/a", &None).is_some(), "fresh HEAD, no listed ETag");
        assert!(p.cached("d/a", &etag).is_some(), "same ETag");
        assert!(p.cached("d/a", &Some("\"other\"".into())).is_none(), "another ETag");
        let (stat, until) = p.recent("d/a").expect("recent");
        assert_eq!((stat.size, stat.etag.clone(), stat.kind), (3, etag.clone(), Kind::File));
        assert!(until > Instant::now());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(p.recent("d/a").is_none(), "older than the TTL");
        assert!(p.cached("d/a", &None).is_none(), "no ETag to vouch for an old HEAD");
        assert!(p.cached("d/a", &etag).is_some(), "the same ETag still does");
        // Gone from the store: a new prefetch forgets it.
        store.delete_object("d/a").await.expect("delete");
        list_and_prefetch(&p, "d/a").await;
        assert!(p.cached("d/a", &etag).is_none(), "a HEAD that found nothing forgets it");
        p.forget("d/a");
        assert!(p.recent("d/a").is_none());
    }
}
