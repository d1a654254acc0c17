//! `ListingCache`: complete directory listings kept for the metadata TTL, so a repeated `ls` or a
//! `find` within the TTL (or forever with `--metadata-ttl indefinite`) does not list again.
//!
//! Rules:
//! - only a listing read to its end is kept, and only if nothing changed through this mount while
//!   it was being read (a generation counter, bumped at the start and end of every change);
//! - every change made through the mount (create, write-back, unlink, rename, mkdir, rmdir,
//!   attribute and xattr changes) drops all kept listings: changes are rare next to reads, and a
//!   coarse rule cannot be subtly wrong;
//! - changes made by other clients show once the TTL has passed, as for all metadata;
//! - at most [`MAX_ENTRIES`] names are kept over all directories (least recently used go first);
//! - each kept listing remembers whether the kernel's cache of the directory's entries
//!   (`FOPEN_CACHE_DIR`) was filled from it: only then may `opendir` tell the kernel to keep that
//!   cache, so a repeated `ls` within the TTL costs no readdir at all. Any other listing makes the
//!   kernel drop its cache at `opendir`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::readdir::Listed;

/// Most names kept over all cached listings.
pub const MAX_ENTRIES: usize = 1_000_000;

struct Kept {
    until: Instant,
    listed: Arc<Vec<Listed>>,
    /// The kernel's cached entries of this directory came from this listing (a prefix of it).
    in_kernel: bool,
}

/// What [`ListingCache::open`] finds.
pub struct Opened {
    pub listed: Arc<Vec<Listed>>,
    /// The kernel's cached entries of the directory came from this listing.
    pub in_kernel: bool,
    /// When the listing stops being fresh.
    pub until: Instant,
}

/// Cached listings by directory path.
pub struct ListingCache {
    ttl: Duration,
    generation: AtomicU64,
    inner: Mutex<Inner>,
}

struct Inner {
    lru: LruCache<String, Kept>,
    entries: usize,
}

/// Marks a change in progress; dropping it ends the change.
pub struct Change<'a>(&'a ListingCache);

impl Drop for Change<'_> {
    fn drop(&mut self) {
        self.0.invalidate();
    }
}

impl ListingCache {
    /// Listings kept for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            generation: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                entries: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation a listing starts at (pass it to [`ListingCache::keep`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The kept listing of `dir`, if still fresh.
    pub fn get(&self, dir: &str) -> Option<Arc<Vec<Listed>>> {
        Self::fresh_mut(&mut self.lock(), dir).map(|k| k.listed.clone())
    }

