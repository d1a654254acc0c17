//! Files open for writing, as lookups and listings see them: created or changed through the mount
//! and perhaps not uploaded yet, they exist all the same, with their writers' size.
//!
//! The handles and staged contents themselves belong to `files.rs`; this is only the bookkeeping
//! the namespace side needs from them:
//! - `lookup` of a name open for writing answers from its writers, not from S3 (which may not
//!   have the object yet);
//! - a complete listing gains the files of its directory open for writing that it lacks;
//! - READDIRPLUS gives such files their writers' size, without a TTL.
//!
//! Every lookup and listing asks, so each check costs one lock when no file is open for writing.
//! A file unlinked while open, or whose name another file took since, shows in no listing.

use std::collections::HashMap;

use super::inode::{Kind, Stat};
use super::listing::{DirEntryOut, DirHandle};
use super::{lock, S3Fs};
use crate::store::ObjectStore;

impl<S: ObjectStore> S3Fs<S> {
    /// The file at `rel`, if it is open for writing (one lock when none is: every lookup asks).
    pub(super) fn open_file_at(&self, rel: &str) -> Option<u64> {
        if lock(&self.open_files).is_empty() {
            return None;
        }
        let ino = lock(&self.inodes).by_path(rel)?.ino;
        lock(&self.open_files).contains_key(&ino).then_some(ino)
    }

    /// The files of directory `dir` open for writing, as (ino, name). Usually none.
    pub(super) fn open_files_in(&self, dir: &str) -> Vec<(u64, String)> {
        let inos: Vec<u64> = lock(&self.open_files).keys().copied().collect();
        if inos.is_empty() {
            return Vec::new();
        }
        let table = lock(&self.inodes);
        inos.into_iter()
            .filter_map(|ino| {
                let path = &table.get(ino)?.path;
                // Unlinked while open, or its name taken by another file since.
                if table.by_path(path).map(|i| i.ino) != Some(ino) {
                    return None;
                }
                let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
                (parent == dir).then(|| (ino, name.to_string()))
            })
            .collect()
    }

    /// Add to a complete listing the files of its directory open for writing that it lacks:
    /// created through the mount and not uploaded yet, they exist all the same. So do those open
    /// when the listing started and stored since (an upload from the write cache that landed
    /// after the page that would show it was listed), unless renamed or deleted meanwhile.
    pub(super) fn add_open_files(&self, dir: &mut DirHandle) {
        let mut open = self.open_files_in(&dir.path);
        let started = std::mem::take(&mut dir.open_at_start);
        if !started.is_empty() {
            let table = lock(&self.inodes);
            let now = std::time::Instant::now();
            for (ino, name) in started {
                let rel = super::path::join(&dir.path, &name);
                let moved = table
                    .get(ino)
                    .is_some_and(|i| i.path != rel || table.by_path(&rel).map(|i| i.ino) != Some(ino));
                if !moved && !table.known_missing(&rel, now) {
                    open.push((ino, name));
                }
            }
        }
        for (ino, name) in open {
            if !dir.entries.iter().any(|e| e.name == name) {
                dir.entries.push(DirEntryOut {
                    ino,
                    kind: Kind::File,
                    name,
                });
            }
        }
    }

    /// The attributes of the files open for writing in directory `dir`, by ino (see
    /// [`S3Fs::open_stat`]; one being uploaded is waited for, as by `getattr`).
    pub(super) async fn open_stats(&self, dir: &str) -> HashMap<u64, Stat> {
        if lock(&self.open_files).is_empty() {
            return HashMap::new();
        }
        let mut stats = HashMap::new();
        for (ino, _) in self.open_files_in(dir) {
            if let Some(stat) = self.open_stat(ino).await {
                stats.insert(ino, stat);
            }
        }
        stats
    }
}
