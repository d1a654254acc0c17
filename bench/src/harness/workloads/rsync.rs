//! The second `rsync -a --stats` of the small-file tree onto a mount, after a first one and a
//! remount (what a backup job repeats): timed, the files it re-copied counted from its stats, the
//! tree checked byte for byte through S3; the raw client's baseline is LIST + HEAD of every key.

use std::fs;
use std::time::Instant;

use super::super::config::{FILE_SIZE, RAW_HEAD_CONC, RAW_SMALL_CONC};
use super::super::parse::{head_raw, jget, rsync_transferred, tail_raw};
use super::super::{secs_since, Ctx};

fn s(x: impl ToString) -> String {
    x.to_string()
}

impl Ctx {
    pub fn rsync_raw(&mut self, runs: &[u32]) {
        let tree = self.tree.to_string_lossy().into_owned();
        let conc = s(RAW_SMALL_CONC);
        let args = [
            "put-small",
            "--bucket",
            "bench-rsrc",
            "--prefix",
            "rsync-src",
            "--from-dir",
            &tree,
            "--concurrency",
            &conc,
        ];
        if self.raw(&args).is_err() {
            return self.res.failed("raw", "rsync2", &[], "put-small failed");
        }
        let _ = self.raw(&["list", "--bucket", "bench-rsrc"]); // bench-server walks the bucket once after a write
        let mut figs = Vec::new();
        let n = s(self.cfg.files);
        for _ in runs {
            self.drop_caches();
            let hc = s(RAW_HEAD_CONC);
            let j = match self.raw_quiet(&[
                "list-head",
                "--bucket",
                "bench-rsrc",
                "--prefix",
                "rsync-src/",
                "--concurrency",
                &hc,
            ]) {
                Ok(j) => j,
                Err(e) => {
                    let why = format!("list-head: {}", head_raw(e.as_bytes(), 200));
                    return self.res.failed("raw", "rsync2", &[], &why);
                }
            };
            if jget(&j, "keys") != n {
                let why = format!("listed {} keys, expected {n}", jget(&j, "keys"));
                return self.res.failed("raw", "rsync2", &[], &why);
            }
            figs.push(jget(&j, "seconds"));
        }
        let note = format!("LIST (no delimiter) + HEAD of every key, {RAW_HEAD_CONC} in flight");
        self.res.ok("raw", "rsync2", &figs, &note);
    }

    /// `raw wait-prefix` until BUCKET/rsync holds the whole tree.
    fn wait_rsync_tree(&self, bucket: &str) -> bool {
        let files = self.cfg.files;
        let (count, bytes, timeout) = (s(files), s(files * FILE_SIZE), s(self.cfg.cmd_timeout));
        let args = [
            "wait-prefix",
            "--bucket",
            bucket,
            "--prefix",
            "rsync",
            "--count",
            &count,
            "--bytes",
            &bytes,
        ];
        self.raw(&[&args[..], &["--timeout", &timeout]].concat()).is_ok()
    }

    fn rsync_into(&self, mnt: &std::path::Path, stats: bool) -> bool {
        let out = self.work.join("rsync.out");
        let mut cmd = self.timed("rsync");
        cmd.arg("-a");
        if stats {
            cmd.arg("--stats");
        }
        let src = format!("{}/", self.tree.display());
        let dst = format!("{}/", mnt.join("rsync").display());
        cmd.arg(src).arg(dst);
        let Ok(f) = fs::File::create(&out) else { return false };
        let Ok(e) = f.try_clone() else { return false };
        cmd.stdout(f).stderr(e).status().map(|s| s.success()).unwrap_or(false)
    }

    fn rsync_tail(&self) -> String {
        tail_raw(&fs::read(self.work.join("rsync.out")).unwrap_or_default(), 200)
    }

    pub fn rsync(&mut self, sys: &str, runs: &[u32]) {
        let (mnt, bucket) = (self.mnt(sys), format!("bench-{sys}"));
        if let Err(e) = self.mount_fs(sys, &bucket, &mnt) {
            return self.res.failed(sys, "rsync2", &[], &format!("mount: {e}"));
        }
        let t0 = Instant::now();
        if !self.rsync_into(&mnt, false) {
            self.unmount_fs(sys, &mnt, "rsync");
            return self.res.failed(
                sys,
                "rsync2",
                &[],
                &format!("first rsync failed: {}", self.rsync_tail()),
            );
        }
        let first = secs_since(t0);
        if !self.wait_rsync_tree(&bucket) {
            self.unmount_fs(sys, &mnt, "rsync");
            let why = format!("after the first rsync, rsync/ never held {} objects", self.cfg.files);
            return self.res.failed(sys, "rsync2", &[], &why);
        }
        self.unmount_fs(sys, &mnt, "rsync");
        let (mut figs, mut copied) = (Vec::new(), Vec::<String>::new());
        for _ in runs {
            self.drop_caches();
            if let Err(e) = self.mount_fs(sys, &bucket, &mnt) {
                return self.res.failed(sys, "rsync2", &figs, &format!("mount: {e}"));
            }
            let t0 = Instant::now();
            if !self.rsync_into(&mnt, true) {
                self.unmount_fs(sys, &mnt, "rsync");
                return self.res.failed(
                    sys,
                    "rsync2",
                    &figs,
                    &format!("second rsync failed: {}", self.rsync_tail()),
                );
            }
            let secs = secs_since(t0);
            let n = rsync_transferred(&String::from_utf8_lossy(
                &fs::read(self.work.join("rsync.out")).unwrap_or_default(),
            ));
            if n.as_deref().is_some_and(|n| !n.is_empty() && n != "0") {
                let _ = self.wait_rsync_tree(&bucket);
            }
            self.unmount_fs(sys, &mnt, "rsync");
            let Some(n) = n.filter(|n| !n.is_empty()) else {
                let why = "no 'Number of regular files transferred' in rsync --stats";
                return self.res.failed(sys, "rsync2", &figs, why);
            };
            figs.push(secs);
            copied.push(n);
        }
        if let Err(e) = self.check_tree(&bucket, "rsync") {
            return self.res.failed(sys, "rsync2", &figs, &e);
        }
        let note = format!(
            "first rsync {first} s; files re-copied by the second: {}",
            copied.join(" ")
        );
        let recopied = copied
            .iter()
            .rev()
            .find(|n| n.as_str() != "0")
            .or(copied.first())
            .cloned()
            .unwrap_or_default();
        self.res.recopied.insert(sys.to_string(), recopied);
        self.res.ok(sys, "rsync2", &figs, &note);
    }
}
