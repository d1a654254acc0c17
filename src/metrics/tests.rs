//! The recording functions are no-ops until metrics are enabled, and then show in the exposition.

use super::*;

#[test]
fn off_is_a_no_op_and_on_counts() {
    // Before enabling, nothing is recorded and nothing fails.
    if get().is_none() {
        cache_access(true);
        assert!(render().is_none());
    }
    enable();
    {
        let _t = fuse_op("lookup");
    }
    fuse_error("lookup", libc::ENOENT);
    s3_request("GetObject");
    s3_retry("GetObject");
    s3_finished("GetObject", Duration::from_millis(3), true);
    s3_bytes_received(10);
    cache_access(false);
    set_memory(5, 100);
    let guard = upload_in_flight();
    let text = render().expect("enabled");
    for want in [
        "cosmount_fuse_requests_total{op=\"lookup\"}",
        "cosmount_fuse_errors_total{op=\"lookup\",errno=\"ENOENT\"} 1",
        "cosmount_fuse_request_duration_seconds_bucket{",
        "cosmount_s3_requests_total{operation=\"GetObject\"}",
        "cosmount_s3_retries_total{operation=\"GetObject\"}",
        "cosmount_s3_errors_total{operation=\"GetObject\"}",
        "cosmount_s3_received_bytes_total",
        "cosmount_cache_misses_total",
        "cosmount_memory_budget_bytes 100",
        "cosmount_uploads_in_flight 1",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    drop(guard);
    assert!(render().expect("enabled").contains("cosmount_uploads_in_flight 0"));
}
