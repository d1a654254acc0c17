//! Open directories: `opendir`, `readdir`, `readdirplus` and `releasedir`, over a listing read
//! through `listing.rs`.
//!
//! - **opendir** starts a listing, or takes a complete one from the listing cache. The kernel
//!   may keep its own cached entries of the directory (`FOPEN_KEEP_CACHE`) only when they were
//!   filled from that same kept listing and the directory's readers do not stat their entries
//!   (`dir_use.rs`); an open waits for a listing ahead of a tree walk under way (`dir_walk.rs`).
//! - **Offsets**: offset `n` means "after the n-th entry" and stays so for the handle's life
//!   (offsets 1 and 2 are `.` and `..`; the listing's entries never shrink). A page is listed
//!   only when the kernel asks past what has been listed, and a reply with entries to give
//!   does not wait for another LIST unless the next page is already here.
//! - **readdir** gives at most [`PLAIN_MAX`] entries a reply, so a reader that stats gets the
//!   rest with READDIRPLUS.
//! - **readdirplus** gives attributes the kernel may keep only where `lookup` would answer
//!   without a request (the rules, and why, are on [`S3Fs::readdirplus`]); files open for
//!   writing get their writers' size without a TTL. Every entry given but `.` and `..` is a
//!   lookup.
//! - **releasedir** tells `dir_use.rs` what the handle saw (how many entries were listed,
//!   whether the kernel read any, whether READDIRPLUS went on past the first batch), which
//!   decides whether the next `opendir` lets the kernel keep its cache.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::debug;

use super::inode::{Kind, Stat};
use super::listing::DirHandle;
use super::lookup::Known;
use super::pages_ahead::PagesAhead;
use super::{dir_use, listing_cache, lock, path, Entry, S3Fs};
use crate::error::{FsError, FsResult};
use crate::store::ObjectStore;

/// Entries in the first READDIRPLUS reply of a directory, at most: the kernel makes an inode of
/// each, which only a reader that stats uses (see [`S3Fs::readdirplus`]).
const PLUS_FIRST_MAX: usize = 8;
/// Directories in the first READDIRPLUS reply of a directory, at most, besides those entries: a
/// walker (`find`, `du`, `rsync`) descends into each, and an entry given with its attributes
/// spares that lookup, a round trip that costs ten times the kernel's inode.
const PLUS_FIRST_DIRS: usize = 256;
/// Entries whose prefetched metadata a READDIRPLUS reply waits for, at most (a reply to `ls`
/// holds about 3 000 with its 1 MiB buffer; see [`S3Fs::readdirplus`]).
const PLUS_WAIT_MAX: usize = 4096;
/// Entries in one plain READDIR reply, at most: a reader that stats (`ls -l`) looks these up,
/// and the kernel then asks for the rest with READDIRPLUS (see [`S3Fs::readdirplus`]) rather
/// than getting nearly all of a directory in one reply to `ls`'s 1 MiB buffer.
const PLAIN_MAX: usize = 1000;

/// Where readdir puts entries; FUSE's reply in production, a `Vec` in tests.
pub trait DirReplier {
    /// Add an entry; `offset` is the offset of the *next* entry. Returns true when full.
    fn add(&mut self, ino: u64, offset: u64, kind: Kind, name: &str) -> bool;
}

/// Where readdirplus puts entries with their attributes. Every entry added but `.` and `..` is a
/// lookup the kernel will forget: the caller counts it. An entry whose `ttl` is zero carries
/// listing attributes the kernel must not use (it looks the name up before any `stat`).
pub trait DirPlusReplier {
    /// Add an entry; `offset` is the offset of the *next* entry. Returns true when full (the
    /// entry was not added).
    fn add(&mut self, offset: u64, name: &str, entry: &Entry) -> bool;
}

/// What a READDIRPLUS reply still takes (see [`S3Fs::readdirplus`]).
struct PlusRoom {
    /// Entries (but `.`, `..` and the directories `dirs` counts).
    entries: usize,
    /// Directories with their attributes.
    dirs: usize,
    /// Entries without attributes.
    unknown: usize,
    /// When the reply started (what "fresh" is measured against).
    now: Instant,
}

/// An entry on its way to the kernel; `offset` is the offset of the next one.
struct DirItem<'a> {
    ino: u64,
    offset: u64,
    kind: Kind,
    name: &'a str,
}

/// An opened directory handle.
#[derive(Clone, Copy, Debug)]
pub struct DirOpened {
    pub fh: u64,
    /// The kernel's cached entries of the directory are those this handle would give: it may
    /// keep them (`FOPEN_KEEP_CACHE`) instead of asking for them again.
    pub keep_cache: bool,
}

