//! Tree-walk read-ahead of listings: when a second subdirectory of the same directory is opened
//! (`find`, `du`, `ls -R`, `cp -r`, `rsync`, `tar c` walking a tree), the subdirectories listed
//! after it are listed in the background, several at once, so the walker finds each listing in
//! the listing cache instead of waiting for one LIST after another.
//!
//! Rules:
//! - a walk starts with the open of a second distinct subdirectory since the directory was listed
//!   (one `cd` into a directory after an `ls` of its parent lists nothing extra);
//! - then each subdirectory opened keeps the next [`AHEAD`] subdirectories in listing order
//!   listed or on their way: those with no fresh listing are listed, each
//!   to its end if it has at most [`MAX_PAGES`] pages (a bigger one is left to its reader),
//!   [`PARALLEL`] directories at a time for the whole mount;
//! - a listing read ahead is kept in the listing cache under the same rules as any other (the
//!   metadata TTL; dropped if anything changes through the mount meanwhile);
//! - an `opendir` of a directory being listed ahead waits for that listing rather than sending
//!   its own;
//! - **flat first**: when a walk starts under a directory that no flat listing covers, its whole
//!   subtree is listed flat instead (ListObjectsV2 without delimiter, split per directory by
//!   `flat.rs`), at most [`FLAT_MAX_PAGES`] pages; its subdirectories are claimed meanwhile. While
//!   a flat listing of a directory or of one of its ancestors runs or is complete (within the TTL,
//!   and with no change made through the mount since), walks under it list nothing more; once
//!   one stopped at the page limit, the walk lists subdirectories ahead one by one as above, and
//!   a walk deeper down may start its own flat listing.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lru::LruCache;
use tokio::sync::{watch, Semaphore};

use super::lock;

/// Subdirectories listed ahead of the walker.
pub const AHEAD: usize = 32;
/// Directory listings read ahead at once, over the whole mount.
pub const PARALLEL: usize = 8;
/// Largest listing read ahead, in pages.
pub const MAX_PAGES: usize = 4;
/// Largest flat listing of a walked subtree, in pages.
pub const FLAT_MAX_PAGES: usize = 32;
/// Subdirectories claimed by a flat listing (the first ones in listing order; the walker lists
/// any later one that the flat listing has not passed yet on its own).
pub const FLAT_CLAIMS: usize = 1024;
/// Parent directories whose opened children are remembered.
const MAX_PARENTS: usize = 1024;

/// How a flat listing of a subtree went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlatState {
    Running,
    Complete,
    /// Stopped at [`FLAT_MAX_PAGES`] (or failed): it does not cover the subtree.
    Stopped,
}

struct Flat {
    state: FlatState,
    /// The listing cache's generation when it started; any change through the mount ends it.
    generation: u64,
    until: Instant,
}

/// What a walk under a directory should list ahead.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// A flat listing of it or of an ancestor runs or is complete: nothing.
    Covered,
    /// List its subtree flat (now marked running; report with [`DirWalk::flat_done`]).
    Flat,
    /// Its flat listing stopped early: list subdirectories ahead one by one.
    PerDir,
}

struct Parent {
    /// The first two subdirectories opened.
    opened: HashSet<String>,
}

/// Which subdirectories were opened under each directory, and the listings read ahead.
pub struct DirWalk {
    parents: Mutex<LruCache<String, Parent>>,
    flats: Mutex<LruCache<String, Flat>>,
    inflight: Inflight,
    permits: Arc<Semaphore>,
}

type Inflight = Arc<Mutex<HashMap<String, watch::Receiver<bool>>>>;

impl Default for DirWalk {
    fn default() -> Self {
        Self {
            parents: Mutex::new(LruCache::new(
                NonZeroUsize::new(MAX_PARENTS).unwrap_or(NonZeroUsize::MIN),
            )),
            flats: Mutex::new(LruCache::new(
                NonZeroUsize::new(MAX_PARENTS).unwrap_or(NonZeroUsize::MIN),
            )),
            inflight: Arc::new(Mutex::new(HashMap::new())),
            permits: Arc::new(Semaphore::new(PARALLEL)),
        }
    }
}

/// A listing read ahead: dropping it (done or failed) wakes those waiting for it.
pub struct Ahead {
    inflight: Inflight,
    path: String,
    done: watch::Sender<bool>,
}

impl Ahead {
    /// The directory to list.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        lock(&self.inflight).remove(&self.path);
        let _ = self.done.send(true);
    }
}

impl DirWalk {
    /// Subdirectory `child` of `parent` was opened. True while this is a walk: from the second
    /// distinct subdirectory opened since `parent` was listed.
    pub fn opened(&self, parent: &str, child: &str) -> bool {
        let mut parents = lock(&self.parents);
        if parents.get(parent).is_none() {
            parents.put(parent.to_string(), Parent { opened: HashSet::new() });
        }
        let Some(p) = parents.get_mut(parent) else {
            return false;
        };
        if p.opened.len() < 2 {
            p.opened.insert(child.to_string());
        }
        p.opened.len() >= 2
    }

