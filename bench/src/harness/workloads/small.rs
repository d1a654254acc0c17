//! Small-file workloads: FILES × 32 KiB files in 50 directories written with `cp -r` (checked
//! byte for byte through S3) and read back with `find | cat` after a remount (checked with
//! `diff -r` through the mount); the raw client PUTs / LISTs and GETs them, 32 in flight.
//!
//! Run R writes the tree `tree-R` (`tree-lat-R` under latency, so that the latency rows' `cp -r`
//! never lands inside a tree the loopback rows wrote); the read-back reads `tree-1` of bench-raw.

use std::process::{Command, Stdio};
use std::time::Instant;

use super::super::config::{FILE_SIZE, RAW_SMALL_CONC};
use super::super::parse::{first_lines, jget};
use super::super::stats::{median, rate};
use super::super::{secs_since, Ctx};
use super::{head200, run_to, stored_secs};

fn s(x: impl ToString) -> String {
    x.to_string()
}

impl Ctx {
    /// The directory (and key prefix) run `r` of small_write writes.
    fn tree_name(&self, r: u32) -> String {
        if self.under_latency() {
            format!("tree-lat-{r}")
        } else {
            format!("tree-{r}")
        }
    }

    pub fn small_write_raw(&mut self, runs: &[u32]) {
        let mut figs = Vec::new();
        let tree = self.tree.to_string_lossy().into_owned();
        for r in runs {
            let _ = Command::new("sync").status();
            let prefix = self.tree_name(*r);
            let args = [
                "put-small",
                "--bucket",
                "bench-raw",
                "--prefix",
                &prefix,
                "--from-dir",
                &tree,
            ];
            let j = match self.raw(&[&args[..], &["--concurrency", &s(RAW_SMALL_CONC)]].concat()) {
                Ok(j) => j,
                Err(_) => return self.res.failed("raw", "small_write", &[], "put-small failed"),
            };
            if jget(&j, "files") != s(self.cfg.files) {
                return self.res.failed(
                    "raw",
                    "small_write",
                    &[],
                    &format!("wrong file count: {}", j.trim_end()),
                );
            }
            figs.push(rate(self.cfg.files as f64, &jget(&j, "seconds")));
        }
        match self.check_tree("bench-raw", &self.tree_name(1)) {
            Ok(()) => self.res.ok("raw", "small_write", &figs, ""),
            Err(e) => self.res.failed("raw", "small_write", &figs, &e),
        }
    }

    pub fn small_write(&mut self, sys: &str, runs: &[u32]) {
        let (mnt, bucket) = (self.mnt(sys), format!("bench-{sys}"));
        if let Err(e) = self.mount_fs(sys, &bucket, &mnt) {
            return self.res.failed(sys, "small_write", &[], &format!("mount: {e}"));
        }
        let (mut figs, mut cpfigs, mut err) = (Vec::new(), Vec::new(), None);
        let cp_err = self.work.join("cp.err");
        let files = self.cfg.files;
        for r in runs {
            let _ = Command::new("sync").status();
            let t0 = Instant::now();
            if !run_to(
                self.timed("cp")
                    .arg("-r")
                    .arg(&self.tree)
                    .arg(mnt.join(self.tree_name(*r))),
                None,
                &cp_err,
            ) {
                err = Some(format!("cp -r failed: {}", head200(&cp_err)));
                break;
            }
            let cpsecs = secs_since(t0);
            let prefix = self.tree_name(*r);
            let (count, bytes, timeout) = (s(files), s(files * FILE_SIZE), s(self.cfg.cmd_timeout));
            let args = [
                "wait-prefix",
                "--bucket",
                &bucket,
                "--prefix",
                &prefix,
                "--count",
                &count,
            ];
            let w = match self.raw(&[&args[..], &["--bytes", &bytes, "--timeout", &timeout]].concat()) {
                Ok(w) => w,
                Err(_) => {
                    err = Some(format!("{} never held {files} objects", self.tree_name(*r)));
                    break;
                }
            };
            let stored = stored_secs(&cpsecs, &w);
            figs.push(rate(files as f64, &stored));
            cpfigs.push(rate(files as f64, &cpsecs));
        }
        self.unmount_fs(sys, &mnt, "small_write");
        if let Some(e) = err {
            return self.res.failed(sys, "small_write", &figs, &e);
        }
        if let Err(e) = self.check_tree(&bucket, &self.tree_name(1)) {
            return self.res.failed(sys, "small_write", &figs, &e);
        }
        let note = if figs == cpfigs {
            String::new()
        } else {
            format!(
                "cp -r returned before the uploads finished: {} files/s counting cp alone",
                median(&cpfigs)
            )
        };
        self.res.ok(sys, "small_write", &figs, &note);
    }

