//! [`Unstored`]: the files whose last changes could not be stored after their last close (or
//! that the server refused from the write cache), so that the failure is never silent: an
//! ERROR line naming the file, the `cosmount_files_not_stored_total` metric, and `EIO` from
//! every `fsync` of the path until the file is stored again or deleted (see `closing.rs`).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::FsError;

/// The most paths [`Unstored`] remembers (the oldest are forgotten first; the log keeps all).
const MAX_UNSTORED: usize = 10_000;

/// Paths whose last changes could not be stored after the last close, with the error.
#[derive(Default)]
pub struct Unstored {
    paths: Mutex<HashMap<String, (u64, FsError)>>,
    next: std::sync::atomic::AtomicU64,
}

impl Unstored {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, FsError)>> {
        self.paths.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The changes to `path` are lost: log it at ERROR, count it, and remember it for `fsync`.
    pub fn record(&self, path: &str, cause: &FsError) {
        tracing::error!(
            path,
            errno = cause.errno,
            "NOT STORED: the last changes to {path} could not be stored after it was closed, and are discarded: \
             {}. `sync {path}` reports this error until the file is written again or deleted",
            cause.message
        );
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let error = FsError::new(
            libc::EIO,
            format!(
                "the last changes to {path} were not stored after its last close: {}",
                cause.message
            ),
        );
        let now = {
            let mut g = self.lock();
            g.insert(path.to_string(), (n, error));
            if g.len() > MAX_UNSTORED {
                if let Some(oldest) = g.iter().min_by_key(|(_, (n, _))| *n).map(|(k, _)| k.clone()) {
                    g.remove(&oldest);
                }
            }
            g.len()
        };
        crate::metrics::file_not_stored(now);
    }

    /// The error to report for `path`, if its last changes were not stored.
    pub fn error(&self, path: &str) -> Option<FsError> {
        let g = self.lock();
        if g.is_empty() {
            return None;
        }
        g.get(path).map(|(_, e)| e.clone())
    }

    /// A new version of `path` was stored, or `path` was deleted: nothing to report any more.
    pub fn clear(&self, path: &str) {
        let now = {
            let mut g = self.lock();
            if g.is_empty() || g.remove(path).is_none() {
                return;
            }
            g.len()
        };
        crate::metrics::files_unstored(now);
    }

    /// `from` was renamed to `to`: the report follows the file.
    pub fn renamed(&self, from: &str, to: &str) {
        let mut g = self.lock();
        if g.is_empty() {
            return;
        }
        g.remove(to);
        if let Some(e) = g.remove(from) {
            g.insert(to.to_string(), e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unstored_changes_are_reported_until_cleared_and_follow_renames() {
        let u = Unstored::default();
        assert!(u.error("a").is_none());
        u.record("a", &FsError::new(libc::EACCES, "AccessDenied"));
        let e = u.error("a").expect("reported");
        assert_eq!(e.errno, libc::EIO);
        assert!(
            e.message.contains("AccessDenied") && e.message.contains("a"),
            "{}",
            e.message
        );
        u.renamed("a", "b");
        assert!(u.error("a").is_none() && u.error("b").is_some());
        u.clear("b");
        assert!(u.error("b").is_none());
    }
}
