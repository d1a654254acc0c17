//! FIFOs, sockets and devices on a real mount: `mkfifo`, `mknod` and `bind` make empty objects
//! with their mode and device number in metadata as s3fs writes them (checked through the S3
//! API, and read back from objects written that way by another client), they keep their type,
//! owner and device number across a remount, a FIFO on the mount is a working pipe of this
//! machine, and `rsync -a --specials --devices` and `tar` round-trip a tree holding them.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `stat` of each name in `dir`: type, permissions, owner, device numbers (major:minor in hex)
/// and size (not for directories: theirs is the file system's own), one line per name, sorted;
/// sockets and pipes are never opened.
fn describe(dir: &str) -> String {
    sh_ok(&format!(
        "cd '{dir}' && find . -mindepth 1 | LC_ALL=C sort | while read -r n; do \
           if [ -d \"$n\" ] && [ ! -L \"$n\" ]; then stat -c '%n %F %a %u:%g' \"$n\"; \
           else stat -c '%n %F %a %u:%g %t:%T %s' \"$n\"; fi; done"
    ))
}

/// A local tree holding every kind of file: a regular file, a directory, a symlink, a FIFO, a
/// socket and character and block devices, with owners and modes that are not the defaults.
fn special_tree(root: &Path) {
    let r = root.display();
    sh_ok(&format!(
        "mkdir -p '{r}/sub' && echo data > '{r}/sub/file.txt' && ln -s sub/file.txt '{r}/link' \
         && mkfifo -m 0640 '{r}/pipe' && mknod -m 0620 '{r}/tty0' c 4 0 && mknod -m 0660 '{r}/sda9' b 8 9 \
         && python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' '{r}/sub/sock' \
         && chown 123:456 '{r}/pipe' '{r}/sda9' && chmod 0751 '{r}/sub/sock'"
    ));
}

#[test]
fn special_files_are_objects_in_s3fs_format_and_keep_their_type_across_a_remount() {
    let b = bucket("special");
    let mut m = Mount::new(&b, &[]);
    sh_ok(&format!(
        "cd '{}' && mkfifo -m 0644 p && mknod -m 0600 c c 1 3 && mknod -m 0640 blk b 259 65537 \
         && python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"s\")' && chown 7:8 p",
        m.path().display()
    ));
    let want = [
        ("p", libc::S_IFIFO | 0o644, None),
        ("c", libc::S_IFCHR | 0o600, Some(libc::makedev(1, 3))),
        ("blk", libc::S_IFBLK | 0o640, Some(libc::makedev(259, 65537))),
    ];
    for (key, mode, rdev) in want {
        let (size, _, meta) = head(&b, key).unwrap_or_else(|| panic!("{key} is not stored"));
        assert_eq!(size, 0, "{key}: a special file is an empty object");
        assert_eq!(meta.get("mode"), Some(&mode.to_string()), "{key}: {meta:?}");
        assert_eq!(
            meta.get("rdev").map(|v| v.parse::<u64>().expect("rdev is decimal")),
            rdev,
            "{key}: {meta:?}"
        );
    }
    let (_, _, sock) = head(&b, "s").expect("socket stored");
    let sock_mode: u32 = sock["mode"].parse().expect("mode");
    assert_eq!(sock_mode & libc::S_IFMT, libc::S_IFSOCK, "{sock:?}");
    assert_eq!(head(&b, "p").expect("p").2.get("uid").map(String::as_str), Some("7"));

    let before = describe(&m.p(""));
    assert!(before.contains("./c character special file 600 0:0 1:3 0"), "{before}");
    assert!(
        before.contains("./blk block special file 640 0:0 103:10001 0"),
        "{before}"
    );
    assert!(before.contains("./p fifo 644 7:8 0:0 0"), "{before}");
    assert!(before.contains("./s socket"), "{before}");
    m.unmount();
    let again = Mount::new(&b, &[]);
    assert_eq!(describe(&again.p("")), before, "the same after a remount");
    let listed = sh_ok(&format!("ls -l '{}'", again.path().display()));
    for (name, ty) in [("p", 'p'), ("c", 'c'), ("blk", 'b'), ("s", 's')] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(ty) && l.ends_with(&format!(" {name}"))),
            "ls -l shows {name} as '{ty}':\n{listed}"
        );
    }
    // Removing them removes their objects.
    sh_ok(&format!("cd '{}' && rm p c blk s", again.path().display()));
    assert!(keys(&b, "").is_empty(), "{:?}", keys(&b, ""));
}

