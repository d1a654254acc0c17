//! Name resolution and attributes: `lookup`, `getattr` and `forget`.
//!
//! Request pattern of `lookup(parent, name)` (documented in the README):
//! 1. an entry of the parent's listing fresher than the metadata TTL answers without a request
//!    (so `ls -l` after `readdir` costs nothing per entry), and so does a fresh negative entry;
//! 2. otherwise HeadObject on `key` and a one-key ListObjectsV2 of `key/` run in parallel: any
//!    child under `key/` (or a `key/` marker) makes a directory, which hides a file of the same
//!    name; else a found object is a file; else ENOENT, remembered for the TTL.
//!
//! Before step 2, cheaper answers are tried, in this order:
//! - a file open for writing answers from its writers (`open_files.rs`), uploaded or not;
//! - a file known only from a listing needs a HEAD for its mode, owner and mtime: the
//!   directory's metadata prefetch (`prefetch.rs`) is started for all its files, and this
//!   lookup waits for that HEAD if it is on its way; a HEAD sent less than a TTL ago is fresh;
//! - a name in a directory made moments ago through the mount (`new_dirs.rs`), or missing from
//!   a complete fresh listing of at most [`RELIST_MAX`] names, is absent;
//! - expired entries of a small directory listed before are refreshed by listing it again once
//!   (a never-listed one from the second name missed there), instead of a HEAD and a LIST for
//!   each name; a directory too big, or too slow to list within half the TTL, is not listed
//!   again for lookups.
//!
//! Directories emptied through the mount that had no marker are kept until `rmdir`
//! (`kept_dirs`): S3 has no key for them, but they exist.
//!
//! `getattr` of a file open for writing answers from its writers; otherwise from the inode table
//! while fresh (directories always), else from a HEAD. `forget` drops the kernel's references.

use std::time::Instant;

use tracing::debug;

use super::inode::{InodeTable, Kind, Stat};
use super::meta::Posix;
use super::{lock, path, Entry, S3Fs};
use crate::error::{FsError, FsResult};
use crate::store::{ListRequest, ObjectStore, StoreError};

/// Largest directory (in names) listed again to refresh expired lookups.
pub const RELIST_MAX: usize = 20_000;
/// Never-listed directories whose first missed lookup is remembered.
pub(super) const MISS_DIRS: usize = 1024;

/// What the inode table says of a name, without asking S3.
pub(super) enum Known {
    /// Fresh, with everything `stat` shows (the kernel may keep it for the TTL).
    Complete(u64, Stat),
    /// Fresh, but a file known only from a listing: its metadata needs a HEAD.
    Listed(u64),
    /// Not known, or no longer fresh.
    Stale,
}

