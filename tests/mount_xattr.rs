//! Real-mount tests of extended attributes: user metadata, the xattr protocol, S3 Object Lock on
//! the local S3 server, and IBM's legacy retention and legal holds on the repository's double.
#![allow(unsafe_code)] // getxattr/setxattr(2) with exact buffer sizes and flags

mod common;

use std::ffi::CString;

use aws_sdk_s3::types::ObjectLockLegalHoldStatus;
use common::*;

fn errno_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// getxattr(2) with a buffer of `size` bytes: Ok(length) or Err(errno).
fn getxattr(path: &str, name: &str, size: usize) -> Result<usize, i32> {
    let (p, n) = (CString::new(path).expect("path"), CString::new(name).expect("name"));
    let mut buf = vec![0u8; size.max(1)];
    // SAFETY: p and n are NUL-terminated; buf has `size` writable bytes (a null pointer when 0).
    let r = unsafe {
        libc::getxattr(
            p.as_ptr(),
            n.as_ptr(),
            if size == 0 {
                std::ptr::null_mut()
            } else {
                buf.as_mut_ptr().cast()
            },
            size,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r as usize)
    }
}

/// setxattr(2) with flags: Ok or Err(errno).
fn setxattr(path: &str, name: &str, value: &[u8], flags: i32) -> Result<(), i32> {
    let (p, n) = (CString::new(path).expect("path"), CString::new(name).expect("name"));
    // SAFETY: p and n are NUL-terminated; value is a valid slice of value.len() bytes.
    let r = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), flags) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(())
    }
}

