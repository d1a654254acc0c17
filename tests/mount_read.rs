//! Real-mount tests of the read path: the built binary on /dev/fuse over a local S3 server,
//! driven with ls, cat, dd and stat, compared with what was uploaded through the S3 API.

mod common;

use common::*;

#[test]
fn ls_r_cat_and_dd_read_a_nested_tree() {
    let b = bucket("tree");
    let big = pattern(300_000, 1);
    put_all(
        &b,
        vec![
            ("hello.txt".into(), b"hello world\n".to_vec()),
            ("docs/readme.md".into(), b"# docs\n".to_vec()),
            ("docs/deep/er/big.bin".into(), big.clone()),
            ("empty".into(), vec![]),
        ],
    );
    let m = Mount::new(&b, &[]);
    let listing = sh_ok(&format!("cd {} && ls -R", m.p("")));
    assert_eq!(
        listing,
        ".:\ndocs\nempty\nhello.txt\n\n./docs:\ndeep\nreadme.md\n\n./docs/deep:\ner\n\n./docs/deep/er:\nbig.bin\n"
    );
    assert_eq!(std::fs::read(m.p("hello.txt")).expect("read"), b"hello world\n");
    assert_eq!(std::fs::read(m.p("docs/deep/er/big.bin")).expect("read"), big);
    // dd at offsets that are not block aligned, across the end of the file, and past it.
    for (bs, skip, count) in [(4096usize, 10usize, 3usize), (1000, 299, 5), (7, 12345, 100)] {
        let out = std::process::Command::new("dd")
            .arg(format!("if={}", m.p("docs/deep/er/big.bin")))
            .arg(format!("bs={bs}"))
            .arg(format!("skip={skip}"))
            .arg(format!("count={count}"))
            .arg("status=none")
            .output()
            .expect("dd");
        assert!(out.status.success());
        let start = (bs * skip).min(big.len());
        let end = (bs * (skip + count)).min(big.len());
        assert_eq!(out.stdout, &big[start..end], "dd bs={bs} skip={skip} count={count}");
    }
    // Empty object: size 0, reads nothing.
    assert_eq!(std::fs::metadata(m.p("empty")).expect("stat").len(), 0);
    assert!(std::fs::read(m.p("empty")).expect("read").is_empty());
    // Sizes in `ls -l` come from the listing.
    let ls = sh_ok(&format!("ls -l {}", m.p("docs/deep/er")));
    assert!(ls.contains(" 300000 "), "{ls}");
}

#[test]
fn a_directory_of_2500_keys_lists_exactly_2500_names() {
    let b = bucket("many");
    let objects: Vec<(String, Vec<u8>)> = (0..2500).map(|i| (format!("big/f{i:05}"), vec![b'x'; i % 7])).collect();
    put_all(&b, objects);
    let m = Mount::new(&b, &[]);
    let names = sh_ok(&format!("ls -f {} | grep -v '^\\.\\.\\?$' | sort", m.p("big")));
    let expect: Vec<String> = (0..2500).map(|i| format!("f{i:05}")).collect();
    assert_eq!(names.lines().collect::<Vec<_>>(), expect);
    // ls -l answers sizes without a request per entry, and they are right.
    let ls = sh_ok(&format!(
        "ls -l {} | tail -n +2 | awk '{{print $5, $9}}' | sort -k2",
        m.p("big")
    ));
    let got: Vec<String> = ls.lines().map(str::to_string).collect();
    let want: Vec<String> = (0..2500).map(|i| format!("{} f{i:05}", i % 7)).collect();
    assert_eq!(got, want);
    let log = std::fs::read_to_string(&m.log).expect("log");
    let pages = log.matches("listed a page").count();
    assert!(pages <= 6, "2500 keys took {pages} list pages for ls -f + ls -l");
}

