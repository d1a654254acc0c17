//! Time limits that follow progress, not duration: a request fails when no bytes have moved for
//! it for a while, never because it is slow.
//!
//! Three clocks, each "when did bytes last move" ([`Progress`]):
//! - the *attempt*'s (one HTTP exchange): the connector in `s3/watchdog.rs` abandons an attempt that
//!   moved nothing for `--request-timeout` (10 s), which the SDK then retries;
//! - the *request*'s (all attempts of one S3 request, retries and backoff included):
//!   [`S3Store`](super::s3::S3Store) gives up when it moved nothing for `--timeout` (30 s) and
//!   reports [`StoreError::TimedOut`](super::StoreError::TimedOut);
//! - the *mount*'s: a request waiting for a free connection (`--max-connections`) gives up only
//!   when the whole mount moved nothing for `--timeout`, so a queue behind slow but moving
//!   transfers is never cut off.
//!
//! Bytes moving means: a piece of a request body taken by the HTTP client (bodies are handed over
//! in 64 KiB pieces, so a slow upload shows progress all along), response headers arriving, a
//! piece of a response body arriving.
//!
//! Once a request found the server silent or unreachable, the mount is *offline* until bytes
//! arrive from the server again ([`HEARD`]): meanwhile each new request is a short probe
//! ([`PROBE`]), so that a command touching many files fails file after file in seconds rather
//! than in `--timeout` each, and the first answer brings the mount back at once. Both changes
//! are logged.
//!
//! A file-system operation may send several requests one after another. So that the whole
//! operation, not each request, ends within the deadline when the server is gone, the FUSE
//! adapter runs each operation in a [`scope`]: once one of its requests found the server
//! unreachable or silent, the rest fail at once ([`gave_up`]).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

/// When bytes last moved for something (milliseconds since the process's first look at a clock).
#[derive(Clone, Debug)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// A clock whose last progress is now.
    pub fn new() -> Self {
        Self(Arc::new(AtomicU64::new(now_ms())))
    }

    /// Bytes moved now.
    pub fn mark(&self) {
        self.0.fetch_max(now_ms(), Ordering::Relaxed);
    }

    /// How long since bytes last moved.
    pub fn idle(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.0.load(Ordering::Relaxed)))
    }

    fn last_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// The mount's clock: bytes moved for any request, either way.
pub static MOUNT: LazyLock<Progress> = LazyLock::new(Progress::new);

/// Bytes arrived from the server, for any request.
pub static HEARD: LazyLock<Progress> = LazyLock::new(Progress::new);

/// How long a request may wait for progress while the mount is offline.
pub const PROBE: Duration = Duration::from_secs(2);

/// When a request last found the server silent or unreachable (0: never).
static WENT_SILENT: AtomicU64 = AtomicU64::new(0);

/// Whether a request found the server silent or unreachable and nothing arrived from it since.
pub fn offline() -> bool {
    let since = WENT_SILENT.load(Ordering::Relaxed);
    since != 0 && since >= HEARD.last_ms()
}

/// A request found the server at `endpoint` silent or unreachable.
pub fn went_silent(endpoint: &str, why: &str) {
    let was = offline();
    WENT_SILENT.store(now_ms().max(1), Ordering::Relaxed);
    if !was {
        tracing::warn!(
            "{endpoint} stopped answering ({why}): until it answers again, each request gets {} s",
            PROBE.as_secs()
        );
    }
}

/// Bytes arrived from the server.
pub fn heard() {
    if WENT_SILENT.load(Ordering::Relaxed) != 0 && offline() {
        WENT_SILENT.store(0, Ordering::Relaxed);
        tracing::warn!("the server answers again");
    }
    HEARD.mark();
}

/// Run `fut` to its end, unless `idle()` reaches `limit` first: then `Err` with that idle time.
pub async fn until_idle<F: Future>(
    limit: Duration,
    idle: impl Fn() -> Duration,
    fut: F,
) -> Result<F::Output, Duration> {
    tokio::pin!(fut);
    loop {
        let now_idle = idle();
        if now_idle >= limit {
            return Err(now_idle);
        }
        tokio::select! {
            biased;
            out = &mut fut => return Ok(out),
            _ = tokio::time::sleep(limit - now_idle) => {}
        }
    }
}

/// One S3 request in flight: its clock, and how long one attempt may go without progress.
#[derive(Debug)]
pub struct Request {
    pub progress: Progress,
    pub attempt_limit: Duration,
    /// How long an attempt that has handed over its whole body may wait for the answer. The
    /// last bytes may still sit in socket buffers on the way, draining at the network's pace,
    /// which nothing here can see: the request's whole deadline applies.
    pub answer_limit: Duration,
    /// The most body bytes any attempt has handed over: a retry sending the same bytes again
    /// is not progress until it goes further.
    sent: AtomicU64,
    /// Why the last attempt failed before any answer (connection refused, reset, ...).
    failed: std::sync::Mutex<Option<String>>,
}

