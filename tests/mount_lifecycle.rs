//! Real-mount tests of starting and stopping: each check before mounting fails fast with a
//! specific message and a non-zero exit; background mode returns once the mount is live; signals
//! and fusermount3 unmount cleanly, leaving no process and no mount behind.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// Run cosmount in the foreground on `mnt` against `endpoint`; it must fail. Returns stderr.
fn must_fail(source: &str, mnt: &std::path::Path, endpoint: &str, extra: &[&str]) -> String {
    let start = Instant::now();
    let out = cosmount_cmd()
        .arg(source)
        .arg(mnt)
        .args(["--endpoint-url", endpoint, "--force-path-style", "--foreground"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run cosmount");
    let elapsed = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure, got success; stderr: {err}");
    assert!(elapsed < Duration::from_secs(20), "failure took {elapsed:?}: {err}");
    assert!(!is_mounted(mnt), "nothing may stay mounted after a failure");
    err
}

/// A fake HTTP endpoint answering every request with `response` (or never, if `None`).
fn fake_endpoint(response: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                let _ = s.read(&mut buf);
                match response {
                    Some(r) => {
                        let _ = s.write_all(r.as_bytes());
                    }
                    None => std::thread::sleep(Duration::from_secs(30)),
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[test]
fn missing_bucket_names_bucket_and_endpoint() {
    let mnt = tempfile::tempdir().expect("tempdir");
    let err = must_fail("no-such-bucket-here", mnt.path(), &endpoint(), &[]);
    assert!(
        err.contains("does not exist") && err.contains("no-such-bucket-here") && err.contains(&endpoint()),
        "{err}"
    );
}

#[test]
fn access_denied_says_check_credentials() {
    let mnt = tempfile::tempdir().expect("tempdir");
    let body = "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
    let resp: &'static str = Box::leak(
        format!("HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            .into_boxed_str(),
    );
    let ep = fake_endpoint(Some(resp));
    let err = must_fail("some-bucket", mnt.path(), &ep, &[]);
    assert!(
        err.contains("access denied") && err.contains("credentials") && err.contains("some-bucket"),
        "{err}"
    );
}

#[test]
fn no_credentials_at_all_says_where_to_put_them() {
    let mnt = tempfile::tempdir().expect("tempdir");
    let home = tempfile::tempdir().expect("home");
    let out = cosmount_cmd()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .arg("some-bucket")
        .arg(mnt.path())
        .args(["--endpoint-url", &endpoint(), "--force-path-style", "--foreground"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no usable credentials") && err.contains("AWS_ACCESS_KEY_ID"),
        "{err}"
    );
}

#[test]
fn html_endpoint_is_not_taken_for_s3() {
    let mnt = tempfile::tempdir().expect("tempdir");
    let body = "<html><body>Welcome to nginx</body></html>";
    let resp: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    );
    let ep = fake_endpoint(Some(resp));
    let err = must_fail("some-bucket", mnt.path(), &ep, &[]);
    assert!(err.contains("S3"), "{err}");
    assert!(err.contains(&ep), "{err}");
}

#[test]
fn unreachable_endpoint_and_wrong_scheme_fail_fast() {
    let mnt = tempfile::tempdir().expect("tempdir");
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let err = must_fail("some-bucket", mnt.path(), &format!("http://127.0.0.1:{closed}"), &[]);
    assert!(
        err.contains("cannot reach") && err.contains(&format!("127.0.0.1:{closed}")),
        "{err}"
    );
    let https = endpoint().replace("http://", "https://");
    let err = must_fail("some-bucket", mnt.path(), &https, &[]);
    assert!(err.contains("cannot reach") && err.contains("https://"), "{err}");
    let err = must_fail("some-bucket", mnt.path(), "localhost:9000", &[]);
    assert!(err.contains("http://"), "{err}");
}

#[test]
fn silent_endpoint_is_bounded_by_connect_timeout() {
    let mnt = tempfile::tempdir().expect("tempdir");
    let ep = fake_endpoint(None);
    let start = Instant::now();
    let err = must_fail("some-bucket", mnt.path(), &ep, &["--connect-timeout", "2"]);
    assert!(start.elapsed() < Duration::from_secs(8), "took {:?}", start.elapsed());
    assert!(err.contains("no answer") && err.contains("2 s"), "{err}");
}

#[test]
fn bad_mount_points_are_refused_with_what_to_do() {
    let b = bucket("mountpoints");
    let base = tempfile::tempdir().expect("tempdir");
    let missing = base.path().join("missing");
    let err = must_fail(&b, &missing, &endpoint(), &[]);
    assert!(err.contains("does not exist") && err.contains("mkdir"), "{err}");
    let file = base.path().join("file");
    std::fs::write(&file, b"x").expect("write");
    let err = must_fail(&b, &file, &endpoint(), &[]);
    assert!(err.contains("not a directory"), "{err}");
    let err = must_fail(&b, base.path(), &endpoint(), &[]);
    assert!(err.contains("not empty") && err.contains("--allow-non-empty"), "{err}");
    let m = Mount::new(&b, &[]);
    let out = cosmount_cmd()
        .arg(&b)
        .arg(m.path())
        .args(["--endpoint-url", &endpoint(), "--force-path-style", "--foreground"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("already a mount point"), "{err}");
    assert!(is_mounted(m.path()), "the first mount is untouched");
}

#[test]
fn invalid_bucket_name_is_rejected_before_any_request() {
    let mnt = tempfile::tempdir().expect("tempdir");
    let out = cosmount_cmd()
        .arg("Not_A_Bucket")
        .arg(mnt.path())
        .arg("--foreground")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid bucket name"));
}

#[test]
fn sigterm_sigint_and_fusermount_unmount_cleanly() {
    let b = bucket("signals");
    put_all(&b, vec![("f".into(), b"data".to_vec())]);
    for how in ["TERM", "INT", "fusermount"] {
        let mut m = Mount::new(&b, &[]);
        assert_eq!(std::fs::read(m.p("f")).expect("read"), b"data");
        let status = if how == "fusermount" {
            m.unmount()
        } else {
            let pid = m.child.as_ref().expect("child").id();
            sh_ok(&format!("kill -{how} {pid}"));
            m.wait_exit()
        };
        assert!(status.success(), "{how}: daemon exited with {status}");
        assert!(!is_mounted(m.path()), "{how}: still mounted");
    }
}

#[test]
fn background_mode_returns_once_mounted_and_exits_on_unmount() {
    let b = bucket("background");
    put_all(&b, vec![("f".into(), b"bg".to_vec())]);
    let mnt = tempfile::tempdir().expect("tempdir");
    let start = Instant::now();
    let out = cosmount_cmd()
        .arg(&b)
        .arg(mnt.path())
        .args(["--endpoint-url", &endpoint(), "--force-path-style"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(start.elapsed() < Duration::from_secs(15));
    // Live as soon as the command returned: no polling.
    assert!(is_mounted(mnt.path()));
    assert_eq!(std::fs::read(mnt.path().join("f")).expect("read"), b"bg");
    let path = mnt.path().to_string_lossy().into_owned();
    let pids = daemons_serving(&path);
    assert_eq!(pids.len(), 1, "one daemon serves the mount: {pids:?}");
    sh_ok(&format!("fusermount3 -u {path}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = pids[0].clone();
    while Instant::now() < deadline && std::path::Path::new(&format!("/proc/{pid}")).exists() {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.split(' ').nth(2) == Some("Z") {
            break; // exited; only waiting for the reaper
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.split(' ').nth(2) == Some("Z"),
        "daemon still running: {state}"
    );
    assert!(!is_mounted(mnt.path()));
}

/// Pids of live cosmount processes whose command line names `mountpoint`.
fn daemons_serving(mountpoint: &str) -> Vec<String> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.ends_with("cosmount")) && args.iter().any(|a| a == mountpoint) {
            pids.push(name);
        }
    }
    pids
}

#[test]
fn sigterm_after_a_lazy_unmount_still_stops_the_daemon() {
    // `umount -l` while a file is open detaches the mount but keeps the daemon serving that file;
    // a later SIGTERM (systemctl stop) must still end it, not leave it running forever.
    let b = bucket("lazy");
    put_all(&b, vec![("f".into(), b"data".to_vec())]);
    let mut m = Mount::new(&b, &[]);
    let mut holder = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("exec 3< '{}'; sleep 60", m.p("f")))
        .spawn()
        .expect("holder");
    std::thread::sleep(std::time::Duration::from_millis(500));
    sh_ok(&format!("umount -l '{}'", m.path().display()));
    assert!(!is_mounted(m.path()));
    let pid = m.child.as_ref().expect("child").id();
    sh_ok(&format!("kill -TERM {pid}"));
    let status = m.wait_exit();
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(status.success(), "daemon exited with {status}");
    let log = std::fs::read_to_string(&m.log).unwrap_or_default();
    assert!(log.contains("no longer mounted"), "the log says why it stops:\n{log}");
}
