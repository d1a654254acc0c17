//! Generate the man page and shell completions from the clap definition of the command line:
//! `cargo run --example gen_docs -- OUT_DIR` writes `OUT_DIR/cosmount.1` and
//! `OUT_DIR/completions/{cosmount.bash,_cosmount,cosmount.fish}`. scripts/gen-docs.sh runs it
//! (CI and packaging); the Debian package installs the results.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;
use cosmount::cli::Cli;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: gen_docs OUT_DIR");
        return ExitCode::from(2);
    };
    match generate(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_docs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(out: &std::path::Path) -> std::io::Result<()> {
    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)?;
    let cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("1")
        .manual("cosmount manual")
        .render(&mut page)?;
    page.extend_from_slice(MOUNT_SECTIONS.as_bytes());
    std::fs::write(out.join("cosmount.1"), page)?;
    for (shell, name) in [
        (Shell::Bash, "cosmount.bash"),
        (Shell::Zsh, "_cosmount"),
        (Shell::Fish, "cosmount.fish"),
    ] {
        let mut cmd = cmd.clone();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "cosmount", &mut buf);
        std::fs::write(completions.join(name), buf)?;
    }
    Ok(())
}

/// What the clap definition cannot say: mount(8), fstab, systemd, logs and metrics.
const MOUNT_SECTIONS: &str = r#".SH "MOUNT OPTIONS (fstab)"
cosmount follows mount(8)'s helper convention:
.B cosmount
.I SOURCE MOUNTPOINT
.B -o
.IR opt1,opt2=value ,...
so an /etc/fstab line of type
.B fuse.cosmount
works with
.B mount
and
.BR umount .
Every long option is also an
.B -o
option written name=value (with _ or -), e.g.
.BR endpoint_url=https://... ,
.BR uid=1000 ,
.BR allow_other ;
.B ro
is \-\-read\-only and
.B nonempty
is \-\-allow\-non\-empty. Generic options (defaults, rw, _netdev, nofail, auto, noauto, user, dev, suid, noatime, x\-systemd.*) are accepted; unknown options are errors (exit status 2).
.PP
Example:
.PP
.nf
my-bucket:reports /mnt/reports fuse.cosmount _netdev,allow_other,uid=1000,gid=1000,endpoint_url=https://s3.eu-de.cloud-object-storage.appdomain.cloud,region=eu-de 0 0
.fi
.PP
mount(8) runs mount.fuse3, which starts cosmount through /bin/sh without PATH: the binary must be in /usr/local/bin, /usr/bin or /bin.
.SH SYSTEMD
Run with \-\-foreground under a unit of Type=notify: cosmount reports READY=1 once the mount is live and STOPPING=1 on SIGTERM, which unmounts cleanly. See cosmount@.service in the package's examples.
.SH LOGS
COSMOUNT_LOG or \-\-log\-filter choose what is logged; \-\-log\-file appends to a file (creating its directory). In the background without \-\-log\-file, the log goes to syslog (/dev/log; journalctl \-t cosmount). Each failed request is one line with op, key, errno, error and cause; ENOENT is logged at debug level.
.SH METRICS
\-\-metrics\-addr 127.0.0.1:9464 serves Prometheus metrics at http://127.0.0.1:9464/metrics.
.SH "SEE ALSO"
.BR mount (8),
.BR fstab (5),
.BR mount.fuse3 (8),
.BR fusermount3 (1)
"#;
