//! What waits for the files in the write cache, and what other operations ask of them:
//! `fsync` of a directory (`sync DIR`), the drain after unmount, `rmdir`'s check, a delete or a
//! rename replacing a waiting file, the deferred entry of attribute changes, and the removals
//! made durable before a delete or rename.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use tracing::{info, warn};

use super::{Shared, SyncOnDrop, ATTRIBUTES_SETTLE};
use crate::error::FsResult;
use crate::fs::{lock, S3Fs};
use crate::store::ObjectStore;

impl<S: ObjectStore> S3Fs<S> {
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
    pub(in crate::fs) async fn sync_pending_under(&self, dir: &str) -> FsResult<()> {
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
    pub(in crate::fs) fn holds_pending(&self, dir: &str) -> bool {
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
    pub(in crate::fs) fn defer_entry(&self, ino: u64) {
        if let Some(cache) = self.write_cache.get() {
            cache.queue_later(ino, ATTRIBUTES_SETTLE);
        }
    }

    /// Make the write cache's removals durable: before a delete or rename through the mount, an
    /// entry removed after its upload must not come back after a crash and store that version
    /// again.
    pub(in crate::fs) fn sync_removals(&self) {
        if let Some(cache) = self.write_cache.get() {
            cache.sync_removals();
        }
    }

    /// A file replaced by a rename or deleted: its pending entry goes (after an upload of it in
    /// flight, which the caller's delete then follows).
    pub(in crate::fs) async fn drop_pending(&self, ino: u64) {
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
