//! `setattr`: `chmod`, `chown`, `utimes` and `truncate`. On a file with unsent changes they are
//! folded into its upload; otherwise they are a CopyObject of the object onto itself with
//! `MetadataDirective: REPLACE` that keeps Content-Type and all other metadata (`truncate` of a
//! closed file stages it, resizes it and uploads it). Refused with `EPERM` on retained or held
//! objects.

use std::time::Instant;

use bytes::Bytes;

use super::files::SetAttr;
use super::inode::Kind;
use super::meta::Posix;
use super::{lock, path, Entry, S3Fs};
use crate::error::{FsError, FsResult};
use crate::store::{ObjectStore, PutOptions};

impl<S: ObjectStore> S3Fs<S> {
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
            mode: set.mode.map(|m| (m & 0o7777) | inode.stat.kind.mode_bits()),
            uid: set.uid,
            gid: set.gid,
            mtime: set.mtime,
            atime: set.atime,
            // Any change of attributes is a change of the inode.
            ctime: (set.mode.is_some()
                || set.uid.is_some()
                || set.gid.is_some()
                || set.mtime.is_some()
                || set.atime.is_some()
                || set.size.is_some())
            .then(std::time::SystemTime::now),
            rdev: None,
        };
        if let Some(of) = self.open_file(ino) {
            let mut g = of.lock().await;
            if let Some(size) = set.size {
                g.staged.set_size(self.store.as_ref(), size).await?;
                g.written = true;
                g.journaled = false;
            }
            if g.staged.dirty {
                g.posix = g.posix.overlay(&posix);
                g.written = true;
                g.journaled = false;
                if g.handles == 0 && g.pending.is_some() {
                    if set.size.is_some() {
                        // Closed into the write cache: new contents make a new entry now.
                        self.store_at_close(ino, &mut g).await?;
                    } else {
                        // Mode, owner, times: the upload that follows writes the new entry.
                        self.defer_entry(ino);
                    }
                }
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
