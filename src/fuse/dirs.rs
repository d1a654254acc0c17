//! The directory handlers: opendir (which also starts listing ahead for tree walks, see
//! `fs/walk_ahead.rs`), readdir and readdirplus, each filling the kernel's buffer through a
//! replier of `reply.rs`. The `fuser::Filesystem` methods in `mod.rs` forward here.

use fuser::{FileHandle, FopenFlags, INodeNo, ReplyDirectory, ReplyDirectoryPlus, ReplyOpen};
use futures::StreamExt;

use super::reply::{At, FuseDirPlusReplier, FuseDirReplier};
use super::FuseFs;
use crate::metrics;
use crate::store::ObjectStore;

impl<S: ObjectStore> FuseFs<S> {
    pub(super) fn do_opendir(&self, ino: INodeNo, reply: ReplyOpen) {
        let _s = tracing::debug_span!("opendir", ino = ino.0).entered();
        let _m = metrics::fuse_op("opendir");
        match self.block_on(self.fs.opendir(ino.0)) {
            Ok(opened) => {
                if let Some((fs, ahead)) = self.fs.walk_ahead(ino.0) {
                    self.rt.spawn(async move {
                        let fs = &fs;
                        futures::stream::iter(ahead)
                            .for_each_concurrent(None, |job| fs.list_ahead(job))
                            .await;
                    });
                }
                // The kernel caches the entries it reads; it keeps them across opendirs only when
                // they are exactly what this handle would give (see listing_cache.rs).
                let mut flags = FopenFlags::FOPEN_CACHE_DIR;
                if opened.keep_cache {
                    flags |= FopenFlags::FOPEN_KEEP_CACHE;
                }
                reply.opened(FileHandle(opened.fh), flags);
            }
            Err(e) => reply.error(self.fail("opendir", At::Ino(ino.0), e)),
        }
    }

    pub(super) fn do_readdir(&self, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let _s = tracing::debug_span!("readdir", ino = ino.0, fh = fh.0, offset).entered();
        let _m = metrics::fuse_op("readdir");
        let result = self
            .rt
            .block_on(self.fs.readdir(fh.0, offset, &mut FuseDirReplier(&mut reply)));
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.fail("readdir", At::Ino(ino.0), e)),
        }
    }

    pub(super) fn do_readdirplus(&self, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let _s = tracing::debug_span!("readdirplus", ino = ino.0, fh = fh.0, offset).entered();
        let _m = metrics::fuse_op("readdirplus");
        let result = self
            .rt
            .block_on(self.fs.readdirplus(fh.0, offset, &mut FuseDirPlusReplier(&mut reply)));
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.fail("readdirplus", At::Ino(ino.0), e)),
        }
    }
}
