//! The FUSE adapter: `fuser::Filesystem` over a [`Mount`] (one bucket's `S3Fs`, or an account's
//! buckets), and nothing else.
//!
//! Each handler opens a span, runs the async operation on the tokio runtime (fuser's worker
//! threads are not runtime threads, so `block_on` is safe here), and replies once: values become
//! replies, and every error goes through `FuseFs::fail` (`reply.rs`), which logs one line per failed request
//! (operation, S3 key, errno and cause, at the error's own level: ENOENT and other ordinary
//! answers at DEBUG), counts it for the metrics, and replies with its errno. No handler calls
//! `reply.error` with an errno of its own. Each handler is timed for the metrics
//! ([`metrics::fuse_op`]). Each operation runs in a deadline scope (`store/deadline.rs`), so an
//! operation that waits on a silent server ends within `--timeout`.
//!
//! The handlers of three groups are `FuseFs` methods of their own files, which the trait methods
//! here forward to: `xattr.rs` (the four xattr calls), `dirs.rs` (opendir, readdir,
//! readdirplus) and `namespace.rs` (mkdir, unlink, rmdir, symlink, rename).

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    BsdFileFlags, FileHandle, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use tokio::runtime::Handle;
use tracing::debug;

use crate::account::Mount;
use crate::fs::attr::Attr;
use crate::fs::inode::Kind;
use crate::fs::SetAttr;
use crate::metrics;
use crate::store::ObjectStore;

mod dirs;
mod namespace;
mod reply;
mod xattr;
use reply::{file_attr, time, write_only_direct, At};

/// `fuser::Filesystem` for a [`Mount`]: one bucket's [`S3Fs`](crate::fs::S3Fs), or an account's.
pub struct FuseFs<S: ObjectStore> {
    fs: Arc<Mount<S>>,
    rt: Handle,
}

impl<S: ObjectStore> FuseFs<S> {
    /// Serve `fs`, running its futures on `rt`.
    pub fn new(fs: Arc<Mount<S>>, rt: Handle) -> Self {
        Self { fs, rt }
    }

    /// Run one operation to its end, in its own deadline scope (see `store/deadline.rs`: once a
    /// request of it found the server silent or unreachable, its later requests fail at once).
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(crate::store::deadline::scope(f))
    }
}

