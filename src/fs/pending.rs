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
//! - **upload** ([`S3Fs::upload_pending`], `--write-cache-uploads` at once): the staged
//!   contents under the file's lock, only once no writer holds it (its next close makes a new
//!   entry): so only versions some close ended are stored, never one in the middle of a write.
//!   The entry is removed once the server confirmed the object (its checksum is checked by the
//!   store). A failure that may pass (timeout, unreachable, 5xx) retries after 1 s, doubling up to
//!   a minute; a lasting one (access denied, retention refusing the overwrite, bucket gone) moves
//!   the contents to `recovery/` and reports the file like any unstored change (ERROR line,
//!   metric, `fsync` of the path fails).
//! - **fsync** of the file uploads it now; `fsync` of a directory (`sync DIR`) uploads every
//!   pending file under it; unmount waits for the cache to empty ([`S3Fs::drain`]).
//! - **Later changes** apply in order: a write, `chmod`, `utimes`, `truncate` or user-metadata
//!   change makes a new entry; `rm` removes the entry (and the object); `mv` of a file never
//!   stored moves its entry, of one stored before uploads it first, then copies; a directory's
//!   `mv` uploads the pending files under it first; `rmdir` of a directory holding one is
//!   `ENOTEMPTY`; retention and legal-hold attributes upload it first.
//! - **After a crash** the next mount reinstates each file left in the cache as pending and
//!   uploads it ([`S3Fs::attach_write_cache`]).

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use std::time::{Duration, Instant, SystemTime};

use futures::stream::{self, StreamExt};
use tracing::{error, info, warn};

