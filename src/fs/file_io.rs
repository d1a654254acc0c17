//! Reading and writing through an open handle. A read goes to the staged contents of a file open
//! for writing, else to the handle's [`Reader`](super::read::Reader), after the small-file
//! read-ahead of its directory, and detached from the handle's lock for a random read. A write
//! goes to the staged contents, streams the parts it completes, and clears set-user-ID as a local
//! file system does. Also where an open file's upload goes ([`S3Fs::upload_target`]), for those
//! streamed parts and for `closing.rs`.

use bytes::Bytes;

use super::files::OpenFile;
use super::meta::Posix;
use super::read::ReadCtx;
use super::{lock, path, S3Fs};
use crate::error::{FsError, FsResult};
use crate::store::{ObjectStore, PutOptions};

impl<S: ObjectStore> S3Fs<S> {
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
        self.write_as(fh, offset, data, true).await
    }

    /// write, by a writer that is `privileged` (root) or not: a write by anyone else clears the
    /// set-user-ID bit, and the set-group-ID bit of a group-executable file, as a local file
    /// system does (the kernel leaves it to FUSE file systems).
    pub async fn write_as(&self, fh: u64, offset: u64, data: &[u8], privileged: bool) -> FsResult<u32> {
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
        g.journaled = false;
        // Written now: mtime and ctime are the upload time unless utimes says otherwise.
        g.posix.mtime = None;
        g.posix.ctime = None;
        if !privileged {
            // The mode the file shows: a change pending on the open file, else the stored one
            // (read in place: this runs on every write by a user other than root).
            let mode = g
                .posix
                .mode
                .or_else(|| lock(&self.inodes).get(h.ino).and_then(|i| i.stat.posix.as_ref()?.mode));
            if let Some(mode) = mode {
                let mut kill = libc::S_ISUID;
                if mode & libc::S_IXGRP != 0 {
                    kill |= libc::S_ISGID;
                }
                if mode & kill != 0 {
                    g.posix.mode = Some(mode & !kill);
                }
            }
        }
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
    pub(super) fn upload_target(&self, ino: u64, of: &OpenFile) -> FsResult<(String, PutOptions, Posix)> {
        let inode = self.inode(ino)?;
        let key = path::object_key(&self.config.prefix, &inode.path);
        let posix = inode.stat.posix.clone().unwrap_or_default().overlay(&of.posix);
        let mut metadata = of.metadata.clone();
        metadata.remove(super::meta::MTIME);
        metadata.remove(super::meta::CTIME);
        let stored = Posix {
            mtime: of.posix.mtime,
            ctime: of.posix.ctime,
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
}
