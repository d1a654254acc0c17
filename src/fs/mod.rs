//! `S3Fs`: the filesystem, as async methods named after FUSE operations that return values.
//!
//! Nothing here knows about FUSE: `fuse.rs` calls these methods and turns results into replies,
//! and tests call them directly over the in-memory store.

pub mod attr;
pub mod blocks;
pub mod closing;
pub mod dir_use;
pub mod dir_walk;
mod files;
mod flat;
pub mod inode;
mod listing;
pub mod listing_cache;
mod lookup;
pub mod meta;
mod namespace;
pub mod new_dirs;
mod open_files;
mod pages_ahead;
pub mod parts;
pub mod path;
pub mod prefetch;
mod protection;
pub mod read;
pub mod readdir;
mod setattr;
pub mod siblings;
mod walk_ahead;
pub mod write;
mod xattr;

pub use files::SetAttr;
pub use lookup::RELIST_MAX;
pub use namespace::{RENAME_EXCHANGE, RENAME_NOREPLACE};
pub use walk_ahead::WalkJob;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use lru::LruCache;
use tracing::debug;

use crate::budget::Budget;
use crate::error::{FsError, FsResult};
use crate::store::{ObjectMeta, ObjectStore};
use attr::{Attr, Presentation};
use blocks::BlockCache;
use files::{Handle, OpenFile};
use inode::{InodeTable, Kind, Stat, ROOT_INO};
use listing::DirHandle;
use lookup::{Known, MISS_DIRS};
use meta::Posix;
use pages_ahead::PagesAhead;
use write::UploadConfig;

/// Settings of the filesystem layer.
#[derive(Clone, Debug)]
pub struct FsConfig {
    /// Key prefix mounted as the root (`""` or ending with `/`).
    pub prefix: String,
    /// Owner and modes shown.
    pub presentation: Presentation,
    /// How long listed or looked-up attributes (and absences) are trusted, here and by the kernel.
    pub metadata_ttl: Duration,
    /// Keys per ListObjectsV2 page in `readdir` (S3's maximum and default is 1000).
    pub list_page_size: i32,
    /// Trust listings for attributes: no HEAD per file, so mode/uid/gid/mtime kept in metadata
    /// are not shown (fast `ls -l` on big read-mostly trees).
    pub listing_attributes: bool,
    /// Refuse every change with EROFS.
    pub read_only: bool,
    /// Write path settings.
    pub upload: UploadConfig,
    /// The bucket's immutability scheme (decides which attributes exist).
    pub worm: crate::store::worm::Worm,
    /// Allow shortening GOVERNANCE retention (`--bypass-governance-retention`).
    pub bypass_governance: bool,
    /// Bytes of object data held in memory at most (read cache, read-ahead, write buffers).
    pub max_memory: u64,
}

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
/// Default of `--max-memory`.
pub const DEFAULT_MAX_MEMORY: u64 = 512 * 1024 * 1024;

impl Default for FsConfig {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            presentation: Presentation {
                uid: 0,
                gid: 0,
                file_mode: 0o644,
                dir_mode: 0o755,
            },
            metadata_ttl: Duration::from_secs(1),
            list_page_size: 1000,
            listing_attributes: false,
            read_only: false,
            upload: UploadConfig::default(),
            worm: crate::store::worm::Worm::None,
            bypass_governance: false,
            max_memory: DEFAULT_MAX_MEMORY,
        }
    }
}

/// A looked-up entry: its attributes and how long the kernel may keep them.
#[derive(Clone, Debug)]
pub struct Entry {
    pub attr: Attr,
    pub ttl: Duration,
}

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

/// Filesystem statistics shown by `df`.
#[derive(Clone, Copy, Debug)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
}

/// The filesystem over an object store.
pub struct S3Fs<S: ObjectStore> {
    store: Arc<S>,
    config: FsConfig,
    inodes: Mutex<InodeTable>,
    dirs: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<DirHandle>>>>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    open_files: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<OpenFile>>>>,
    /// POSIX attributes read by HEAD, by key and ETag, and their prefetch.
    prefetch: prefetch::Prefetcher<S>,
    /// Directories that had no marker and were emptied through this mount: they stay until
    /// `rmdir`, as POSIX expects, though S3 no longer has any key for them.
    kept_dirs: Mutex<std::collections::HashSet<String>>,
    /// Recent HEAD (and legal holds) per inode for xattr calls.
    xattr_cache: Mutex<HashMap<u64, xattr::XattrSnapshot>>,
    /// The memory budget, and the block cache that charges it.
    budget: Arc<Budget>,
    blocks: Arc<BlockCache>,
    /// Part buffers for uploads (reused; charged to the budget).
    parts: Arc<parts::PartPool>,
    /// Per file: the ETag whose contents the kernel's page cache holds (kept on reopen only if
    /// the object is still that version).
    page_cache: Mutex<HashMap<u64, String>>,
    /// Complete directory listings, kept for the metadata TTL.
    listings: listing_cache::ListingCache,
    /// Whether directories' readers stat their entries (decides FOPEN_KEEP_CACHE).
    dir_use: dir_use::DirUse,
    /// Directories made through this mount moments ago, empty then.
    new_dirs: new_dirs::NewDirs,
    /// Small-file read-ahead across directories.
    siblings: siblings::Siblings,
    /// Listings read ahead of a tree walk.
    walk: dir_walk::DirWalk,
    /// Directories being listed again by `relist_small_dir`.
    relisting: Mutex<std::collections::HashSet<String>>,
    /// Directories whose listing took more than half the TTL: not listed again for lookups.
    slow_relists: Mutex<std::collections::HashSet<String>>,
    /// Never-listed directories where a lookup missed: the first name that missed, and the
    /// listing cache's generation then.
    lookup_misses: Mutex<LruCache<String, (String, u64)>>,
    next_fh: AtomicU64,
    /// Files whose last changes could not be stored after their last close.
    unstored: closing::Unstored,
    /// This mount's id in `/proc/self/mountinfo` (to tell a last close, see `closing.rs`).
    mount_id: std::sync::OnceLock<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks would already have failed that request; the data
    // (plain maps) stays usable, so keep serving rather than poisoning the whole mount.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: ObjectStore> S3Fs<S> {
    /// A filesystem over `store` with `config`.
    pub fn new(store: Arc<S>, config: FsConfig) -> Self {
        Self::with_disk_cache(store, config, None)
    }

