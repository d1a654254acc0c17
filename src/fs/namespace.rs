//! The namespace: unlink, mkdir, rmdir, rename, symlink, readlink, link.
//!
//! - `mkdir` writes a `dir/` marker (so empty directories stay visible); `rmdir` refuses with
//!   ENOTEMPTY while any key other than the marker is under `dir/`, then deletes the marker.
//! - `unlink` deletes the object (ENOENT when missing). A file deleted while open is not uploaded
//!   again when it is closed.
//! - `rename` of a file is CopyObject (multipart UploadPartCopy above 5 GiB) then DeleteObject;
//!   it replaces an existing target; `RENAME_NOREPLACE` fails with EEXIST when the target exists;
//!   `RENAME_EXCHANGE` is not supported (EINVAL). A file open for writing is stored first, then
//!   moved, and its later uploads go to the new name.
//! - `rename` of a directory copies every key under the prefix in parallel and deletes the sources
//!   only once every copy succeeded. It is **not atomic**: another client can see both trees while
//!   it runs, and if a copy fails the error is returned with the sources intact and the copies
//!   made so far left in place.
//! - A symlink is an object whose body is the target and whose `x-amz-meta-mode` has `S_IFLNK`
//!   (s3fs's format). Hard links cannot exist in S3: `link` fails with EPERM.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use tracing::info;

use super::inode::{Kind, Stat};
use super::meta::Posix;
use super::{lock, path, Entry, S3Fs};
use crate::error::{FsError, FsResult};
use crate::store::{ListRequest, ObjectStore, PutOptions, StoreError};

/// Objects copied at once when renaming a directory.
const COPY_CONCURRENCY: usize = 16;
/// Directory renames of more objects than this log their progress at info level.
const RENAME_LOG_MIN: usize = 100;
/// CopyObject's size limit.
const COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// Flags of `rename(2)`.
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;

impl<S: ObjectStore> S3Fs<S> {
    /// The S3 key of inode `ino` (with `name` appended when given: a child of a directory), for
    /// log lines. `None` when the inode is no longer known.
    pub fn key_of(&self, ino: u64, name: Option<&std::ffi::OsStr>) -> Option<String> {
        let dir = lock(&self.inodes).get(ino).map(|i| i.path.clone())?;
        let rel = match name {
            Some(n) => path::join(&dir, &n.to_string_lossy()),
            None => dir,
        };
        Some(path::object_key(&self.config.prefix, &rel))
    }

