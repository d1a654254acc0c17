//! Files closed into the write cache (`--write-cache`) and not yet in S3: how they get there,
//! and how every other operation meets them.
//!
//! A *pending* file is an [`OpenFile`] that stays in `open_files` after its last close, with its
//! entry in the cache ([`WriteCache`], `write_cache/`). So lookups, listings, `stat` and reads
//! see it as they see a file open for writing (`open_files.rs`), from its staged contents, and
//! a new `open` joins it. Its inode is pinned (one reference of its own) until it leaves.
//! - **close** ([`S3Fs::store_at_close`]): where the synchronous mode uploads, the file's
//!   contents and attributes are written to a new entry and synced, the older entry of the file
//!   removed, and the file queued. A file over `--write-cache-max-file`, a full cache or a cache
//!   that cannot be written (disk full) means the synchronous upload instead: never a lie.
//! - **upload** ([`S3Fs::upload_pending`], `--write-cache-uploads` at once): from a private
//!   copy of the entry (its CRC checked again), holding the file's upload gate but not its
//!   lock, so readers and writers never wait for the network; only once no writer holds the
//!   file (its next close makes a new entry): so only versions some close ended are stored,
//!   never one in the middle of a write. The entry is removed once the server confirmed the
//!   object (its checksum is checked by the server). A failure that may pass (timeout,
//!   unreachable, 5xx) retries after 1 s, doubling up to a minute; a lasting one (access denied,
//!   retention refusing the overwrite, bucket gone) moves the contents to `recovery/` and
//!   reports the file like any unstored change (ERROR line, metric, `fsync` of the path fails).
//! - **fsync** of the file uploads it now; `fsync` of a directory (`sync DIR`) uploads every
//!   pending file under it; unmount waits for the cache to empty ([`S3Fs::drain`]).
//! - **Later changes** apply in order: a write, `truncate` or user-metadata change makes a new
//!   entry; `chmod`, `chown` and `utimes` one written by the upload that follows; `rm` removes the entry (and the object); `mv` of a file never
//!   stored moves its entry, of one stored before uploads it first, then copies; a directory's
//!   `mv` uploads the pending files under it first; `rmdir` of a directory holding one is
//!   `ENOTEMPTY`; retention and legal-hold attributes upload it first.
//! - **After a crash** the next mount reinstates each file left in the cache as pending and
//!   uploads it ([`S3Fs::attach_write_cache`]).
//!
//! This file: the types, reinstating at mount, the close ([`S3Fs::store_at_close`], a new
//! entry) and a file's leaving; `upload.rs` the uploads and their outcomes; `sync.rs` what
//! waits for them (`fsync` of a directory, unmount) and what other operations ask of them.

mod sync;
mod upload;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::error::{FsError, FsResult};
use crate::fs::files::OpenFile;
use crate::fs::inode::Stat;
use crate::fs::meta::Posix;
use crate::fs::write::Staged;
use crate::fs::write_cache::{entry, Leftover, WriteCache};
use crate::fs::{lock, path, S3Fs};
use crate::store::ObjectStore;

/// Retry delay after the first failure that may pass, doubled each time up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// How long the changes of attributes to a waiting file may keep coming before its upload.
const ATTRIBUTES_SETTLE: Duration = Duration::from_millis(20);

/// Whether an upload failed in a way another try will not change.
fn lasting(e: &FsError) -> bool {
    matches!(
        e.errno,
        libc::EACCES
            | libc::EPERM
            | libc::ENOENT
            | libc::EINVAL
            | libc::EEXIST
            | libc::ENOTSUP
            | libc::EFBIG
            | libc::ENAMETOOLONG
            | libc::EROFS
            | libc::ESTALE
    )
}

type Shared = Arc<tokio::sync::Mutex<OpenFile>>;

/// Held by every upload of a file while its requests are in flight, so that uploads of one file
/// reach S3 in order; taken while holding the file's lock, never the other way round. The
/// background upload holds only this while its requests are in flight and leaves what it came
/// to here, for whoever takes the gate next to apply.
#[derive(Default)]
pub struct UploadGate {
    finished: Option<Finished>,
}

