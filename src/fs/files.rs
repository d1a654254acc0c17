//! Open files: open/create, read, write, truncate, flush/fsync/release, and attribute changes.
//!
//! Handles and inodes:
//! - every open gets a [`Handle`]; handles opened for writing share one [`OpenFile`] per inode,
//!   whose [`Staged`] contents all of them (and readers opened meanwhile) see;
//! - `fsync` uploads a dirty file and returns the upload's error; `flush` (every `close(2)`) does
//!   the same when it is the writer's last close (see `closing.rs`: a shell redirect's first close
//!   stores nothing), so `close` fails when the data could not be stored. The last `release`
//!   uploads what is left and drops the staged copy; if its last upload failed (and
//!   `close`/`fsync` reported it), the changes are discarded, never stored later behind the
//!   writer's back. Changes that end up not stored after the last close are recorded in
//!   [`Unstored`](super::closing::Unstored): ERROR log, metric, `EIO` from later `fsync`s;
//! - concurrent writers on one inode write into the same staged file, and each `close` uploads
//!   what is there: the last close wins, and no close reports success for data it did not store.
//!
//! Attribute changes (`chmod`, `chown`, `utimes`, `truncate`): on a file with unsent changes
//! they are folded into its upload; otherwise they are a CopyObject of the object onto itself
//! with `MetadataDirective: REPLACE` that keeps Content-Type and all other metadata (`truncate`
//! rewrites the object).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use tracing::{error, info};

use super::inode::{Kind, Stat};
use super::meta::Posix;
use super::read::{ReadCtx, Reader};
use super::write::{Base, Staged};
use super::{lock, path, Entry, S3Fs};
use crate::error::{FsError, FsResult};
use crate::store::{ObjectStore, PutOptions};

/// One open file descriptor (as the kernel sees it).
pub(super) struct Handle {
    pub ino: u64,
    /// The process that opened it (0: unknown).
    pub pid: u32,
    pub writable: bool,
    /// The kernel may keep its cached pages of this file (the object is the version they hold).
    pub keep_cache: bool,
    pub reader: tokio::sync::Mutex<Option<Reader>>,
}

/// A file open for writing (shared by its handles).
pub(super) struct OpenFile {
    pub staged: Staged,
    pub handles: usize,
    /// Deleted while open: nothing is uploaded any more.
    pub unlinked: bool,
    /// User metadata and Content-Type of the object it started from (kept on upload).
    pub metadata: HashMap<String, String>,
    pub content_type: Option<String>,
    /// POSIX attributes to store with the next upload.
    pub posix: Posix,
    /// The last upload failed and the caller of `close`/`fsync` was told; the last release then
    /// discards the changes instead of storing them behind the caller's back.
    pub failed: bool,
    /// Changed by a write or an attribute change since the last upload (not only by `open`
    /// creating or truncating it): see `closing.rs`.
    pub written: bool,
}

/// New attributes asked for by `setattr`.
#[derive(Clone, Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub mtime: Option<SystemTime>,
}

impl<S: ObjectStore> S3Fs<S> {
    fn handle(&self, fh: u64) -> FsResult<Arc<Handle>> {
        lock(&self.handles)
            .get(&fh)
            .cloned()
            .ok_or_else(|| FsError::new(libc::EBADF, format!("no file handle {fh}")))
    }

    pub(super) fn open_file(&self, ino: u64) -> Option<Arc<tokio::sync::Mutex<OpenFile>>> {
        lock(&self.open_files).get(&ino).cloned()
    }

    /// The attributes of a file open for writing: its staged size, shown until it is closed.
    pub(super) async fn open_stat(&self, ino: u64) -> Option<Stat> {
        let of = self.open_file(ino)?;
        let of = of.lock().await;
        let mut stat = self.inode(ino).ok()?.stat;
        stat.size = of.staged.size();
        if of.staged.dirty {
            stat.posix = Some(stat.posix.unwrap_or_default().overlay(&of.posix));
        }
        Some(stat)
    }

