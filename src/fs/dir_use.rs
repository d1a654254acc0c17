//! `DirUse`: whether the last reader of a directory also stat-ed its entries. It decides whether
//! `opendir` lets the kernel keep its cached entries of the directory (`FOPEN_KEEP_CACHE`) or
//! makes it read them again, with their attributes (READDIRPLUS).
//!
//! Kept entries serve a repeated `ls -f` or `find` with no request at all. But the kernel keeps
//! no attributes with them: once the metadata TTL has passed, a repeated `ls -l` costs one lookup
//! per name, where entries read again with READDIRPLUS bring every attribute in a few requests
//! (10 000 names: 0.17 s against 0.06 s). So a directory is marked stat-ed when a handle that
//! read it saw a quarter of its names looked up, or saw READDIRPLUS past the first batch (the
//! kernel asks for it there only once it used the attributes it got); a handle that saw neither
//! clears the mark. A handle the kernel read nothing from (it had the entries cached) tells
//! nothing: its reader may have stat-ed the names from the kernel's cache. A marked directory
//! keeps the kernel's cache until a metadata TTL after that handle was opened (what the kernel
//! got since then is still valid); then it is read again.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;

/// Directories whose mark is remembered (least recently used go first).
const MARKED_DIRS: usize = 4096;

/// Readers of directories, by directory path.
pub struct DirUse {
    inner: Mutex<Inner>,
}

struct Inner {
    /// Directories with an open handle: how many, and lookups of their names since the first.
    open: HashMap<String, Reading>,
    /// Directories whose last reader stat-ed their entries, with when it opened them.
    statted: LruCache<String, Instant>,
}

/// What a released handle saw.
pub struct Read {
    /// Names it gave.
    pub entries: usize,
    /// The kernel asked it for READDIRPLUS past the first reply.
    pub plus_continued: bool,
    /// The kernel read entries from it at all.
    pub served: bool,
}

struct Reading {
    handles: usize,
    lookups: usize,
    since: Instant,
}

impl Default for DirUse {
    fn default() -> Self {
        Self::new()
    }
}

impl DirUse {
    pub fn new() -> Self {
        let cap = NonZeroUsize::new(MARKED_DIRS).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Mutex::new(Inner {
                open: HashMap::new(),
                statted: LruCache::new(cap),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the kernel should read `dir`'s entries again with their attributes: its last
    /// reader stat-ed them, and the attributes the kernel got since (trusted for `ttl`) expired.
    pub fn wants_attributes(&self, dir: &str, ttl: Duration) -> bool {
        self.lock()
            .statted
            .peek(dir)
            .is_some_and(|since| since.elapsed() >= ttl)
    }

    /// A handle of `dir` was opened.
    pub fn opened(&self, dir: &str) {
        let mut inner = self.lock();
        match inner.open.get_mut(dir) {
            Some(r) => r.handles += 1,
            None => {
                let reading = Reading {
                    handles: 1,
                    lookups: 0,
                    since: Instant::now(),
                };
                inner.open.insert(dir.to_string(), reading);
            }
        }
    }

    /// A name in `dir` was looked up (counted only while `dir` is open).
    pub fn looked_up(&self, dir: &str) {
        if let Some(r) = self.lock().open.get_mut(dir) {
            r.lookups += 1;
        }
    }

    /// A handle of `dir` was released, having seen `read`.
    pub fn closed(&self, dir: &str, read: &Read) {
        let mut inner = self.lock();
        let Some(r) = inner.open.get_mut(dir) else {
            return;
        };
        let statted = read.plus_continued || r.lookups * 4 >= read.entries.max(1);
        let since = r.since;
        r.handles -= 1;
        if r.handles == 0 {
            inner.open.remove(dir);
        }
        if !read.served {
            return;
        }
        if statted {
            inner.statted.put(dir.to_string(), since);
        } else {
            inner.statted.pop(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statted(u: &DirUse, dir: &str) -> bool {
        u.wants_attributes(dir, Duration::ZERO)
    }

    fn read(entries: usize, plus_continued: bool) -> Read {
        Read {
            entries,
            plus_continued,
            served: true,
        }
    }

    #[test]
    fn a_directory_whose_names_were_looked_up_while_read_is_marked() {
        let u = DirUse::new();
        u.opened("d");
        for _ in 0..24 {
            u.looked_up("d");
        }
        u.closed("d", &read(100, false));
        assert!(!statted(&u, "d"), "24 of 100 names is not `ls -l`");
        u.opened("d");
        for _ in 0..25 {
            u.looked_up("d");
        }
        u.closed("d", &read(100, false));
        assert!(statted(&u, "d"), "a quarter of the names is");
        // The next reader only lists: the mark goes.
        u.opened("d");
        u.closed("d", &read(100, false));
        assert!(!statted(&u, "d"));
    }

    #[test]
    fn readdirplus_past_the_first_batch_marks_and_closed_handles_count_nothing() {
        let u = DirUse::new();
        u.opened("d");
        u.closed("d", &read(10_000, true));
        assert!(statted(&u, "d"));
        // Lookups while no handle is open (a path walk, `stat` of one file) are no reader's.
        for _ in 0..10 {
            u.looked_up("e");
        }
        u.opened("e");
        u.closed("e", &read(10, false));
        assert!(!statted(&u, "e"));
        // A handle the kernel read nothing from (its cache had the entries) changes nothing.
        u.opened("d");
        let cached = Read {
            entries: 10_000,
            plus_continued: false,
            served: false,
        };
        u.closed("d", &cached);
        assert!(statted(&u, "d"));
        // An unknown handle's release changes nothing.
        u.closed("f", &read(0, true));
        assert!(!statted(&u, "f"));
    }

    #[test]
    fn lookups_count_for_every_open_handle_of_the_directory() {
        let u = DirUse::new();
        u.opened("d");
        u.opened("d");
        u.looked_up("d");
        u.looked_up("d");
        u.closed("d", &read(10, false));
        assert!(!statted(&u, "d"), "2 of 10");
        u.looked_up("d");
        u.closed("d", &read(10, false));
        assert!(statted(&u, "d"), "3 of 10 while the second handle was open");
        u.opened("d");
        u.closed("d", &read(10, false));
        assert!(!statted(&u, "d"), "the count starts again");
    }

    #[test]
    fn a_marked_directory_keeps_the_kernels_cache_for_a_ttl_after_its_reader_opened_it() {
        let u = DirUse::new();
        u.opened("d");
        u.looked_up("d");
        u.closed("d", &read(1, false));
        assert!(!u.wants_attributes("d", Duration::from_secs(60)), "still valid");
        std::thread::sleep(Duration::from_millis(20));
        assert!(u.wants_attributes("d", Duration::from_millis(10)), "expired");
    }
}