#[test]
fn objects_written_by_s3fs_as_special_files_read_as_such() {
    let b = bucket("s3fs-special");
    let c = client();
    for (key, mode, rdev) in [
        ("fifo", "4516", None),           // S_IFIFO | 0644
        ("null", "8630", Some("259")),    // S_IFCHR | 0666, makedev(1, 3)
        ("loop0", "25008", Some("1792")), // S_IFBLK | 0660, makedev(7, 0)
        ("file", "33188", None),          // S_IFREG | 0644
    ] {
        let mut put = c
            .put_object()
            .bucket(&b)
            .key(key)
            .body(Vec::new().into())
            .metadata("mode", mode)
            .metadata("uid", "1000")
            .metadata("gid", "1000")
            .metadata("mtime", "1700000000");
        if let Some(r) = rdev {
            put = put.metadata("rdev", r);
        }
        rt().block_on(put.send()).expect("put");
    }
    let m = Mount::new(&b, &[]);
    let got = describe(&m.p(""));
    assert_eq!(
        got,
        "./fifo fifo 644 1000:1000 0:0 0\n\
         ./file regular empty file 644 1000:1000 0:0 0\n\
         ./loop0 block special file 660 1000:1000 7:0 0\n\
         ./null character special file 666 1000:1000 1:3 0\n"
    );
    let md = std::fs::symlink_metadata(m.p("null")).expect("lstat");
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), libc::makedev(1, 3));
    assert_eq!(md.mtime(), 1_700_000_000);
}

#[test]
fn a_fifo_on_the_mount_is_a_pipe_of_this_machine() {
    let b = bucket("fifo-pipe");
    let m = Mount::new(&b, &[]);
    let fifo = m.p("q");
    sh_ok(&format!("mkfifo '{fifo}'"));
    assert!(std::fs::symlink_metadata(&fifo).expect("lstat").file_type().is_fifo());
    let reader = Command::new("timeout")
        .args(["20", "cat", &fifo])
        .stdout(Stdio::piped())
        .spawn()
        .expect("reader");
    let start = Instant::now();
    sh_ok(&format!("timeout 20 sh -c 'seq 1 1000 > \"{fifo}\"'"));
    let out = reader.wait_with_output().expect("reader output");
    assert!(out.status.success(), "the reader failed");
    let want: String = (1..=1000).map(|i| format!("{i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    assert!(start.elapsed() < Duration::from_secs(20));
    // Nothing went through S3: the object is still empty.
    assert_eq!(head(&b, "q").expect("q").0, 0);
}

#[test]
fn rsync_and_tar_round_trip_a_tree_with_fifos_sockets_and_devices() {
    let b = bucket("special-rsync");
    let m = Mount::new(&b, &[]);
    let work = tempfile::tempdir().expect("tmp");
    let src = work.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    special_tree(&src);
    let want = describe(&src.display().to_string());
    assert!(
        want.contains("socket") && want.contains("fifo") && want.contains("block special"),
        "{want}"
    );

    // rsync in, and a second rsync finds nothing to do.
    let dst = m.p("rsynced");
    sh_ok(&format!("rsync -a --specials --devices '{}/' '{dst}/'", src.display()));
    assert_eq!(describe(&dst), want, "rsync -a onto the mount");
    let second = sh_ok(&format!(
        "rsync -a --specials --devices --itemize-changes '{}/' '{dst}/'",
        src.display()
    ));
    assert_eq!(second.trim(), "", "a second rsync transfers nothing");

    // tar x from an archive of the tree; rsync the first copy back out to a local directory.
    let archive = work.path().join("t.tar");
    sh_ok(&format!("tar -C '{}' -cf '{}' .", src.display(), archive.display()));
    let untarred = m.p("untarred");
    sh_ok(&format!(
        "mkdir '{untarred}' && tar -C '{untarred}' -xpf '{}'",
        archive.display()
    ));
    // (tar leaves sockets out of archives: compare with the same archive extracted locally.)
    let local = work.path().join("untarred-local");
    sh_ok(&format!(
        "mkdir '{0}' && tar -C '{0}' -xpf '{1}'",
        local.display(),
        archive.display()
    ));
    let from_tar = describe(&local.display().to_string());
    assert!(
        from_tar.contains("fifo") && from_tar.contains("character special"),
        "{from_tar}"
    );
    assert_eq!(describe(&untarred), from_tar, "tar x onto the mount");
    let back = work.path().join("back");
    sh_ok(&format!("rsync -a --specials --devices '{dst}/' '{}/'", back.display()));
    assert_eq!(
        describe(&back.display().to_string()),
        want,
        "rsync back out of the mount"
    );
}