impl<S: ObjectStore> S3Fs<S> {
    /// lookup: find `name` in directory `parent`.
    pub async fn lookup(&self, parent: u64, name: &std::ffi::OsStr) -> FsResult<Entry> {
        let name = path::check_name(name)?;
        let dir = self.dir_path(parent)?;
        self.dir_use.looked_up(&dir);
        let rel = path::join(&dir, name);
        let key = path::object_key(&self.config.prefix, &rel);
        self.check_key_len(&rel)?;
        if let Some(ino) = self.open_file_at(&rel) {
            // Open for writing: what its writers wrote, uploaded or not (S3 may not have it yet).
            if let Some(stat) = self.open_stat(ino).await {
                lock(&self.inodes).add_lookup(ino);
                return Ok(self.entry(ino, &stat));
            }
        }
        let mut relisted = false;
        let mut waited = false;
        loop {
            // Decide under the lock, act after it (no lock is held across an await).
            let listed_file = {
                let mut table = lock(&self.inodes);
                let now = Instant::now();
                match self.known(&mut table, &rel, || key.clone(), now) {
                    Known::Complete(ino, stat) => {
                        table.add_lookup(ino);
                        return Ok(self.entry(ino, &stat));
                    }
                    Known::Listed(ino) => Some(ino),
                    Known::Stale if table.known_missing(&rel, now) => {
                        return Err(FsError::quiet(libc::ENOENT, format!("{rel} does not exist (cached)")));
                    }
                    Known::Stale => {
                        // A HEAD sent less than a TTL ago (the directory's prefetch) is fresh
                        // metadata of its own: no need to list or ask again.
                        let was_dir = table.by_path(&rel).is_some_and(|i| i.stat.kind == Kind::Dir);
                        if let Some((stat, until)) = self.prefetch.recent(&key).filter(|_| !was_dir) {
                            let ino = table.upsert(&rel, stat.clone(), until);
                            table.add_lookup(ino);
                            return Ok(self.entry(ino, &stat));
                        }
                        None
                    }
                }
            };
            if let Some(ino) = listed_file {
                // A file known only from a listing: its metadata (mode, mtime...) needs a HEAD.
                // Fetch the rest of the directory's in parallel, since `ls -l` will ask next,
                // and take this one's from there if it is on its way.
                self.prefetch.activate(parent);
                if !waited && self.prefetch.wait(&key).await {
                    waited = true;
                    continue;
                }
                return self.lookup_listed_file(ino, &rel, &key).await;
            }
            if relisted {
                // Listed again and there, but the listing outlasted the TTL: ask S3 directly.
                break;
            }
            if self.new_dirs.absent(&dir, name) {
                lock(&self.inodes).set_missing(&rel, self.fresh_until());
                return Err(FsError::quiet(
                    libc::ENOENT,
                    format!("{rel} does not exist (new directory)"),
                ));
            }
            if let Some(listing) = self.listings.fresh(&dir) {
                // A subdirectory of a directory listed for lookups (below): the listing vouches
                // for it, but its mode, owner and mtime live in its marker object, which only
                // stat_remote reads (an `rsync -a` would otherwise set them again at every run).
                if lock(&self.inodes)
                    .by_path(&rel)
                    .is_some_and(|i| i.stat.kind == Kind::Dir)
                {
                    break;
                }
                // A complete listing that lacks the name: absent (nothing changed through the
                // mount since it was listed, or it would have been dropped).
                if listing.len() <= RELIST_MAX
                    && !listing.iter().any(|l| l.name == name)
                    && !lock(&self.kept_dirs).contains(&rel)
                {
                    lock(&self.inodes).set_missing(&rel, self.fresh_until());
                    return Err(FsError::quiet(libc::ENOENT, format!("{rel} does not exist (listed)")));
                }
            }
            // Entries of a small directory listed before have expired: one listing refreshes
            // them all, instead of a HEAD and a LIST for each name looked up.
            match self.relist_small_dir(parent, &dir, name).await? {
                None => break,
                Some(false) if !lock(&self.kept_dirs).contains(&rel) => {
                    lock(&self.inodes).set_missing(&rel, self.fresh_until());
                    return Err(FsError::quiet(libc::ENOENT, format!("{rel} does not exist (listed)")));
                }
                Some(_) => relisted = true,
            }
        }
        let sent = Instant::now();
        let mut stat = self.stat_remote(&rel, &key).await?;
        if let Some(stat) = &stat {
            self.remember_posix(&key, stat, sent);
        } else if lock(&self.kept_dirs).contains(&rel) {
            stat = Some(Stat::dir(self.root_mtime()));
        }
        let mut table = lock(&self.inodes);
        match stat {
            Some(stat) => {
                let ino = table.upsert(&rel, stat.clone(), self.fresh_until());
                table.add_lookup(ino);
                Ok(self.entry(ino, &stat))
            }
            None => {
                table.set_missing(&rel, self.fresh_until());
                Err(FsError::quiet(libc::ENOENT, format!("{rel} does not exist")))
            }
        }
    }

