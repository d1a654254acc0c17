//! Attributes: turning a [`Stat`] into what `stat(2)` shows, under the mount's owner and modes.
//!
//! S3 keeps no owner or mode: every file shows `--uid/--gid` and `--file-mode`, every directory
//! `--dir-mode`, unless the object's metadata says otherwise (see `meta.rs`: mode, uid, gid and
//! mtime as s3fs stores them). Sizes come from the listing or HEAD; mtimes from the metadata, else
//! Last-Modified; directories without a marker show the mount time. `st_blocks` counts 512-byte units so `du` works.

use std::time::SystemTime;

use super::inode::{Kind, Stat};

/// Owner and permission bits shown for every inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presentation {
    pub uid: u32,
    pub gid: u32,
    pub file_mode: u16,
    pub dir_mode: u16,
}

/// The attributes of one inode, independent of FUSE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    pub blocks: u64,
    pub mtime: SystemTime,
    pub atime: SystemTime,
    pub ctime: SystemTime,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
}

impl Presentation {
    /// The attributes of inode `ino` with stat `stat`.
    pub fn attr(&self, ino: u64, stat: &Stat) -> Attr {
        let (perm, nlink) = match stat.kind {
            Kind::File => (self.file_mode, 1),
            Kind::Dir => (self.dir_mode, 2),
            Kind::Symlink => (0o777, 1),
            Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice => (self.file_mode, 1),
        };
        let posix = stat.posix.clone().unwrap_or_default();
        let mtime = posix.mtime.unwrap_or(stat.mtime);
        Attr {
            ino,
            kind: stat.kind,
            size: stat.size,
            blocks: stat.size.div_ceil(512),
            mtime,
            // Times not kept in metadata show the modification time.
            atime: posix.atime.unwrap_or(mtime),
            ctime: posix.ctime.unwrap_or(mtime),
            perm: posix.mode.map_or(perm, |m| (m & 0o7777) as u16),
            nlink,
            uid: posix.uid.unwrap_or(self.uid),
            gid: posix.gid.unwrap_or(self.gid),
            rdev: if stat.kind.is_special() {
                posix.rdev.unwrap_or(0)
            } else {
                0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_dirs_get_their_modes() {
        let p = Presentation {
            uid: 7,
            gid: 8,
            file_mode: 0o640,
            dir_mode: 0o750,
        };
        let f = p.attr(
            5,
            &Stat {
                kind: Kind::File,
                size: 1025,
                mtime: SystemTime::UNIX_EPOCH,
                etag: None,
                posix: None,
            },
        );
        assert_eq!(
            (f.perm, f.nlink, f.blocks, f.uid, f.gid, f.size),
            (0o640, 1, 3, 7, 8, 1025)
        );
        let d = p.attr(1, &Stat::dir(SystemTime::UNIX_EPOCH));
        assert_eq!((d.perm, d.nlink, d.kind), (0o750, 2, Kind::Dir));
        let posix = super::super::meta::Posix {
            mode: Some(0o100600),
            uid: Some(1),
            gid: Some(2),
            ..Default::default()
        };
        let g = p.attr(
            6,
            &Stat {
                posix: Some(posix),
                ..Stat::dir(SystemTime::UNIX_EPOCH)
            },
        );
        assert_eq!((g.perm, g.uid, g.gid), (0o600, 1, 2));
    }

    #[test]
    fn devices_show_their_number_and_times_default_to_mtime() {
        let p = Presentation {
            uid: 0,
            gid: 0,
            file_mode: 0o644,
            dir_mode: 0o755,
        };
        let t = |s| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        let dev = super::super::meta::Posix {
            mode: Some(libc::S_IFCHR | 0o620),
            rdev: Some(0x0102),
            atime: Some(t(5)),
            ..Default::default()
        };
        let a = p.attr(9, &Stat::file(0, t(7), None, Some(dev.clone())));
        assert_eq!((a.kind, a.perm, a.rdev), (Kind::CharDevice, 0o620, 0x0102));
        assert_eq!((a.mtime, a.atime, a.ctime), (t(7), t(5), t(7)));
        // A regular file never shows a device number, whatever its metadata says.
        let file = super::super::meta::Posix {
            mode: Some(libc::S_IFREG | 0o644),
            ..dev
        };
        let f = p.attr(10, &Stat::file(0, t(7), None, Some(file)));
        assert_eq!((f.kind, f.rdev), (Kind::File, 0));
    }
}
