//! The xattr handlers: getxattr, listxattr, setxattr and removexattr over `S3Fs`'s, with
//! the size-0 / `ERANGE` protocol answered by `reply_xattr` (`reply.rs`). The
//! `fuser::Filesystem` methods in `mod.rs` forward here.

use std::ffi::OsStr;

use fuser::{INodeNo, ReplyEmpty};

use super::reply::At;
use super::FuseFs;
use crate::metrics;
use crate::store::ObjectStore;

impl<S: ObjectStore> FuseFs<S> {
    pub(super) fn do_getxattr(&self, ino: INodeNo, name: &OsStr, size: u32, reply: fuser::ReplyXattr) {
        let _s = tracing::debug_span!("getxattr", ino = ino.0, ?name).entered();
        let _m = metrics::fuse_op("getxattr");
        self.reply_xattr(
            "getxattr",
            At::Ino(ino.0),
            self.block_on(self.fs.getxattr(ino.0, name)),
            size,
            reply,
        );
    }

    pub(super) fn do_listxattr(&self, ino: INodeNo, size: u32, reply: fuser::ReplyXattr) {
        let _s = tracing::debug_span!("listxattr", ino = ino.0).entered();
        let _m = metrics::fuse_op("listxattr");
        self.reply_xattr(
            "listxattr",
            At::Ino(ino.0),
            self.block_on(self.fs.listxattr(ino.0)),
            size,
            reply,
        );
    }

    pub(super) fn do_setxattr(&self, ino: INodeNo, name: &OsStr, value: &[u8], flags: i32, reply: ReplyEmpty) {
        let _s = tracing::debug_span!("setxattr", ino = ino.0, ?name).entered();
        let _m = metrics::fuse_op("setxattr");
        self.reply_empty(
            "setxattr",
            At::Ino(ino.0),
            self.block_on(self.fs.setxattr(ino.0, name, value, flags)),
            reply,
        );
    }

    pub(super) fn do_removexattr(&self, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let _s = tracing::debug_span!("removexattr", ino = ino.0, ?name).entered();
        let _m = metrics::fuse_op("removexattr");
        self.reply_empty(
            "removexattr",
            At::Ino(ino.0),
            self.block_on(self.fs.removexattr(ino.0, name)),
            reply,
        );
    }
}
