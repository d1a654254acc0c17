//! Real-mount tests of the account mount (`--all-buckets`): every bucket a folder that behaves
//! like a single-bucket mount, `mkdir`/`rmdir` creating and deleting buckets (moto), and on the
//! IBM double new buckets with a location constraint and Key Protect, their retention policy
//! set with `setfattr`, and each bucket's own immutability scheme.
//!
//! Every test binary has its own server, but the tests in it share it: each test only looks at
//! its own buckets.

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;

/// An account mount of the server at `endpoint`.
fn account(endpoint: &str, extra: &[&str]) -> Mount {
    Mount::custom("--all-buckets", endpoint, extra, |_| {})
}

fn bucket_exists(endpoint: &str, name: &str) -> bool {
    rt().block_on(client_at(endpoint).head_bucket().bucket(name).send())
        .is_ok()
}

fn err_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_bucket_is_a_folder_that_works_like_a_single_mount() {
    let (a, b) = (bucket("acct-a"), bucket("acct-b"));
    put_all(&a, vec![("docs/readme.txt".into(), b"alpha readme".to_vec())]);
    put_all(&b, vec![("top.txt".into(), b"beta top".to_vec())]);
    let m = account(&endpoint(), &[]);
    let names = sh_ok(&format!("ls '{}'", m.p("")));
    assert!(
        names.lines().any(|l| l == a) && names.lines().any(|l| l == b),
        "{names}"
    );
    let meta = std::fs::metadata(m.p(&a)).expect("stat a bucket");
    assert!(meta.is_dir());
    assert_ne!(
        meta.ino(),
        std::fs::metadata(m.p(&b)).expect("stat").ino(),
        "each bucket its own inode"
    );
    // Reads, listings and writes inside a bucket are those of a single-bucket mount.
    assert_eq!(
        std::fs::read(m.p(&format!("{a}/docs/readme.txt"))).expect("read"),
        b"alpha readme"
    );
    assert_eq!(sh_ok(&format!("ls '{}'", m.p(&b))).trim(), "top.txt");
    sh_ok(&format!("echo written > '{}'", m.p(&format!("{b}/new.txt"))));
    assert_eq!(get(&b, "new.txt").expect("stored"), b"written\n");
    let src = tempfile::tempdir().expect("tempdir");
    make_tree(src.path(), 6);
    sh_ok(&format!(
        "rsync -a '{}/' '{}'",
        src.path().display(),
        m.p(&format!("{a}/tree"))
    ));
    let stored = keys(&a, "tree/");
    assert!(stored.len() >= 6, "{stored:?}");
    sh_ok(&format!(
        "setfattr -n user.owner -v team '{}'",
        m.p(&format!("{b}/new.txt"))
    ));
    let (_, _, md) = head(&b, "new.txt").expect("head");
    assert_eq!(md.get("owner").map(String::as_str), Some("team"));
    // A rename within a bucket is a rename; between buckets the kernel says EXDEV and mv copies.
    sh_ok(&format!(
        "mv '{}' '{}'",
        m.p(&format!("{a}/docs/readme.txt")),
        m.p(&format!("{a}/docs/README"))
    ));
    assert_eq!(keys(&a, "docs/"), vec!["docs/README".to_string()]);
    let mv = sh(&format!(
        "mv '{}' '{}'",
        m.p(&format!("{a}/docs/README")),
        m.p(&format!("{b}/README"))
    ));
    assert!(mv.status.success(), "{mv:?}");
    assert!(err_of(&mv).is_empty(), "mv between buckets is quiet: {}", err_of(&mv));
    assert_eq!(get(&b, "README").expect("moved"), b"alpha readme");
    assert!(get(&a, "docs/README").is_none(), "the source is gone");
    // Only buckets live at the top.
    let touch = sh(&format!("touch '{}'", m.p("loose-file")));
    assert!(err_of(&touch).contains("Operation not permitted"), "{touch:?}");
    let ln = sh(&format!("ln -s x '{}'", m.p("link")));
    assert!(!ln.status.success());
    let rename = sh(&format!("mv '{}' '{}'", m.p(&a), m.p("renamed-bucket")));
    assert!(!rename.status.success(), "buckets cannot be renamed");
    assert!(bucket_exists(&endpoint(), &a));
    // A bucket made by another client shows at once (a name not in the kept listing lists again).
    let late = bucket("acct-late");
    assert!(std::fs::metadata(m.p(&late)).expect("stat the new bucket").is_dir());
    let missing = std::fs::metadata(m.p("no-such-bucket-anywhere"));
    assert_eq!(missing.map_err(|e| e.raw_os_error()).err(), Some(Some(libc::ENOENT)));
}

