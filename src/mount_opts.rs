//! mount(8)'s calling convention: `cosmount SOURCE MOUNTPOINT -o opt1,opt2=value,...`.
//!
//! This is how `mount`, `/etc/fstab` (type `fuse.cosmount`) and systemd mount units start the
//! daemon: mount(8) finds no `mount.fuse.cosmount` and runs `/sbin/mount.fuse` (fuse3's
//! mount.fuse3), which drops the options it handles itself (`_netdev`, `nofail`, `auto`, `noauto`,
//! `user`, `nouser`, `users`, `setuid=`, `drop_privileges`), adds `dev` and `suid` unless `nodev`
//! and `nosuid` were given, and runs `cosmount SOURCE MOUNTPOINT -o LIST` through `/bin/sh` with
//! the `PATH` it has. So no helper of our own is needed.
//!
//! [`expand`] rewrites every `-o LIST` (or `-oLIST`) in the arguments into the equivalent long
//! options before clap sees them:
//! - `ro` is `--read-only`, `nonempty` is `--allow-non-empty`;
//! - every long option of the command line is also an `-o` option, with `_` or `-`:
//!   `endpoint_url=https://...` is `--endpoint-url https://...`, `allow_other` is `--allow-other`,
//!   `uid=1000` is `--uid 1000` (options that take a value need `=VALUE`, flags take none);
//! - generic options with no meaning for cosmount are accepted and ignored: `defaults`, `rw`,
//!   `auto`/`noauto`, `_netdev`, `nofail`, `user`/`users`/`nouser`/`owner`/`group`, `async`,
//!   `exec`, `dev`/`nodev`, `suid`/`nosuid` (cosmount always mounts `nodev,nosuid`), the atime
//!   family (it always mounts `noatime`), `default_permissions` (always on), and `x-*`/`X-*`/
//!   `comment=` (notes for systemd and other tools);
//! - options cosmount cannot honour (`noexec`, `sync`, `dirsync`, `mand`, `foreground`, ...) and
//!   unknown options are errors that name the option, reported as usage errors (exit code 2).

use std::ffi::OsString;

/// A `-o` list that cosmount cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptError {
    /// `-o` at the end of the arguments.
    #[error("-o needs a comma-separated list of mount options, such as -o ro,allow_other")]
    MissingList,
    /// The list is not valid UTF-8.
    #[error("the -o option list {0:?} is not valid UTF-8")]
    NotUtf8(String),
    /// No such option.
    #[error(
        "unknown mount option {0:?} in -o: the mount options are ro, nonempty, the generic ones mount(8) \
         passes (rw, _netdev, nofail, ...) and every long option of `cosmount --help` written as name=value \
         (e.g. endpoint_url=https://..., uid=1000, allow_other)"
    )]
    Unknown(String),
    /// An option that takes a value was given without one.
    #[error("mount option {0:?} needs a value: {0}=VALUE")]
    MissingValue(String),
    /// A flag was given a value.
    #[error("mount option {0:?} takes no value")]
    UnexpectedValue(String),
    /// A known option that cosmount cannot honour.
    #[error("mount option {name:?} is not supported: {why}")]
    Unsupported { name: String, why: &'static str },
}

/// Options of mount(8), mount.fuse3 and systemd that mean nothing to cosmount (or describe what it
/// does anyway): accepted and ignored.
const IGNORED: &[&str] = &[
    "defaults",
    "rw",
    "auto",
    "noauto",
    "_netdev",
    "nofail",
    "user",
    "users",
    "nouser",
    "owner",
    "group",
    "async",
    "exec",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "atime",
    "noatime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "diratime",
    "nodiratime",
    "default_permissions",
];

/// Known options cosmount refuses, with the reason.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "noexec",
        "cosmount cannot mount noexec; remove it (and use file_mode= to drop execute bits)",
    ),
    ("sync", "writes reach S3 when a file is closed or fsync'ed; remove it"),
    ("dirsync", "directory changes are S3 requests already; remove it"),
    ("mand", "mandatory locks do not exist on S3"),
    (
        "setuid",
        "setuid=USER is handled by mount.fuse3 (mount -t fuse.cosmount), not by cosmount itself",
    ),
    (
        "drop_privileges",
        "cosmount mounts by itself and cannot take a /dev/fd mount point from mount.fuse3",
    ),
    (
        "auto_unmount",
        "unmount with umount or fusermount3 -u; a stopped daemon unmounts itself",
    ),
    (
        "foreground",
        "mount(8) waits for the helper to return; use cosmount --foreground outside fstab",
    ),
    ("help", "run cosmount --help"),
    ("version", "run cosmount --version"),
];

