//! The namespace handlers: mkdir, unlink, rmdir, symlink and rename over `S3Fs`'s (new entries
//! owned by the caller's uid and gid, modes with the umask applied). The `fuser::Filesystem`
//! methods in `mod.rs` forward here. mknod stays there: as a method of its own it would take
//! more arguments than clippy allows.

use std::ffi::OsStr;
use std::path::Path;

use fuser::{INodeNo, RenameFlags, ReplyEmpty, ReplyEntry, Request};

use super::reply::At;
use super::FuseFs;
use crate::metrics;
use crate::store::ObjectStore;

impl<S: ObjectStore> FuseFs<S> {
    pub(super) fn do_mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let _s = tracing::debug_span!("mkdir", parent = parent.0, ?name).entered();
        let _m = metrics::fuse_op("mkdir");
        let r = self
            .rt
            .block_on(self.fs.mkdir(parent.0, name, mode & !umask, req.uid(), req.gid()));
        self.reply_entry("mkdir", At::Child(parent.0, name), r, reply);
    }

    pub(super) fn do_unlink(&self, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _s = tracing::debug_span!("unlink", parent = parent.0, ?name).entered();
        let _m = metrics::fuse_op("unlink");
        self.reply_empty(
            "unlink",
            At::Child(parent.0, name),
            self.block_on(self.fs.unlink(parent.0, name)),
            reply,
        );
    }

    pub(super) fn do_rmdir(&self, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _s = tracing::debug_span!("rmdir", parent = parent.0, ?name).entered();
        let _m = metrics::fuse_op("rmdir");
        self.reply_empty(
            "rmdir",
            At::Child(parent.0, name),
            self.block_on(self.fs.rmdir(parent.0, name)),
            reply,
        );
    }

    pub(super) fn do_symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let _s = tracing::debug_span!("symlink", parent = parent.0, ?link_name).entered();
        let _m = metrics::fuse_op("symlink");
        let r = self
            .rt
            .block_on(self.fs.symlink(parent.0, link_name, target, req.uid(), req.gid()));
        self.reply_entry("symlink", At::Child(parent.0, link_name), r, reply);
    }

    pub(super) fn do_rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let _s = tracing::debug_span!("rename", parent = parent.0, ?name, newparent = newparent.0, ?newname).entered();
        let _m = metrics::fuse_op("rename");
        let r = self
            .rt
            .block_on(self.fs.rename(parent.0, name, newparent.0, newname, flags.bits()));
        self.reply_empty("rename", At::Child(parent.0, name), r, reply);
    }
}