    /// A walk goes on under `dir`: what to list ahead. `generation` is the listing cache's now;
    /// a flat listing started now counts until `until`.
    pub fn plan(&self, dir: &str, generation: u64, until: Instant) -> Plan {
        let now = Instant::now();
        let mut flats = lock(&self.flats);
        let live = |f: &Flat| f.generation == generation && f.until > now;
        let mut own_stopped = false;
        let mut at = Some(dir);
        while let Some(a) = at {
            if let Some(f) = flats.get(a).filter(|f| live(f)) {
                match f.state {
                    FlatState::Running | FlatState::Complete => return Plan::Covered,
                    FlatState::Stopped => own_stopped |= a == dir,
                }
            }
            at = if a.is_empty() {
                None
            } else {
                Some(a.rsplit_once('/').map_or("", |(p, _)| p))
            };
        }
        if own_stopped {
            return Plan::PerDir;
        }
        flats.put(
            dir.to_string(),
            Flat {
                state: FlatState::Running,
                generation,
                until,
            },
        );
        Plan::Flat
    }

    /// The flat listing of `dir` ended.
    pub fn flat_done(&self, dir: &str, state: FlatState) {
        if let Some(f) = lock(&self.flats).get_mut(dir) {
            f.state = state;
        }
    }

    /// `parent` was listed again: a new walk may start.
    pub fn relisted(&self, parent: &str) {
        lock(&self.parents).pop(parent);
    }

    /// Claim `path` for a listing ahead; `None` if it is already being listed.
    pub fn claim(&self, path: &str) -> Option<Ahead> {
        let (tx, rx) = watch::channel(false);
        let mut inflight = lock(&self.inflight);
        if inflight.contains_key(path) {
            return None;
        }
        inflight.insert(path.to_string(), rx);
        Some(Ahead {
            inflight: self.inflight.clone(),
            path: path.to_string(),
            done: tx,
        })
    }

    /// A permit to list (at most [`PARALLEL`] at once).
    pub async fn permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.permits.acquire().await.ok()
    }

    /// If `path` is being listed ahead, wait until it is done.
    pub async fn wait(&self, path: &str) {
        let rx = lock(&self.inflight).get(path).cloned();
        if let Some(mut rx) = rx {
            let _ = rx.wait_for(|done| *done).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_subdirectory_opened_starts_a_walk() {
        let w = DirWalk::default();
        assert!(!w.opened("top", "a"));
        assert!(!w.opened("top", "a"), "the same one again is no walk");
        assert!(w.opened("top", "b"));
        assert!(w.opened("top", "c"), "and it goes on");
        assert!(!w.opened("other", "c"), "per directory");
        w.relisted("top");
        assert!(!w.opened("top", "c"), "a new listing, a new start");
        assert!(w.opened("top", "d"));
    }

    #[test]
    fn a_flat_listing_covers_its_subtree_until_it_stops_or_anything_changes() {
        let w = DirWalk::default();
        let later = Instant::now() + std::time::Duration::from_secs(60);
        assert_eq!(w.plan("t", 0, later), Plan::Flat);
        assert_eq!(w.plan("t", 0, later), Plan::Covered, "running");
        assert_eq!(w.plan("t/a/b", 0, later), Plan::Covered, "under it");
        assert_eq!(w.plan("u", 0, later), Plan::Flat, "another subtree");
        assert_eq!(
            w.plan("t", 1, later),
            Plan::Flat,
            "a change through the mount: list again"
        );
        w.flat_done("t", FlatState::Complete);
        assert_eq!(w.plan("t/a", 1, later), Plan::Covered, "complete");
        w.flat_done("t", FlatState::Stopped);
        assert_eq!(w.plan("t", 1, later), Plan::PerDir, "stopped early: one by one");
        assert_eq!(
            w.plan("t/a", 1, later),
            Plan::Flat,
            "a walk deeper down lists its own subtree"
        );
        let past = Instant::now();
        assert_eq!(w.plan("v", 1, past), Plan::Flat);
        assert_eq!(w.plan("v", 1, later), Plan::Flat, "expired with the TTL");
        assert_eq!(w.plan("", 1, later), Plan::Flat, "the root");
        assert_eq!(w.plan("x/y", 1, later), Plan::Covered, "everything is under the root");
    }

    #[tokio::test]
    async fn a_claimed_listing_is_waited_for_and_released_on_drop() {
        let w = Arc::new(DirWalk::default());
        let a = w.claim("top/a").expect("claim");
        assert!(w.claim("top/a").is_none(), "listed once");
        let w2 = w.clone();
        let waiter = tokio::spawn(async move { w2.wait("top/a").await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(a);
        waiter.await.expect("waiter");
        assert!(w.claim("top/a").is_some(), "free again");
        w.wait("top/none").await; // nothing in flight: returns at once
    }
}
