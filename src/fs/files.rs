//! Open files: open/create and their handles. Reading and writing through a handle is
//! `file_io.rs`; storing them (flush, fsync, release) is `closing.rs`; attribute changes
//! (chmod, chown, utimes, truncate) are `setattr.rs`.
//!
//! Handles and inodes:
//! - every open gets a [`Handle`]; handles opened for writing share one [`OpenFile`] per inode,
//!   whose [`Staged`] contents all of them (and readers opened meanwhile) see;
//! - concurrent writers on one inode write into the same staged file, and each writer's last
//!   `close` uploads what is there: the last close wins, and no close reports success for data it
//!   did not store;
//! - a file open for writing shows its staged size and pending attributes until it is closed.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::inode::{Kind, Stat};
use super::meta::Posix;
use super::read::Reader;
use super::write::{Base, Staged};
use super::{lock, path, Entry, S3Fs};
use crate::error::{FsError, FsResult};
use crate::store::ObjectStore;

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
    /// Its entry in the write cache, while it waits for its upload (see `pending/`).
    pub pending: Option<crate::fs::write_cache::Pending>,
    /// Its entries' lineage in the write cache (0: none yet).
    pub lineage: u64,
    /// The entry holds the current contents and attributes (nothing changed since).
    pub journaled: bool,
    /// Holds a reference to its inode of its own while pending.
    pub pinned: bool,
    /// Failed uploads from the write cache in a row.
    pub attempts: u32,
    /// Made by `create` (no object had the name) and not stored since.
    pub created: bool,
    /// Held by every upload of this file while its requests are in flight, so that uploads of
    /// it reach S3 in order (see `pending/`). Taken while holding the file's lock, never the
    /// other way round.
    pub upload_gate: Arc<tokio::sync::Mutex<super::pending::UploadGate>>,
}

impl OpenFile {
    /// A file open for writing with `staged` contents, one handle, and the user metadata and
    /// Content-Type of the object it started from.
    pub fn new(staged: Staged, metadata: HashMap<String, String>, content_type: Option<String>) -> Self {
        Self {
            staged,
            handles: 1,
            unlinked: false,
            metadata,
            content_type,
            posix: Posix::default(),
            failed: false,
            written: false,
            pending: None,
            lineage: 0,
            journaled: false,
            pinned: false,
            attempts: 0,
            created: false,
            upload_gate: Arc::default(),
        }
    }
}

/// New attributes asked for by `setattr`.
#[derive(Clone, Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub mtime: Option<SystemTime>,
    pub atime: Option<SystemTime>,
}

impl<S: ObjectStore> S3Fs<S> {
    pub(super) fn handle(&self, fh: u64) -> FsResult<Arc<Handle>> {
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
            // The kernel opens FIFOs and devices itself (they are this machine's); a socket
            // cannot be opened.
            Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice => {
                return Err(FsError::quiet(
                    libc::ENXIO,
                    format!("{} is a FIFO, socket or device, not a file", inode.path),
                ))
            }
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
        // A release of this file's last handle may be storing it right now (the kernel sends
        // RELEASE after close returns: `echo a >> f; echo b >> f`). It holds the open file until
        // it is stored and then drops it; a handle must not join a dropped one, so the open
        // starts again from the stored object.
        loop {
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
                    let mut of = OpenFile::new(
                        staged,
                        meta.as_ref().map(|m| m.metadata.clone()).unwrap_or_default(),
                        meta.and_then(|m| m.content_type),
                    );
                    of.handles = 0;
                    let of = Arc::new(tokio::sync::Mutex::new(of));
                    lock(&self.open_files).entry(ino).or_insert(of).clone()
                }
            };
            let mut g = of.lock().await;
            let current = lock(&self.open_files)
                .get(&ino)
                .is_some_and(|cur| Arc::ptr_eq(cur, &of));
            if !current {
                drop(g);
                // The object it stored is what this open now overwrites.
                self.check_not_protected(&inode.path, "overwrite").await?;
                continue;
            }
            if flags & libc::O_TRUNC != 0 {
                g.staged.set_size(self.store.as_ref(), 0).await?;
                g.journaled = false;
            }
            g.handles += 1;
            break;
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
            ..Posix::default()
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
        let mut of = OpenFile::new(staged, HashMap::new(), guess_content_type(name));
        of.posix = posix;
        of.created = true;
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
