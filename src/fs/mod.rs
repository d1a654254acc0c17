//! `S3Fs`: the filesystem, as async methods named after FUSE operations that return values.
//!
//! Nothing here knows about FUSE: `fuse.rs` calls these methods and turns results into replies,
//! and tests call them directly over the in-memory store.
//!
//! This file is the core: [`S3Fs`] with its state and constructor, [`FsConfig`], [`Entry`],
//! `statfs`, and the small helpers every operation uses (`lock`, `entry`, `inode`, `dir_path`,
//! `file_stat`, ...). The operations are `impl S3Fs` blocks in the submodules, each beside the
//! state and mechanics it drives:
//!
//! - **Names and attributes**: `lookup.rs` (lookup, getattr, forget) over `inode.rs` (inode
//!   numbers ↔ paths, freshness, negative entries), `attr.rs` (what `stat` shows), `meta.rs`
//!   (POSIX attributes in user metadata), `prefetch.rs` (HEADs ahead of `ls -l`; `meta_disk.rs` keeps what they said), `new_dirs.rs`
//!   (names in directories made moments ago are absent) and `path.rs` (which keys can be names;
//!   paths ↔ keys).
//! - **Directories**: `dirs.rs` (opendir, readdir, readdirplus, releasedir) reads listings
//!   through `listing.rs` (a handle's pages into entries and inodes), built on `readdir.rs`
//!   (pages → names, its pitfalls), `pages_ahead.rs` (pages fetched ahead), `listing_cache.rs`
//!   (complete listings kept for the TTL) and `dir_use.rs` (whether the kernel keeps its cache).
//! - **Tree walks**: `walk_ahead.rs` (claims and runs listings ahead of `find`, `du`, `cp -r`),
//!   by the rules of `dir_walk.rs`, flat where it can (`flat.rs`).
//! - **Open files**: `files.rs` (open/create), `file_io.rs` (read, write) with `read/`
//!   (read-ahead), `blocks/` (block cache, its disk tier), `siblings.rs` (small-file read-ahead
//!   across a directory), `write/` (staging and upload) and `parts.rs` (part buffers); `closing.rs` (flush, fsync,
//!   release: which close uploads, changes that could not be stored), `pending/` and
//!   `write_cache/` (files closed into `--write-cache` and uploaded behind); `setattr.rs` (chmod,
//!   chown, utimes, truncate); `open_files.rs` shows files open for writing to lookups and
//!   listings.
//! - **The namespace**: `namespace.rs` (unlink, mkdir, rmdir, rename, symlink, readlink, link).
//! - **Extended attributes**: `xattr/` (user metadata, object facts), `protection.rs` (WORM
//!   changes: Object Lock and IBM retention, legal holds, and their checks).

pub mod attr;
pub mod blocks;
mod bucket_policy;
pub mod closing;
pub mod dir_use;
pub mod dir_walk;
mod dirs;
mod file_io;
mod files;
mod flat;
pub mod inode;
mod listing;
pub mod listing_cache;
mod lookup;
pub mod meta;
pub mod meta_disk;
mod namespace;
pub mod new_dirs;
mod open_files;
mod pages_ahead;
pub mod parts;
pub mod path;
mod pending;
pub mod prefetch;
mod protection;
pub mod read;
pub mod readdir;
mod rename;
mod setattr;
pub mod siblings;
pub mod unstored;
mod walk_ahead;
pub mod write;
pub mod write_cache;
mod xattr;

pub use dirs::{DirOpened, DirPlusReplier, DirReplier};
pub use files::SetAttr;
pub use lookup::RELIST_MAX;
pub use rename::{RENAME_EXCHANGE, RENAME_NOREPLACE};
pub use walk_ahead::WalkJob;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use lru::LruCache;

use crate::budget::Budget;
use crate::error::{FsError, FsResult};
use crate::store::{ObjectMeta, ObjectStore};
use attr::{Attr, Presentation};
use blocks::BlockCache;
use files::{Handle, OpenFile};
use inode::{InodeTable, Kind, Stat, ROOT_INO};
use listing::DirHandle;
use lookup::MISS_DIRS;
use meta::Posix;
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
    /// HEADs in flight at once for `ls -l`'s metadata (the mount's `--max-connections`).
    pub metadata_concurrency: usize,
}

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
            metadata_concurrency: prefetch::CONCURRENCY,
        }
    }
}

