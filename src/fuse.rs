//! The FUSE adapter: `fuser::Filesystem` over [`S3Fs`], and nothing else.
//!
//! Each handler opens a span, runs the async operation on the tokio runtime (fuser's worker
//! threads are not runtime threads, so `block_on` is safe here), and replies once: values become
//! replies, and every error goes through [`reply_error`], which logs it at the error's own level
//! and replies with its errno. No handler calls `reply.error` with an errno of its own.

use std::ffi::OsStr;
use std::sync::Arc;

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, Request,
};
use tokio::runtime::Handle;
use tracing::{debug, event, Level};

use crate::error::FsError;
use crate::fs::attr::Attr;
use crate::fs::inode::Kind;
use crate::fs::{DirReplier, S3Fs};
use crate::store::ObjectStore;

/// `fuser::Filesystem` for an [`S3Fs`].
pub struct FuseFs<S: ObjectStore> {
    fs: Arc<S3Fs<S>>,
    rt: Handle,
}

impl<S: ObjectStore> FuseFs<S> {
    /// Serve `fs`, running its futures on `rt`.
    pub fn new(fs: Arc<S3Fs<S>>, rt: Handle) -> Self {
        Self { fs, rt }
    }
}

fn kind(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.mtime,
        crtime: a.mtime,
        kind: kind(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

/// Log `err` at its level, naming the operation, and turn it into the errno to reply with.
fn reply_error(op: &str, err: FsError) -> Errno {
    match err.level {
        Level::DEBUG | Level::TRACE => event!(Level::DEBUG, op, errno = err.errno, "{}", err.message),
        Level::INFO => event!(Level::INFO, op, errno = err.errno, "{}", err.message),
        _ => event!(Level::WARN, op, errno = err.errno, "{}", err.message),
    }
    Errno::from_i32(err.errno)
}

struct FuseDirReplier<'a>(&'a mut ReplyDirectory);

impl DirReplier for FuseDirReplier<'_> {
    fn add(&mut self, ino: u64, offset: u64, k: Kind, name: &str) -> bool {
        self.0.add(INodeNo(ino), offset, kind(k), name)
    }
}

impl<S: ObjectStore> fuser::Filesystem for FuseFs<S> {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _s = tracing::debug_span!("lookup", parent = parent.0, ?name).entered();
        match self.rt.block_on(self.fs.lookup(parent.0, name)) {
            Ok(e) => reply.entry(&e.ttl, &file_attr(&e.attr), Generation(0)),
            Err(e) => reply.error(reply_error("lookup", e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _s = tracing::debug_span!("getattr", ino = ino.0).entered();
        match self.rt.block_on(self.fs.getattr(ino.0)) {
            Ok(e) => reply.attr(&e.ttl, &file_attr(&e.attr)),
            Err(e) => reply.error(reply_error("getattr", e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _s = tracing::debug_span!("open", ino = ino.0).entered();
        match self.rt.block_on(self.fs.open(ino.0, flags.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(reply_error("open", e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let _s = tracing::debug_span!("read", ino = ino.0, fh = fh.0, offset, size).entered();
        match self.rt.block_on(self.fs.read(fh.0, offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(reply_error("read", e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let _s = tracing::debug_span!("release", ino = ino.0, fh = fh.0).entered();
        match self.rt.block_on(self.fs.release(fh.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(reply_error("release", e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _s = tracing::debug_span!("opendir", ino = ino.0).entered();
        match self.rt.block_on(self.fs.opendir(ino.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(reply_error("opendir", e)),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let _s = tracing::debug_span!("readdir", ino = ino.0, fh = fh.0, offset).entered();
        let result = self
            .rt
            .block_on(self.fs.readdir(fh.0, offset, &mut FuseDirReplier(&mut reply)));
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(reply_error("readdir", e)),
        }
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.fs.statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bfree, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
        );
    }

    fn destroy(&mut self) {
        debug!("filesystem destroyed");
    }
}
