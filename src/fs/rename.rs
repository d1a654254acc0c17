//! `rename`:
//! - of a file: CopyObject (multipart UploadPartCopy above 5 GiB) then DeleteObject; it replaces
//!   an existing target; `RENAME_NOREPLACE` fails with EEXIST when the target exists;
//!   `RENAME_EXCHANGE` is not supported (EINVAL). A file open for writing is stored first, then
//!   moved, and its later uploads go to the new name. Retained or held sources and targets are
//!   refused before anything is copied.
//! - of a directory: every key under the prefix is copied in parallel and the sources are deleted
//!   only once every copy succeeded. It is **not atomic**: another client can see both trees
//!   while it runs, and if a copy fails the error is returned with the sources intact and the
//!   copies made so far left in place.

use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use tracing::{info, warn};

use super::inode::{Kind, Stat};
use super::{lock, path, S3Fs};
use crate::error::{FsError, FsResult};
use crate::store::{ListRequest, ObjectStore, PutOptions, StoreError};

/// Flags of `rename(2)`.
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;

/// Objects copied at once when renaming a directory.
const COPY_CONCURRENCY: usize = 16;

/// Keys per DeleteObjects request when a directory rename deletes its sources (S3's limit).
const DELETE_BATCH: usize = 1000;

/// DeleteObjects requests in flight at once.
const DELETE_BATCHES_IN_FLIGHT: usize = 4;

/// Directory renames of more objects than this log their progress at info level.
const RENAME_LOG_MIN: usize = 100;

/// CopyObject's size limit.
const COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

impl<S: ObjectStore> S3Fs<S> {
    /// rename: move `name` in `parent` to `newname` in `newparent`.
    pub async fn rename(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
        newparent: u64,
        newname: &std::ffi::OsStr,
        flags: u32,
    ) -> FsResult<()> {
        let _change = self.listings.changing();
        self.check_writable()?;
        if flags & RENAME_EXCHANGE != 0 {
            return Err(FsError::new(libc::EINVAL, "RENAME_EXCHANGE is not supported"));
        }
        let Some((ino, from, stat)) = self.resolve(parent, name).await? else {
            return Err(FsError::quiet(libc::ENOENT, format!("{name:?} does not exist")));
        };
        let new_name = path::check_name(newname)?;
        let to = path::join(&self.dir_path(newparent)?, new_name);
        if from == to {
            return Ok(());
        }
        self.check_key_len(&to)?;
        let target = self.resolve(newparent, newname).await?;
        if target.is_some() && flags & RENAME_NOREPLACE != 0 {
            return Err(FsError::quiet(libc::EEXIST, format!("{to} exists")));
        }
        match stat.kind {
            Kind::Dir => {
                if to.starts_with(&format!("{from}/")) {
                    return Err(FsError::quiet(libc::EINVAL, format!("cannot move {from} into itself")));
                }
                if let Some((_, _, t)) = &target {
                    if t.kind != Kind::Dir {
                        return Err(FsError::quiet(libc::ENOTDIR, format!("{to} is not a directory")));
                    }
                    // A file waiting in the write cache is in it too, not yet in S3 (as for rmdir).
                    if self.holds_pending(&to)
                        || !self.dir_is_empty(&path::dir_prefix(&self.config.prefix, &to)).await?
                    {
                        return Err(FsError::quiet(libc::ENOTEMPTY, format!("{to} is not empty")));
                    }
                }
                self.rename_dir(&from, &to).await?;
            }
            Kind::File | Kind::Symlink | Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice => {
                if target.as_ref().is_some_and(|(_, _, t)| t.kind == Kind::Dir) {
                    return Err(FsError::quiet(libc::EISDIR, format!("{to} is a directory")));
                }
                // Check first: a rename must not copy and then fail to delete, leaving two objects.
                self.check_not_protected(&from, "rename").await?;
                if target.is_some() {
                    self.check_not_protected(&to, "replace").await?;
                }
                self.sync_removals();
                match &target {
                    Some((t, _, _)) => self.rename_file_over(ino, *t, &from, &to).await?,
                    None => self.rename_file(ino, &from, &to, false).await?,
                }
                self.unstored.renamed(&from, &to);
            }
        }
        self.keep_parent(&from);
        self.move_kept_dirs(&from, &to);
        self.new_dirs.forget(&from);
        self.new_dirs.child(&self.dir_path(newparent)?, new_name);
        let mut table = lock(&self.inodes);
        table.rename(&from, &to);
        table.set_missing(&from, self.fresh_until());
        Ok(())
    }

