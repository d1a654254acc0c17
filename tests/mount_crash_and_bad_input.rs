//! A daemon killed mid-write, and bad input: each gets a clear errno or message and loses nothing.
#![allow(unsafe_code)] // setxattr(2) with a value too large for a command line

mod common;

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_daemon_killed_mid_write_leaves_no_partial_object_and_the_next_mount_cleans_up() {
    let b = bucket("crash");
    put_all(&b, vec![("keep".into(), b"old contents".to_vec())]);
    let state = tempfile::tempdir().expect("state");
    let st = state.path().to_string_lossy().into_owned();
    let mut m = Mount::new(&b, &["--part-size", "5", "--state-dir", &st]);
    let mut big = std::fs::File::create(m.p("big.bin")).expect("create");
    big.write_all(&pattern(16 * 1024 * 1024, 5)).expect("write");
    let mut over = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.p("keep"))
        .expect("open");
    over.write_all(b"half-written replacement").expect("write");
    // Parts stream in the background: a multipart upload is open on the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while multipart_uploads(&b) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(multipart_uploads(&b), 1, "the upload had started");
    let pid = m.child.as_ref().expect("daemon").id();
    sh_ok(&format!("kill -9 {pid}"));
    let _ = m.wait_exit();
    drop(big);
    drop(over);
    assert!(head(&b, "big.bin").is_none(), "no partial object");
    assert_eq!(
        get(&b, "keep").expect("object"),
        b"old contents",
        "the old object is intact"
    );
    // The dead mount is reported with what to do, then cleaned up and mounted again.
    let out = cosmount_cmd()
        .arg(&b)
        .arg(m.path())
        .args(["--endpoint-url", &endpoint(), "--force-path-style", "--foreground"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("fusermount3 -u"), "{err}");
    sh_ok(&format!("fusermount3 -u {}", m.p("")));
    let again = Mount::new(&b, &["--state-dir", &st]);
    assert_eq!(std::fs::read(again.p("keep")).expect("read"), b"old contents");
    assert_eq!(
        multipart_uploads(&b),
        0,
        "the next mount aborted the upload the crash left open"
    );
}

#[test]
fn bad_names_and_attributes_get_clear_errnos() {
    let b = bucket("badinput");
    let m = Mount::new(&b, &[]);
    // A name over 255 bytes.
    let long = m.p(&"n".repeat(256));
    let e = std::fs::write(&long, b"x").expect_err("too long");
    assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG));
    // A key over 1024 bytes (each segment is fine).
    let seg = "s".repeat(200);
    let deep = m.p(&[seg.as_str(); 5].join("/"));
    std::fs::create_dir_all(&deep).expect("1004-byte directory key");
    let e = std::fs::write(format!("{deep}/{}", "f".repeat(30)), b"x").expect_err("key too long");
    assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG));
    // A name that is not UTF-8.
    let mut bad = m.path().as_os_str().as_bytes().to_vec();
    bad.extend_from_slice(b"/caf\xe9");
    let e = std::fs::write(std::ffi::OsStr::from_bytes(&bad), b"x").expect_err("not UTF-8");
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    // Attribute names and values past the kernel's limits; values S3 cannot carry.
    std::fs::write(m.p("f"), b"x").expect("write");
    let out = sh(&format!("setfattr -n user.{} -v x {}", "a".repeat(256), m.p("f")));
    assert!(!out.status.success(), "an attribute name over 255 bytes is refused");
    let path = std::ffi::CString::new(m.p("f")).expect("path");
    let name = std::ffi::CString::new("user.big").expect("name");
    let value = vec![b'A'; 70_000];
    // SAFETY: path and name are NUL-terminated; value is a valid buffer of value.len() bytes.
    let r = unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    assert_eq!(
        (r, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::E2BIG)),
        "a value over 64 KiB"
    );
    let out = sh(&format!("setfattr -n 'user.bad name' -v x {}", m.p("f")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Invalid argument"));
    // Nothing was stored for any of these, and the good file is intact.
    let stored = keys(&b, "");
    assert!(stored.iter().all(|k| k == "f" || k.starts_with("ssss")), "{stored:?}");
    assert_eq!(get(&b, "f").expect("object"), b"x");
}

#[test]
fn invalid_option_combinations_are_refused_with_the_reason() {
    let mnt = tempfile::tempdir().expect("mnt");
    for (args, needle) in [
        (vec!["--allow-other", "--allow-root"], "cannot be used with"),
        (vec!["--object-lock-mode", "GOVERNANCE"], "--object-lock-retain-days"),
        (vec!["--part-size", "4"], "5 to 5120"),
        (vec!["--file-mode", "999"], "octal"),
        (vec!["--legal-hold-id", "bad id"], "legal hold ID"),
        (vec!["--cos-network", "dark"], "invalid value"),
        (vec!["--metadata-ttl", "soon"], "seconds"),
    ] {
        let out = cosmount_cmd()
            .arg("some-bucket")
            .arg(mnt.path())
            .args(&args)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
