//! `InodeTable`: inode numbers ↔ paths, with each inode's last known attributes and their expiry.
//!
//! The inode model:
//! - an inode stands for a path relative to the mount root (`""` is the root, ino 1) and a kind;
//!   the same path keeps its number while its kind stays the same;
//! - attributes come from listings (readdir fills the table so `ls -l` needs no request per entry)
//!   or from HEAD/LIST on lookup, and are trusted until `fresh_until`;
//! - `lookups` counts the kernel's references; `forget` drops them. Inodes the kernel never looked
//!   up (made by readdir) are swept once they are stale, so a huge listing does not stay in memory;
//! - missing paths are remembered for the metadata TTL too (negative cache).

// foldhash (already built for hashbrown/lru): SipHash was a tenth of a 10 000-entry listing's CPU.
use foldhash::HashMap;
use foldhash::HashMapExt;
use std::time::{Duration, Instant, SystemTime};

use super::meta::Posix;

/// The root inode number.
pub const ROOT_INO: u64 = 1;

/// Inodes the maps hold before they first grow.
const INITIAL_CAPACITY: usize = 8192;

/// What an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A regular file (an object).
    File,
    /// A directory (a common prefix or a `dir/` marker).
    Dir,
    /// A symbolic link (an object whose mode metadata says so; the body is the target).
    Symlink,
    /// A named pipe (an empty object whose mode says so; opened, it is a pipe of this machine).
    Fifo,
    /// A UNIX socket's name (an empty object whose mode says so).
    Socket,
    /// A character device (an empty object with the device number in its metadata).
    CharDevice,
    /// A block device (an empty object with the device number in its metadata).
    BlockDevice,
}

impl Kind {
    /// A FIFO, socket or device: an empty object standing for something of this machine.
    pub fn is_special(self) -> bool {
        matches!(self, Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice)
    }

    /// The type bits of `st_mode`.
    pub fn mode_bits(self) -> u32 {
        match self {
            Kind::File => libc::S_IFREG,
            Kind::Dir => libc::S_IFDIR,
            Kind::Symlink => libc::S_IFLNK,
            Kind::Fifo => libc::S_IFIFO,
            Kind::Socket => libc::S_IFSOCK,
            Kind::CharDevice => libc::S_IFCHR,
            Kind::BlockDevice => libc::S_IFBLK,
        }
    }
}

/// Last known attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    pub size: u64,
    pub mtime: SystemTime,
    pub etag: Option<String>,
    /// POSIX attributes from the object's metadata; `None` until a HEAD has been made (listings
    /// do not carry metadata).
    pub posix: Option<Posix>,
}

impl Stat {
    /// A file's attributes; with POSIX attributes from a HEAD (`posix: Some`), a symbolic link,
    /// FIFO, socket or device if they say so (a listing cannot tell).
    pub fn file(size: u64, mtime: SystemTime, etag: Option<String>, posix: Option<Posix>) -> Self {
        let kind = posix.as_ref().map_or(Kind::File, Posix::object_kind);
        Self {
            kind,
            size,
            mtime,
            etag,
            posix,
        }
    }

    /// A directory's attributes (S3 has none: the mount time stands in for mtime).
    pub fn dir(mtime: SystemTime) -> Self {
        Self {
            kind: Kind::Dir,
            size: 0,
            mtime,
            etag: None,
            posix: None,
        }
    }
}

/// One inode.
#[derive(Clone, Debug)]
pub struct Inode {
    pub ino: u64,
    /// Path relative to the mount root, without a trailing slash.
    pub path: String,
    pub stat: Stat,
    pub fresh_until: Instant,
    pub lookups: u64,
}

/// All inodes of a mount.
#[derive(Debug)]
pub struct InodeTable {
    /// Boxed: an inode is ~160 bytes, and growing the map moves every value. Boxes make that a
    /// move of pointers (rehashing was half the cost of taking a 5 000-entry listing in).
    by_ino: HashMap<u64, Box<Inode>>,
    by_path: HashMap<String, u64>,
    missing: HashMap<String, Instant>,
    next_ino: u64,
    sweep_at: usize,
}

impl InodeTable {
    /// A table holding only the root directory.
    pub fn new(root_mtime: SystemTime) -> Self {
        let root = Inode {
            ino: ROOT_INO,
            path: String::new(),
            stat: Stat::dir(root_mtime),
            // The root always exists: its attributes never need a request.
            fresh_until: Instant::now() + Duration::from_secs(100 * 365 * 86_400),
            lookups: 1,
        };
        let mut t = Self {
            // Room for a few thousand entries before the first resize (memory is touched only
            // as it is used).
            by_ino: HashMap::with_capacity(INITIAL_CAPACITY),
            by_path: HashMap::with_capacity(INITIAL_CAPACITY),
            missing: HashMap::new(),
            next_ino: ROOT_INO + 1,
            sweep_at: 4096,
        };
        t.by_path.insert(String::new(), ROOT_INO);
        t.by_ino.insert(ROOT_INO, Box::new(root));
        t
    }