/// Rewrite `args` (the whole argv, program name first) so that every `-o LIST` becomes the long
/// options it stands for, appended after the other arguments. `cmd` is the clap command whose long
/// options are accepted as `name=value`. Arguments after `--` are left alone.
pub fn expand(args: Vec<OsString>, cmd: &clap::Command) -> Result<Vec<OsString>, OptError> {
    let mut out = Vec::with_capacity(args.len());
    let mut extra = Vec::new();
    let mut it = args.into_iter();
    if let Some(program) = it.next() {
        out.push(program);
    }
    while let Some(arg) = it.next() {
        if arg == "--" {
            out.push(arg);
            out.extend(it.by_ref());
            break;
        }
        let list = if arg == "-o" {
            it.next().ok_or(OptError::MissingList)?
        } else if let Some(rest) = arg.to_str().and_then(|a| a.strip_prefix("-o")) {
            OsString::from(rest)
        } else {
            out.push(arg);
            continue;
        };
        let list = list
            .into_string()
            .map_err(|l| OptError::NotUtf8(l.to_string_lossy().into_owned()))?;
        for opt in list.split(',') {
            extra.extend(translate(opt, cmd)?);
        }
    }
    // Options from -o go before a `--`, so clap still sees them as options.
    match out.iter().position(|a| a == "--") {
        Some(i) => {
            let tail = out.split_off(i);
            out.extend(extra.into_iter().map(OsString::from));
            out.extend(tail);
        }
        None => out.extend(extra.into_iter().map(OsString::from)),
    }
    Ok(out)
}

/// The long options one `-o` item stands for (none when it is ignored).
fn translate(opt: &str, cmd: &clap::Command) -> Result<Vec<String>, OptError> {
    let (name, value) = match opt.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (opt, None),
    };
    if name.is_empty() && value.is_none() {
        return Ok(vec![]); // "a,,b" or a trailing comma
    }
    if IGNORED.contains(&name) && value.is_none()
        || name.starts_with("x-")
        || name.starts_with("X-")
        || name == "comment"
        // libmount passes user=NAME to helpers for mounts by ordinary users (fstab `user`).
        || name == "user" && value.is_some()
    {
        return Ok(vec![]);
    }
    if let Some((n, why)) = UNSUPPORTED.iter().find(|(n, _)| *n == name) {
        return Err(OptError::Unsupported {
            name: n.to_string(),
            why,
        });
    }
    let flag = |long: &str| -> Result<Vec<String>, OptError> {
        match value {
            None => Ok(vec![format!("--{long}")]),
            Some(_) => Err(OptError::UnexpectedValue(name.to_string())),
        }
    };
    match name {
        "ro" => return flag("read-only"),
        "nonempty" => return flag("allow-non-empty"),
        _ => {}
    }
    let long = name.replace('_', "-");
    let arg = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long.as_str()))
        .ok_or_else(|| OptError::Unknown(opt.to_string()))?;
    if arg.get_action().takes_values() {
        match value {
            Some(v) => Ok(vec![format!("--{long}={v}")]),
            None => Err(OptError::MissingValue(name.to_string())),
        }
    } else {
        flag(&long)
    }
}

/// The source shown in /proc/mounts (`fsname`): the `BUCKET[:PREFIX]` argument as an fstab line
/// writes it, so `mount -a` recognises the entry as mounted and skips it the next time.
pub fn fsname(bucket: &str, prefix: &str) -> String {
    match prefix.trim_end_matches('/') {
        "" => bucket.to_string(),
        p => format!("{bucket}:{p}"),
    }
}

