//! POSIX attributes kept in user metadata, with s3fs's names so buckets written by s3fs read
//! correctly here and the other way round:
//!
//! | metadata | meaning | format |
//! |---|---|---|
//! | `x-amz-meta-mode` | `st_mode` (type and permission bits) | decimal, e.g. `33188` = `0100644` |
//! | `x-amz-meta-uid`, `x-amz-meta-gid` | owner | decimal |
//! | `x-amz-meta-mtime` | modification time | seconds since the epoch, `sec` or `sec.nanosec` |
//! | `x-amz-meta-atime`, `x-amz-meta-ctime` | access and change times | as mtime |
//! | `x-amz-meta-rdev` | device number of a character or block device | decimal `dev_t` |
//!
//! A symlink is an object whose body is the target and whose mode has `S_IFLNK` (s3fs's format).
//! FIFOs, sockets and devices are empty objects whose mode says which (`S_IFIFO`, `S_IFSOCK`,
//! `S_IFCHR`, `S_IFBLK`), devices with their number in `rdev`: what s3fs's `mknod` writes.
//! Values that do not parse are ignored (the mount's defaults apply), never an error.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::inode::Kind;

/// POSIX attributes read from (or to be written into) an object's metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Posix {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Option<SystemTime>,
    pub atime: Option<SystemTime>,
    pub ctime: Option<SystemTime>,
    pub rdev: Option<u32>,
}

pub const MODE: &str = "mode";
pub const UID: &str = "uid";
pub const GID: &str = "gid";
pub const MTIME: &str = "mtime";
pub const ATIME: &str = "atime";
pub const CTIME: &str = "ctime";
pub const RDEV: &str = "rdev";

/// Metadata names that hold POSIX attributes (not user metadata).
pub const NAMES: [&str; 7] = [MODE, UID, GID, MTIME, ATIME, CTIME, RDEV];

fn parse_time(s: &str) -> Option<SystemTime> {
    let (secs, nanos) = match s.split_once('.') {
        Some((a, b)) => {
            let digits: String = b.chars().take(9).collect();
            let scale = 10u32.pow(9 - digits.len() as u32);
            (a.parse::<u64>().ok()?, digits.parse::<u32>().ok()? * scale)
        }
        None => (s.parse::<u64>().ok()?, 0),
    };
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

fn format_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
    }
}

impl Posix {
    /// Read the attributes from user metadata.
    pub fn from_metadata(m: &HashMap<String, String>) -> Self {
        let get = |k: &str| m.get(k).map(|v| v.trim());
        Posix {
            mode: get(MODE).and_then(|v| v.parse().ok()),
            uid: get(UID).and_then(|v| v.parse().ok()),
            gid: get(GID).and_then(|v| v.parse().ok()),
            mtime: get(MTIME).and_then(parse_time),
            atime: get(ATIME).and_then(parse_time),
            ctime: get(CTIME).and_then(parse_time),
            rdev: get(RDEV).and_then(|v| v.parse().ok()),
        }
    }

    /// Write the attributes into `m`, keeping every other entry.
    pub fn apply_to(&self, m: &mut HashMap<String, String>) {
        if let Some(v) = self.mode {
            m.insert(MODE.into(), v.to_string());
        }
        if let Some(v) = self.uid {
            m.insert(UID.into(), v.to_string());
        }
        if let Some(v) = self.gid {
            m.insert(GID.into(), v.to_string());
        }
        if let Some(t) = self.mtime {
            m.insert(MTIME.into(), format_time(t));
        }
        if let Some(t) = self.atime {
            m.insert(ATIME.into(), format_time(t));
        }
        if let Some(t) = self.ctime {
            m.insert(CTIME.into(), format_time(t));
        }
        if let Some(v) = self.rdev {
            m.insert(RDEV.into(), v.to_string());
        }
    }

    /// What an object with these attributes is: a symlink, FIFO, socket or device if the mode's
    /// type bits say so, else a regular file (also when there is no mode, or a directory's).
    pub fn object_kind(&self) -> Kind {
        match self.mode.map(|m| m & libc::S_IFMT) {
            Some(libc::S_IFLNK) => Kind::Symlink,
            Some(libc::S_IFIFO) => Kind::Fifo,
            Some(libc::S_IFSOCK) => Kind::Socket,
            Some(libc::S_IFCHR) => Kind::CharDevice,
            Some(libc::S_IFBLK) => Kind::BlockDevice,
            _ => Kind::File,
        }
    }

    /// `other`'s attributes where set, else ours.
    pub fn overlay(&self, other: &Posix) -> Posix {
        Posix {
            mode: other.mode.or(self.mode),
            uid: other.uid.or(self.uid),
            gid: other.gid.or(self.gid),
            mtime: other.mtime.or(self.mtime),
            atime: other.atime.or(self.atime),
            ctime: other.ctime.or(self.ctime),
            rdev: other.rdev.or(self.rdev),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_s3fs_values() {
        let mut m = HashMap::new();
        m.insert("mode".into(), "33188".into());
        m.insert("uid".into(), "1000".into());
        m.insert("mtime".into(), "1700000000".into());
        m.insert("other".into(), "kept".into());
        let p = Posix::from_metadata(&m);
        assert_eq!(p.mode, Some(0o100644));
        assert_eq!(p.uid, Some(1000));
        assert_eq!(p.gid, None);
        assert_eq!(p.mtime, Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_000_000);
        let q = Posix {
            mtime: Some(t),
            ..p.clone()
        };
        let mut out = m.clone();
        q.apply_to(&mut out);
        assert_eq!(out["mtime"], "1700000000.123000000");
        assert_eq!(out["other"], "kept");
        assert_eq!(Posix::from_metadata(&out).mtime, Some(t));
        m.insert("mode".into(), "not a number".into());
        assert_eq!(Posix::from_metadata(&m).mode, None);
        assert_eq!(
            Posix {
                mode: Some(0o120777),
                ..Default::default()
            }
            .object_kind(),
            Kind::Symlink
        );
    }

    #[test]
    fn special_files_read_as_s3fs_writes_them() {
        let mut m = HashMap::new();
        for (mode, kind) in [
            ("4516", Kind::Fifo),         // 010644
            ("49572", Kind::Socket),      // 0140644
            ("8612", Kind::CharDevice),   // 020644
            ("25000", Kind::BlockDevice), // 060650
            ("41471", Kind::Symlink),     // 0120777
            ("33188", Kind::File),        // 0100644
            ("16877", Kind::File),        // a directory's mode on an object: still an object
        ] {
            m.insert("mode".into(), mode.into());
            assert_eq!(Posix::from_metadata(&m).object_kind(), kind, "{mode}");
        }
        assert_eq!(Posix::default().object_kind(), Kind::File);
        let p = Posix {
            mode: Some(libc::S_IFBLK | 0o600),
            rdev: Some(2049),
            atime: Some(UNIX_EPOCH + Duration::new(1_900_000_000, 5)),
            ctime: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            ..Default::default()
        };
        let mut out = HashMap::new();
        p.apply_to(&mut out);
        assert_eq!(out["rdev"], "2049");
        assert_eq!(out["atime"], "1900000000.000000005");
        assert_eq!(out["ctime"], "1800000000");
        assert_eq!(Posix::from_metadata(&out), p);
    }
}