    /// The inode numbered `ino`.
    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.by_ino.get(&ino).map(|i| &**i)
    }

    /// The inode for `path`, if known.
    pub fn by_path(&self, path: &str) -> Option<&Inode> {
        self.by_path.get(path).and_then(|i| self.by_ino.get(i)).map(|i| &**i)
    }

    /// The inode `ino` if it was removed through this mount (unlinked, or replaced by a rename)
    /// while the kernel still holds it: an open file's `fstat` shows its last attributes.
    pub fn unlinked(&self, ino: u64) -> Option<&Inode> {
        let inode = self.by_ino.get(&ino)?;
        (ino != ROOT_INO && self.by_path.get(&inode.path) != Some(&ino)).then_some(&**inode)
    }

    /// Whether `path` was found missing less than a TTL ago.
    pub fn known_missing(&self, path: &str, now: Instant) -> bool {
        self.missing.get(path).is_some_and(|until| *until > now)
    }

    /// Remember that `path` does not exist, until `until`.
    pub fn set_missing(&mut self, path: &str, until: Instant) {
        self.missing.insert(path.to_string(), until);
    }

    /// Record what is known of `path`, keeping its number unless its kind changed. Returns the ino.
    pub fn upsert(&mut self, path: &str, stat: Stat, fresh_until: Instant) -> u64 {
        self.upsert_owned(path.to_string(), stat, fresh_until)
    }

    /// [`InodeTable::upsert`] of a path already built (one copy less per entry of a listing).
    pub fn upsert_owned(&mut self, path: String, stat: Stat, fresh_until: Instant) -> u64 {
        if !self.missing.is_empty() {
            self.missing.remove(&path);
        }
        if let Some(ino) = self.by_path.get(&path).copied() {
            if let Some(inode) = self.by_ino.get_mut(&ino) {
                if inode.stat.kind == stat.kind {
                    inode.stat = stat;
                    inode.fresh_until = fresh_until;
                    return ino;
                }
            }
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.by_path.insert(path.clone(), ino);
        self.by_ino.insert(
            ino,
            Box::new(Inode {
                ino,
                path,
                stat,
                fresh_until,
                lookups: 0,
            }),
        );
        if self.by_ino.len() >= self.sweep_at {
            self.sweep(Instant::now());
        }
        ino
    }

    /// The kernel took a reference to `ino` (a successful lookup or create).
    pub fn add_lookup(&mut self, ino: u64) {
        if let Some(i) = self.by_ino.get_mut(&ino) {
            i.lookups += 1;
        }
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let remove = match self.by_ino.get_mut(&ino) {
            Some(i) => {
                i.lookups = i.lookups.saturating_sub(n);
                i.lookups == 0
            }
            None => false,
        };
        if remove {
            self.remove_ino(ino);
        }
    }

    /// Mark `ino`'s attributes as needing a refresh.
    pub fn expire(&mut self, ino: u64) {
        if let Some(i) = self.by_ino.get_mut(&ino) {
            i.fresh_until = Instant::now();
        }
    }

    /// Move `from` (and everything under it) to `to`; whatever was at `to` loses its path.
    /// Inodes that lost their path before (unlinked or replaced, still held by the kernel) stay
    /// where they were: they are not the files at those paths any more.
    pub fn rename(&mut self, from: &str, to: &str) {
        if let Some(old) = self.by_path.remove(to) {
            if let Some(i) = self.by_ino.get_mut(&old) {
                i.fresh_until = Instant::now();
            }
        }
        let below = format!("{from}/");
        let moved: Vec<u64> = self
            .by_ino
            .values()
            .filter(|i| i.path == from || i.path.starts_with(&below))
            .filter(|i| self.by_path.get(&i.path) == Some(&i.ino))
            .map(|i| i.ino)
            .collect();
        for ino in moved {
            if let Some(i) = self.by_ino.get_mut(&ino) {
                let new_path = format!("{to}{}", &i.path[from.len()..]);
                self.by_path.remove(&i.path);
                i.path = new_path.clone();
                self.by_path.insert(new_path, ino);
            }
        }
        self.missing.remove(to);
    }

    /// `path` is gone: forget the mapping (open inodes stay reachable by number).
    pub fn remove_path(&mut self, path: &str, until: Instant) {
        if let Some(ino) = self.by_path.remove(path) {
            if let Some(i) = self.by_ino.get_mut(&ino) {
                i.fresh_until = Instant::now();
            }
        }
        self.missing.insert(path.to_string(), until);
    }

    /// Keep `ino`'s attributes fresh until at least `until`.
    pub fn extend(&mut self, ino: u64, until: Instant) {
        if let Some(i) = self.by_ino.get_mut(&ino) {
            i.fresh_until = i.fresh_until.max(until);
        }
    }

    /// Update the attributes of `ino` in place.
    pub fn set_stat(&mut self, ino: u64, stat: Stat, fresh_until: Instant) {
        if let Some(i) = self.by_ino.get_mut(&ino) {
            i.stat = stat;
            i.fresh_until = fresh_until;
        }
    }

    /// Number of inodes held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.by_ino.len()
    }

    /// Whether only the root is held.
    pub fn is_empty(&self) -> bool {
        self.by_ino.len() <= 1
    }

    fn remove_ino(&mut self, ino: u64) {
        if let Some(inode) = self.by_ino.remove(&ino) {
            if self.by_path.get(&inode.path) == Some(&ino) {
                self.by_path.remove(&inode.path);
            }
        }
    }

    /// Drop stale inodes the kernel holds no reference to, and expired negative entries.
    fn sweep(&mut self, now: Instant) {
        let dead: Vec<u64> = self
            .by_ino
            .values()
            .filter(|i| i.lookups == 0 && i.fresh_until <= now && i.ino != ROOT_INO)
            .map(|i| i.ino)
            .collect();
        for ino in dead {
            self.remove_ino(ino);
        }
        self.missing.retain(|_, until| *until > now);
        self.sweep_at = (self.by_ino.len() * 2).max(4096);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64) -> Stat {
        Stat {
            kind: Kind::File,
            size,
            mtime: SystemTime::UNIX_EPOCH,
            etag: None,
            posix: None,
        }
    }

    #[test]
    fn same_path_same_number_until_kind_changes_and_forget_frees() {
        let mut t = InodeTable::new(SystemTime::UNIX_EPOCH);
        let later = Instant::now() + Duration::from_secs(5);
        let a = t.upsert("a", file(1), later);
        assert_eq!(t.upsert("a", file(2), later), a);
        assert_eq!(t.get(a).map(|i| i.stat.size), Some(2));
        let b = t.upsert("a", Stat::dir(SystemTime::UNIX_EPOCH), later);
        assert_ne!(a, b);
        t.add_lookup(b);
        t.forget(b, 1);
        assert!(t.get(b).is_none() && t.by_path("a").is_none());
        t.set_missing("x", later);
        assert!(t.known_missing("x", Instant::now()));
        t.upsert("x", file(0), later);
        assert!(!t.known_missing("x", Instant::now()));
    }

    #[test]
    fn a_rename_moves_the_file_at_the_path_not_an_unlinked_one_still_held() {
        let mut t = InodeTable::new(SystemTime::UNIX_EPOCH);
        let later = Instant::now() + Duration::from_secs(5);
        // `echo 1 > d/f; rm d/f; echo 2 > d/f; mv d g` while the kernel holds the first `d/f`.
        t.upsert("d", Stat::dir(SystemTime::UNIX_EPOCH), later);
        let old = t.upsert("d/f", file(1), later);
        t.add_lookup(old);
        t.remove_path("d/f", later);
        let new = t.upsert("d/f", file(2), later);
        assert_ne!(old, new);
        t.rename("d", "g");
        assert_eq!(t.by_path("g/f").map(|i| i.ino), Some(new));
        assert_eq!(t.get(new).map(|i| i.path.as_str()), Some("g/f"));
        assert_eq!(t.get(old).map(|i| i.path.as_str()), Some("d/f"), "left where it was");
        assert!(t.by_path("d/f").is_none());
        // And a file renamed over: the replaced one keeps its old path, the moved one takes it.
        let a = t.upsert("a", file(1), later);
        t.add_lookup(a);
        let b = t.upsert("b", file(2), later);
        t.rename("b", "a");
        assert_eq!(t.by_path("a").map(|i| i.ino), Some(b));
        t.rename("a", "c");
        assert_eq!(t.by_path("c").map(|i| i.ino), Some(b));
        assert_eq!(t.get(a).map(|i| i.path.as_str()), Some("a"), "the replaced file stays");
    }

    #[test]
    fn sweep_keeps_referenced_and_fresh_inodes() {
        let mut t = InodeTable::new(SystemTime::UNIX_EPOCH);
        let past = Instant::now();
        let kept = t.upsert("kept", file(0), past);
        t.add_lookup(kept);
        for i in 0..5000 {
            t.upsert(&format!("f{i}"), file(0), past);
        }
        assert!(t.len() < 5000, "stale unreferenced inodes are swept ({})", t.len());
        assert!(t.get(kept).is_some());
        assert!(t.get(ROOT_INO).is_some());
    }
}