impl Request {
    pub fn new(attempt_limit: Duration, answer_limit: Duration) -> Self {
        Self {
            progress: Progress::new(),
            attempt_limit,
            answer_limit: answer_limit.max(attempt_limit),
            sent: AtomicU64::new(0),
            failed: std::sync::Mutex::new(None),
        }
    }

    /// An attempt failed before any answer, for `why` (`None`: a new attempt starts).
    pub fn attempt_failed(&self, why: Option<String>) {
        if let Ok(mut f) = self.failed.lock() {
            *f = why;
        }
    }

    /// Why the last attempt failed before any answer, if one did.
    pub fn last_failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    /// An attempt has handed over `upto` bytes of the body: progress if no attempt got as far.
    pub fn sent(&self, upto: u64) {
        if self.sent.fetch_max(upto, Ordering::Relaxed) < upto {
            self.progress.mark();
        }
    }
}

tokio::task_local! {
    static REQUEST: Arc<Request>;
    static SCOPE: Arc<std::sync::Mutex<Option<super::StoreError>>>;
}

/// Run `fut` (the SDK call of one request) with `request` visible to the HTTP connector.
pub async fn for_request<F: Future>(request: Arc<Request>, fut: F) -> F::Output {
    REQUEST.scope(request, fut).await
}

/// The request the current task is sending, if any.
pub fn current_request() -> Option<Arc<Request>> {
    REQUEST.try_with(Arc::clone).ok()
}

/// Run one file-system operation: see the module doc.
pub async fn scope<F: Future>(fut: F) -> F::Output {
    SCOPE.scope(Arc::default(), fut).await
}

/// The error of an earlier request of the current operation that found the server unreachable
/// or silent, if one did.
pub fn gave_up() -> Option<super::StoreError> {
    SCOPE.try_with(|s| s.lock().ok().and_then(|g| g.clone())).ok().flatten()
}

/// Record that a request of the current operation found the server unreachable or silent.
pub fn give_up(error: &super::StoreError) {
    let _ = SCOPE.try_with(|s| {
        if let Ok(mut g) = s.lock() {
            g.get_or_insert_with(|| error.clone());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_future_that_keeps_moving_is_never_cut_off_and_one_that_stops_is() {
        // The clock here is tokio's paused time, so the test takes no real time.
        let last = Arc::new(std::sync::Mutex::new(tokio::time::Instant::now()));
        let idle = || last.lock().map(|l| l.elapsed()).unwrap_or_default();
        let mark = |l: &std::sync::Mutex<tokio::time::Instant>| {
            if let Ok(mut g) = l.lock() {
                *g = tokio::time::Instant::now();
            }
        };
        // Twelve seconds of work, progress every second, under a 3 s limit: it completes.
        let work = async {
            for _ in 0..12 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                mark(&last);
            }
            "done"
        };
        assert_eq!(until_idle(Duration::from_secs(3), idle, work).await, Ok("done"));
        // The same work that goes silent after 4 s is cut off 3 s after its last progress.
        let started = tokio::time::Instant::now();
        let work = async {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                mark(&last);
            }
            std::future::pending::<()>().await;
        };
        let cut = until_idle(Duration::from_secs(3), idle, work).await;
        assert!(cut.is_err());
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(7) && took < Duration::from_secs(8),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_future_ends_at_the_limit() {
        let started = tokio::time::Instant::now();
        let r = until_idle(
            Duration::from_secs(5),
            || started.elapsed(),
            std::future::pending::<()>(),
        )
        .await;
        let idle = r.expect_err("cut off");
        assert!(
            idle >= Duration::from_secs(5) && idle < Duration::from_secs(6),
            "{idle:?}"
        );
    }

    #[tokio::test]
    async fn an_operation_scope_remembers_giving_up_for_its_own_requests_only() {
        let e = super::super::StoreError::TimedOut {
            endpoint: "here".into(),
            message: "silent".into(),
        };
        assert!(gave_up().is_none(), "outside a scope nothing is given up");
        give_up(&e);
        scope(async {
            assert!(gave_up().is_none());
            give_up(&e);
            assert!(matches!(gave_up(), Some(super::super::StoreError::TimedOut { .. })));
        })
        .await;
        scope(async { assert!(gave_up().is_none(), "a new operation starts afresh") }).await;
    }

    #[test]
    fn the_mount_is_offline_from_a_silent_request_until_the_server_is_heard() {
        heard();
        assert!(!offline());
        went_silent("here", "test");
        assert!(offline());
        heard();
        assert!(!offline(), "an answer brings the mount back at once");
    }

    #[test]
    fn progress_moves_only_forward() {
        let p = Progress::new();
        std::thread::sleep(Duration::from_millis(20));
        assert!(p.idle() >= Duration::from_millis(20));
        p.mark();
        assert!(p.idle() < Duration::from_millis(20));
    }
}
