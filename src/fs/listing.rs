//! A directory's listing as a handle reads it: ListObjectsV2 pages (delimiter `/`) turned into
//! entries with inode numbers. Used by the kernel's readers (`dirs.rs`), by lookups that list a
//! directory again (`lookup.rs`) and by listings ahead of a tree walk (`walk_ahead.rs`).
//!
//! Each page read:
//! - is merged into names by [`ListingMerger`] (every pitfall of `readdir.rs`), then appended to
//!   `entries`, which never shrink: offset `n` always means "after the n-th entry";
//! - makes the following pages come ahead (`pages_ahead.rs`): a window of up to
//!   [`pages_ahead::PAGES_AHEAD`] pages for the kernel's reader, one page for listings that stop
//!   at a page limit (any more would be listed for nothing). A failed page stops the pages ahead:
//!   it is asked for again next time;
//! - fills the inode table (`adopt_listed`): listed sizes and ETags update known files, but what
//!   a HEAD told of an unchanged object is kept and confirmed for another TTL; entries from the
//!   listing cache stay fresh as long as it vouches for them;
//! - tells the metadata prefetch what files the directory has (unless `--listing-attributes`).
//!
//! A listing read to its end gains the files of its directory open for writing
//! (`open_files.rs`) and is kept in the listing cache under the generation it started at (so it
//! is dropped if anything changed through the mount meanwhile; see `listing_cache.rs`).

use std::time::Instant;

use tracing::debug;

use super::inode::{Kind, Stat};
use super::pages_ahead::{self, PagesAhead};
use super::readdir::{self, ListingMerger};
use super::{lock, path, prefetch, S3Fs};
use crate::error::FsResult;
use crate::store::{ListPage, ListRequest, ObjectStore, StoreError};

/// One entry of a listing, with its inode number.
pub(super) struct DirEntryOut {
    pub(super) ino: u64,
    pub(super) kind: Kind,
    pub(super) name: String,
}

/// A listing being read: an open directory's, a lookup's relisting or a listing ahead of a walk.
pub(super) struct DirHandle {
    pub(super) ino: u64,
    pub(super) path: String,
    pub(super) merger: ListingMerger,
    pub(super) entries: Vec<DirEntryOut>,
    pub(super) token: Option<String>,
    pub(super) done: bool,
    /// The pages after the last one listed, on their way (see `pages_ahead.rs`).
    pub(super) next_page: Option<PagesAhead>,
    /// Everything listed so far (kept in the listing cache once complete).
    pub(super) listed: Vec<readdir::Listed>,
    /// The listing cache's generation when the listing started.
    pub(super) generation: u64,
    /// Opened by the kernel (not a list-ahead): its entries fill the kernel's cache.
    pub(super) for_kernel: bool,
    /// Listed for lookups in a directory never listed before: subdirectories enter the inode
    /// table stale, so their lookup reads their marker's attributes (see `lookup`).
    pub(super) dirs_stale: bool,
    /// The kernel asked for READDIRPLUS past the first batch (see `dir_use.rs`).
    pub(super) plus_continued: bool,
    /// The kernel read entries from this handle (rather than from its own cache).
    pub(super) served: bool,
    /// The directory's files open for writing (or waiting in the write cache) when the listing
    /// started. One whose upload lands while the pages are listed, and which then stops being
    /// open, can be in no page (listed before it landed) nor open at the end: it is added all
    /// the same (see `add_open_files`).
    pub(super) open_at_start: Vec<(u64, String)>,
}

impl<S: ObjectStore> S3Fs<S> {
    /// A listing of directory `ino` (at `path`) that has not started.
    pub(super) fn dir_handle(&self, ino: u64, path: String) -> DirHandle {
        let prefix = path::dir_prefix(&self.config.prefix, &path);
        let open_at_start = self.open_files_in(&path);
        DirHandle {
            ino,
            path,
            merger: ListingMerger::new(&prefix),
            entries: Vec::new(),
            token: None,
            done: false,
            next_page: None,
            listed: Vec::new(),
            generation: self.listings.generation(),
            for_kernel: false,
            dirs_stale: false,
            plus_continued: false,
            served: false,
            open_at_start,
        }
    }

