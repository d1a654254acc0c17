//! `NewDirs`: directories made through this mount moments ago, which S3 showed empty when they were
//! made. Until the metadata TTL passes, a name in one of them that was not created through the
//! mount since is absent without asking S3 — so `cp -r`, `tar x` and `rsync` into a new directory
//! cost no HEAD + LIST per file for the "does it exist yet?" lookup. (Other clients' changes show
//! after the TTL, as for every cached absence.)

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most directories tracked at once (expired ones are dropped first).
const MAX_DIRS: usize = 10_000;

struct NewDir {
    until: Instant,
    children: HashSet<String>,
}

/// The tracked directories, by path relative to the mount.
pub struct NewDirs {
    ttl: Duration,
    dirs: Mutex<HashMap<String, NewDir>>,
}

impl NewDirs {
    /// Directories are tracked for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            dirs: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, NewDir>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `dir` was just made (and was empty).
    pub fn made(&self, dir: &str) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut dirs = self.lock();
        if dirs.len() >= MAX_DIRS {
            dirs.retain(|_, d| d.until > now);
            if dirs.len() >= MAX_DIRS {
                return;
            }
        }
        dirs.insert(
            dir.to_string(),
            NewDir {
                until: now + self.ttl,
                children: HashSet::new(),
            },
        );
    }

    /// `name` was created in `dir` through the mount.
    pub fn child(&self, dir: &str, name: &str) {
        if let Some(d) = self.lock().get_mut(dir) {
            d.children.insert(name.to_string());
        }
    }

    /// Whether `name` in `dir` is known absent.
    pub fn absent(&self, dir: &str, name: &str) -> bool {
        let now = Instant::now();
        let mut dirs = self.lock();
        match dirs.get(dir) {
            Some(d) if d.until > now => !d.children.contains(name),
            Some(_) => {
                dirs.remove(dir);
                false
            }
            None => false,
        }
    }

    /// Stop tracking `dir` and everything under it (removed or renamed).
    pub fn forget(&self, dir: &str) {
        let under = format!("{dir}/");
        self.lock().retain(|d, _| d != dir && !d.starts_with(&under));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_until_created_or_expired() {
        let n = NewDirs::new(Duration::from_millis(100));
        n.made("a/b");
        assert!(n.absent("a/b", "x"));
        n.child("a/b", "x");
        assert!(!n.absent("a/b", "x"), "created through the mount");
        assert!(n.absent("a/b", "y"));
        assert!(!n.absent("a", "b"), "untracked directory");
        n.made("a/b/c");
        n.forget("a/b");
        assert!(!n.absent("a/b", "y"));
        assert!(!n.absent("a/b/c", "y"), "forgotten with its parent");
        n.made("d");
        std::thread::sleep(Duration::from_millis(150));
        assert!(!n.absent("d", "y"), "expired");
        let off = NewDirs::new(Duration::ZERO);
        off.made("d");
        assert!(!off.absent("d", "y"));
    }
}