    /// What `name` in `parent` is, without taking a kernel reference.
    async fn resolve(&self, parent: u64, name: &std::ffi::OsStr) -> FsResult<Option<(u64, String, Stat)>> {
        match self.lookup(parent, name).await {
            Ok(e) => {
                let inode = self.inode(e.attr.ino)?;
                self.forget(e.attr.ino, 1);
                Ok(Some((inode.ino, inode.path, inode.stat)))
            }
            Err(e) if e.errno == libc::ENOENT => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// unlink: delete file `name` in `parent`.
    pub async fn unlink(&self, parent: u64, name: &std::ffi::OsStr) -> FsResult<()> {
        let _change = self.listings.changing();
        self.check_writable()?;
        let Some((ino, rel, stat)) = self.resolve(parent, name).await? else {
            return Err(FsError::quiet(libc::ENOENT, format!("{name:?} does not exist")));
        };
        if stat.kind == Kind::Dir {
            return Err(FsError::quiet(libc::EISDIR, format!("{rel} is a directory")));
        }
        self.check_not_protected(&rel, "delete").await?;
        let open = lock(&self.open_files).get(&ino).cloned();
        if let Some(of) = open {
            of.lock().await.unlinked = true;
        }
        self.store
            .delete_object(&path::object_key(&self.config.prefix, &rel))
            .await?;
        lock(&self.inodes).remove_path(&rel, self.fresh_until());
        self.unstored.clear(&rel);
        self.keep_parent(&rel);
        Ok(())
    }

    /// `rel` left its directory: keep that directory visible even if it had no marker.
    fn keep_parent(&self, rel: &str) {
        if let Some((parent, _)) = rel.rsplit_once('/') {
            lock(&self.kept_dirs).insert(parent.to_string());
        }
    }

    /// mkdir: make directory `name` in `parent` (a `name/` marker object).
    pub async fn mkdir(&self, parent: u64, name: &std::ffi::OsStr, mode: u32, uid: u32, gid: u32) -> FsResult<Entry> {
        let _change = self.listings.changing();
        self.check_writable()?;
        let name_str = path::check_name(name)?;
        let dir = self.dir_path(parent)?;
        let rel = path::join(&dir, name_str);
        self.check_key_len(&format!("{rel}/"))?;
        if self.resolve(parent, name).await?.is_some() {
            return Err(FsError::quiet(libc::EEXIST, format!("{rel} exists")));
        }
        let posix = Posix {
            mode: Some(libc::S_IFDIR | (mode & 0o7777)),
            uid: Some(uid),
            gid: Some(gid),
            mtime: Some(std::time::SystemTime::now()),
        };
        let mut opts = PutOptions::default();
        posix.apply_to(&mut opts.metadata);
        self.store
            .put_object(&path::dir_prefix(&self.config.prefix, &rel), Bytes::new(), &opts)
            .await?;
        let stat = Stat {
            posix: Some(posix),
            ..Stat::dir(std::time::SystemTime::now())
        };
        self.new_dirs.child(&dir, name_str);
        self.new_dirs.made(&rel);
        let mut table = lock(&self.inodes);
        let ino = table.upsert(&rel, stat.clone(), self.fresh_until());
        table.add_lookup(ino);
        Ok(self.entry(ino, &stat))
    }

    /// rmdir: remove the empty directory `name` in `parent`.
    pub async fn rmdir(&self, parent: u64, name: &std::ffi::OsStr) -> FsResult<()> {
        let _change = self.listings.changing();
        self.check_writable()?;
        let (rel, stat) = match self.resolve(parent, name).await? {
            Some((_, rel, stat)) => (rel, stat),
            None => {
                // A directory implied only by its children vanishes from S3 with its last child
                // (`rm -r` deletes the files, then the directory): removing it succeeds.
                let rel = path::join(&self.dir_path(parent)?, path::check_name(name)?);
                let known = lock(&self.inodes).by_path(&rel).map(|i| i.stat.clone());
                match known {
                    Some(stat) if stat.kind == Kind::Dir => (rel, stat),
                    _ => return Err(FsError::quiet(libc::ENOENT, format!("{name:?} does not exist"))),
                }
            }
        };
        if stat.kind != Kind::Dir {
            return Err(FsError::quiet(libc::ENOTDIR, format!("{rel} is not a directory")));
        }
        let marker = path::dir_prefix(&self.config.prefix, &rel);
        if !self.dir_is_empty(&marker).await? {
            return Err(FsError::quiet(libc::ENOTEMPTY, format!("{rel} is not empty")));
        }
        self.store.delete_object(&marker).await?;
        self.new_dirs.forget(&rel);
        lock(&self.kept_dirs).remove(&rel);
        lock(&self.inodes).remove_path(&rel, self.fresh_until());
        Ok(())
    }

    async fn dir_is_empty(&self, prefix: &str) -> FsResult<bool> {
        let req = ListRequest {
            prefix: prefix.to_string(),
            delimiter: None,
            continuation: None,
            max_keys: Some(2),
        };
        let page = self.store.list_objects(&req).await?;
        Ok(page.objects.iter().all(|o| o.key == prefix) && page.prefixes.is_empty())
    }

    /// symlink: make `name` in `parent` a symbolic link to `target`.
    pub async fn symlink(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
        target: &std::path::Path,
        uid: u32,
        gid: u32,
    ) -> FsResult<Entry> {
        let _change = self.listings.changing();
        self.check_writable()?;
        let name_str = path::check_name(name)?;
        let dir = self.dir_path(parent)?;
        let rel = path::join(&dir, name_str);
        self.check_key_len(&rel)?;
        self.new_dirs.child(&dir, name_str);
        if self.resolve(parent, name).await?.is_some() {
            return Err(FsError::quiet(libc::EEXIST, format!("{rel} exists")));
        }
        let target = target
            .to_str()
            .ok_or_else(|| FsError::new(libc::EINVAL, format!("symlink target {target:?} is not UTF-8")))?;
        let now = std::time::SystemTime::now();
        let posix = Posix {
            mode: Some(libc::S_IFLNK | 0o777),
            uid: Some(uid),
            gid: Some(gid),
            mtime: Some(now),
        };
        let mut opts = PutOptions::default();
        posix.apply_to(&mut opts.metadata);
        let key = path::object_key(&self.config.prefix, &rel);
        let etag = self
            .store
            .put_object(&key, Bytes::copy_from_slice(target.as_bytes()), &opts)
            .await?;
        let stat = Stat {
            kind: Kind::Symlink,
            size: target.len() as u64,
            mtime: now,
            etag,
            posix: Some(posix),
        };
        self.remember_posix(&key, &stat, Instant::now());
        let mut table = lock(&self.inodes);
        let ino = table.upsert(&rel, stat.clone(), self.fresh_until());
        table.add_lookup(ino);
        Ok(self.entry(ino, &stat))
    }

    /// readlink: the target of symlink `ino`.
    pub async fn readlink(&self, ino: u64) -> FsResult<Bytes> {
        let inode = self.inode(ino)?;
        if inode.stat.kind != Kind::Symlink {
            return Err(FsError::quiet(
                libc::EINVAL,
                format!("{} is not a symbolic link", inode.path),
            ));
        }
        let key = path::object_key(&self.config.prefix, &inode.path);
        Ok(self.store.get_range(&key, 0..inode.stat.size.max(4096), None).await?)
    }

    /// link: hard links cannot be represented in S3.
    pub fn link(&self) -> FsResult<Entry> {
        Err(FsError::quiet(
            libc::EPERM,
            "hard links are not supported: S3 has no way to share one object under two keys",
        ))
    }

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
                    if !self.dir_is_empty(&path::dir_prefix(&self.config.prefix, &to)).await? {
                        return Err(FsError::quiet(libc::ENOTEMPTY, format!("{to} is not empty")));
                    }
                }
                self.rename_dir(&from, &to).await?;
            }
            Kind::File | Kind::Symlink => {
                if target.as_ref().is_some_and(|(_, _, t)| t.kind == Kind::Dir) {
                    return Err(FsError::quiet(libc::EISDIR, format!("{to} is a directory")));
                }
                // Check first: a rename must not copy and then fail to delete, leaving two objects.
                self.check_not_protected(&from, "rename").await?;
                if target.is_some() {
                    self.check_not_protected(&to, "replace").await?;
                }
                self.rename_file(ino, &from, &to).await?;
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

    async fn rename_file(&self, ino: u64, from: &str, to: &str) -> FsResult<()> {
        let of = lock(&self.open_files).get(&ino).cloned();
        let mut guard = match &of {
            Some(of) => Some(of.lock().await),
            None => None,
        };
        if let Some(g) = guard.as_deref_mut() {
            // Store pending changes under the old name first, so the copy carries them.
            self.upload(ino, g).await?;
        }
        let src = path::object_key(&self.config.prefix, from);
        let dst = path::object_key(&self.config.prefix, to);
        let meta = self.store.head_object(&src).await?;
        let etag = copy(self.store.as_ref(), &src, &dst, meta.size, meta.etag.as_deref()).await?;
        self.store.delete_object(&src).await?;
        if let Some(g) = guard.as_deref_mut() {
            g.staged.rebase(&dst, etag.clone());
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
        if self.config.worm != crate::store::worm::Worm::None {
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
        let deletes: Vec<Result<(), StoreError>> = stream::iter(copied.into_iter().map(|key| {
            let store = Arc::clone(&store);
            async move { store.delete_object(&key).await }
        }))
        .buffer_unordered(COPY_CONCURRENCY)
        .inspect(|_| removals.tick())
        .collect()
        .await;
        for d in deletes {
            d?;
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