    /// Directories kept after being emptied (see `kept_dirs`) at or under `from` now live under
    /// `to`: the old names no longer exist.
    fn move_kept_dirs(&self, from: &str, to: &str) {
        let mut kept = lock(&self.kept_dirs);
        let under = format!("{from}/");
        let moved: Vec<String> = kept
            .iter()
            .filter(|d| *d == from || d.starts_with(&under))
            .cloned()
            .collect();
        for d in moved {
            kept.remove(&d);
            kept.insert(format!("{to}{}", &d[from.len()..]));
        }
    }

    /// Move file `ino` at `from` over file `replaced` at `to`. A replaced file open here (or
    /// waiting in the write cache) is held while the source moves: an upload of it in flight
    /// lands first, and none starts until the move is done, so none lands on the moved file.
    /// Its entry in the write cache goes (durably) before the move, so that a crash cannot
    /// upload it over the moved file either, and is written again if the move fails.
    async fn rename_file_over(&self, ino: u64, replaced: u64, from: &str, to: &str) -> FsResult<()> {
        let (Some(cache), Some(of)) = (self.write_cache().cloned(), self.open_file(replaced)) else {
            return self.rename_file(ino, from, to, true).await;
        };
        let mut g = of.lock().await;
        let gate = self.take_gate(replaced, &mut g).await;
        let entry = g.pending.take();
        if let Some(p) = &entry {
            cache.remove(p);
        }
        // Durably gone before the move, as is the entry of an upload of it that just landed.
        cache.sync_removals();
        let moved = self.rename_file(ino, from, to, true).await;
        drop(gate);
        match &moved {
            Ok(()) => {
                g.unlinked = true;
                self.retire(replaced, &of, &mut g).await;
            }
            Err(_) if entry.is_some() => {
                g.journaled = false;
                if let Err(e) = self.store_at_close(replaced, &mut g).await {
                    warn!(
                        key = to,
                        "write cache: a rename over this file failed, and its entry could not be written again: {}",
                        e.message
                    );
                }
            }
            Err(_) => {}
        }
        moved
    }

    /// Move file `ino` from `from` to `to` (`replacing` the file there, if any).
    async fn rename_file(&self, ino: u64, from: &str, to: &str, replacing: bool) -> FsResult<()> {
        let of = lock(&self.open_files).get(&ino).cloned();
        let mut guard = match &of {
            Some(of) => Some(of.lock().await),
            None => None,
        };
        if let (Some(g), Some(cache)) = (guard.as_deref_mut(), self.write_cache().cloned()) {
            // An upload of it under the old name may be in flight: the move waits for it.
            let gate = self.take_gate(ino, g).await;
            if g.pending.is_some() && g.created && g.handles == 0 {
                // Waiting in the write cache and never stored: its entry moves, S3 is not asked.
                g.journaled = false;
                self.journal(&cache, ino, g, Some(to)).await?;
                if replacing {
                    // The replaced file's object stays until this one's upload overwrites it: a
                    // move before that must go through S3, to delete it.
                    g.created = false;
                }
                return Ok(());
            }
            drop(gate);
        }
        if let Some(g) = guard.as_deref_mut() {
            // Store pending changes under the old name first, so the copy carries them.
            self.upload(ino, g).await?;
        }
        let src = path::object_key(&self.config.prefix, from);
        let dst = path::object_key(&self.config.prefix, to);
        let meta = self.store.head_object(&src).await?;
        let etag = copy(self.store.as_ref(), &src, &dst, meta.size, meta.etag.as_deref()).await?;
        self.store.delete_object(&src).await?;
        if let (Some(of), Some(g)) = (&of, guard.as_deref_mut()) {
            g.staged.rebase(&dst, etag.clone());
            // Stored and moved: a file that waited in the write cache is done.
            self.retire(ino, of, g).await;
        }
        if let Some(p) = self.cached_posix(&src, &meta.etag) {
            let stat = Stat {
                etag: etag.clone(),
                posix: Some(p),
                ..Self::file_stat(&meta, false)
            };
            self.prefetch.remember(&dst, &stat, Instant::now());
        }
        self.prefetch.forget(&src);
        let mut table = lock(&self.inodes);
        if let Some(i) = table.get(ino) {
            let mut stat = i.stat.clone();
            stat.etag = etag;
            table.set_stat(ino, stat, self.fresh_until());
        }
        Ok(())
    }

