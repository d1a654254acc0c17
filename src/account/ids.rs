//! Numbers the kernel sees in an account mount: each bucket's [`S3Fs`](crate::fs::S3Fs) numbers its
//! own inodes and handles from 1, so a bucket's number (its slot, from 1) goes in the high bits.
//! Slot 0 is the account root itself, and the whole of a single-bucket mount (numbers unchanged).
//! Also here: the directory repliers that renumber a bucket's entries on their way to the kernel.

use crate::fs::inode::Kind;
use crate::fs::{DirPlusReplier, DirReplier, Entry};

/// Bits of a bucket's own inode and handle numbers (a trillion of each).
pub const SLOT_SHIFT: u32 = 40;
const LOCAL_MASK: u64 = (1 << SLOT_SHIFT) - 1;

/// The kernel's number for `local` of bucket `slot` (0 stays 0: "no inode").
pub fn global(slot: u64, local: u64) -> u64 {
    if local == 0 {
        0
    } else {
        (slot << SLOT_SHIFT) | (local & LOCAL_MASK)
    }
}

/// What the kernel adds to every number of bucket `slot`.
pub fn base(slot: u64) -> u64 {
    slot << SLOT_SHIFT
}

/// `(slot, local)` of a kernel number.
pub fn split(global: u64) -> (u64, u64) {
    (global >> SLOT_SHIFT, global & LOCAL_MASK)
}

/// An entry of bucket `slot`, renumbered for the kernel.
pub fn entry(slot: u64, mut e: Entry) -> Entry {
    e.attr.ino = global(slot, e.attr.ino);
    e
}

/// Renumbers the entries of a bucket's directory.
pub struct SlotDir<'a> {
    pub out: &'a mut dyn DirReplier,
    pub slot: u64,
}

impl DirReplier for SlotDir<'_> {
    fn add(&mut self, ino: u64, offset: u64, kind: Kind, name: &str) -> bool {
        self.out.add(global(self.slot, ino), offset, kind, name)
    }
}

/// Renumbers the entries (with attributes) of a bucket's directory.
pub struct SlotDirPlus<'a> {
    pub out: &'a mut dyn DirPlusReplier,
    pub slot: u64,
}

impl DirPlusReplier for SlotDirPlus<'_> {
    fn add(&mut self, offset: u64, name: &str, e: &Entry) -> bool {
        self.out.add(offset, name, &entry(self.slot, e.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_slot_zero_is_unchanged() {
        assert_eq!(global(0, 42), 42);
        assert_eq!(split(42), (0, 42));
        let g = global(3, 1);
        assert_ne!(g, 1);
        assert_eq!(split(g), (3, 1));
        assert_eq!(global(7, 0), 0, "no inode stays no inode");
        assert_eq!(split(global(1, LOCAL_MASK)), (1, LOCAL_MASK));
    }
}