    pub(super) async fn list_next_page(&self, dir: &mut DirHandle) -> FsResult<()> {
        let req = ListRequest {
            prefix: path::dir_prefix(&self.config.prefix, &dir.path),
            delimiter: Some("/".into()),
            continuation: dir.token.clone(),
            max_keys: Some(self.config.list_page_size),
        };
        let page = self.list_page(&mut dir.next_page, &req).await?;
        let next = page.next.clone();
        let last = next.is_none();
        if last {
            dir.next_page = None;
        } else if dir.next_page.is_none() {
            // The following pages are asked for now: S3 answers while the kernel takes this one.
            let req = ListRequest {
                continuation: next.clone(),
                ..req
            };
            // A wider window for the kernel's reader; listings that stop at a page limit (lookups,
            // walks ahead) keep one page ahead, as any more would be listed for nothing.
            let window = if dir.for_kernel { pages_ahead::PAGES_AHEAD } else { 1 };
            dir.next_page = Some(PagesAhead::start(self.store.clone(), req, window));
        }
        let listed = dir.merger.push_page(page, last);
        debug!(
            dir = dir.path.as_str(),
            entries = listed.len(),
            more = !last,
            "listed a page"
        );
        dir.token = next;
        dir.done = last;
        if !self.config.listing_attributes {
            let prefix = path::dir_prefix(&self.config.prefix, &dir.path);
            self.prefetch
                .listed(dir.ino, prefetch::files_of(&prefix, &listed).collect());
        }
        self.adopt_listed(dir, &listed, None);
        dir.listed.extend(listed);
        if last {
            self.add_open_files(dir);
            let kept = std::mem::take(&mut dir.listed);
            self.listings.keep(&dir.path, kept, dir.generation, dir.for_kernel);
        }
        Ok(())
    }

    /// The next page of a listing: from the pages on their way (`ahead`), or `req` asked for
    /// now if none are. A failure stops the pages ahead: the page is asked for again next time.
    pub(super) async fn list_page(
        &self,
        ahead: &mut Option<PagesAhead>,
        req: &ListRequest,
    ) -> Result<ListPage, StoreError> {
        let page = match ahead.as_mut() {
            Some(pages) => pages.next().await,
            None => None,
        };
        let page = match page {
            Some(page) => page,
            None => {
                *ahead = None;
                self.store.list_objects(req).await
            }
        };
        if page.is_err() {
            *ahead = None;
        }
        page
    }

    /// Make entries of listed names. Straight from S3 (`kept_until` is `None`), listed sizes and
    /// ETags update known files; from the listing cache (fresh until `kept_until`), known files
    /// keep what they have, and those it shows unchanged stay fresh as long as it does.
    pub(super) fn adopt_listed(&self, dir: &mut DirHandle, listed: &[readdir::Listed], kept_until: Option<Instant>) {
        let fresh = kept_until.is_none();
        let until = self.fresh_until();
        let root_mtime = self.root_mtime();
        // Files open for writing (or waiting in the write cache) show their own attributes, not
        // their stored object's: a listing leaves them as they are (one reinstated by the next
        // mount after a crash has no ETag to match).
        let open: std::collections::HashSet<u64> = {
            let files = lock(&self.open_files);
            if files.is_empty() {
                std::collections::HashSet::new()
            } else {
                files.keys().copied().collect()
            }
        };
        let mut table = lock(&self.inodes);
        dir.entries.reserve(listed.len());
        for l in listed {
            let rel = path::join(&dir.path, &l.name);
            let stat = match &l.object {
                Some(o) => Self::file_stat(o, false),
                None => Stat::dir(root_mtime),
            };
            // Keep what a HEAD told about an unchanged object (and anything open for writing).
            let known = table
                .by_path(&rel)
                .filter(|i| !fresh || (i.stat.etag == stat.etag && i.stat.posix.is_some()) || open.contains(&i.ino))
                .map(|i| (i.ino, i.stat.clone()));
            let ino = match known {
                Some((ino, known_stat)) => {
                    if fresh {
                        // Unchanged on the server: what we know is confirmed for another TTL.
                        table.set_stat(ino, known_stat, until);
                    } else if let Some(kept_until) = kept_until {
                        // A kept listing vouches for an unchanged object until it expires.
                        let same = known_stat.kind == stat.kind
                            && known_stat.etag == stat.etag
                            && (known_stat.posix.is_some() || stat.kind == Kind::Dir);
                        if same {
                            table.extend(ino, kept_until);
                        }
                    }
                    ino
                }
                None if dir.dirs_stale && l.kind == Kind::Dir => table.upsert_owned(rel, stat, Instant::now()),
                None => table.upsert_owned(rel, stat, until),
            };
            dir.entries.push(DirEntryOut {
                ino,
                kind: l.kind,
                name: l.name.clone(),
            });
        }
    }
}