/// What an upload from the write cache came to.
struct Finished {
    seq: u64,
    header: entry::Header,
    result: FsResult<Option<String>>,
}

pub(super) type GateGuard = tokio::sync::OwnedMutexGuard<UploadGate>;

/// Makes the cache's removals durable when dropped (the end of a drain).
struct SyncOnDrop<'a>(&'a Arc<WriteCache>);

impl Drop for SyncOnDrop<'_> {
    fn drop(&mut self) {
        self.0.sync_removals();
    }
}

impl<S: ObjectStore> S3Fs<S> {
    /// Use `cache` for closes from now on, reinstate the files an earlier mount left in it, and
    /// start the background uploads. Must run inside the runtime.
    pub fn attach_write_cache(self: &Arc<Self>, cache: WriteCache, leftovers: Vec<Leftover>) {
        let cache = Arc::new(cache);
        if self.write_cache.set(cache.clone()).is_err() {
            return;
        }
        let n = leftovers.len();
        let mut reinstated = 0;
        for l in leftovers {
            let key = l.header.key.clone();
            let pending = l.pending.clone();
            match self.reinstate(l) {
                Ok(ino) => {
                    reinstated += 1;
                    cache.queue(ino);
                }
                Err(why) => {
                    cache.leave(&pending);
                    warn!(
                        key = key.as_str(),
                        "write cache: an earlier mount's file is left as it is: {why}"
                    );
                }
            }
        }
        if n > 0 {
            info!(
                files = reinstated,
                dir = %cache.dir().display(),
                "write cache: {reinstated} files an earlier mount closed and did not upload are uploaded now"
            );
        }
        let (syncer, fs) = (cache.clone(), Arc::downgrade(self));
        tokio::spawn(async move {
            // Removed entries are durably gone soon after (see `WriteCache::remove`).
            while fs.strong_count() > 0 {
                tokio::time::sleep(super::write_cache::REMOVALS_SYNCED_WITHIN).await;
                syncer.sync_removals();
            }
        });
        for _ in 0..cache.config().uploads.max(1) {
            let fs = Arc::downgrade(self);
            let cache = cache.clone();
            tokio::spawn(async move {
                loop {
                    let ino = cache.next().await;
                    let Some(fs) = fs.upgrade() else { break };
                    let _ = fs.upload_pending(ino).await;
                }
            });
        }
    }

    /// An entry an earlier mount left becomes a pending file again.
    fn reinstate(&self, l: Leftover) -> Result<u64, String> {
        let rel = l
            .header
            .key
            .strip_prefix(&self.config.prefix)
            .filter(|r| {
                !r.is_empty()
                    && r.split('/')
                        .all(|s| !s.is_empty() && s != "." && s != ".." && s.len() <= 255)
            })
            .ok_or_else(|| {
                format!(
                    "its key is not a file under this mount's prefix {:?}; mount that prefix to upload it ({})",
                    self.config.prefix,
                    l.path.display()
                )
            })?
            .to_string();
        let mut file = tempfile::tempfile_in(&self.config.upload.staging_dir)
            .map_err(|e| format!("cannot stage in {}: {e}", self.config.upload.staging_dir.display()))?;
        let header = entry::read(&l.path, Some(&mut file as &mut dyn Write))
            .map_err(|e| format!("cannot read {}: {e}", l.path.display()))?;
        let staged = Staged::adopt(file, header.size, self.config.upload.part_size, self.parts.clone());
        let stored = Posix::from_metadata(&header.metadata);
        let stat = Stat::file(
            header.size,
            stored.mtime.unwrap_or_else(SystemTime::now),
            None,
            Some(stored.clone()),
        );
        let ino = {
            let mut table = lock(&self.inodes);
            let ino = table.upsert(&rel, stat, self.fresh_until());
            table.add_lookup(ino);
            ino
        };
        let mut of = OpenFile::new(staged, header.metadata, header.content_type);
        of.handles = 0;
        of.posix = Posix {
            mtime: stored.mtime,
            ctime: stored.ctime,
            ..Posix::default()
        };
        of.pending = Some(l.pending);
        of.lineage = header.lineage;
        of.pinned = true;
        of.journaled = true;
        let replaced = lock(&self.open_files).insert(ino, Arc::new(tokio::sync::Mutex::new(of)));
        if let Some(old) = replaced {
            // Two files left for one name (a crash inside a rename over a waiting file): the
            // later entry wins, as the rename meant.
            if let (Ok(g), Some(cache)) = (old.try_lock(), self.write_cache.get()) {
                if let Some(p) = &g.pending {
                    cache.remove(p);
                }
            }
            self.forget(ino, 1);
        }
        Ok(ino)
    }