#[test]
fn mkdir_creates_a_bucket_and_rmdir_deletes_an_empty_one() {
    let m = account(&endpoint(), &[]);
    let name = format!("made-{}", std::process::id());
    sh_ok(&format!("mkdir '{}'", m.p(&name)));
    assert!(bucket_exists(&endpoint(), &name), "CreateBucket was sent");
    assert!(sh_ok(&format!("ls '{}'", m.p(""))).lines().any(|l| l == name));
    // Names S3 refuses are EINVAL, with the rule in the log.
    for bad in ["Bad_Name", "ab", "-leading", "a..b", "10.0.0.1"] {
        let out = sh(&format!("mkdir '{}'", m.p(bad)));
        assert!(err_of(&out).contains("Invalid argument"), "{bad}: {out:?}");
        assert!(!bucket_exists(&endpoint(), bad));
    }
    let log = wait_log(&m.log, "invalid bucket name \\\"Bad_Name\\\"");
    assert!(log.contains("only lower-case letters"), "the rule is named");
    // A name that is taken is EEXIST.
    let taken = bucket("acct-taken");
    let out = sh(&format!("mkdir '{}'", m.p(&taken)));
    assert!(err_of(&out).contains("File exists"), "{out:?}");
    // A bucket with objects is not deleted: ENOTEMPTY, bucket and object intact.
    std::fs::write(m.p(&format!("{name}/keep.txt")), b"keep").expect("write");
    let out = sh(&format!("rmdir '{}'", m.p(&name)));
    assert!(err_of(&out).contains("Directory not empty"), "{out:?}");
    assert!(bucket_exists(&endpoint(), &name));
    assert_eq!(get(&name, "keep.txt").expect("still there"), b"keep");
    // Emptied, it goes.
    std::fs::remove_file(m.p(&format!("{name}/keep.txt"))).expect("rm");
    sh_ok(&format!("rmdir '{}'", m.p(&name)));
    assert!(!bucket_exists(&endpoint(), &name), "DeleteBucket was sent");
    assert!(!sh_ok(&format!("ls '{}'", m.p(""))).lines().any(|l| l == name));
    let gone = std::fs::metadata(m.p(&name)).map_err(|e| e.raw_os_error());
    assert_eq!(gone.err(), Some(Some(libc::ENOENT)));
    // And can be made again, and used.
    sh_ok(&format!("mkdir '{}' && echo again > '{}/f'", m.p(&name), m.p(&name)));
    assert_eq!(get(&name, "f").expect("stored"), b"again\n");
    // rm -r of a bucket's contents leaves the (empty) bucket's folder for rmdir.
    sh_ok(&format!("rm -r '{}'/* && rmdir '{}'", m.p(&name), m.p(&name)));
    assert!(!bucket_exists(&endpoint(), &name));
}

#[test]
fn a_read_only_account_mount_changes_no_bucket() {
    let b = bucket("acct-ro");
    let m = account(&endpoint(), &["--read-only"]);
    let out = sh(&format!("mkdir '{}'", m.p("never-made-bucket")));
    assert!(err_of(&out).contains("Read-only file system"), "{out:?}");
    let out = sh(&format!("rmdir '{}'", m.p(&b)));
    assert!(!out.status.success());
    assert!(bucket_exists(&endpoint(), &b));
}

const ROOT_KEY: &str = "crn:v1:bluemix:public:kms:us-south:a/0123456789:5f2c1d:key:9a8b7c6d";