#[test]
fn user_metadata_round_trip_and_the_xattr_protocol() {
    let b = bucket("xattr-user");
    let m = Mount::new(&b, &[]);
    std::fs::write(m.p("report.pdf"), b"%PDF-1.7").expect("write");
    let f = m.p("report.pdf");
    sh_ok(&format!("setfattr -n user.project -v apollo {f}"));
    let (_, _, meta) = head(&b, "report.pdf").expect("object");
    assert_eq!(meta.get("project").map(String::as_str), Some("apollo"));
    let ct = rt()
        .block_on(client().head_object().bucket(&b).key("report.pdf").send())
        .expect("head");
    assert_eq!(
        ct.content_type(),
        Some("application/pdf"),
        "Content-Type kept by the metadata rewrite"
    );
    assert_eq!(get(&b, "report.pdf").expect("body"), b"%PDF-1.7");
    let dump = sh_ok(&format!("getfattr -d {f}"));
    assert!(dump.contains("user.project=\"apollo\""), "{dump}");
    assert!(
        dump.contains("user.s3.etag=") && dump.contains("user.s3.content-type=\"application/pdf\""),
        "{dump}"
    );
    assert!(
        !dump.contains("user.mode") && !dump.contains("user.mtime"),
        "POSIX attributes are not user metadata: {dump}"
    );
    // The protocol: size probe, ERANGE, ENODATA.
    assert_eq!(getxattr(&f, "user.project", 0), Ok(6));
    assert_eq!(getxattr(&f, "user.project", 3), Err(libc::ERANGE));
    assert_eq!(getxattr(&f, "user.project", 64), Ok(6));
    assert_eq!(getxattr(&f, "user.absent", 64), Err(libc::ENODATA));
    // Other namespaces are unsupported (so `ls -l` stops asking for labels and ACLs).
    assert_eq!(getxattr(&f, "security.capability", 0), Err(libc::ENOTSUP));
    assert_eq!(getxattr(&f, "security.selinux", 64), Err(libc::ENOTSUP));
    assert_eq!(getxattr(&f, "trusted.x", 64), Err(libc::ENOTSUP));
    assert_eq!(
        setxattr(&f, "user.project", b"x", libc::XATTR_CREATE),
        Err(libc::EEXIST)
    );
    assert_eq!(
        setxattr(&f, "user.other", b"x", libc::XATTR_REPLACE),
        Err(libc::ENODATA)
    );
    assert_eq!(
        setxattr(&f, "user.s3.etag", b"x", 0),
        Err(libc::ENOTSUP),
        "object facts are read-only (ENOTSUP, which cp -a and mv pass over quietly)"
    );
    assert_eq!(
        setxattr(&f, "user.mode", b"1", 0),
        Err(libc::EPERM),
        "POSIX names are reserved"
    );
    assert_eq!(setxattr(&f, "trusted.x", b"1", 0), Err(libc::ENOTSUP));
    // A well-formed POSIX ACL (user::rw- user:1:r-- group::r-- mask::r-- other::---): the kernel
    // parses it, then the mount refuses it; ACLs are unsupported, to set and to read.
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (1u16, 6u16, u32::MAX),
        (2, 4, 1),
        (4, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    assert_eq!(setxattr(&f, "system.posix_acl_access", &acl, 0), Err(libc::ENOTSUP));
    assert_eq!(getxattr(&f, "system.posix_acl_access", 0), Err(libc::ENOTSUP));
    assert_eq!(getxattr(&m.p(""), "system.posix_acl_default", 0), Err(libc::ENOTSUP));
    sh_ok(&format!("setfattr -x user.project {f}"));
    assert!(!head(&b, "report.pdf").expect("object").2.contains_key("project"));
    let out = sh(&format!("setfattr -x user.project {f}"));
    assert!(!out.status.success() && errno_of(&out).contains("No such attribute"));
}

#[test]
fn security_capability_and_plain_ls_make_no_requests() {
    let ep = cos_double();
    let c = client_at(&ep);
    let b = format!("nocap{}", std::process::id());
    rt().block_on(c.create_bucket().bucket(&b).send()).expect("bucket");
    let m = Mount::with_endpoint(&b, &ep, &[]);
    std::fs::write(m.p("f"), b"1").expect("write");
    let heads = || double_stats(&ep)["heads"]["f"].as_u64().unwrap_or(0);
    let before = heads();
    for _ in 0..20 {
        assert_eq!(getxattr(&m.p("f"), "security.capability", 0), Err(libc::ENOTSUP));
    }
    sh_ok(&format!("ls {0} >/dev/null; ls {0} >/dev/null", m.p("")));
    assert_eq!(heads(), before, "security.capability and plain ls cost no HEAD");
}

#[test]
fn object_lock_legal_hold_and_retention_with_setfattr() {
    let c = client();
    let b = format!("lock{}", std::process::id());
    rt().block_on(c.create_bucket().bucket(&b).object_lock_enabled_for_bucket(true).send())
        .expect("bucket");
    put_all(&b, vec![("evidence.txt".into(), b"exhibit A".to_vec())]);
    let m = Mount::new(
        &b,
        &["--object-lock-mode", "GOVERNANCE", "--object-lock-retain-days", "1"],
    );
    let f = m.p("evidence.txt");
    sh_ok(&format!("setfattr -n user.s3.object-lock-legal-hold-status -v ON {f}"));
    let h = rt()
        .block_on(c.head_object().bucket(&b).key("evidence.txt").send())
        .expect("head");
    assert_eq!(h.object_lock_legal_hold_status(), Some(&ObjectLockLegalHoldStatus::On));
    assert!(sh_ok(&format!("getfattr -d {f}")).contains("user.s3.object-lock-legal-hold-status=\"ON\""));
    // Refused while held, and nothing changes in the bucket.
    for cmd in [
        format!("rm {f}"),
        format!("echo new > {f}"),
        format!("mv {f} {}", m.p("moved.txt")),
        format!("truncate -s 0 {f}"),
    ] {
        let out = sh(&cmd);
        assert!(
            !out.status.success() && errno_of(&out).contains("Operation not permitted"),
            "{cmd}: {}",
            errno_of(&out)
        );
    }
    assert_eq!(get(&b, "evidence.txt").expect("object"), b"exhibit A");
    assert!(head(&b, "moved.txt").is_none(), "a refused rename leaves no copy");
    // Retention: extend allowed, shorten refused without the bypass option.
    sh_ok(&format!(
        "setfattr -n user.s3.object-lock-retain-until-date -v 2031-01-01T00:00:00Z {f}"
    ));
    let h = rt()
        .block_on(c.head_object().bucket(&b).key("evidence.txt").send())
        .expect("head");
    let until = h.object_lock_retain_until_date().map(|d| d.secs());
    assert_eq!(until, Some(1_924_992_000));
    let out = sh(&format!(
        "setfattr -n user.s3.object-lock-retain-until-date -v 2030-01-01T00:00:00Z {f}"
    ));
    assert!(!out.status.success() && errno_of(&out).contains("Operation not permitted"));
    let bad = sh(&format!(
        "setfattr -n user.s3.object-lock-legal-hold-status -v MAYBE {f}"
    ));
    assert!(!bad.status.success() && errno_of(&bad).contains("Invalid argument"));
    sh_ok(&format!("setfattr -n user.s3.object-lock-legal-hold-status -v OFF {f}"));
    let h = rt()
        .block_on(c.head_object().bucket(&b).key("evidence.txt").send())
        .expect("head");
    assert_eq!(h.object_lock_legal_hold_status(), Some(&ObjectLockLegalHoldStatus::Off));
    // New files get the mount's retention.
    std::fs::write(m.p("new.txt"), b"fresh").expect("write");
    let h = rt()
        .block_on(c.head_object().bucket(&b).key("new.txt").send())
        .expect("head");
    assert_eq!(h.object_lock_mode().map(|m| m.as_str()), Some("GOVERNANCE"));
    assert!(h.object_lock_retain_until_date().is_some());
    // The root shows the bucket's configuration.
    assert!(sh_ok(&format!("getfattr -d {}", m.p(""))).contains("user.s3.object-lock.enabled=\"Enabled\""));
}

#[test]
fn ibm_legal_holds_and_retention_on_the_double() {
    let ep = cos_double();
    let c = client_at(&ep);
    let b = format!("ibmworm{}", std::process::id());
    rt().block_on(c.create_bucket().bucket(&b).send()).expect("bucket");
    protect(&ep, &b, 0, 1, 3650);
    let m = Mount::with_endpoint(&b, &ep, &[]);
    {
        use std::io::Write;
        let mut file = std::fs::File::create(m.p("case.pdf")).expect("create");
        file.write_all(b"evidence").expect("write");
        file.sync_all().expect("stored");
    }
    let f = m.p("case.pdf");
    let dump = sh_ok(&format!("getfattr -d {f}"));
    assert!(
        dump.contains("user.cos.retention-period=\"86400\""),
        "bucket default retention: {dump}"
    );
    assert!(dump.contains("user.cos.legal-hold-count=\"0\""), "{dump}");
    for id in ["case-2026-17", "audit_1", "Case(42)!"] {
        sh_ok(&format!("setfattr -n 'user.cos.legal-hold.{id}' {f}"));
    }
    let dump = sh_ok(&format!("getfattr -d {f}"));
    for id in ["case-2026-17", "audit_1", "Case(42)!"] {
        assert!(dump.contains(&format!("user.cos.legal-hold.{id}=")), "{id}: {dump}");
    }
    assert!(dump.contains("user.cos.legal-hold-count=\"3\""), "{dump}");
    sh_ok(&format!("setfattr -x user.cos.legal-hold.audit_1 {f}"));
    assert!(!sh_ok(&format!("getfattr -d {f}")).contains("audit_1"));
    assert_eq!(
        setxattr(&f, "user.cos.legal-hold.case-2026-17", b"", libc::XATTR_CREATE),
        Err(libc::EEXIST)
    );
    assert_eq!(setxattr(&f, "user.cos.legal-hold.bad id", b"", 0), Err(libc::EINVAL));
    assert_eq!(
        setxattr(&f, &format!("user.cos.legal-hold.{}", "x".repeat(65)), b"", 0),
        Err(libc::EINVAL)
    );
    let out = sh(&format!("setfattr -x user.cos.legal-hold.never {f}"));
    assert!(!out.status.success() && errno_of(&out).contains("No such attribute"));
    // Retention can only grow.
    sh_ok(&format!("setfattr -n user.cos.retention-period -v 172800 {f}"));
    assert!(sh_ok(&format!("getfattr -n user.cos.retention-period {f}")).contains("172800"));
    let out = sh(&format!("setfattr -n user.cos.retention-period -v 60 {f}"));
    assert!(!out.status.success() && errno_of(&out).contains("Operation not permitted"));
    // Protected data is refused.
    let out = sh(&format!("rm {f}"));
    assert!(!out.status.success() && errno_of(&out).contains("Operation not permitted"));
    let out = sh(&format!("setfattr -n user.note -v x {f}"));
    assert!(
        !out.status.success() && errno_of(&out).contains("Operation not permitted"),
        "metadata rewrite refused"
    );
    let body = rt().block_on(async {
        c.get_object()
            .bucket(&b)
            .key("case.pdf")
            .send()
            .await
            .ok()?
            .body
            .collect()
            .await
            .ok()
    });
    assert_eq!(body.map(|b| b.into_bytes().to_vec()), Some(b"evidence".to_vec()));
    // The 101st hold is refused.
    std::fs::write(m.p("many"), b"m").expect("write");
    for i in 0..100 {
        assert_eq!(
            setxattr(&m.p("many"), &format!("user.cos.legal-hold.h{i}"), b"", 0),
            Ok(()),
            "hold {i}"
        );
    }
    assert_eq!(
        setxattr(&m.p("many"), "user.cos.legal-hold.h100", b"", 0),
        Err(libc::ENOSPC)
    );
    assert!(sh_ok(&format!("getfattr -d {}", m.p(""))).contains("user.cos.protection.maximum-retention-days=\"3650\""));
}

#[test]
fn uploads_carry_the_mounts_retention_and_legal_hold() {
    let ep = cos_double();
    let c = client_at(&ep);
    let b = format!("ibmopts{}", std::process::id());
    rt().block_on(c.create_bucket().bucket(&b).send()).expect("bucket");
    protect(&ep, &b, 0, 1, 3650);
    let m = Mount::with_endpoint(
        &b,
        &ep,
        &[
            "--retention-period",
            "3600",
            "--legal-hold-id",
            "case-7",
            "--part-size",
            "5",
        ],
    );
    for (name, body) in [("small", b"s".to_vec()), ("large", pattern(11 * 1024 * 1024, 3))] {
        use std::io::Write;
        let mut file = std::fs::File::create(m.p(name)).expect("create");
        file.write_all(&body).expect("write");
        file.sync_all().expect("stored with the retention headers");
    }
    for f in ["small", "large"] {
        let dump = sh_ok(&format!("getfattr -d {}", m.p(f)));
        assert!(dump.contains("user.cos.retention-period=\"3600\""), "{f}: {dump}");
        assert!(dump.contains("user.cos.legal-hold.case-7="), "{f}: {dump}");
    }
    // Options that do not fit the bucket are refused before mounting.
    let plain = bucket("plainopts");
    let mnt = tempfile::tempdir().expect("tmp");
    let out = cosmount_cmd()
        .arg(&plain)
        .arg(mnt.path())
        .args([
            "--endpoint-url",
            &endpoint(),
            "--force-path-style",
            "--foreground",
            "--retention-period",
            "60",
        ])
        .output()
        .expect("run");
    assert!(
        !out.status.success() && errno_of(&out).contains("retention policy"),
        "{}",
        errno_of(&out)
    );
}

#[test]
fn setfattr_on_a_file_still_open_for_writing_is_stored_with_it() {
    // A script that sets an attribute before closing the file it writes: the attribute must
    // not fail (no object yet) nor be undone by the upload at close.
    let b = bucket("open-xattr");
    let m = Mount::new(&b, &[]);
    let f = m.p("report.txt");
    let out = sh_ok(&format!(
        "exec 3>{f}; printf draft >&3; setfattr -n user.state -v draft {f}; getfattr --only-values -n user.state {f}; exec 3>&-"
    ));
    assert_eq!(out.trim(), "draft");
    let (_, _, meta) = head(&b, "report.txt").expect("stored");
    assert_eq!(meta.get("state").map(String::as_str), Some("draft"));
    assert_eq!(get(&b, "report.txt").expect("object"), b"draft");
    // Rewritten with the attribute changed while open: the new value is stored.
    sh_ok(&format!(
        "exec 3>{f}; printf final >&3; setfattr -n user.state -v final {f}; exec 3>&-"
    ));
    let (_, _, meta) = head(&b, "report.txt").expect("stored");
    assert_eq!(meta.get("state").map(String::as_str), Some("final"));
    assert_eq!(get(&b, "report.txt").expect("object"), b"final");
}

#[test]
fn setfattr_on_the_mount_root_sets_the_buckets_ibm_retention_policy() {
    let ep = cos_double();
    let c = client_at(&ep);
    let b = format!("policy{}", std::process::id());
    rt().block_on(c.create_bucket().bucket(&b).send()).expect("bucket");
    let m = Mount::with_endpoint(&b, &ep, &[]);
    let root = m.p("");
    let set = |what: &str, v: &str| setxattr(&root, &format!("user.cos.protection.{what}"), v.as_bytes(), 0);
    let policy = || sh_ok(&format!("curl -s '{ep}/{b}?protection'"));
    assert!(policy().contains("Disabled"), "{}", policy());
    // A new policy starts from 0 days: the maximum comes first.
    assert_eq!(
        set("default-retention-days", "10"),
        Err(libc::EINVAL),
        "0 <= 10 <= 0 is out of order"
    );
    assert_eq!(
        set("maximum-retention-days", "365244"),
        Err(libc::EINVAL),
        "beyond 1 000 years"
    );
    assert_eq!(set("maximum-retention-days", "nope"), Err(libc::EINVAL));
    assert_eq!(set("maximum-retention-days", "30"), Ok(()));
    assert_eq!(
        set("minimum-retention-days", "3"),
        Err(libc::EINVAL),
        "3 <= 0 (the default) is out of order"
    );
    assert_eq!(set("default-retention-days", "2"), Ok(()));
    assert_eq!(set("minimum-retention-days", "1"), Ok(()));
    let p = policy();
    for part in [
        "<Status>Retention</Status>",
        "<MinimumRetention><Days>1</Days>",
        "<DefaultRetention><Days>2</Days>",
        "<MaximumRetention><Days>30</Days>",
    ] {
        assert!(p.contains(part), "{part} in {p}");
    }
    let shown = sh_ok(&format!("getfattr -d -m user.cos '{root}'"));
    assert!(
        shown.contains("user.cos.protection.default-retention-days=\"2\""),
        "{shown}"
    );
    // What IBM never allows is refused before anything is sent.
    assert_eq!(set("maximum-retention-days", "29"), Err(libc::EPERM), "never lowered");
    assert_eq!(set("minimum-retention-days", "0"), Err(libc::EPERM), "never lowered");
    assert_eq!(set("status", "Disabled"), Err(libc::EPERM), "never disabled");
    assert!(!sh(&format!(
        "setfattr -x user.cos.protection.maximum-retention-days '{root}'"
    ))
    .status
    .success());
    assert!(
        policy().contains("<MaximumRetention><Days>30</Days>"),
        "unchanged: {}",
        policy()
    );
    // The mount treats the bucket as protected at once: a new file is retained (the default,
    // 2 days) and cannot be deleted.
    std::fs::write(m.p("record.txt"), b"kept").expect("write");
    let rm = sh(&format!("rm '{}'", m.p("record.txt")));
    assert!(!rm.status.success());
    assert!(
        String::from_utf8_lossy(&rm.stderr).contains("Operation not permitted"),
        "{rm:?}"
    );
    assert_eq!(
        sh_ok(&format!(
            "getfattr --only-values -n user.cos.retention-period '{}'",
            m.p("record.txt")
        )),
        "172800"
    );
}

#[test]
fn a_server_without_ibm_retention_policies_says_so() {
    // moto knows no `?protection`: the change must not be reported as done.
    let b = bucket("nopolicy");
    let m = Mount::new(&b, &[]);
    let r = setxattr(&m.p(""), "user.cos.protection.maximum-retention-days", b"30", 0);
    assert!(r == Err(libc::ENOTSUP) || r == Err(libc::EIO), "{r:?}");
    let shown = sh_ok(&format!(
        "getfattr -d -m user.cos '{}' 2>&1 || true",
        m.path().display()
    ));
    assert!(!shown.contains("protection"), "{shown}");
}