    pub fn small_read_raw(&mut self, runs: &[u32]) {
        let mut figs = Vec::new();
        for _ in runs {
            self.drop_caches();
            let args = [
                "get-small",
                "--bucket",
                "bench-raw",
                "--prefix",
                "tree-1",
                "--concurrency",
                &s(RAW_SMALL_CONC),
            ];
            let j = match self.raw(&args) {
                Ok(j) => j,
                Err(_) => return self.res.failed("raw", "small_read", &[], "get-small failed"),
            };
            if jget(&j, "files") != s(self.cfg.files) {
                return self
                    .res
                    .failed("raw", "small_read", &[], &format!("wrong file count: {}", j.trim_end()));
            }
            figs.push(rate(self.cfg.files as f64, &jget(&j, "seconds")));
        }
        self.res.ok("raw", "small_read", &figs, ""); // content checked in small_write
    }

    pub fn small_read(&mut self, sys: &str, runs: &[u32]) {
        let (mnt, wl) = (self.mnt(sys), "small_read");
        let mut figs = Vec::new();
        let cat_err = self.work.join("cat.err");
        let files = self.cfg.files;
        for r in runs {
            self.drop_caches();
            if let Err(e) = self.mount_fs(sys, "bench-raw", &mnt) {
                return self.res.failed(sys, wl, &figs, &format!("mount: {e}"));
            }
            let t0 = Instant::now();
            let mut find = self.timed("find");
            find.args([".", "-type", "f", "-exec", "cat", "{}", "+"])
                .current_dir(mnt.join("tree-1"));
            if !run_to(&mut find, None, &cat_err) {
                self.unmount_fs(sys, &mnt, wl);
                return self
                    .res
                    .failed(sys, wl, &figs, &format!("find/cat failed: {}", head200(&cat_err)));
            }
            figs.push(rate(files as f64, &secs_since(t0)));
            if *r == 1 {
                let n = Command::new("find")
                    .arg(mnt.join("tree-1"))
                    .args(["-type", "f"])
                    .stderr(Stdio::null())
                    .output()
                    .map(|o| o.stdout.iter().filter(|b| **b == b'\n').count())
                    .unwrap_or(0);
                let diff = self
                    .timed("diff")
                    .arg("-rq")
                    .arg(&self.tree)
                    .arg(mnt.join("tree-1"))
                    .output();
                let (diff_ok, diff_out) = match diff {
                    Ok(o) => (o.status.success(), [o.stdout, o.stderr].concat()),
                    Err(e) => (false, e.to_string().into_bytes()),
                };
                if n as u64 != files || !diff_ok {
                    self.unmount_fs(sys, &mnt, wl);
                    let shown = if n as u64 != files {
                        String::new()
                    } else {
                        first_lines(&String::from_utf8_lossy(&diff_out), 3)
                    };
                    let why = format!("read back {n} files; differences: {shown}");
                    return self.res.failed(sys, wl, &figs, &why);
                }
            }
            self.unmount_fs(sys, &mnt, wl);
        }
        self.res.ok(sys, wl, &figs, "");
    }
}