/// The mount point mount.fuse3 hands over with `drop_privileges` (`/dev/fd/N`) cannot be used.
pub fn check_mountpoint_arg(mountpoint: &std::path::Path) -> Result<(), OptError> {
    if mountpoint.starts_with("/dev/fd") {
        return Err(OptError::Unsupported {
            name: "drop_privileges".into(),
            why: "cosmount mounts by itself and cannot take a /dev/fd mount point from mount.fuse3",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn run(args: &[&str]) -> Result<Vec<String>, OptError> {
        let args = args.iter().map(OsString::from).collect();
        expand(args, &crate::cli::Cli::command())
            .map(|v| v.into_iter().map(|a| a.to_string_lossy().into_owned()).collect())
    }

    #[test]
    fn fstab_options_become_long_options() {
        let got = run(&[
            "cosmount",
            "bucket:pre",
            "/mnt/x",
            "-o",
            "rw,dev,suid,_netdev,allow_other,ro,uid=1000,gid=100,endpoint_url=http://127.0.0.1:9000/,force_path_style,x-systemd.automount,file_mode=0640",
        ])
        .expect("ok");
        assert_eq!(
            got,
            [
                "cosmount",
                "bucket:pre",
                "/mnt/x",
                "--allow-other",
                "--read-only",
                "--uid=1000",
                "--gid=100",
                "--endpoint-url=http://127.0.0.1:9000/",
                "--force-path-style",
                "--file-mode=0640",
            ]
        );
    }

    #[test]
    fn joined_and_repeated_lists_and_dashes() {
        let got = run(&["cosmount", "-oro", "b", "/m", "-o", "log-file=/tmp/x.log,nonempty"]).expect("ok");
        assert_eq!(
            got,
            [
                "cosmount",
                "b",
                "/m",
                "--read-only",
                "--log-file=/tmp/x.log",
                "--allow-non-empty"
            ]
        );
        // Nothing to expand: the arguments pass through untouched.
        let plain = ["cosmount", "b", "/m", "--region", "eu-de", "-f"];
        assert_eq!(run(&plain).expect("ok"), plain);
    }

    #[test]
    fn after_double_dash_nothing_is_rewritten() {
        let got = run(&["cosmount", "-o", "ro", "--", "b", "-o"]).expect("ok");
        assert_eq!(got, ["cosmount", "--read-only", "--", "b", "-o"]);
    }

    #[test]
    fn bad_options_are_named() {
        let e = run(&["cosmount", "b", "/m", "-o", "ro,bogus_thing"]).unwrap_err();
        assert_eq!(e, OptError::Unknown("bogus_thing".into()));
        assert!(e.to_string().contains("unknown mount option \"bogus_thing\""));
        assert_eq!(
            run(&["cosmount", "b", "/m", "-o", "uid"]).unwrap_err(),
            OptError::MissingValue("uid".into())
        );
        assert_eq!(
            run(&["cosmount", "b", "/m", "-o", "allow_other=1"]).unwrap_err(),
            OptError::UnexpectedValue("allow_other".into())
        );
        assert!(matches!(
            run(&["cosmount", "b", "/m", "-o", "noexec"]).unwrap_err(),
            OptError::Unsupported { .. }
        ));
        assert!(matches!(
            run(&["cosmount", "b", "/m", "-o", "foreground"]).unwrap_err(),
            OptError::Unsupported { .. }
        ));
        assert_eq!(run(&["cosmount", "b", "/m", "-o"]).unwrap_err(), OptError::MissingList);
        assert!(check_mountpoint_arg(std::path::Path::new("/dev/fd/3")).is_err());
        assert!(check_mountpoint_arg(std::path::Path::new("/mnt/x")).is_ok());
    }

    #[test]
    fn fsname_is_the_source_argument() {
        assert_eq!(fsname("bucket", ""), "bucket");
        assert_eq!(fsname("bucket", "a/b/"), "bucket:a/b");
    }

    #[test]
    fn expanded_options_parse() {
        use clap::Parser;
        let args = run(&["cosmount", "my-bucket", "/mnt", "-o", "ro,uid=7,metadata_ttl=5,_netdev"]).expect("ok");
        let cli = crate::cli::Cli::try_parse_from(args).expect("clap accepts the expansion");
        assert!(cli.read_only);
        assert_eq!(cli.uid, Some(7));
    }
}