    fn new_fh(&self, handle: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, Arc::new(handle));
        fh
    }

    /// open: open file `ino` with `flags`; returns the handle.
    pub async fn open(&self, ino: u64, flags: i32, pid: u32) -> FsResult<u64> {
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        if writable || flags & libc::O_TRUNC != 0 {
            self.check_writable()?;
        }
        let inode = self.inode(ino)?;
        match inode.stat.kind {
            Kind::Dir => return Err(FsError::quiet(libc::EISDIR, format!("{} is a directory", inode.path))),
            Kind::Symlink => {
                return Err(FsError::quiet(
                    libc::ELOOP,
                    format!("{} is a symbolic link", inode.path),
                ))
            }
            Kind::File => {}
        }
        let key = path::object_key(&self.config.prefix, &inode.path);
        if !writable {
            // Close-to-open: a stale entry is re-checked so the reader sees the current object.
            let stat = if inode.fresh_until > Instant::now() {
                inode.stat
            } else {
                self.fresh_stat(ino).await?
            };
            let keep_cache = self.open_file(ino).is_none() && self.page_cache_is_current(ino, &stat.etag);
            if stat.size <= super::siblings::SMALL {
                let (dir, name) = inode.path.rsplit_once('/').unwrap_or(("", inode.path.as_str()));
                if let Some(listing) = self.listings.peek(dir) {
                    self.siblings.opened(dir, name, &listing, &self.store, &self.blocks);
                }
            }
            let reader = Reader::new(key, stat.etag, stat.size);
            return Ok(self.new_fh(Handle {
                ino,
                pid,
                writable,
                keep_cache,
                reader: tokio::sync::Mutex::new(Some(reader)),
            }));
        }
        // Pages cached from an earlier version must not be kept by the next reader.
        lock(&self.page_cache).remove(&ino);
        if self.open_file(ino).is_none() {
            self.check_not_protected(&inode.path, "overwrite").await?;
        }
        let of = match self.open_file(ino) {
            Some(of) => of,
            None => {
                let meta = if flags & libc::O_TRUNC != 0 && inode.stat.size == 0 {
                    None
                } else {
                    Some(self.store.head_object(&key).await?)
                };
                let (base, size) = match &meta {
                    Some(m) => (
                        Some(Base {
                            key: key.clone(),
                            etag: m.etag.clone(),
                        }),
                        m.size,
                    ),
                    None => (None, 0),
                };
                let staged = Staged::new(
                    &self.config.upload.staging_dir,
                    self.config.upload.part_size,
                    base,
                    size,
                    self.parts.clone(),
                )?;
                let of = OpenFile {
                    staged,
                    handles: 0,
                    unlinked: false,
                    metadata: meta.as_ref().map(|m| m.metadata.clone()).unwrap_or_default(),
                    content_type: meta.and_then(|m| m.content_type),
                    posix: Posix::default(),
                    failed: false,
                    written: false,
                };
                let of = Arc::new(tokio::sync::Mutex::new(of));
                lock(&self.open_files).entry(ino).or_insert(of).clone()
            }
        };
        {
            let mut g = of.lock().await;
            if flags & libc::O_TRUNC != 0 {
                g.staged.set_size(self.store.as_ref(), 0).await?;
            }
            g.handles += 1;
        }
        Ok(self.new_fh(Handle {
            ino,
            pid,
            writable,
            keep_cache: false,
            reader: tokio::sync::Mutex::new(None),
        }))
    }

    /// Whether the kernel's cached pages of `ino` are of version `etag`; records `etag` as the
    /// version they hold from now on.
    fn page_cache_is_current(&self, ino: u64, etag: &Option<String>) -> bool {
        let mut pc = lock(&self.page_cache);
        match etag {
            Some(e) => pc.insert(ino, e.clone()).as_ref() == Some(e),
            None => {
                pc.remove(&ino);
                false
            }
        }
    }

    /// Whether the kernel may keep its cached pages for handle `fh` (FOPEN_KEEP_CACHE).
    pub fn keep_cache(&self, fh: u64) -> bool {
        self.handle(fh).is_ok_and(|h| h.keep_cache)
    }

    async fn fresh_stat(&self, ino: u64) -> FsResult<Stat> {
        self.getattr(ino).await?;
        Ok(self.inode(ino)?.stat)
    }

    /// create: make and open a new file `name` in `parent`.
    pub async fn create(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
        mode: u32,
        uid: u32,
        gid: u32,
        pid: u32,
    ) -> FsResult<(Entry, u64)> {
        let _change = self.listings.changing();
        self.check_writable()?;
        let name = path::check_name(name)?;
        let dir = self.dir_path(parent)?;
        let rel = path::join(&dir, name);
        self.check_key_len(&rel)?;
        self.new_dirs.child(&dir, name);
        let now = SystemTime::now();
        let posix = Posix {
            mode: Some(libc::S_IFREG | (mode & 0o7777)),
            uid: Some(uid),
            gid: Some(gid),
            mtime: Some(now),
        };
        let mut staged = Staged::new(
            &self.config.upload.staging_dir,
            self.config.upload.part_size,
            None,
            0,
            self.parts.clone(),
        )?;
        staged.dirty = true; // an empty file is still a file: close creates the object
        let stat = Stat {
            kind: Kind::File,
            size: 0,
            mtime: now,
            etag: None,
            posix: Some(posix.clone()),
        };
        let ino = {
            let mut table = lock(&self.inodes);
            let ino = table.upsert(&rel, stat.clone(), self.fresh_until());
            table.add_lookup(ino);
            ino
        };
        let of = OpenFile {
            staged,
            handles: 1,
            unlinked: false,
            metadata: HashMap::new(),
            content_type: guess_content_type(name),
            posix,
            failed: false,
            written: false,
        };
        lock(&self.open_files).insert(ino, Arc::new(tokio::sync::Mutex::new(of)));
        let fh = self.new_fh(Handle {
            ino,
            pid,
            writable: true,
            keep_cache: false,
            reader: tokio::sync::Mutex::new(None),
        });
        Ok((self.entry(ino, &stat), fh))
    }

    pub(super) fn check_key_len(&self, rel: &str) -> FsResult<()> {
        let len = path::object_key(&self.config.prefix, rel).len();
        if len > path::KEY_MAX {
            return Err(FsError::new(
                libc::ENAMETOOLONG,
                format!("key of {len} bytes is longer than 1024"),
            ));
        }
        Ok(())
    }

    /// read: up to `size` bytes at `offset` of handle `fh`.
    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Bytes> {
        let h = self.handle(fh)?;
        if let Some(of) = self.open_file(h.ino) {
            return of.lock().await.staged.read(self.store.as_ref(), offset, size).await;
        }
        let mut reader = h.reader.lock().await;
        let ctx = ReadCtx {
            store: self.store.clone(),
            cache: self.blocks.clone(),
        };
        if let Some(r) = reader.as_ref().filter(|r| r.fresh()) {
            self.siblings.wait(r.key()).await;
        }
        if let Some(d) = reader.as_mut().and_then(|r| r.detach_random(&ctx, offset, size)) {
            drop(reader);
            return d.fetch(&ctx).await;
        }
        match reader.as_mut() {
            Some(r) => r.read(&ctx, offset, size).await,
            None => Err(FsError::new(libc::EBADF, format!("handle {fh} has no reader"))),
        }
    }

    /// write: `data` at `offset` through handle `fh`; returns the bytes written.
    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let h = self.handle(fh)?;
        if !h.writable {
            return Err(FsError::new(
                libc::EBADF,
                format!("handle {fh} is not open for writing"),
            ));
        }
        let of = self
            .open_file(h.ino)
            .ok_or_else(|| FsError::new(libc::EBADF, "file is not open for writing"))?;
        let mut g = of.lock().await;
        let sealed = g.staged.write(self.store.as_ref(), offset, data).await?;
        g.failed = false;
        g.written = true;
        g.posix.mtime = None; // written now: mtime is the upload time unless utimes says otherwise
        if !sealed.is_empty() && !g.unlinked {
            let (key, opts, _) = self.upload_target(h.ino, &g)?;
            // A part that fails here is sent again when the file is stored; only a failure to
            // start the upload at all is worth telling the writer now.
            g.staged
                .stream(&self.store, &key, &opts, &self.config.upload, sealed)
                .await?;
        }
        Ok(data.len() as u32)
    }

    /// Where and how an open file is stored: its key, the PutObject options (user metadata
    /// kept, POSIX attributes folded in; `mtime` only when set explicitly, since otherwise the
    /// object's Last-Modified is the right answer), and the POSIX attributes it will show.
    fn upload_target(&self, ino: u64, of: &OpenFile) -> FsResult<(String, PutOptions, Posix)> {
        let inode = self.inode(ino)?;
        let key = path::object_key(&self.config.prefix, &inode.path);
        let posix = inode.stat.posix.clone().unwrap_or_default().overlay(&of.posix);
        let mut metadata = of.metadata.clone();
        metadata.remove(super::meta::MTIME);
        let stored = Posix {
            mtime: of.posix.mtime,
            ..posix.clone()
        };
        stored.apply_to(&mut metadata);
        Ok((
            key,
            PutOptions {
                metadata,
                content_type: of.content_type.clone(),
            },
            stored,
        ))
    }

    /// This mount's id in `/proc/self/mountinfo`, known once it is mounted.
    pub fn set_mount_id(&self, id: u64) {
        let _ = self.mount_id.set(id);
    }

    /// flush (each `close`): store a dirty file when this is the writer's last close (see
    /// `closing.rs`); the upload's error is the caller's. A close by another process than the
    /// opener (a forked child dropping inherited descriptors at `exec`) or by one that still holds
    /// another descriptor for writing on the file uploads nothing: that descriptor's close, or
    /// the last release, will.
    pub async fn flush(&self, fh: u64, pid: u32) -> FsResult<()> {
        let h = self.handle(fh)?;
        if !h.writable {
            return Ok(());
        }
        if h.pid != 0 && pid != 0 && pid != h.pid {
            return Ok(());
        }
        let Some(of) = self.open_file(h.ino) else {
            return self.unstored_error(h.ino);
        };
        let still_writing = self
            .mount_id
            .get()
            .and_then(|&mnt| super::closing::still_writing(pid, mnt, h.ino));
        if still_writing == Some(true) {
            tracing::debug!(
                ino = h.ino,
                pid,
                "close of one of several descriptors: stored at the last one"
            );
            return Ok(());
        }
        let _change = self.listings.changing();
        let mut g = of.lock().await;
        // Not knowing whether more closes come, store only what was written since the last
        // upload; a file only created or truncated by `open` waits for its last release.
        if still_writing.is_none() && !g.written {
            return Ok(());
        }
        self.upload(h.ino, &mut g).await?;
        self.unstored_error(h.ino)
    }

    /// fsync: store a dirty file now; the upload's error is the caller's. On any handle, reports
    /// changes to the file that could not be stored after an earlier last close.
    pub async fn fsync(&self, fh: u64) -> FsResult<()> {
        let h = self.handle(fh)?;
        if !h.writable {
            return self.unstored_error(h.ino);
        }
        let _change = self.listings.changing();
        if let Some(of) = self.open_file(h.ino) {
            self.upload(h.ino, &mut *of.lock().await).await?;
        }
        self.unstored_error(h.ino)
    }

    /// `EIO` if the last changes to `ino` were not stored after its last close.
    fn unstored_error(&self, ino: u64) -> FsResult<()> {
        match self.inode(ino) {
            Ok(inode) => self.unstored.error(&inode.path).map_or(Ok(()), Err),
            Err(_) => Ok(()),
        }
    }

    /// Upload an open file if it has unsent changes.
    pub(super) async fn upload(&self, ino: u64, of: &mut OpenFile) -> FsResult<()> {
        if !of.staged.dirty || of.unlinked {
            return Ok(());
        }
        let (key, opts, posix) = self.upload_target(ino, of)?;
        let now = SystemTime::now();
        let started = Instant::now();
        let size = of.staged.size();
        let etag = match of.staged.upload(&self.store, &key, &opts, &self.config.upload).await {
            Ok(etag) => etag,
            Err(e) => {
                error!(
                    key = key.as_str(),
                    errno = e.errno,
                    "could not store the file: {}",
                    e.message
                );
                of.failed = true;
                return Err(e);
            }
        };
        if size >= 64 * 1024 * 1024 {
            info!(
                key = key.as_str(),
                size,
                secs = started.elapsed().as_secs_f64(),
                "uploaded"
            );
        }
        of.metadata = opts.metadata;
        of.posix = Posix::default();
        of.failed = false;
        of.written = false;
        if let Ok(inode) = self.inode(ino) {
            self.unstored.clear(&inode.path);
        }
        let stat = Stat {
            kind: Kind::File,
            size,
            mtime: now,
            etag,
            posix: Some(posix),
        };
        self.remember_posix(&key, &stat, Instant::now());
        lock(&self.inodes).set_stat(ino, stat, self.fresh_until());
        Ok(())
    }

    /// release: the last close of handle `fh`.
    pub async fn release(&self, fh: u64) -> FsResult<()> {
        let Some(h) = lock(&self.handles).remove(&fh) else {
            return Ok(());
        };
        if !h.writable {
            return Ok(());
        }
        let _change = self.listings.changing();
        let Some(of) = self.open_file(h.ino) else {
            return Ok(());
        };
        let mut g = of.lock().await;
        g.handles = g.handles.saturating_sub(1);
        if g.handles > 0 {
            return Ok(());
        }
        let path = self.inode(h.ino).map(|i| i.path).unwrap_or_default();
        let result = if g.failed && g.staged.dirty && !g.unlinked {
            Err(FsError::new(
                libc::EIO,
                "the upload failed and the error was reported to close/fsync",
            ))
        } else {
            self.upload(h.ino, &mut g).await
        };
        if let Err(e) = &result {
            self.unstored.record(&path, e);
        }
        g.staged.abandon_stream(&self.store).await;
        lock(&self.open_files).remove(&h.ino);
        result
    }

    /// setattr: change size, mode, owner or mtime of `ino`.
    pub async fn setattr(&self, ino: u64, fh: Option<u64>, set: SetAttr) -> FsResult<Entry> {
        let _change = self.listings.changing();
        self.check_writable()?;
        let _ = fh;
        let inode = self.inode(ino)?;
        if inode.stat.kind != Kind::Dir && self.open_file(ino).is_none() {
            self.check_not_protected(&inode.path, "change").await?;
        }
        let posix = Posix {
            mode: set.mode.map(|m| (m & 0o7777) | kind_bits(inode.stat.kind)),
            uid: set.uid,
            gid: set.gid,
            mtime: set.mtime,
        };
        if let Some(of) = self.open_file(ino) {
            let mut g = of.lock().await;
            if let Some(size) = set.size {
                g.staged.set_size(self.store.as_ref(), size).await?;
                g.written = true;
            }
            if g.staged.dirty {
                g.posix = g.posix.overlay(&posix);
                g.written = true;
                drop(g);
                return self.getattr(ino).await;
            }
        } else if let Some(size) = set.size {
            if inode.stat.kind != Kind::File {
                return Err(FsError::quiet(
                    libc::EISDIR,
                    format!("{} is not a regular file", inode.path),
                ));
            }
            // Truncate a closed file: stage it, resize, upload with the new attributes.
            let fh = self.open(ino, libc::O_WRONLY, 0).await?;
            let result = async {
                let h = self.handle(fh)?;
                let of = self
                    .open_file(h.ino)
                    .ok_or_else(|| FsError::new(libc::EIO, "staging vanished"))?;
                let mut g = of.lock().await;
                g.staged.set_size(self.store.as_ref(), size).await?;
                g.posix = g.posix.overlay(&posix);
                self.upload(ino, &mut g).await
            }
            .await;
            let released = self.release(fh).await;
            result?;
            released?;
            return self.getattr(ino).await;
        }
        if posix != Posix::default() {
            self.rewrite_posix(ino, &posix).await?;
        }
        self.getattr(ino).await
    }

    /// Store new POSIX attributes on a stored object (CopyObject onto itself), or on a
    /// directory's marker (created if the directory had none).
    async fn rewrite_posix(&self, ino: u64, posix: &Posix) -> FsResult<()> {
        let inode = self.inode(ino)?;
        let key = match inode.stat.kind {
            Kind::Dir => path::dir_prefix(&self.config.prefix, &inode.path),
            _ => path::object_key(&self.config.prefix, &inode.path),
        };
        if inode.stat.kind == Kind::Dir && inode.path.is_empty() && self.config.prefix.is_empty() {
            return Err(FsError::new(
                libc::EPERM,
                "the bucket root has no object to keep attributes in",
            ));
        }
        let current = match self.store.head_object(&key).await {
            Ok(m) => Some(m),
            Err(crate::store::StoreError::NotFound { .. }) if inode.stat.kind == Kind::Dir => None,
            Err(e) => return Err(e.into()),
        };
        let mut metadata = current.as_ref().map(|m| m.metadata.clone()).unwrap_or_default();
        let merged = Posix::from_metadata(&metadata).overlay(posix);
        merged.apply_to(&mut metadata);
        let opts = PutOptions {
            metadata,
            content_type: current.as_ref().and_then(|m| m.content_type.clone()),
        };
        let etag = match &current {
            Some(m) => {
                self.store
                    .copy_object(&key, &key, m.etag.as_deref(), Some(&opts))
                    .await?
            }
            None => self.store.put_object(&key, Bytes::new(), &opts).await?,
        };
        let mut stat = inode.stat.clone();
        stat.posix = Some(merged);
        if inode.stat.kind != Kind::Dir {
            stat.etag = etag;
            self.remember_posix(&key, &stat, Instant::now());
        }
        lock(&self.inodes).set_stat(ino, stat, self.fresh_until());
        Ok(())
    }
}

fn kind_bits(kind: Kind) -> u32 {
    match kind {
        Kind::File => libc::S_IFREG,
        Kind::Dir => libc::S_IFDIR,
        Kind::Symlink => libc::S_IFLNK,
    }
}

/// Content-Type for a new object, from its name's extension.
pub(super) fn guess_content_type(name: &str) -> Option<String> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    let t = match ext.as_str() {
        "txt" | "log" | "md" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "json" => "application/json",
        "xml" => "application/xml",
        "js" => "text/javascript",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "mp4" => "video/mp4",
        _ => return None,
    };
    Some(t.to_string())
}
