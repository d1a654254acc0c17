//! The namespace: unlink, mkdir, rmdir, symlink, readlink, link (rename is `rename.rs`).
//!
//! - `mkdir` writes a `dir/` marker (so empty directories stay visible); `rmdir` refuses with
//!   ENOTEMPTY while any key other than the marker is under `dir/`, then deletes the marker.
//! - `unlink` deletes the object (ENOENT when missing). A file deleted while open is not uploaded
//!   again when it is closed.
//! - `rename` is `rename.rs`.
//! - A symlink is an object whose body is the target and whose `x-amz-meta-mode` has `S_IFLNK`
//!   (s3fs's format). Hard links cannot exist in S3: `link` fails with EPERM.

use std::time::Instant;

use bytes::Bytes;

use super::inode::{Kind, Stat};
use super::meta::Posix;
use super::{lock, path, Entry, S3Fs};
use crate::error::{FsError, FsResult};
use crate::store::{ListRequest, ObjectStore, PutOptions};

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
    pub(super) async fn resolve(&self, parent: u64, name: &std::ffi::OsStr) -> FsResult<Option<(u64, String, Stat)>> {
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
        let key = path::object_key(&self.config.prefix, &rel);
        // Entries removed after their upload must not come back after a crash and store that
        // version again once the object is deleted.
        self.sync_removals();
        let open = lock(&self.open_files).get(&ino).cloned();
        match open {
            Some(of) => {
                // Open, or waiting in the write cache: an upload of it in flight lands before the
                // delete, and the file is left as it was (its entry, its next upload) unless
                // the delete succeeds.
                let mut g = of.lock().await;
                let gate = self.take_gate(ino, &mut g).await;
                self.sync_removals(); // the entry of that upload, if it removed one
                self.store.delete_object(&key).await?;
                g.unlinked = true;
                drop(gate);
                drop(g);
                // Its entry in the write cache goes, durably before unlink returns (a crash
                // before that uploads it again: the unlink never returned).
                self.drop_pending(ino).await;
                self.sync_removals();
            }
            None => self.store.delete_object(&key).await?,
        }
        lock(&self.inodes).remove_path(&rel, self.fresh_until());
        self.unstored.clear(&rel);
        self.keep_parent(&rel);
        Ok(())
    }

    /// `rel` left its directory: keep that directory visible even if it had no marker.
    pub(super) fn keep_parent(&self, rel: &str) {
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
            ..Posix::default()
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
        if self.holds_pending(&rel) || !self.dir_is_empty(&marker).await? {
            return Err(FsError::quiet(libc::ENOTEMPTY, format!("{rel} is not empty")));
        }
        self.store.delete_object(&marker).await?;
        self.new_dirs.forget(&rel);
        lock(&self.kept_dirs).remove(&rel);
        lock(&self.inodes).remove_path(&rel, self.fresh_until());
        Ok(())
    }

    pub(super) async fn dir_is_empty(&self, prefix: &str) -> FsResult<bool> {
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
        let target = target
            .to_str()
            .ok_or_else(|| FsError::new(libc::EINVAL, format!("symlink target {target:?} is not UTF-8")))?;
        let posix = Posix {
            mode: Some(libc::S_IFLNK | 0o777),
            uid: Some(uid),
            gid: Some(gid),
            ..Posix::default()
        };
        self.make_object(parent, name, posix, Bytes::copy_from_slice(target.as_bytes()))
            .await
    }

    /// mknod: make `name` in `parent` a FIFO, socket, character or block device (or an empty
    /// regular file): an empty object with its mode, owner and device number in metadata, as
    /// s3fs writes them.
    pub async fn mknod(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
        mode: u32,
        rdev: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<Entry> {
        let kind = match mode & libc::S_IFMT {
            libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK | libc::S_IFREG => mode & libc::S_IFMT,
            0 => libc::S_IFREG,
            other => {
                return Err(FsError::quiet(
                    libc::EINVAL,
                    format!("mknod of file type {other:#o}: only FIFOs, sockets, devices and regular files"),
                ))
            }
        };
        let device = kind == libc::S_IFCHR || kind == libc::S_IFBLK;
        let posix = Posix {
            mode: Some(kind | (mode & 0o7777)),
            uid: Some(uid),
            gid: Some(gid),
            rdev: device.then_some(rdev),
            ..Posix::default()
        };
        self.make_object(parent, name, posix, Bytes::new()).await
    }

    /// Store a new object `name` in `parent` (which must not exist) whose body is `body` and whose
    /// metadata carries `posix` (its mode saying what it is); its mtime is now.
    async fn make_object(&self, parent: u64, name: &std::ffi::OsStr, mut posix: Posix, body: Bytes) -> FsResult<Entry> {
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
        let now = std::time::SystemTime::now();
        posix.mtime = Some(now);
        let mut opts = PutOptions::default();
        posix.apply_to(&mut opts.metadata);
        let key = path::object_key(&self.config.prefix, &rel);
        let size = body.len() as u64;
        let etag = self.store.put_object(&key, body, &opts).await?;
        let stat = Stat {
            kind: posix.object_kind(),
            size,
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
}