    /// A filesystem over `store` with `config` whose block cache also keeps blocks on `disk`.
    pub fn with_disk_cache(store: Arc<S>, config: FsConfig, disk: Option<blocks::DiskCache>) -> Self {
        let prefetch = prefetch::Prefetcher::new(store.clone(), config.metadata_ttl);
        let budget = Budget::new(config.max_memory);
        let blocks = BlockCache::new(budget.clone(), disk);
        let parts = parts::PartPool::new(budget.clone(), config.upload.part_size);
        let listings = listing_cache::ListingCache::new(config.metadata_ttl);
        let new_dirs = new_dirs::NewDirs::new(config.metadata_ttl);
        Self {
            store,
            config,
            inodes: Mutex::new(InodeTable::new(SystemTime::now())),
            dirs: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            open_files: Mutex::new(HashMap::new()),
            unstored: closing::Unstored::default(),
            mount_id: std::sync::OnceLock::new(),
            prefetch,
            kept_dirs: Mutex::new(std::collections::HashSet::new()),
            xattr_cache: Mutex::new(HashMap::new()),
            budget,
            blocks,
            parts,
            page_cache: Mutex::new(HashMap::new()),
            listings,
            dir_use: dir_use::DirUse::new(),
            new_dirs,
            siblings: siblings::Siblings::default(),
            walk: dir_walk::DirWalk::default(),
            relisting: Mutex::new(std::collections::HashSet::new()),
            slow_relists: Mutex::new(std::collections::HashSet::new()),
            lookup_misses: Mutex::new(LruCache::new(
                std::num::NonZeroUsize::new(MISS_DIRS).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            next_fh: AtomicU64::new(1),
        }
    }

    /// How long the kernel may remember that a name does not exist.
    pub fn negative_ttl(&self) -> Duration {
        self.config.metadata_ttl
    }

    /// The memory budget.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// The block cache.
    pub fn block_cache(&self) -> &Arc<BlockCache> {
        &self.blocks
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    fn fresh_until(&self) -> Instant {
        Instant::now() + self.config.metadata_ttl
    }

    fn entry(&self, ino: u64, stat: &Stat) -> Entry {
        Entry {
            attr: self.config.presentation.attr(ino, stat),
            ttl: self.config.metadata_ttl,
        }
    }

    /// Attributes of an object from a listing (`posix: None`) or a HEAD (`posix: Some`).
    fn file_stat(meta: &ObjectMeta, from_head: bool) -> Stat {
        let posix = from_head.then(|| Posix::from_metadata(&meta.metadata));
        Stat::file(meta.size, meta.last_modified, meta.etag.clone(), posix)
    }

    /// Remember what a HEAD sent at `sent` said of `key`.
    fn remember_posix(&self, key: &str, stat: &Stat, sent: Instant) {
        self.prefetch.remember(key, stat, sent);
    }

    /// POSIX attributes of `key` known for this ETag.
    fn cached_posix(&self, key: &str, etag: &Option<String>) -> Option<Posix> {
        self.prefetch.cached(key, etag)
    }

    fn check_writable(&self) -> FsResult<()> {
        if self.config.read_only {
            return Err(FsError::quiet(libc::EROFS, "the mount is read-only"));
        }
        Ok(())
    }

    fn inode(&self, ino: u64) -> FsResult<inode::Inode> {
        lock(&self.inodes)
            .get(ino)
            .cloned()
            .ok_or_else(|| FsError::new(libc::ESTALE, format!("inode {ino} is no longer known")))
    }

    fn dir_path(&self, ino: u64) -> FsResult<String> {
        let inode = self.inode(ino)?;
        if inode.stat.kind != Kind::Dir {
            return Err(FsError::quiet(
                libc::ENOTDIR,
                format!("{} is not a directory", inode.path),
            ));
        }
        Ok(inode.path)
    }

    fn root_mtime(&self) -> SystemTime {
        lock(&self.inodes)
            .get(ROOT_INO)
            .map_or(SystemTime::UNIX_EPOCH, |i| i.stat.mtime)
    }

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

    /// statfs: S3 has no capacity; report a large, mostly free filesystem so tools don't refuse.
    pub fn statfs(&self) -> StatFs {
        StatFs {
            blocks: 1 << 40,
            bfree: 1 << 40,
            files: 1 << 30,
            ffree: 1 << 30,
            bsize: 4096,
            namelen: 255,
        }
    }
}