use super::files::OpenFile;
use super::inode::Stat;
use super::meta::Posix;
use super::write::Staged;
use super::write_cache::{entry, Copy, Leftover, Pending, WriteCache};
use super::{lock, path, S3Fs};
use crate::error::{FsError, FsResult};
use crate::store::{ObjectStore, PutOptions};

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

    /// Take `of`'s upload gate, waiting for an upload of it in flight, with what that upload
    /// came to applied to `of` first. Called while holding `of`'s lock.
    pub(super) async fn take_gate(&self, ino: u64, of: &mut OpenFile) -> GateGuard {
        let mut gate = of.upload_gate.clone().lock_owned().await;
        if let Some(f) = gate.finished.take() {
            let _ = self.apply_finished(ino, of, f);
        }
        gate
    }

    /// Apply the outcome of an upload from the write cache to the file; the error, when the
    /// entry it uploaded is still the file's latest.
    fn apply_finished(&self, ino: u64, of: &mut OpenFile, f: Finished) -> Option<FsError> {
        let cache = self.write_cache.get()?.clone();
        let current = of.pending.as_ref().is_some_and(|p| p.seq == f.seq);
        match f.result {
            Ok(etag) => {
                of.created = false;
                if !current {
                    return None;
                }
                if let Some(p) = of.pending.take() {
                    cache.remove(&p);
                }
                of.attempts = 0;
                if of.journaled && of.handles == 0 {
                    let h = f.header;
                    of.staged.stored_as(&h.key, etag.clone());
                    let posix = Posix::from_metadata(&h.metadata);
                    self.stored(ino, of, &h.key, h.metadata, posix, h.size, etag);
                }
                None
            }
            Err(e) if !current => {
                error!(
                    key = f.header.key.as_str(),
                    errno = e.errno,
                    "write cache: an earlier version could not be stored ({}); a later one is queued",
                    e.message
                );
                None
            }
            Err(e) => {
                let p = of.pending.clone()?;
                Some(self.upload_failed(ino, of, &p, &f.header.key, &e))
            }
        }
    }

    /// The upload of `p` (the file's latest entry) failed with `e`: a failure that may pass is
    /// retried later; a lasting one moves the contents to `recovery/` and is reported.
    fn upload_failed(&self, ino: u64, of: &mut OpenFile, p: &Pending, key: &str, e: &FsError) -> FsError {
        of.failed = false;
        let Some(cache) = self.write_cache.get().cloned() else {
            return e.clone();
        };
        if !lasting(e) {
            let delay = FIRST_RETRY.saturating_mul(1 << of.attempts.min(6)).min(MAX_RETRY);
            of.attempts += 1;
            warn!(
                key,
                errno = e.errno,
                attempt = of.attempts,
                "write cache: upload failed ({}); kept in the cache, trying again in {} s",
                e.message,
                delay.as_secs()
            );
            cache.queue_later(ino, delay);
            return e.clone();
        }
        let path = self.inode(ino).map(|i| i.path).unwrap_or_else(|_| key.to_string());
        let kept = match cache.to_recovery(p, key) {
            Ok(dst) => format!("its contents are kept in {}", dst.display()),
            Err(io) => {
                error!("write cache: cannot move the entry of {key} to recovery/: {io}; it stays in the cache");
                format!("its contents stay in {}", cache.dir().display())
            }
        };
        error!(
            key,
            errno = e.errno,
            "write cache: the server refused {key} for good ({}); {kept}",
            e.message
        );
        let cause = FsError::new(e.errno, format!("{}; {kept}", e.message));
        self.unstored.record(&path, &cause);
        of.pending = None;
        if of.journaled {
            of.staged.dirty = false;
        }
        lock(&self.inodes).expire(ino);
        cause
    }

    /// Upload pending file `ino` from its entry (from the queue: not while a writer holds it),
    /// without holding the file's lock while the requests are in flight, so that it stays
    /// readable and writable meanwhile. Returns the upload's error.
    pub(super) async fn upload_pending(&self, ino: u64) -> FsResult<()> {
        let Some(cache) = self.write_cache.get().cloned() else {
            return Ok(());
        };
        let Some(of) = self.open_file(ino) else {
            return Ok(());
        };
        let _change = self.listings.changing();
        let mut g = of.lock().await;
        let current = lock(&self.open_files)
            .get(&ino)
            .is_some_and(|cur| Arc::ptr_eq(cur, &of));
        if !current {
            return Ok(());
        }
        // Another upload of this file is in flight: never wait for it holding the file's lock
        // (readers and writers would wait too); look again shortly.
        let Ok(mut gate) = g.upload_gate.clone().try_lock_owned() else {
            cache.queue_later(ino, Duration::from_millis(100));
            return Ok(());
        };
        if let Some(f) = gate.finished.take() {
            let _ = self.apply_finished(ino, &mut g, f);
        }
        if g.unlinked {
            if let Some(p) = g.pending.take() {
                cache.remove(&p);
            }
        }
        if g.pending.is_none() {
            drop(gate);
            self.retire(ino, &of, &mut g).await;
            return Ok(());
        }
        if g.handles > 0 {
            return Ok(()); // its writer's last close makes a new entry and queues it
        }
        if !g.journaled && g.staged.dirty {
            // Changed with no handle open since its entry (chmod, utimes, setfattr): a new entry.
            if let Err(e) = self.journal(&cache, ino, &mut g, None).await {
                warn!(
                    ino,
                    "write cache: cannot write the file's new entry ({}); uploading it now", e.message
                );
                drop(gate);
                let r = self.upload(ino, &mut g).await;
                self.retire(ino, &of, &mut g).await;
                return r;
            }
        }
        let Some(p) = g.pending.clone() else {
            return Ok(());
        };
        let small = self.config.upload.part_size;
        let (header, copy) = match cache.open_entry(&p, &self.config.upload.staging_dir, small) {
            Ok(x) => x,
            Err(e) => {
                // The staged contents are the same: a new entry from them.
                error!(ino, "write cache: cannot read an entry back ({e}); writing it again");
                g.journaled = false;
                drop(gate);
                return self.store_at_close(ino, &mut g).await;
            }
        };
        drop(g);
        let opts = PutOptions {
            metadata: header.metadata.clone(),
            content_type: header.content_type.clone(),
        };
        let result = match copy {
            // Smaller than the entry, so at most one part: one PutObject.
            Copy::Memory(buf) => {
                let _charge = self.budget.charge(buf.len() as u64).await;
                self.store
                    .put_object(&header.key, Bytes::from(buf), &opts)
                    .await
                    .map_err(FsError::from)
            }
            Copy::File(f) => self.upload_copy(f, &header, &opts).await,
        };
        let outcome = result.as_ref().map(|_| ()).map_err(Clone::clone);
        gate.finished = Some(Finished {
            seq: p.seq,
            header,
            result,
        });
        drop(gate);
        let mut g = of.lock().await;
        let gate = g.upload_gate.clone().lock_owned().await;
        let error = {
            let mut gate = gate;
            gate.finished.take().and_then(|f| self.apply_finished(ino, &mut g, f))
        };
        self.retire(ino, &of, &mut g).await;
        match error {
            Some(e) => Err(e),
            None => outcome.or(Ok(())),
        }
    }

    /// Upload the copy `file` of an entry with `header` (PutObject or multipart).
    async fn upload_copy(
        &self,
        file: std::fs::File,
        header: &entry::Header,
        opts: &PutOptions,
    ) -> FsResult<Option<String>> {
        let mut staged = Staged::adopt(file, header.size, self.config.upload.part_size, self.parts.clone());
        staged.upload(&self.store, &header.key, opts, &self.config.upload).await
    }

    /// Upload pending file `ino` now, even while a writer holds it (`fsync`, and operations that
    /// need the object in S3 first).
    pub(super) async fn sync_pending(&self, ino: u64) -> FsResult<()> {
        if self.write_cache.get().is_none() {
            return Ok(());
        }
        let Some(of) = self.open_file(ino) else {
            return Ok(());
        };
        let _change = self.listings.changing();
        let mut g = of.lock().await;
        let Some(p) = g.pending.clone() else {
            return Ok(());
        };
        let key = self.upload_target(ino, &g).map(|t| t.0).unwrap_or_default();
        let result = self.upload(ino, &mut g).await;
        let result = match result {
            Err(e) if g.pending.as_ref() == Some(&p) => Err(self.upload_failed(ino, &mut g, &p, &key, &e)),
            r => r,
        };
        self.retire(ino, &of, &mut g).await;
        result
    }

    /// The pending files at or under `dir` (`""`: all).
    async fn pending_under(&self, dir: &str) -> Vec<u64> {
        let files: Vec<(u64, Shared)> = lock(&self.open_files).iter().map(|(i, o)| (*i, o.clone())).collect();
        let mut out = Vec::new();
        let under = format!("{dir}/");
        for (ino, of) in files {
            if of.lock().await.pending.is_none() {
                continue;
            }
            let Ok(inode) = self.inode(ino) else { continue };
            if dir.is_empty() || inode.path == dir || inode.path.starts_with(&under) {
                out.push(ino);
            }
        }
        out
    }

    /// Upload every pending file at or under `dir` now, in parallel; the first error.
    pub(super) async fn sync_pending_under(&self, dir: &str) -> FsResult<()> {
        let Some(cache) = self.write_cache.get() else {
            return Ok(());
        };
        let inos = self.pending_under(dir).await;
        let results: Vec<FsResult<()>> = stream::iter(inos.into_iter().map(|ino| self.sync_pending(ino)))
            .buffer_unordered(cache.config().uploads.max(1))
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Whether directory `dir` holds a pending file (directly).
    pub(super) fn holds_pending(&self, dir: &str) -> bool {
        self.write_cache.get().is_some() && !self.open_files_in(dir).is_empty()
    }

    /// fsyncdir (`sync DIR`): every pending file under directory `ino` is uploaded now.
    pub async fn fsyncdir(&self, ino: u64) -> FsResult<()> {
        if self.write_cache.get().is_none() {
            return Ok(());
        }
        let dir = self.dir_path(ino)?;
        self.sync_pending_under(&dir).await
    }

    /// A waiting file's mode, owner or times changed with no handle open (`chmod`, `chown`,
    /// `utimes`): its upload, shortly after, first writes a new entry, so that the changes of a
    /// burst (`tar x` and `cp -p` set owner, mode and times one call after another) share one
    /// entry, and none of those calls waits for the disk. Like a local file system's, such a
    /// change is durable once the file is stored (or `fsync`ed); a crash before that uploads the
    /// version its last entry holds. Contents (`truncate`) and user metadata make an entry at
    /// once.
    pub(super) fn defer_entry(&self, ino: u64) {
        if let Some(cache) = self.write_cache.get() {
            cache.queue_later(ino, ATTRIBUTES_SETTLE);
        }
    }

    /// Make the write cache's removals durable: before a delete or rename through the mount, an
    /// entry removed after its upload must not come back after a crash and store that version
    /// again.
    pub(super) fn sync_removals(&self) {
        if let Some(cache) = self.write_cache.get() {
            cache.sync_removals();
        }
    }

    /// A file replaced by a rename or deleted: its pending entry goes (after an upload of it in
    /// flight, which the caller's delete then follows).
    pub(super) async fn drop_pending(&self, ino: u64) {
        let Some(cache) = self.write_cache.get().cloned() else {
            return;
        };
        let Some(of) = self.open_file(ino) else {
            return;
        };
        let mut g = of.lock().await;
        let gate = self.take_gate(ino, &mut g).await;
        g.unlinked = true;
        if let Some(p) = g.pending.take() {
            cache.remove(&p);
        }
        drop(gate);
        self.retire(ino, &of, &mut g).await;
    }

    /// After unmount: wait until the write cache is empty, logging progress, or until
    /// `--unmount-deadline` (what is left then stays for the next mount). Returns the files left.
    pub async fn drain(&self) -> u64 {
        let Some(cache) = self.write_cache.get() else {
            return 0;
        };
        let _synced = SyncOnDrop(cache);
        let deadline = cache.config().drain_deadline.map(|d| Instant::now() + d);
        let mut said = Instant::now() - Duration::from_secs(10);
        loop {
            let settled = cache.settled.notified();
            let (files, bytes) = cache.held();
            if files == 0 {
                return 0;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                warn!(
                    files,
                    bytes,
                    "write cache: the unmount deadline passed with {files} files not uploaded; they stay in {} and the next mount uploads them",
                    cache.dir().display()
                );
                return files;
            }
            if said.elapsed() >= Duration::from_secs(5) {
                info!(
                    files,
                    bytes, "write cache: uploading {files} files ({bytes} bytes) before exiting"
                );
                said = Instant::now();
            }
            let wait = deadline.map_or(Duration::from_secs(1), |d| {
                d.saturating_duration_since(Instant::now()).min(Duration::from_secs(1))
            });
            let _ = tokio::time::timeout(wait, settled).await;
        }
    }
}