    /// The kept listing of `dir` if still fresh (an expired one is dropped).
    fn fresh_mut<'a>(inner: &'a mut Inner, dir: &str) -> Option<&'a mut Kept> {
        let now = Instant::now();
        if inner.lru.peek(dir).is_some_and(|k| k.until <= now) {
            if let Some(old) = inner.lru.pop(dir) {
                inner.entries -= old.listed.len();
            }
            return None;
        }
        inner.lru.get_mut(dir)
    }

    /// `opendir` of `dir`: its kept listing, if still fresh, and whether the kernel's cached
    /// entries of the directory came from it. From now on they do: the kernel keeps its cache, or
    /// drops it and fills it again from this listing.
    pub fn open(&self, dir: &str) -> Option<Opened> {
        let mut inner = self.lock();
        let k = Self::fresh_mut(&mut inner, dir)?;
        let in_kernel = std::mem::replace(&mut k.in_kernel, true);
        Some(Opened {
            listed: k.listed.clone(),
            in_kernel,
            until: k.until,
        })
    }

    /// The kept listing of `dir` if still fresh, leaving an expired one in place (for
    /// [`ListingCache::peek`]: lookups list an expired small directory again).
    pub fn fresh(&self, dir: &str) -> Option<Arc<Vec<Listed>>> {
        let now = Instant::now();
        self.lock()
            .lru
            .peek(dir)
            .filter(|k| k.until > now)
            .map(|k| k.listed.clone())
    }

    /// The kept listing of `dir` whatever its age (for read-ahead, which checks ETags itself).
    pub fn peek(&self, dir: &str) -> Option<Arc<Vec<Listed>>> {
        self.lock().lru.peek(dir).map(|k| k.listed.clone())
    }

    /// Keep the complete listing of `dir`, read since generation `started`; `in_kernel`: it was
    /// read for an `opendir`, whose handle filled the kernel's cache with it.
    pub fn keep(&self, dir: &str, listed: Vec<Listed>, started: u64, in_kernel: bool) {
        if self.ttl.is_zero() || listed.len() > MAX_ENTRIES {
            return;
        }
        let mut inner = self.lock();
        // Checked under the lock: `invalidate` bumps the generation before clearing.
        if self.generation() != started {
            return;
        }
        let n = listed.len();
        let kept = Kept {
            until: Instant::now() + self.ttl,
            listed: Arc::new(listed),
            in_kernel,
        };
        if let Some(old) = inner.lru.put(dir.to_string(), kept) {
            inner.entries -= old.listed.len();
        }
        inner.entries += n;
        while inner.entries > MAX_ENTRIES {
            match inner.lru.pop_lru() {
                Some((_, old)) => inner.entries -= old.listed.len(),
                None => break,
            }
        }
    }

    /// Drop every kept listing.
    pub fn invalidate(&self) {
        let mut inner = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        inner.lru.clear();
        inner.entries = 0;
    }

    /// Start a change: kept listings are dropped now and again when the returned guard drops.
    pub fn changing(&self) -> Change<'_> {
        self.invalidate();
        Change(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::inode::Kind;

    fn names(n: usize) -> Vec<Listed> {
        (0..n)
            .map(|i| Listed {
                name: format!("f{i}"),
                kind: Kind::File,
                object: None,
            })
            .collect()
    }

    #[test]
    fn kept_until_the_ttl_or_a_change() {
        let c = ListingCache::new(Duration::from_millis(200));
        let g = c.generation();
        c.keep("d", names(3), g, false);
        assert_eq!(c.get("d").expect("kept").len(), 3);
        std::thread::sleep(Duration::from_millis(250));
        assert!(c.get("d").is_none(), "expired");
        c.keep("d", names(3), c.generation(), false);
        {
            let _change = c.changing();
            assert!(c.get("d").is_none(), "dropped when a change starts");
        }
        // A listing read across a change is not kept.
        let g = c.generation();
        drop(c.changing());
        c.keep("d", names(3), g, false);
        assert!(c.get("d").is_none());
    }

    #[test]
    fn bounded_by_entries() {
        let c = ListingCache::new(Duration::from_secs(60));
        c.keep("a", names(MAX_ENTRIES - 10), c.generation(), false);
        c.keep("b", names(20), c.generation(), false);
        assert!(c.get("a").is_none(), "oldest evicted");
        assert!(c.get("b").is_some());
        let zero = ListingCache::new(Duration::ZERO);
        zero.keep("a", names(1), zero.generation(), false);
        assert!(zero.get("a").is_none(), "TTL 0 keeps nothing");
    }

    #[test]
    fn the_kernel_keeps_its_cache_only_of_the_listing_that_filled_it() {
        let c = ListingCache::new(Duration::from_secs(60));
        assert!(c.open("d").is_none(), "nothing kept: list afresh");
        // A listing read by list-ahead never reached the kernel.
        c.keep("d", names(3), c.generation(), false);
        let Opened {
            listed: l, in_kernel, ..
        } = c.open("d").expect("kept");
        assert_eq!((l.len(), in_kernel), (3, false), "the kernel must drop what it has");
        let Opened { in_kernel, .. } = c.open("d").expect("kept");
        assert!(
            in_kernel,
            "the last opendir filled the kernel's cache from this listing"
        );
        // A new listing (read for an opendir) replaces it.
        c.keep("d", names(4), c.generation(), true);
        let Opened {
            listed: l, in_kernel, ..
        } = c.open("d").expect("kept");
        assert_eq!((l.len(), in_kernel), (4, true));
        // A change drops the listing: the next opendir lists afresh.
        drop(c.changing());
        assert!(c.open("d").is_none());
        c.keep("d", names(4), c.generation(), false);
        assert!(!c.open("d").expect("kept").in_kernel);
    }
}