/// A looked-up entry: its attributes and how long the kernel may keep them.
#[derive(Clone, Debug)]
pub struct Entry {
    pub attr: Attr,
    pub ttl: Duration,
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
    unstored: unstored::Unstored,
    /// This mount's id in `/proc/self/mountinfo` (to tell a last close, see `closing.rs`).
    mount_id: std::sync::OnceLock<u64>,
    /// What the kernel adds to this filesystem's inode numbers (a bucket of an account mount
    /// has its slot in the high bits; 0 otherwise), to find its files in `/proc/PID/fdinfo`.
    kernel_ino_base: std::sync::OnceLock<u64>,
    /// The bucket's immutability scheme: `config.worm` at mount, then what `setfattr` of a
    /// retention policy made it (see `bucket_policy.rs`).
    worm: Mutex<crate::store::worm::Worm>,
    /// What HEAD bucket and `GET ?location` said of the bucket (root xattrs), read once.
    facts: tokio::sync::OnceCell<crate::store::buckets::BucketFacts>,
    /// `--write-cache`: where closed files wait for their upload (see `pending/`).
    write_cache: std::sync::OnceLock<Arc<write_cache::WriteCache>>,
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
        let budget = Budget::new(config.max_memory);
        Self::with_budget(store, config, disk, budget)
    }

    /// A filesystem whose memory counts against `budget`, shared with others (the buckets of an
    /// account mount share one `--max-memory`).
    pub fn with_budget(store: Arc<S>, config: FsConfig, disk: Option<blocks::DiskCache>, budget: Arc<Budget>) -> Self {
        let prefetch =
            prefetch::Prefetcher::with_concurrency(store.clone(), config.metadata_ttl, config.metadata_concurrency);
        let blocks = BlockCache::new(budget.clone(), disk);
        let parts = parts::PartPool::new(budget.clone(), config.upload.part_size);
        let listings = listing_cache::ListingCache::new(config.metadata_ttl);
        let new_dirs = new_dirs::NewDirs::new(config.metadata_ttl);
        Self {
            worm: Mutex::new(config.worm.clone()),
            facts: tokio::sync::OnceCell::new(),
            write_cache: std::sync::OnceLock::new(),
            store,
            config,
            inodes: Mutex::new(InodeTable::new(SystemTime::now())),
            dirs: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            open_files: Mutex::new(HashMap::new()),
            unstored: unstored::Unstored::default(),
            mount_id: std::sync::OnceLock::new(),
            kernel_ino_base: std::sync::OnceLock::new(),
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

    /// Keep the POSIX attributes HEADs and uploads tell in `dir`, for this and later mounts of
    /// `bucket` at `endpoint` (see `meta_disk.rs`); returns how many an earlier mount kept.
    pub fn keep_metadata_in(&self, dir: &std::path::Path, endpoint: &str, bucket: &str) -> std::io::Result<usize> {
        let (disk, records) = meta_disk::MetaDisk::open(dir, endpoint, bucket)?;
        let n = records.len();
        self.prefetch.attach_disk(Arc::new(disk), records);
        Ok(n)
    }

    /// Write out what the metadata cache on disk has buffered (at unmount).
    pub fn flush_metadata(&self) {
        self.prefetch.flush_disk();
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

    /// statfs: S3 has no capacity; report a large, mostly free filesystem so tools don't refuse.
    pub fn statfs(&self) -> StatFs {
        StatFs::unlimited()
    }
}

impl StatFs {
    /// S3 has no capacity: a large, mostly free filesystem, so tools don't refuse.
    pub fn unlimited() -> Self {
        Self {
            blocks: 1 << 40,
            bfree: 1 << 40,
            files: 1 << 30,
            ffree: 1 << 30,
            bsize: 4096,
            namelen: 255,
        }
    }
}