impl<S: ObjectStore> fuser::Filesystem for FuseFs<S> {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        // O_TRUNC must reach `open` (not come as a separate truncate first), or a failed
        // overwrite would leave an empty object in place of the good one.
        if let Err(missing) = config.add_capabilities(fuser::InitFlags::FUSE_ATOMIC_O_TRUNC) {
            tracing::warn!("the kernel lacks {missing:?}: O_TRUNC is not atomic");
        }
        // Entries come with their attributes where they are known (see S3Fs::readdirplus), so
        // `ls -l` and `find -size` need no lookup per name. "Auto": the kernel asks for them for a
        // directory's first entries, and for the rest only once those were used.
        let plus = fuser::InitFlags::FUSE_DO_READDIRPLUS | fuser::InitFlags::FUSE_READDIRPLUS_AUTO;
        if let Err(missing) = config.add_capabilities(plus) {
            tracing::info!("the kernel lacks {missing:?}: `ls -l` looks up each name");
        }
        Ok(())
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: fuser::ReplyXattr) {
        self.do_getxattr(ino, name, size, reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: fuser::ReplyXattr) {
        self.do_listxattr(ino, size, reply);
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.do_setxattr(ino, name, value, flags, reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.do_removexattr(ino, name, reply);
    }
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _s = tracing::debug_span!("lookup", parent = parent.0, ?name).entered();
        let _m = metrics::fuse_op("lookup");
        match self.block_on(self.fs.lookup(parent.0, name)) {
            // A negative entry: the kernel remembers the absence for the metadata TTL too, so
            // tools probing for files that are not there (git, editors, shells) cost nothing.
            Err(e) if e.errno == libc::ENOENT && !self.fs.negative_ttl().is_zero() => {
                let ttl = self.fs.negative_ttl();
                let _ = self.fail("lookup", At::Child(parent.0, name), e);
                let none = Attr {
                    ino: 0,
                    kind: Kind::File,
                    size: 0,
                    blocks: 0,
                    mtime: SystemTime::UNIX_EPOCH,
                    atime: SystemTime::UNIX_EPOCH,
                    ctime: SystemTime::UNIX_EPOCH,
                    perm: 0,
                    nlink: 0,
                    uid: 0,
                    gid: 0,
                    rdev: 0,
                };
                reply.entry(&ttl, &file_attr(&none), Generation(0));
            }
            r => self.reply_entry("lookup", At::Child(parent.0, name), r, reply),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let _s = tracing::debug_span!("setattr", ino = ino.0, ?mode, ?uid, ?gid, ?size).entered();
        let _m = metrics::fuse_op("setattr");
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            mtime: mtime.map(time),
            atime: _atime.map(time),
        };
        match self.block_on(self.fs.setattr(ino.0, fh.map(|f| f.0), set)) {
            Ok(e) => reply.attr(&e.ttl, &file_attr(&e.attr)),
            Err(e) => reply.error(self.fail("setattr", At::Ino(ino.0), e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let _s = tracing::debug_span!("readlink", ino = ino.0).entered();
        let _m = metrics::fuse_op("readlink");
        match self.block_on(self.fs.readlink(ino.0)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(self.fail("readlink", At::Ino(ino.0), e)),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        self.do_mkdir(req, parent, name, mode, umask, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.do_unlink(parent, name, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.do_rmdir(parent, name, reply);
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let _s = tracing::debug_span!("mknod", parent = parent.0, ?name, mode, rdev).entered();
        let _m = metrics::fuse_op("mknod");
        let r = self.block_on(
            self.fs
                .mknod(parent.0, name, mode & !(umask & 0o7777), rdev, req.uid(), req.gid()),
        );
        self.reply_entry("mknod", At::Child(parent.0, name), r, reply);
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        self.do_symlink(req, parent, link_name, target, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.do_rename(parent, name, newparent, newname, flags, reply);
    }

    fn link(&self, _req: &Request, ino: INodeNo, _newparent: INodeNo, _newname: &OsStr, reply: ReplyEntry) {
        let _m = metrics::fuse_op("link");
        self.reply_entry("link", At::Ino(ino.0), self.block_on(self.fs.link(ino.0)), reply);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let _s = tracing::debug_span!("create", parent = parent.0, ?name).entered();
        let _m = metrics::fuse_op("create");
        match self.block_on(
            self.fs
                .create(parent.0, name, mode & !umask, req.uid(), req.gid(), req.pid()),
        ) {
            Ok((e, fh)) => reply.created(
                &e.ttl,
                &file_attr(&e.attr),
                Generation(0),
                FileHandle(fh),
                write_only_direct(flags),
            ),
            Err(e) => reply.error(self.fail("create", At::Child(parent.0, name), e)),
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let _s = tracing::debug_span!("write", ino = ino.0, fh = fh.0, offset, len = data.len()).entered();
        let _m = metrics::fuse_op("write");
        match self.block_on(self.fs.write_as(fh.0, offset, data, req.uid() == 0)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(self.fail("write", At::Ino(ino.0), e)),
        }
    }

    fn flush(&self, req: &Request, ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        let _s = tracing::debug_span!("flush", ino = ino.0, fh = fh.0).entered();
        let _m = metrics::fuse_op("flush");
        self.reply_empty(
            "flush",
            At::Ino(ino.0),
            self.block_on(self.fs.flush(fh.0, req.pid())),
            reply,
        );
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let _s = tracing::debug_span!("fsync", ino = ino.0, fh = fh.0).entered();
        let _m = metrics::fuse_op("fsync");
        self.reply_empty("fsync", At::Ino(ino.0), self.block_on(self.fs.fsync(fh.0)), reply);
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let _s = tracing::debug_span!("fsyncdir", ino = ino.0).entered();
        let _m = metrics::fuse_op("fsyncdir");
        self.reply_empty(
            "fsyncdir",
            At::Ino(ino.0),
            self.block_on(self.fs.fsyncdir(ino.0)),
            reply,
        );
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let _m = metrics::fuse_op("forget");
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _s = tracing::debug_span!("getattr", ino = ino.0).entered();
        let _m = metrics::fuse_op("getattr");
        match self.block_on(self.fs.getattr(ino.0)) {
            Ok(e) => reply.attr(&e.ttl, &file_attr(&e.attr)),
            Err(e) => reply.error(self.fail("getattr", At::Ino(ino.0), e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let _s = tracing::debug_span!("open", ino = ino.0).entered();
        let _m = metrics::fuse_op("open");
        match self.block_on(self.fs.open(ino.0, flags.0, req.pid())) {
            Ok(fh) => {
                let keep = if self.fs.keep_cache(fh) {
                    FopenFlags::FOPEN_KEEP_CACHE
                } else {
                    FopenFlags::empty()
                };
                reply.opened(FileHandle(fh), keep | write_only_direct(flags.0))
            }
            Err(e) => reply.error(self.fail("open", At::Ino(ino.0), e)),
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
        let _m = metrics::fuse_op("read");
        match self.block_on(self.fs.read(fh.0, offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(self.fail("read", At::Ino(ino.0), e)),
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
        let _m = metrics::fuse_op("release");
        self.reply_empty("release", At::Ino(ino.0), self.block_on(self.fs.release(fh.0)), reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.do_opendir(ino, reply);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        self.do_readdir(ino, fh, offset, reply);
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectoryPlus) {
        self.do_readdirplus(ino, fh, offset, reply);
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        let _m = metrics::fuse_op("releasedir");
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _m = metrics::fuse_op("statfs");
        let s = self.fs.statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bfree, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
        );
    }

    fn destroy(&mut self) {
        self.fs.flush_caches();
        debug!("filesystem destroyed");
    }
}
