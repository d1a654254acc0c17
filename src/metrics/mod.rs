//! Metrics: the counters, gauges and histograms of a mount, and the optional Prometheus endpoint
//! (`--metrics-addr 127.0.0.1:PORT`, path `/metrics`) that serves them.
//!
//! Everything else in the crate records through the plain functions here ([`fuse_op`],
//! [`fuse_error`], [`s3_request`], [`cache_access`], [`set_memory`], [`upload_started`], ...).
//! Until [`serve`] has enabled the registry they return at once after one atomic load, so calling
//! them on hot paths costs nothing measurable when metrics are off. Exposition is done by the
//! `prometheus-client` crate (OpenMetrics text, which Prometheus scrapes as is).
//!
//! This file owns the registry and the recording functions; the HTTP side is `endpoint.rs`.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

mod endpoint;
pub use endpoint::{serve, ServeError};

type OpLabels = [(&'static str, &'static str); 1];
type ErrLabels = [(&'static str, &'static str); 2];
type S3Labels = [(&'static str, String); 1];
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the process.
struct Metrics {
    registry: Registry,
    fuse_requests: Family<OpLabels, Counter>,
    fuse_errors: Family<ErrLabels, Counter>,
    fuse_seconds: HistogramFamily<OpLabels>,
    s3_requests: Family<S3Labels, Counter>,
    s3_retries: Family<S3Labels, Counter>,
    s3_errors: Family<S3Labels, Counter>,
    s3_seconds: HistogramFamily<S3Labels>,
    s3_sent: Counter,
    s3_received: Counter,
    cache_hits: Counter,
    cache_misses: Counter,
    memory_in_use: Gauge<u64, AtomicU64>,
    memory_budget: Gauge<u64, AtomicU64>,
    uploads_in_flight: Gauge,
    files_not_stored: Counter,
    files_unstored_now: Gauge,
    write_cache_files: Gauge,
    write_cache_bytes: Gauge,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~26 s in factors of 4: covers cached lookups up to multipart completions.
    Histogram::new(exponential_buckets(0.0001, 4.0, 10))
}

impl Metrics {
    fn new() -> Self {
        let m = Metrics {
            registry: Registry::with_prefix("cosmount"),
            fuse_requests: Family::default(),
            fuse_errors: Family::default(),
            fuse_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            s3_requests: Family::default(),
            s3_retries: Family::default(),
            s3_errors: Family::default(),
            s3_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            s3_sent: Counter::default(),
            s3_received: Counter::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            memory_in_use: Gauge::default(),
            memory_budget: Gauge::default(),
            uploads_in_flight: Gauge::default(),
            files_not_stored: Counter::default(),
            files_unstored_now: Gauge::default(),
            write_cache_files: Gauge::default(),
            write_cache_bytes: Gauge::default(),
        };
        let mut m = m;
        let r = &mut m.registry;
        r.register(
            "fuse_requests",
            "FUSE requests served, by operation",
            m.fuse_requests.clone(),
        );
        r.register(
            "fuse_errors",
            "FUSE requests answered with an error, by operation and errno",
            m.fuse_errors.clone(),
        );
        r.register_with_unit(
            "fuse_request_duration",
            "Time to answer a FUSE request, by operation",
            Unit::Seconds,
            m.fuse_seconds.clone(),
        );
        r.register(
            "s3_requests",
            "S3 requests sent (retries not counted again), by operation",
            m.s3_requests.clone(),
        );
        r.register(
            "s3_retries",
            "S3 attempts beyond the first (retries), by operation",
            m.s3_retries.clone(),
        );
        r.register(
            "s3_errors",
            "S3 requests that failed after their retries, by operation",
            m.s3_errors.clone(),
        );
        r.register_with_unit(
            "s3_request_duration",
            "Time of an S3 request including retries, by operation",
            Unit::Seconds,
            m.s3_seconds.clone(),
        );
        r.register_with_unit(
            "s3_sent",
            "Request body bytes sent to S3",
            Unit::Bytes,
            m.s3_sent.clone(),
        );
        r.register_with_unit(
            "s3_received",
            "Response body bytes received from S3 (by Content-Length)",
            Unit::Bytes,
            m.s3_received.clone(),
        );
        r.register("cache_hits", "Reads served from the cache", m.cache_hits.clone());
        r.register(
            "cache_misses",
            "Reads the cache could not serve",
            m.cache_misses.clone(),
        );
        r.register_with_unit(
            "memory_in_use",
            "Memory held for file data (buffers and cache)",
            Unit::Bytes,
            m.memory_in_use.clone(),
        );
        r.register_with_unit(
            "memory_budget",
            "Memory budget for file data (--max-memory)",
            Unit::Bytes,
            m.memory_budget.clone(),
        );
        r.register(
            "uploads_in_flight",
            "Files being uploaded to S3 right now",
            m.uploads_in_flight.clone(),
        );
        r.register(
            "files_not_stored",
            "Files whose changes could not be stored after their last close (the writer was not told; \
             the log names each one at ERROR)",
            m.files_not_stored.clone(),
        );
        r.register(
            "files_unstored",
            "Files whose last changes are not stored right now (fsync of each reports the error)",
            m.files_unstored_now.clone(),
        );
        r.register(
            "write_cache_files",
            "Files closed into the write cache and not yet confirmed by S3",
            m.write_cache_files.clone(),
        );
        r.register_with_unit(
            "write_cache",
            "Bytes of the write cache's entries on local disk",
            Unit::Bytes,
            m.write_cache_bytes.clone(),
        );
        m
    }

    fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8192);
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

#[inline]
fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

/// Turn metrics on (idempotent). [`serve`] does this; tests may call it directly.
pub fn enable() {
    METRICS.get_or_init(Metrics::new);
}

/// The current metrics in the text exposition format (`None` when metrics are off).
pub fn render() -> Option<String> {
    get().and_then(|m| m.render().ok())
}

/// Times one FUSE request; counts it and records its latency when dropped.
#[must_use = "the request is timed until this guard is dropped"]
pub struct OpTimer {
    op: &'static str,
    start: Option<Instant>,
}

impl Drop for OpTimer {
    fn drop(&mut self) {
        if let (Some(m), Some(start)) = (get(), self.start) {
            let labels = [("op", self.op)];
            m.fuse_requests.get_or_create(&labels).inc();
            m.fuse_seconds
                .get_or_create(&labels)
                .observe(start.elapsed().as_secs_f64());
        }
    }
}

/// Start timing a FUSE request of operation `op` (such as "lookup" or "read").
#[inline]
pub fn fuse_op(op: &'static str) -> OpTimer {
    OpTimer {
        op,
        start: get().map(|_| Instant::now()),
    }
}

/// Count a FUSE request of `op` answered with `errno`.
pub fn fuse_error(op: &'static str, errno: i32) {
    if let Some(m) = get() {
        m.fuse_errors
            .get_or_create(&[("op", op), ("errno", errno_name(errno))])
            .inc();
    }
}

/// Count one S3 request (its first attempt) of `operation` (such as "GetObject").
pub fn s3_request(operation: &str) {
    if let Some(m) = get() {
        m.s3_requests
            .get_or_create(&[("operation", operation.to_string())])
            .inc();
    }
}

/// Count one retry (an attempt after the first) of an S3 request.
pub fn s3_retry(operation: &str) {
    if let Some(m) = get() {
        m.s3_retries
            .get_or_create(&[("operation", operation.to_string())])
            .inc();
    }
}

/// Record the end of an S3 request: its total time and whether it failed after its retries.
pub fn s3_finished(operation: &str, elapsed: Duration, failed: bool) {
    if let Some(m) = get() {
        let labels = [("operation", operation.to_string())];
        m.s3_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
        if failed {
            m.s3_errors.get_or_create(&labels).inc();
        }
    }
}

/// Count bytes sent to S3 in request bodies.
pub fn s3_bytes_sent(n: u64) {
    if let Some(m) = get() {
        m.s3_sent.inc_by(n);
    }
}

/// Count bytes received from S3 in response bodies.
pub fn s3_bytes_received(n: u64) {
    if let Some(m) = get() {
        m.s3_received.inc_by(n);
    }
}

/// Count one cache lookup: served from the cache (`hit`) or not.
pub fn cache_access(hit: bool) {
    if let Some(m) = get() {
        if hit {
            m.cache_hits.inc();
        } else {
            m.cache_misses.inc();
        }
    }
}

/// Report the memory held for file data and the budget it must stay within.
pub fn set_memory(in_use_bytes: u64, budget_bytes: u64) {
    if let Some(m) = get() {
        m.memory_in_use.set(in_use_bytes);
        m.memory_budget.set(budget_bytes);
    }
}

/// A file upload has started (pair with [`upload_finished`], or use [`upload_in_flight`]).
pub fn upload_started() {
    if let Some(m) = get() {
        m.uploads_in_flight.inc();
    }
}

/// A file upload has ended, successfully or not.
pub fn upload_finished() {
    if let Some(m) = get() {
        m.uploads_in_flight.dec();
    }
}

/// Counts an upload as in flight until dropped.
#[must_use = "the upload counts as in flight until this guard is dropped"]
pub struct UploadInFlight(bool);

/// [`upload_started`] now and [`upload_finished`] when the returned guard is dropped.
pub fn upload_in_flight() -> UploadInFlight {
    let on = get().is_some();
    if on {
        upload_started();
    }
    UploadInFlight(on)
}

impl Drop for UploadInFlight {
    fn drop(&mut self) {
        if self.0 {
            upload_finished();
        }
    }
}

/// The symbolic name of an errno, for logs and metric labels.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENODATA => "ENODATA",
        libc::ENOTSUP => "ENOTSUP",
        libc::ESTALE => "ESTALE",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        _ => "other",
    }
}

/// A file's changes could not be stored after its last close; `now` files are in that state.
pub fn file_not_stored(now: usize) {
    if let Some(m) = get() {
        m.files_not_stored.inc();
        m.files_unstored_now.set(now as i64);
    }
}

/// `now` files' last changes are not stored.
pub fn files_unstored(now: usize) {
    if let Some(m) = get() {
        m.files_unstored_now.set(now as i64);
    }
}

/// Files and bytes entered (positive) or left (negative) the write cache.
pub fn write_cache(files: i64, bytes: i64) {
    if let Some(m) = get() {
        m.write_cache_files.inc_by(files);
        m.write_cache_bytes.inc_by(bytes);
    }
}

#[cfg(test)]
mod tests;