/// Names that XML must escape, and others beyond ASCII, list as they are: the mount reads the
/// server's own listing answers (not the SDK's XML decoder: the log says when it has to).
#[test]
fn names_with_xml_special_characters_list_as_they_are() {
    let b = bucket("xmlnames");
    let names = [
        "a & b.txt",
        "less<than",
        "greater>than",
        "it's",
        "say \"hi\"",
        "caf\u{e9} \u{4e2d}\u{6587}",
        "semi;colon&amp;",
        "tab\there",
    ];
    let mut objects: Vec<(String, Vec<u8>)> = names
        .iter()
        .map(|n| (format!("d/{n}"), n.as_bytes().to_vec()))
        .collect();
    objects.push(("d/sub & <dir>/inner".into(), b"x".to_vec()));
    put_all(&b, objects);
    let m = Mount::new(&b, &[]);
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.push("sub & <dir>".into());
    want.sort();
    let mut got: Vec<String> = std::fs::read_dir(m.p("d"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    assert_eq!(got, want);
    for n in names {
        assert_eq!(
            std::fs::read(m.p(&format!("d/{n}"))).expect("read"),
            n.as_bytes(),
            "{n}"
        );
    }
    let inner = std::fs::read_dir(m.p("d/sub & <dir>")).expect("readdir").count();
    assert_eq!(inner, 1);
    let log = std::fs::read_to_string(&m.log).expect("log");
    assert!(log.contains("listed a page"), "the listing is logged");
    assert!(
        !log.contains("left to the SDK's XML decoder"),
        "the server's listing answers are read by the mount's scanner: {}",
        log.lines()
            .filter(|l| l.contains("XML decoder"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn prefix_mount_shows_only_that_subtree() {
    let b = bucket("prefix");
    put_all(
        &b,
        vec![
            ("some/prefix/a.txt".into(), b"A".to_vec()),
            ("some/prefix/sub/b.txt".into(), b"BB".to_vec()),
            ("some/prefixed-sibling.txt".into(), b"no".to_vec()),
            ("other.txt".into(), b"no".to_vec()),
        ],
    );
    let m = Mount::new(&format!("{b}:some/prefix"), &[]);
    assert_eq!(
        sh_ok(&format!("cd {} && ls -R", m.p(""))),
        ".:\na.txt\nsub\n\n./sub:\nb.txt\n"
    );
    assert_eq!(std::fs::read(m.p("sub/b.txt")).expect("read"), b"BB");
    assert!(!std::path::Path::new(&m.p("other.txt")).exists());
}

#[test]
fn marker_folders_and_implied_folders_both_appear_with_sane_modes() {
    let b = bucket("markers");
    put_all(
        &b,
        vec![
            ("made-by-console/".into(), vec![]),
            ("implied/only/by/deep.txt".into(), b"deep".to_vec()),
            ("both/".into(), vec![]),
            ("both/child".into(), b"c".to_vec()),
            ("clash".into(), b"file hidden by the directory".to_vec()),
            ("clash/inner".into(), b"i".to_vec()),
            ("a//empty-segment".into(), b"skipped".to_vec()),
        ],
    );
    let m = Mount::new(&b, &[]);
    let top = sh_ok(&format!("ls -A {}", m.p("")));
    assert_eq!(top, "a\nboth\nclash\nimplied\nmade-by-console\n");
    for d in ["made-by-console", "implied", "implied/only/by", "both", "clash"] {
        let st = sh_ok(&format!("stat -c '%F %a' {}", m.p(d)));
        assert_eq!(st.trim(), "directory 755", "{d}");
    }
    assert_eq!(sh_ok(&format!("ls -A {}", m.p("made-by-console"))), "");
    assert_eq!(sh_ok(&format!("ls -A {}", m.p("both"))), "child\n");
    assert_eq!(sh_ok(&format!("ls -A {}", m.p("clash"))), "inner\n");
    // "a//empty-segment" cannot be a path: the directory lists fine without it.
    assert_eq!(sh_ok(&format!("ls -A {}", m.p("a"))), "");
    assert_eq!(std::fs::read(m.p("implied/only/by/deep.txt")).expect("read"), b"deep");
    let st = sh_ok(&format!("stat -c '%F %a %s' {}", m.p("implied/only/by/deep.txt")));
    assert_eq!(st.trim(), "regular file 644 4");
}

#[test]
fn owner_and_modes_follow_the_options() {
    let b = bucket("modes");
    put_all(&b, vec![("d/f".into(), b"x".to_vec())]);
    let m = Mount::new(
        &b,
        &[
            "--uid",
            "1234",
            "--gid",
            "4321",
            "--file-mode",
            "600",
            "--dir-mode",
            "700",
        ],
    );
    assert_eq!(
        sh_ok(&format!("stat -c '%u %g %a' {}", m.p("d/f"))).trim(),
        "1234 4321 600"
    );
    assert_eq!(
        sh_ok(&format!("stat -c '%u %g %a' {}", m.p("d"))).trim(),
        "1234 4321 700"
    );
}
