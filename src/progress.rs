//! Progress of long operations the daemon runs on its own (large uploads at close, directory
//! renames), logged at info level so a user watching the log sees them start, move and end.
//!
//! [`Upload`] is a guard around one file upload: it counts the upload as in flight for the metrics,
//! and for large files logs the start, a "still uploading" line every [`TICK`], and the end with
//! the throughput. [`Steps`] counts the items of a batch (objects copied by a directory rename)
//! and logs every tenth of the way or every [`TICK`], whichever comes first.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::info;

use crate::metrics;

/// Files at least this large get progress lines when uploaded.
pub const LARGE_UPLOAD: u64 = 32 * 1024 * 1024;
/// How often a long operation reports that it is still running.
pub const TICK: Duration = Duration::from_secs(10);

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// One file upload in progress (see the module documentation).
#[must_use = "the upload is tracked until finish() or drop"]
pub struct Upload {
    key: String,
    size: u64,
    start: Instant,
    ticker: Option<tokio::task::JoinHandle<()>>,
    finished: bool,
    _in_flight: metrics::UploadInFlight,
}

impl Upload {
    /// An upload of `size` bytes to `key` starts now.
    pub fn start(key: &str, size: u64) -> Self {
        let large = size >= LARGE_UPLOAD;
        let mut ticker = None;
        if large {
            info!(key, size_mib = format!("{:.1}", mib(size)), "uploading a large file");
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let (key, start) = (key.to_string(), Instant::now());
                ticker = Some(rt.spawn(async move {
                    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
                    loop {
                        every.tick().await;
                        info!(
                            key = key.as_str(),
                            elapsed_s = start.elapsed().as_secs(),
                            "still uploading"
                        );
                    }
                }));
            }
        }
        Upload {
            key: key.to_string(),
            size,
            start: Instant::now(),
            ticker,
            finished: false,
            _in_flight: metrics::upload_in_flight(),
        }
    }

    /// The upload succeeded.
    pub fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
            let secs = self.start.elapsed().as_secs_f64();
            let key = self.key.as_str();
            if self.finished {
                let rate = mib(self.size) / secs.max(0.001);
                info!(
                    key,
                    elapsed_s = format!("{secs:.1}"),
                    mib_per_s = format!("{rate:.1}"),
                    "uploaded a large file"
                );
            } else {
                info!(key, elapsed_s = format!("{secs:.1}"), "uploading a large file failed");
            }
        }
    }
}

/// Counts the steps of a batch and logs its progress (see the module documentation).
pub struct Steps {
    what: &'static str,
    label: String,
    total: usize,
    done: AtomicUsize,
    last: Mutex<(Instant, usize)>,
    enabled: bool,
}

impl Steps {
    /// A batch of `total` steps described by `what` ("copied") and `label` (what is moving).
    /// Only batches of more than `min_total` steps are logged.
    pub fn new(what: &'static str, label: String, total: usize, min_total: usize) -> Self {
        Steps {
            what,
            label,
            total,
            done: AtomicUsize::new(0),
            last: Mutex::new((Instant::now(), 0)),
            enabled: total > min_total,
        }
    }

    /// One more step is done.
    pub fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.enabled {
            return;
        }
        let tenth = self.total.div_ceil(10).max(1);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if done / tenth > last.1 / tenth || last.0.elapsed() >= TICK || done == self.total {
            *last = (Instant::now(), done);
            drop(last);
            info!(
                "{}: {} {done} of {} objects ({}%)",
                self.label,
                self.what,
                self.total,
                done * 100 / self.total.max(1)
            );
        }
    }

    /// Steps done so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_count_every_tick() {
        let s = Steps::new("copied", "a -> b".into(), 25, 10);
        for _ in 0..25 {
            s.tick();
        }
        assert_eq!(s.done(), 25);
        let quiet = Steps::new("copied", "a -> b".into(), 3, 100);
        quiet.tick();
        assert_eq!(quiet.done(), 1);
    }

    #[test]
    fn upload_guard_tracks_small_and_large() {
        Upload::start("small", 10).finish();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("rt");
        rt.block_on(async {
            let u = Upload::start("big", LARGE_UPLOAD);
            assert!(u.ticker.is_some());
            drop(u);
        });
    }
}