    /// The write cache, if the mount has one.
    pub(super) fn write_cache(&self) -> Option<&Arc<WriteCache>> {
        self.write_cache.get()
    }

    /// Store an open file at its writer's last close (or a change to a pending file): into the
    /// write cache when it takes the file, else uploaded now.
    pub(super) async fn store_at_close(&self, ino: u64, of: &mut OpenFile) -> FsResult<()> {
        if !of.staged.dirty || of.unlinked {
            return Ok(());
        }
        if let Some(cache) = self.write_cache.get() {
            if of.pending.is_some() && of.journaled {
                cache.queue(ino);
                return Ok(());
            }
            if cache.takes(of.staged.size()) {
                match self.journal(cache, ino, of, None).await {
                    Ok(()) => return Ok(()),
                    Err(e) => warn!(
                        errno = e.errno,
                        "write cache: cannot keep the file in {} ({}); uploading it now instead",
                        cache.dir().display(),
                        e.message
                    ),
                }
            }
        }
        self.upload(ino, of).await
    }

    /// Write the file's contents and attributes as a new entry (under `rel` instead of its
    /// path when given), synced, and queue the file.
    pub(super) async fn journal(
        &self,
        cache: &Arc<WriteCache>,
        ino: u64,
        of: &mut OpenFile,
        rel: Option<&str>,
    ) -> FsResult<()> {
        let (mut key, opts, _) = self.upload_target(ino, of)?;
        if let Some(rel) = rel {
            key = path::object_key(&self.config.prefix, rel);
        }
        let file = of.staged.whole(self.store.as_ref()).await?;
        if of.lineage == 0 {
            of.lineage = cache.next_id();
        }
        let header = entry::Header {
            lineage: of.lineage,
            seq: cache.next_id(),
            key,
            content_type: opts.content_type,
            metadata: opts.metadata,
            size: of.staged.size(),
        };
        let p = cache.add(&header, &file).map_err(|e| {
            FsError::new(
                e.raw_os_error().unwrap_or(libc::EIO),
                format!("cannot write {}: {e}", cache.dir().display()),
            )
        })?;
        if let Some(old) = of.pending.replace(p) {
            cache.remove(&old);
        }
        // Kept: like a stored version, this one has nothing earlier left to report (a change
        // that could not be stored was reported to its caller, and this entry supersedes it).
        if let Ok(inode) = self.inode(ino) {
            self.unstored.clear(&inode.path);
        }
        if !of.pinned {
            lock(&self.inodes).add_lookup(ino);
            of.pinned = true;
        }
        of.journaled = true;
        of.written = false;
        of.failed = false;
        cache.queue(ino);
        Ok(())
    }

    /// A file left the write cache (uploaded, deleted, refused): when no handle holds it any
    /// more it is an open file no longer, and its inode is unpinned.
    pub(super) async fn retire(&self, ino: u64, shared: &Shared, of: &mut OpenFile) {
        if of.handles > 0 || of.pending.is_some() {
            return;
        }
        if of.staged.dirty && !of.unlinked && self.write_cache.get().is_some() {
            // Changed since its last entry, and nobody will close it again: a new entry.
            if let Err(e) = self.store_at_close(ino, of).await {
                warn!(ino, "write cache: cannot keep the last change: {}", e.message);
            }
            if of.pending.is_some() {
                return;
            }
        }
        of.staged.abandon_stream(&self.store).await;
        {
            let mut open = lock(&self.open_files);
            if open.get(&ino).is_some_and(|cur| Arc::ptr_eq(cur, shared)) {
                open.remove(&ino);
            }
        }
        if of.pinned {
            of.pinned = false;
            self.forget(ino, 1);
        }
    }
}