impl<S: ObjectStore> S3Fs<S> {
    /// opendir: start a listing of directory `ino`; returns the handle.
    pub async fn opendir(&self, ino: u64) -> FsResult<DirOpened> {
        let path = self.dir_path(ino)?;
        let mut handle = self.dir_handle(ino, path);
        handle.for_kernel = true;
        if !self.config.listing_attributes {
            self.prefetch.start_listing(ino);
        }
        self.walk.wait(&handle.path).await;
        let mut keep_cache = false;
        if let Some(listing_cache::Opened {
            listed: kept,
            in_kernel,
            until,
        }) = self.listings.open(&handle.path)
        {
            keep_cache = in_kernel && !self.dir_use.wants_attributes(&handle.path, self.config.metadata_ttl);
            debug!(
                dir = handle.path.as_str(),
                entries = kept.len(),
                "listing from the cache"
            );
            if !self.config.listing_attributes {
                let prefix = path::dir_prefix(&self.config.prefix, &handle.path);
                self.prefetch.listed_shared(ino, &prefix, &kept);
            }
            self.adopt_listed(&mut handle, &kept, Some(until));
            handle.done = true;
            self.add_open_files(&mut handle);
        } else {
            self.walk.relisted(&handle.path);
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dir_use.opened(&handle.path);
        lock(&self.dirs).insert(fh, Arc::new(tokio::sync::Mutex::new(handle)));
        Ok(DirOpened { fh, keep_cache })
    }

    /// readdir: entries of handle `fh` from `offset` on, listing more pages only when needed.
    pub async fn readdir(&self, fh: u64, offset: u64, out: &mut dyn DirReplier) -> FsResult<()> {
        self.read_dir(fh, offset, false, |_, e| out.add(e.ino, e.offset, e.kind, e.name))
            .await
    }

    /// readdirplus: as [`S3Fs::readdir`], with each entry's attributes, so that `ls -l` needs
    /// no lookup per name. A name `lookup` would answer without a request gets those
    /// attributes for the metadata TTL; any other (a file known only from its listing, whose
    /// mode, owner and mtime need a HEAD) gets its listing's with no TTL, so the kernel looks it
    /// up before it is used. Each entry but `.` and `..` counts as a lookup.
    ///
    /// The kernel makes an inode of every entry it gets so (2-3 µs each), which an entry without
    /// attributes gives it nothing for. It asks for READDIRPLUS at the start of a directory,
    /// and further on only if it used the attributes it got or looked names up (`ls -l`, not
    /// `ls -f` or `find`), so:
    /// - a reply ends at its first entry without attributes, and the first reply after
    ///   [`PLUS_FIRST_MAX`] entries other than directories (and [`PLUS_FIRST_DIRS`]
    ///   directories): the kernel reads on with plain READDIR unless its reader stats;
    /// - further on, the reader stats: the reply first waits for the directory's metadata
    ///   prefetch to bring the next [`PLUS_WAIT_MAX`] names' attributes, as their lookups would
    ///   (one reply instead of a lookup per name).
    pub async fn readdirplus(&self, fh: u64, offset: u64, out: &mut dyn DirPlusReplier) -> FsResult<()> {
        let (path, prefetched) = {
            let handle = self.dir_of(fh)?;
            let dir = handle.lock().await;
            let prefetched = if offset > 0 && !self.config.listing_attributes {
                self.prefetched_keys(&dir, offset)
            } else {
                Vec::new()
            };
            (dir.path.clone(), prefetched)
        };
        for key in prefetched {
            self.prefetch.wait(&key).await;
        }
        let mut room = PlusRoom {
            entries: if offset == 0 { PLUS_FIRST_MAX } else { usize::MAX },
            dirs: if offset == 0 { PLUS_FIRST_DIRS } else { 0 },
            unknown: 1,
            now: Instant::now(),
        };
        let open = self.open_stats(&path).await;
        self.read_dir(fh, offset, true, |dir, e| self.add_plus(dir, &e, &open, &mut room, out))
            .await
    }

    /// The directory handle `fh`.
    fn dir_of(&self, fh: u64) -> FsResult<Arc<tokio::sync::Mutex<DirHandle>>> {
        lock(&self.dirs)
            .get(&fh)
            .cloned()
            .ok_or_else(|| FsError::new(libc::EBADF, format!("no directory handle {fh}")))
    }

    /// The keys of the files of `dir` from `offset` on (at most [`PLUS_WAIT_MAX`] entries, those
    /// listed so far), whose prefetched metadata a reply waits for. Only a lookup of a file
    /// starts the directory's prefetch: the kernel also asks for READDIRPLUS after lookups of
    /// subdirectories (`find`), which need no HEAD of every file.
    fn prefetched_keys(&self, dir: &DirHandle, offset: u64) -> Vec<String> {
        let from = offset.saturating_sub(2) as usize;
        dir.entries
            .iter()
            .skip(from)
            .take(PLUS_WAIT_MAX)
            .filter(|e| e.kind == Kind::File)
            .map(|e| path::object_key(&self.config.prefix, &path::join(&dir.path, &e.name)))
            .collect()
    }

    /// Add `e` of directory `dir` to `out` with its attributes (see [`S3Fs::readdirplus`]);
    /// `open`: the files open for writing (whose size is their writers', given without a TTL);
    /// `room`: what this reply still takes. Returns true when full.
    fn add_plus(
        &self,
        dir: &str,
        e: &DirItem<'_>,
        open: &HashMap<u64, Stat>,
        room: &mut PlusRoom,
        out: &mut dyn DirPlusReplier,
    ) -> bool {
        let mut table = lock(&self.inodes);
        if e.name == "." || e.name == ".." {
            // Never linked by the kernel; only the type matters.
            let stat = Stat::dir(SystemTime::UNIX_EPOCH);
            let attr = self.config.presentation.attr(e.ino, &stat);
            return out.add(
                e.offset,
                e.name,
                &Entry {
                    attr,
                    ttl: Duration::ZERO,
                },
            );
        }
        // Full unless a directory may still ride on `room.dirs` (checked before the name's
        // attributes are looked at, and again below once they say whether it is one).
        if room.entries == 0 && (e.kind != Kind::Dir || room.dirs == 0) {
            return true;
        }
        let rel = path::join(dir, e.name);
        let open_here = if open.is_empty() {
            None
        } else {
            table
                .by_path(&rel)
                .and_then(|i| open.get(&i.ino).map(|s| (i.ino, s.clone())))
        };
        let known = match open_here {
            // Open for writing: its writers' size, which the kernel must not keep.
            Some((ino, stat)) => Err((ino, stat)),
            None => match self.known(
                &mut table,
                &rel,
                || path::object_key(&self.config.prefix, &rel),
                room.now,
            ) {
                Known::Complete(ino, stat) => Ok((ino, stat)),
                Known::Listed(_) | Known::Stale => match table.by_path(&rel) {
                    Some(i) => Err((i.ino, i.stat.clone())),
                    None => {
                        // Forgotten since it was listed: known again, as already expired.
                        let stat = match e.kind {
                            Kind::Dir => Stat::dir(SystemTime::UNIX_EPOCH),
                            _ => Stat::file(0, SystemTime::UNIX_EPOCH, None, None),
                        };
                        Err((table.upsert(&rel, stat.clone(), Instant::now()), stat))
                    }
                },
            },
        };
        // Ok: attributes to keep for the TTL; Err: attributes not to be kept.
        let as_dir = room.dirs > 0 && matches!(&known, Ok((_, stat)) if stat.kind == Kind::Dir);
        let (ino, stat, ttl) = match &known {
            _ if room.entries == 0 && !as_dir => return true,
            Ok((ino, stat)) => (*ino, stat, self.config.metadata_ttl),
            Err(_) if room.unknown == 0 => return true,
            Err((ino, stat)) => (*ino, stat, Duration::ZERO),
        };
        let attr = self.config.presentation.attr(ino, stat);
        let full = out.add(e.offset, e.name, &Entry { attr, ttl });
        if !full {
            table.add_lookup(ino);
            if as_dir {
                room.dirs -= 1;
            } else {
                room.entries -= 1;
            }
            if known.is_err() {
                room.unknown -= 1;
            }
        }
        full
    }

    /// The entries of handle `fh` from `offset` on, each given to `emit` with the directory's
    /// path until it returns true (full); `plus`: for READDIRPLUS.
    async fn read_dir<F>(&self, fh: u64, offset: u64, plus: bool, mut emit: F) -> FsResult<()>
    where
        F: FnMut(&str, DirItem<'_>) -> bool,
    {
        let handle = self.dir_of(fh)?;
        let mut dir = handle.lock().await;
        dir.served = true;
        if plus && offset > 0 {
            dir.plus_continued = true;
        }
        let mut offset = offset;
        let dot = |name, offset| DirItem {
            ino: dir.ino,
            offset,
            kind: Kind::Dir,
            name,
        };
        if offset == 0 {
            if emit(&dir.path, dot(".", 1)) {
                return Ok(());
            }
            offset = 1;
        }
        if offset == 1 {
            // The parent's number is not needed by the kernel; the directory's own is fine.
            if emit(&dir.path, dot("..", 2)) {
                return Ok(());
            }
            offset = 2;
        }
        let mut added = 0;
        loop {
            let mut i = (offset - 2) as usize;
            while let Some(e) = dir.entries.get(i) {
                if !plus && added == PLAIN_MAX {
                    return Ok(());
                }
                let item = DirItem {
                    ino: e.ino,
                    offset: i as u64 + 3,
                    kind: e.kind,
                    name: &e.name,
                };
                if emit(&dir.path, item) {
                    return Ok(());
                }
                added += 1;
                i += 1;
            }
            offset = i as u64 + 2;
            // With entries to give, the kernel gets them now rather than after another LIST (a
            // big buffer would otherwise wait for several pages); a page already here is added.
            let next_here = dir.next_page.as_ref().is_some_and(PagesAhead::ready);
            if dir.done || (added > 0 && !next_here) {
                return Ok(());
            }
            self.list_next_page(&mut dir).await?;
        }
    }

    /// releasedir: drop handle `fh`.
    pub fn releasedir(&self, fh: u64) {
        let Some(handle) = lock(&self.dirs).remove(&fh) else {
            return;
        };
        if let Ok(dir) = handle.try_lock() {
            let read = dir_use::Read {
                entries: dir.entries.len(),
                plus_continued: dir.plus_continued,
                served: dir.served,
            };
            self.dir_use.closed(&dir.path, &read);
        };
    }
}