    async fn rename_dir(&self, from: &str, to: &str) -> FsResult<()> {
        // Files under it waiting in the write cache go up first, so the copies carry them.
        self.sync_pending_under(from).await?;
        self.sync_removals();
        let src_prefix = path::dir_prefix(&self.config.prefix, from);
        let dst_prefix = path::dir_prefix(&self.config.prefix, to);
        let mut keys = Vec::new();
        let mut req = ListRequest {
            prefix: src_prefix.clone(),
            delimiter: None,
            continuation: None,
            max_keys: None,
        };
        loop {
            let page = self.store.list_objects(&req).await?;
            keys.extend(page.objects.into_iter().map(|o| (o.key, o.size, o.etag)));
            match page.next {
                Some(t) => req.continuation = Some(t),
                None => break,
            }
        }
        if keys.is_empty() {
            return Ok(()); // an empty implied directory: nothing stored, nothing to move
        }
        let total = keys.len();
        if self.worm() != crate::store::worm::Worm::None {
            let checks: Vec<FsResult<()>> =
                stream::iter(keys.iter().map(|(k, _, _)| self.check_key_not_protected(k, "rename")))
                    .buffer_unordered(COPY_CONCURRENCY)
                    .collect()
                    .await;
            for c in checks {
                c?;
            }
        }
        if total > RENAME_LOG_MIN {
            info!(from, to, objects = total, "renaming a directory");
        }
        let label = format!("renaming {from} to {to}");
        let copies = crate::progress::Steps::new("copied", label.clone(), total, RENAME_LOG_MIN);
        let removals = crate::progress::Steps::new("deleted the sources of", label, total, RENAME_LOG_MIN);
        let store = self.store.clone();
        let results: Vec<Result<String, StoreError>> = stream::iter(keys.into_iter().map(|(key, size, etag)| {
            let store = Arc::clone(&store);
            let dst = format!("{dst_prefix}{}", &key[src_prefix.len()..]);
            async move {
                copy(store.as_ref(), &key, &dst, size, etag.as_deref())
                    .await
                    .map(|_| key)
            }
        }))
        .buffer_unordered(COPY_CONCURRENCY)
        .inspect(|_| copies.tick())
        .collect()
        .await;
        let mut copied = Vec::with_capacity(total);
        for r in results {
            match r {
                Ok(k) => copied.push(k),
                Err(e) => {
                    return Err(FsError::new(
                        libc::EIO,
                        format!("renaming {from} to {to} stopped: {e}; the sources are intact, some copies exist"),
                    ))
                }
            }
        }
        // The sources go in DeleteObjects batches, a few at once; every key's outcome counts.
        let batches: Vec<Vec<(&String, Result<(), StoreError>)>> =
            stream::iter(copied.chunks(DELETE_BATCH).map(|keys| {
                let store = Arc::clone(&store);
                async move {
                    // A key the store gave no answer for is not deleted.
                    let mut results = store.delete_objects(keys).await.into_iter();
                    keys.iter()
                        .map(|k| {
                            let r = results.next().unwrap_or_else(|| {
                                Err(StoreError::Other {
                                    op: "DeleteObjects",
                                    message: format!("no answer for {k}"),
                                })
                            });
                            (k, r)
                        })
                        .collect()
                }
            }))
            .buffer_unordered(DELETE_BATCHES_IN_FLIGHT)
            .inspect(|b| {
                for _ in b {
                    removals.tick();
                }
            })
            .collect()
            .await;
        for (key, d) in batches.into_iter().flatten() {
            d.map_err(|e| {
                FsError::new(
                    libc::EIO,
                    format!(
                        "renaming {from} to {to}: the copies are made but the source {key} could not be deleted: {e}"
                    ),
                )
            })?;
        }
        if total > RENAME_LOG_MIN {
            info!(from, to, objects = total, "renamed a directory");
        }
        Ok(())
    }
}

/// Copy `src` to `dst`: CopyObject up to 5 GiB, a multipart copy beyond.
async fn copy<S: ObjectStore>(
    store: &S,
    src: &str,
    dst: &str,
    size: u64,
    if_match: Option<&str>,
) -> Result<Option<String>, StoreError> {
    if size <= COPY_LIMIT {
        return store.copy_object(src, dst, if_match, None).await;
    }
    let head = store.head_object(src).await?;
    let opts = PutOptions {
        metadata: head.metadata,
        content_type: head.content_type,
    };
    let upload_id = store.create_multipart(dst, &opts).await?;
    let part = 512 * 1024 * 1024u64;
    let mut tags = Vec::new();
    let mut start = 0;
    let mut n = 1;
    while start < size {
        let end = (start + part).min(size);
        match store
            .upload_part_copy(dst, &upload_id, n, src, start..end, if_match)
            .await
        {
            Ok(t) => tags.push((n, t)),
            Err(e) => {
                let _ = store.abort_multipart(dst, &upload_id).await;
                return Err(e);
            }
        }
        start = end;
        n += 1;
    }
    match store.complete_multipart(dst, &upload_id, tags).await {
        Ok(etag) => Ok(etag),
        Err(e) => {
            let _ = store.abort_multipart(dst, &upload_id).await;
            Err(e)
        }
    }
}