    /// What `table` knows of `rel` (object `key()`, built only if needed) at `now`. A listed file
    /// whose metadata the directory's prefetch has fetched for its current ETag is complete.
    pub(super) fn known(&self, table: &mut InodeTable, rel: &str, key: impl FnOnce() -> String, now: Instant) -> Known {
        let Some(inode) = table.by_path(rel).filter(|i| i.fresh_until > now) else {
            return Known::Stale;
        };
        let (ino, mut stat, until) = (inode.ino, inode.stat.clone(), inode.fresh_until);
        if stat.kind == Kind::File && stat.posix.is_none() && !self.config.listing_attributes {
            stat.posix = self.cached_posix(&key(), &stat.etag);
            if let Some(p) = &stat.posix {
                // A listing cannot tell a symbolic link, FIFO or device from a file; its
                // metadata can. Keep what it says for getattr too.
                stat.kind = p.object_kind();
                table.set_stat(ino, stat.clone(), until);
            }
        }
        if stat.kind != Kind::File || stat.posix.is_some() || self.config.listing_attributes {
            Known::Complete(ino, stat)
        } else {
            Known::Listed(ino)
        }
    }

    /// A lookup of `name` in never-listed `dir` must ask S3: true from the second distinct name,
    /// if nothing changed through the mount in between (`cp -r` into a directory looks up each
    /// name before creating it: listing the directory again for each would cost far more).
    fn second_miss(&self, dir: &str, name: &str) -> bool {
        let generation = self.listings.generation();
        let mut misses = lock(&self.lookup_misses);
        match misses.get(dir) {
            Some((first, g)) if *g == generation => first != name,
            _ => {
                misses.put(dir.to_string(), (name.to_string(), generation));
                false
            }
        }
    }

    /// List `dir` if it was listed completely before and is small (at most [`RELIST_MAX`]
    /// names), or if it was never listed and this is the second name looked up in vain there
    /// (`rsync`, `cp -a`, `tar x`, `make` stat names of a directory they never list): whether
    /// `name` is in it, or `None` if it was not listed (too big, or another lookup is doing it).
    /// The files' metadata is then fetched for the whole directory, as after `opendir`.
    async fn relist_small_dir(&self, parent: u64, dir: &str, name: &str) -> FsResult<Option<bool>> {
        let listed_before = self.listings.peek(dir).map(|l| l.len());
        match listed_before {
            Some(n) if n > RELIST_MAX => return Ok(None),
            Some(_) => {}
            None if !self.second_miss(dir, name) => return Ok(None),
            None => {}
        }
        if lock(&self.slow_relists).contains(dir) || !lock(&self.relisting).insert(dir.to_string()) {
            return Ok(None);
        }
        if !self.config.listing_attributes {
            self.prefetch.start_listing(parent);
        }
        let started = Instant::now();
        let mut handle = self.dir_handle(parent, dir.to_string());
        handle.dirs_stale = listed_before.is_none();
        let mut result = Ok(());
        let mut too_big = false;
        while !handle.done {
            if handle.entries.len() > RELIST_MAX {
                too_big = true;
                break;
            }
            if let Err(e) = self.list_next_page(&mut handle).await {
                result = Err(e);
                break;
            }
        }
        lock(&self.relisting).remove(dir);
        if too_big || started.elapsed() > self.config.metadata_ttl / 2 {
            // Too big, or listing it takes too long for the TTL (its entries would expire on the
            // way): lookups there go back to asking S3 about each name.
            let mut slow = lock(&self.slow_relists);
            if slow.len() < 10_000 {
                slow.insert(dir.to_string());
            }
        }
        if too_big {
            debug!(dir, "too big to list for lookups");
            return Ok(None);
        }
        let found = handle.entries.iter().any(|e| e.name == name);
        debug!(
            dir,
            entries = handle.entries.len(),
            "listed again to refresh expired entries"
        );
        result.map(|()| Some(found))
    }