/// The README's walk-through, on the IBM double: an encrypted bucket in a storage class, given a
/// retention policy, records copied in and put under a legal hold, with mkdir, setfattr and cp.
#[test]
fn an_encrypted_bucket_with_a_retention_policy_made_with_mkdir_setfattr_and_cp() {
    let ep = cos_double();
    let plain = format!("plain{}", std::process::id());
    rt().block_on(client_at(&ep).create_bucket().bucket(&plain).send())
        .expect("bucket");
    let kept = format!("kept{}", std::process::id());
    rt().block_on(client_at(&ep).create_bucket().bucket(&kept).send())
        .expect("bucket");
    protect(&ep, &kept, 0, 1, 10);
    let m = account(
        &ep,
        &["--location-constraint", "us-south-cold", "--kp-root-key-crn", ROOT_KEY],
    );
    let records = format!("records{}", std::process::id());
    let dir = m.p(&records);
    sh_ok(&format!("mkdir '{dir}'"));
    // CreateBucket carried the constraint and the Key Protect headers.
    let head = sh_ok(&format!("curl -sI '{ep}/{records}'"));
    assert!(head.contains("ibm-sse-kp-enabled: true"), "{head}");
    assert!(head.contains(ROOT_KEY), "{head}");
    assert!(sh_ok(&format!("curl -s '{ep}/{records}?location'")).contains(">us-south-cold<"));
    // ... and the bucket's folder shows them.
    let facts = sh_ok(&format!("getfattr -d -m user.cos '{dir}'"));
    for line in [
        "user.cos.location=\"us-south-cold\"",
        "user.cos.storage-class=\"cold\"",
        "user.cos.encryption.key-protect=\"true\"",
        "user.cos.encryption.algorithm=\"AES256\"",
        &format!("user.cos.encryption.root-key-crn=\"{ROOT_KEY}\""),
    ] {
        assert!(facts.contains(line), "{line} in {facts}");
    }
    let set = sh(&format!("setfattr -n user.cos.location -v us-south-standard '{dir}'"));
    assert!(err_of(&set).contains("Operation not permitted"), "{set:?}");
    let other = sh_ok(&format!("getfattr -d -m user.cos '{}'", m.p(&plain)));
    assert!(other.contains("user.cos.encryption.key-protect=\"false\""), "{other}");
    assert!(other.contains("user.cos.location=\"us-south-standard\""), "{other}");
    // A retention policy, with IBM's rules checked first.
    let policy = |what: &str, v: &str| sh(&format!("setfattr -n user.cos.protection.{what} -v {v} '{dir}'"));
    assert!(policy("maximum-retention-days", "3650").status.success());
    assert!(policy("default-retention-days", "365").status.success());
    assert!(policy("minimum-retention-days", "30").status.success());
    assert!(err_of(&policy("maximum-retention-days", "1000")).contains("Operation not permitted"));
    assert!(err_of(&policy("default-retention-days", "5000")).contains("Invalid argument"));
    let p = sh_ok(&format!("curl -s '{ep}/{records}?protection'"));
    assert!(p.contains("<DefaultRetention><Days>365</Days>"), "{p}");
    // Records copied in are retained for the default period and can be put under a legal hold.
    let src = tempfile::tempdir().expect("tempdir");
    for i in 0..3 {
        std::fs::write(src.path().join(format!("r{i}.txt")), format!("record {i}")).expect("write");
    }
    sh_ok(&format!("cp '{}'/*.txt '{dir}/'", src.path().display()));
    assert_eq!(
        sh_ok(&format!(
            "getfattr --only-values -n user.cos.retention-period '{dir}/r0.txt'"
        )),
        (365 * 86_400).to_string()
    );
    sh_ok(&format!(
        "find '{dir}' -type f -exec setfattr -n user.cos.legal-hold.case-7 {{}} +"
    ));
    let holds = sh_ok(&format!("curl -s '{ep}/{records}/r2.txt?legalHold'"));
    assert!(holds.contains("<ID>case-7</ID>"), "{holds}");
    let rm = sh(&format!("rm '{dir}/r1.txt'"));
    assert!(err_of(&rm).contains("Operation not permitted"), "{rm:?}");
    let still = rt().block_on(client_at(&ep).head_object().bucket(&records).key("r1.txt").send());
    assert!(still.is_ok(), "the held record is still stored: {still:?}");
    // Each bucket keeps its own scheme: the protected one refuses deletes, the plain one not.
    // A shell redirect stores the file once, with its contents, as on a single-bucket mount
    // (the last close is found in /proc by the inode number the kernel sees).
    sh_ok(&format!("echo x > '{}/a' && echo y > '{}/b'", m.p(&kept), m.p(&plain)));
    let stored = rt().block_on(async {
        let o = client_at(&ep).get_object().bucket(&kept).key("a").send().await?;
        Ok::<_, Box<dyn std::error::Error>>(o.body.collect().await?.into_bytes())
    });
    assert_eq!(&stored.expect("stored")[..], b"x\n", "not an empty, locked object");
    assert_eq!(
        double_stats(&ep)["writes"][format!("{kept}/a")].as_u64(),
        Some(1),
        "one PUT"
    );
    assert!(!sh(&format!("rm '{}/a'", m.p(&kept))).status.success());
    sh_ok(&format!("rm '{}/b'", m.p(&plain)));
    // A bucket is refused deletion while it holds records.
    let rmdir = sh(&format!("rmdir '{dir}'"));
    assert!(err_of(&rmdir).contains("Directory not empty"), "{rmdir:?}");
}

