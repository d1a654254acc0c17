//! Listing ahead of a tree walk: the filesystem's side of `dir_walk.rs`, which holds the rules
//! and the state (when a walk starts, which directories are claimed, flat or per directory).
//!
//! After each `opendir`, [`S3Fs::walk_ahead`] asks whether this open makes a tree walk and
//! claims what to list ahead: the next [`dir_walk::AHEAD`] subdirectories of the parent's
//! listing with no fresh listing of their own, or (flat first) the parent's whole subtree.
//! `fuse.rs` runs the jobs in the background with [`S3Fs::list_ahead`], which:
//! - lists a claimed directory into the listing cache if it has at most
//!   [`dir_walk::MAX_PAGES`] pages (a bigger one is left to its reader);
//! - lists a subtree flat (ListObjectsV2 without delimiter, split per directory by `flat.rs`),
//!   keeping each directory's listing as soon as the listing has passed it and releasing its
//!   claim, for at most [`dir_walk::FLAT_MAX_PAGES`] pages;
//! - holds one of the walk's permits meanwhile (a bounded number of listings at once for the
//!   whole mount) and keeps one page ahead (pages past the limit would be listed for nothing).
//!
//! Failures only end the listing ahead: the walker's own listings will meet them.

use std::collections::HashMap;

use tracing::debug;

use super::inode::Kind;
use super::pages_ahead::PagesAhead;
use super::{dir_walk, flat, lock, path, S3Fs};
use crate::store::{ListRequest, ObjectStore};

/// Listing ahead of a tree walk (from [`S3Fs::walk_ahead`]).
pub enum WalkJob {
    /// One claimed directory.
    Dir(u64, dir_walk::Ahead),
    /// The subtree of `dir`, listed flat; its subdirectories claimed until it passes them.
    Flat {
        dir: String,
        claims: HashMap<String, dir_walk::Ahead>,
    },
}

impl<S: ObjectStore> S3Fs<S> {
    /// After `opendir(ino)`: if this makes a tree walk (see [`dir_walk`]), what to list ahead;
    /// pass each job to [`S3Fs::list_ahead`].
    pub fn walk_ahead(&self, ino: u64) -> Vec<WalkJob> {
        let Ok(dir) = self.dir_path(ino) else {
            return Vec::new();
        };
        if dir.is_empty() || self.config.metadata_ttl.is_zero() {
            return Vec::new();
        }
        let (parent, name) = dir.rsplit_once('/').unwrap_or(("", dir.as_str()));
        if !self.walk.opened(parent, name) {
            return Vec::new();
        }
        let Some(listing) = self.listings.get(parent) else {
            return Vec::new();
        };
        let plan = self.walk.plan(parent, self.listings.generation(), self.fresh_until());
        let from = match plan {
            dir_walk::Plan::Covered => return Vec::new(),
            // Every subdirectory not listed yet (but the one just opened, which its opener lists).
            dir_walk::Plan::Flat => 0,
            dir_walk::Plan::PerDir => match listing.iter().position(|l| l.name == name) {
                Some(pos) => pos + 1,
                None => return Vec::new(),
            },
        };
        let subdirs = listing[from..].iter().filter(|l| l.kind == Kind::Dir && l.name != name);
        let most = match plan {
            dir_walk::Plan::PerDir => dir_walk::AHEAD,
            _ => dir_walk::FLAT_CLAIMS,
        };
        let mut claims = Vec::new();
        for l in subdirs {
            if claims.len() >= most {
                break;
            }
            let sub = path::join(parent, &l.name);
            if self.listings.get(&sub).is_some() {
                continue;
            }
            let Some(sub_ino) = lock(&self.inodes).by_path(&sub).map(|i| i.ino) else {
                continue;
            };
            if let Some(claim) = self.walk.claim(&sub) {
                claims.push((sub_ino, claim));
            }
        }
        debug!(dir = parent, ?plan, claimed = claims.len(), "tree walk: listing ahead");
        match plan {
            dir_walk::Plan::Flat => vec![WalkJob::Flat {
                dir: parent.to_string(),
                claims: claims.into_iter().map(|(_, c)| (c.path().to_string(), c)).collect(),
            }],
            _ => claims.into_iter().map(|(ino, c)| WalkJob::Dir(ino, c)).collect(),
        }
    }

    /// Run a job of [`S3Fs::walk_ahead`]. Failures are left for the walker's own listings to meet.
    pub async fn list_ahead(&self, job: WalkJob) {
        match job {
            WalkJob::Dir(ino, ahead) => self.list_dir_ahead(ino, ahead).await,
            WalkJob::Flat { dir, claims } => {
                let state = self.list_flat(&dir, claims).await;
                debug!(dir = dir.as_str(), ?state, "flat listing ended");
                self.walk.flat_done(&dir, state);
            }
        }
    }

    /// List a claimed directory ahead of a tree walk into the listing cache (if it has at most
    /// [`dir_walk::MAX_PAGES`] pages).
    async fn list_dir_ahead(&self, ino: u64, ahead: dir_walk::Ahead) {
        let _permit = self.walk.permit().await;
        if self.listings.get(ahead.path()).is_some() {
            return;
        }
        let mut handle = self.dir_handle(ino, ahead.path().to_string());
        for _ in 0..dir_walk::MAX_PAGES {
            if handle.done {
                break;
            }
            if let Err(e) = self.list_next_page(&mut handle).await {
                debug!(dir = ahead.path(), error = %e, "listing ahead failed");
                return;
            }
        }
    }

    /// List the subtree of `dir` flat (see `flat.rs`), keeping each directory's listing as the
    /// listing passes it and releasing its claim; at most [`dir_walk::FLAT_MAX_PAGES`] pages.
    async fn list_flat(&self, dir: &str, mut claims: HashMap<String, dir_walk::Ahead>) -> dir_walk::FlatState {
        let _permit = self.walk.permit().await;
        let started = self.listings.generation();
        let prefix = path::dir_prefix(&self.config.prefix, dir);
        let mut split = flat::FlatSplitter::new(dir, &prefix);
        let mut req = ListRequest {
            prefix,
            delimiter: None,
            continuation: None,
            max_keys: Some(self.config.list_page_size),
        };
        let mut ahead: Option<PagesAhead> = None;
        for _ in 0..dir_walk::FLAT_MAX_PAGES {
            let page = match self.list_page(&mut ahead, &req).await {
                Ok(p) => p,
                Err(e) => {
                    debug!(dir, error = %e, "flat listing failed");
                    return dir_walk::FlatState::Stopped;
                }
            };
            let last = page.next.is_none();
            if !last {
                req.continuation = page.next.clone();
                if ahead.is_none() {
                    // The following pages are asked for now: S3 answers while this one is split.
                    // One page ahead: pages past the limit would be listed for nothing.
                    ahead = Some(PagesAhead::start(self.store.clone(), req.clone(), 1));
                }
            }
            for (d, listed) in split.push(page.objects, last) {
                self.listings.keep(&d, listed, started, false);
                claims.remove(&d);
            }
            if last {
                return dir_walk::FlatState::Complete;
            }
        }
        debug!(dir, pages = dir_walk::FLAT_MAX_PAGES, open = ?split.open_dirs().collect::<Vec<_>>(), "flat listing stopped at its page limit");
        dir_walk::FlatState::Stopped
    }
}