    /// Lookup of a file seen in a listing: HEAD for its metadata (falling back to a full lookup
    /// if it is gone).
    async fn lookup_listed_file(&self, ino: u64, rel: &str, key: &str) -> FsResult<Entry> {
        let sent = Instant::now();
        match self.store.head_object(key).await {
            Ok(meta) => {
                let stat = Self::file_stat(&meta, true);
                self.remember_posix(key, &stat, sent);
                let mut table = lock(&self.inodes);
                let ino = match table.get(ino) {
                    Some(i) if i.path == rel && i.stat.kind == stat.kind => {
                        table.set_stat(ino, stat.clone(), self.fresh_until());
                        ino
                    }
                    _ => table.upsert(rel, stat.clone(), self.fresh_until()),
                };
                table.add_lookup(ino);
                Ok(self.entry(ino, &stat))
            }
            Err(StoreError::NotFound { .. }) => {
                lock(&self.inodes).expire(ino);
                match self.stat_remote(rel, key).await? {
                    Some(stat) => {
                        let mut table = lock(&self.inodes);
                        let ino = table.upsert(rel, stat.clone(), self.fresh_until());
                        table.add_lookup(ino);
                        Ok(self.entry(ino, &stat))
                    }
                    None => {
                        lock(&self.inodes).set_missing(rel, self.fresh_until());
                        Err(FsError::quiet(libc::ENOENT, format!("{rel} does not exist")))
                    }
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// HEAD `key` and list `key/` in parallel: a directory, a file, or nothing.
    async fn stat_remote(&self, rel: &str, key: &str) -> FsResult<Option<Stat>> {
        let list_req = ListRequest {
            prefix: path::dir_prefix(&self.config.prefix, rel),
            delimiter: Some("/".into()),
            continuation: None,
            max_keys: Some(1),
        };
        let (head, list) = tokio::join!(self.store.head_object(key), self.store.list_objects(&list_req));
        let page = list?;
        if !page.objects.is_empty() || !page.prefixes.is_empty() {
            let mut stat = Stat::dir(self.root_mtime());
            // A marker object may carry the directory's mode, owner and mtime.
            if let Some(marker) = page.objects.iter().find(|o| o.key == list_req.prefix) {
                if let Ok(m) = self.store.head_object(&marker.key).await {
                    stat.posix = Some(Posix::from_metadata(&m.metadata));
                }
            }
            return Ok(Some(stat));
        }
        match head {
            Ok(meta) => Ok(Some(Self::file_stat(&meta, true))),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// forget: the kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        let gone = {
            let mut table = lock(&self.inodes);
            table.forget(ino, n);
            table.get(ino).is_none()
        };
        if gone {
            lock(&self.page_cache).remove(&ino);
        }
    }

    /// getattr: attributes of `ino`, refreshed by a HEAD once stale.
    pub async fn getattr(&self, ino: u64) -> FsResult<Entry> {
        if let Some(stat) = self.open_stat(ino).await {
            return Ok(self.entry(ino, &stat));
        }
        let inode = self.inode(ino)?;
        if inode.fresh_until > Instant::now() || inode.stat.kind == Kind::Dir {
            return Ok(self.entry(ino, &inode.stat));
        }
        if let Some(gone) = lock(&self.inodes).unlinked(ino) {
            // Removed through this mount, still open somewhere: its last attributes, no links.
            let mut e = self.entry(ino, &gone.stat);
            e.attr.nlink = 0;
            return Ok(e);
        }
        let key = path::object_key(&self.config.prefix, &inode.path);
        let sent = Instant::now();
        let meta = self.store.head_object(&key).await?;
        let stat = Self::file_stat(&meta, true);
        self.remember_posix(&key, &stat, sent);
        lock(&self.inodes).set_stat(ino, stat.clone(), self.fresh_until());
        Ok(self.entry(ino, &stat))
    }
}
