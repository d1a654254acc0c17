//! The multipart journal: which multipart uploads this mount started and has not finished.
//!
//! A daemon killed mid-write leaves its multipart upload open on the server (parts are billed and
//! invisible). Every upload is recorded here when it starts and when it completes or is aborted;
//! the next mount of the same bucket (same state directory) aborts whatever is still open. Only
//! uploads cosmount itself started are touched — never other tools' uploads.
//!
//! Format: one line per event, `start <upload-id> <key>` or `end <upload-id>`; the file is
//! rewritten empty once the leftovers are dealt with.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file `KIND-ENDPOINT-BUCKET.EXT` in the state directory `dir` (characters other than
/// letters, digits, `-` and `.` become `_`): one per endpoint and bucket, for each kind of state.
pub fn state_file(dir: &Path, kind: &str, endpoint: &str, bucket: &str, ext: &str) -> PathBuf {
    let tag: String = format!("{endpoint}-{bucket}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{kind}-{tag}.{ext}"))
}

/// An append-only record of started and finished multipart uploads.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl Journal {
    /// The journal of `bucket` at `endpoint` in `dir` (created if missing).
    pub fn open(dir: &Path, endpoint: &str, bucket: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = state_file(dir, "uploads", endpoint, bucket, "log");
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Self {
            path,
            file: Mutex::new(Some(file)),
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, line: &str) {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = guard.as_mut() {
            if let Err(e) = writeln!(f, "{line}").and_then(|_| f.flush()) {
                tracing::warn!("cannot write the multipart journal {}: {e}", self.path.display());
            }
        }
    }

    /// An upload started.
    pub fn started(&self, upload_id: &str, key: &str) {
        self.append(&format!("start {upload_id} {key}"));
    }

    /// An upload completed or was aborted.
    pub fn ended(&self, upload_id: &str) {
        self.append(&format!("end {upload_id}"));
    }

    /// Uploads started and never ended: `(upload id, key)`.
    pub fn leftovers(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let mut open: BTreeMap<String, String> = BTreeMap::new();
        for line in text.lines() {
            let mut parts = line.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("start"), Some(id), Some(key)) => {
                    open.insert(id.to_string(), key.to_string());
                }
                (Some("end"), Some(id), _) => {
                    open.remove(id);
                }
                _ => {}
            }
        }
        open.into_iter().collect()
    }

    /// Start afresh, keeping only `still_open` (uploads that could not be aborted yet).
    pub fn reset(&self, still_open: &[(String, String)]) {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let rewritten = std::fs::File::create(&self.path).and_then(|mut f| {
            for (id, key) in still_open {
                writeln!(f, "start {id} {key}")?;
            }
            f.flush()?;
            std::fs::OpenOptions::new().append(true).open(&self.path)
        });
        match rewritten {
            Ok(f) => *guard = Some(f),
            Err(e) => tracing::warn!("cannot rewrite the multipart journal {}: {e}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_started_minus_ended() {
        let dir = tempfile::tempdir().expect("dir");
        let j = Journal::open(dir.path(), "http://127.0.0.1:1", "b").expect("open");
        j.started("u1", "a/key with spaces");
        j.started("u2", "b");
        j.ended("u2");
        assert_eq!(j.leftovers(), vec![("u1".to_string(), "a/key with spaces".to_string())]);
        j.reset(&[]);
        assert!(j.leftovers().is_empty());
        j.started("u3", "c");
        assert_eq!(j.leftovers().len(), 1);
    }
}