#[test]
fn a_name_taken_on_the_double_is_eexist_and_bad_constraints_are_refused_at_mount() {
    let ep = cos_double();
    let taken = format!("taken{}", std::process::id());
    rt().block_on(client_at(&ep).create_bucket().bucket(&taken).send())
        .expect("bucket");
    let m = account(&ep, &[]);
    let out = sh(&format!("mkdir '{}'", m.p(&taken)));
    assert!(err_of(&out).contains("File exists"), "{out:?}");
    let bad = cosmount_cmd()
        .args(["--all-buckets", "/nonexistent-mnt", "--location-constraint", "US South"])
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a location constraint"));
}

#[test]
fn a_single_bucket_mount_shows_its_buckets_encryption_and_location_on_the_root() {
    let ep = cos_double();
    let b = format!("single{}", std::process::id());
    let body = "<CreateBucketConfiguration><LocationConstraint>us-south-smart</LocationConstraint></CreateBucketConfiguration>";
    sh_ok(&format!(
        "curl -sf -X PUT -H 'ibm-sse-kp-encryption-algorithm: AES256' \
         -H 'ibm-sse-kp-customer-root-key-crn: {ROOT_KEY}' --data '{body}' '{ep}/{b}'"
    ));
    let m = Mount::with_endpoint(&b, &ep, &[]);
    let facts = sh_ok(&format!("getfattr -d -m user.cos '{}'", m.p("")));
    for line in [
        "user.cos.location=\"us-south-smart\"",
        "user.cos.storage-class=\"smart\"",
        "user.cos.encryption.key-protect=\"true\"",
        &format!("user.cos.encryption.root-key-crn=\"{ROOT_KEY}\""),
    ] {
        assert!(facts.contains(line), "{line} in {facts}");
    }
}

#[test]
fn buckets_in_other_locations_are_not_shown_with_region() {
    // IBM's extended listing names each bucket's location; with --region only that location's
    // buckets are reachable through its endpoint, so only they are shown.
    let ep = cos_double();
    let (here, there) = (
        format!("south{}", std::process::id()),
        format!("frankfurt{}", std::process::id()),
    );
    for (b, lc) in [(&here, "us-south-vault"), (&there, "eu-de-standard")] {
        let body = format!(
            "<CreateBucketConfiguration><LocationConstraint>{lc}</LocationConstraint></CreateBucketConfiguration>"
        );
        sh_ok(&format!("curl -sf -X PUT --data '{body}' '{ep}/{b}'"));
    }
    let m = account(&ep, &["--region", "us-south"]);
    let names = sh_ok(&format!("ls '{}'", m.p("")));
    assert!(names.lines().any(|l| l == here), "{names}");
    assert!(!names.lines().any(|l| l == there), "{names}");
    wait_log(&m.log, &format!("{there} (eu-de-standard)"));
    // Without --region every bucket is shown.
    let all = account(&ep, &[]);
    let names = sh_ok(&format!("ls '{}'", all.p("")));
    assert!(names.lines().any(|l| l == there), "{names}");
}
