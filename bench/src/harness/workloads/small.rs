//! Small-file workloads: FILES × 32 KiB files in 50 directories written with `cp -r` and read
//! back with `find | cat` after a remount (checked with `diff -r` through the mount); a
//! source-like tree of TAR files extracted from a tarball with `tar -xf` (tar_x). The raw client
//! PUTs / LISTs and GETs them, 32 in flight.
//!
//! A write through a mount gives two rows: until the command returns (`small_write`, `tar_x`) and
//! until a LIST shows every key with its size (`small_write_s3`, `tar_x_s3`, timed from the
//! command's start; see [`super::Waiter`]); the raw client's PUTs return once stored, so its
//! figure is both. Each run's tree is then checked byte for byte through S3 (and, in a system's
//! bucket, deleted, so that the next run's LISTs walk only what is being written).
//!
//! Run R writes the tree `tree-R` (`tree-lat-R` under latency, so that the latency rows' `cp -r`
//! never lands inside a tree the loopback rows wrote) or `tarx-R`; the read-back reads `tree-1` of
//! bench-raw.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::super::config::RAW_SMALL_CONC;
use super::super::parse::{first_lines, jget};
use super::super::stats::rate;
use super::super::{log, secs_since, Ctx};
use super::{head200, run_to, stored_secs};

fn s(x: impl ToString) -> String {
    x.to_string()
}

/// A tree-writing workload: its two rows, the local tree written (its files become
/// `PREFIX/<relative path>`) and how a run's prefix is named.
struct TreeWrite {
    wl: &'static str,
    wl_s3: &'static str,
    src: PathBuf,
    files: Vec<(String, u64)>,
    /// Run R's key prefix (and directory in the mount).
    prefix: fn(&Ctx, u32) -> String,
    /// What the command is called in error messages and notes.
    what: &'static str,
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

    fn tar_name(&self, r: u32) -> String {
        if self.under_latency() {
            format!("tarx-lat-{r}")
        } else {
            format!("tarx-{r}")
        }
    }

    fn small_spec(&self) -> TreeWrite {
        TreeWrite {
            wl: "small_write",
            wl_s3: "small_write_s3",
            src: self.tree.clone(),
            files: self.tree_files.clone(),
            prefix: Ctx::tree_name,
            what: "cp -r",
        }
    }

    fn tar_spec(&self) -> TreeWrite {
        TreeWrite {
            wl: "tar_x",
            wl_s3: "tar_x_s3",
            src: self.tar_src.clone(),
            files: self.tar_files.clone(),
            prefix: Ctx::tar_name,
            what: "tar -xf",
        }
    }

    pub fn small_write_raw(&mut self, runs: &[u32]) {
        // small_read reads the raw client's tree-1: kept.
        self.tree_write_raw(&self.small_spec(), runs, false);
    }

    pub fn small_write(&mut self, sys: &str, runs: &[u32]) {
        let spec = self.small_spec();
        self.tree_write(sys, &spec, runs, |c, mnt, prefix| {
            let mut cmd = c.timed("cp");
            cmd.arg("-r").arg(&c.tree).arg(mnt.join(prefix));
            cmd
        });
    }

    pub fn tar_x_raw(&mut self, runs: &[u32]) {
        self.tree_write_raw(&self.tar_spec(), runs, true);
    }

    pub fn tar_x(&mut self, sys: &str, runs: &[u32]) {
        let spec = self.tar_spec();
        self.tree_write(sys, &spec, runs, |c, mnt, prefix| {
            let mut cmd = c.timed("tar");
            cmd.arg("-xf").arg(&c.tarball).arg("-C").arg(mnt.join(prefix));
            cmd
        });
    }

    /// The raw client PUTs the tree (32 in flight) under each run's prefix: both rows get its
    /// figure; each run's tree is checked, and deleted afterwards when `delete`.
    fn tree_write_raw(&mut self, spec: &TreeWrite, runs: &[u32], delete: bool) {
        let (wl, wl_s3) = (spec.wl, spec.wl_s3);
        let n = spec.files.len() as u64;
        let mut figs = Vec::new();
        let src = spec.src.to_string_lossy().into_owned();
        let mut err = None;
        for r in runs {
            let _ = Command::new("sync").status();
            let prefix = (spec.prefix)(self, *r);
            let args = [
                "put-small",
                "--bucket",
                "bench-raw",
                "--prefix",
                &prefix,
                "--from-dir",
                &src,
            ];
            let j = match self.raw(&[&args[..], &["--concurrency", &s(RAW_SMALL_CONC)]].concat()) {
                Ok(j) => j,
                Err(_) => {
                    err = Some("put-small failed".to_string());
                    break;
                }
            };
            if jget(&j, "files") != s(n) {
                err = Some(format!("wrong file count: {}", j.trim_end()));
                break;
            }
            figs.push(rate(n as f64, &jget(&j, "seconds")));
            if let Err(e) = self.check_tree_of(&spec.src, "bench-raw", &prefix) {
                err = Some(e);
                break;
            }
            if delete {
                let _ = self.raw(&["delete-prefix", "--bucket", "bench-raw", "--prefix", &prefix]);
            }
        }
        match err {
            None => {
                self.res.ok("raw", wl, &figs, "");
                self.res.ok("raw", wl_s3, &figs, "PUTs return once stored");
            }
            Some(e) => {
                self.res.failed("raw", wl, &figs, &e);
                self.res.failed("raw", wl_s3, &figs, &e);
            }
        }
    }

    /// Writes the tree through `sys`'s mount with `command(ctx, mnt, prefix)` (run R into
    /// MNT/PREFIX, made beforehand, untimed): the time until it returns (row `wl`) and until a LIST
    /// shows every key with its size (row `wl_s3`); then each run's tree is checked through S3
    /// and deleted from the bucket.
    fn tree_write(
        &mut self,
        sys: &str,
        spec: &TreeWrite,
        runs: &[u32],
        command: impl Fn(&Ctx, &Path, &str) -> Command,
    ) {
        let (wl, wl_s3, what) = (spec.wl, spec.wl_s3, spec.what);
        let (mnt, bucket) = (self.mnt(sys), format!("bench-{sys}"));
        if let Err(e) = self.mount_fs(sys, &bucket, &mnt) {
            self.res.failed(sys, wl, &[], &format!("mount: {e}"));
            return self.res.failed(sys, wl_s3, &[], &format!("mount: {e}"));
        }
        let (mut figs, mut cpfigs, mut err) = (Vec::new(), Vec::new(), None);
        let cmd_err = self.work.join("cmd.err");
        let n = spec.files.len() as u64;
        let mut written = Vec::new();
        for r in runs {
            let prefix = (spec.prefix)(self, *r);
            // tar -C needs its directory; cp -r makes it (the source directory's copy).
            if what.starts_with("tar") {
                if let Err(e) = std::fs::create_dir(mnt.join(&prefix)) {
                    err = Some(format!("mkdir {prefix}: {e}"));
                    break;
                }
            }
            let keys = crate::manifest::keys_under(&prefix, &spec.files);
            let waiter = match self.start_waiter(&bucket, &format!("{prefix}/"), &keys) {
                Ok(w) => w,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            };
            let _ = Command::new("sync").status();
            let t0 = Instant::now();
            if !run_to(&mut command(self, &mnt, &prefix), None, &cmd_err) {
                waiter.cancel();
                err = Some(format!("{what} failed: {}", head200(&cmd_err)));
                break;
            }
            let cpsecs = secs_since(t0);
            written.push(prefix.clone());
            let w = match waiter.go() {
                Ok(w) => w,
                Err(e) => {
                    err = Some(format!("{prefix} never held the {n} files: {e}"));
                    break;
                }
            };
            let stored = stored_secs(&cpsecs, &w);
            // The first LIST starts when the command returned: when it already shows every key,
            // the figure is the command's time, and that LIST's duration bounds its error.
            log(&format!(
                "  {sys} {prefix}: {what} returned after {cpsecs} s, every key listed after {stored} s ({} LISTs, {} s of them)",
                jget(&w, "polls"),
                jget(&w, "list_seconds")
            ));
            figs.push(rate(n as f64, &stored));
            cpfigs.push(rate(n as f64, &cpsecs));
        }
        self.unmount_fs(sys, &mnt, wl);
        if err.is_none() {
            for prefix in &written {
                if let Err(e) = self.check_tree_of(&spec.src, &bucket, prefix) {
                    err = Some(e);
                    break;
                }
                let _ = self.raw(&["delete-prefix", "--bucket", &bucket, "--prefix", prefix]);
            }
        }
        if let Some(e) = err {
            self.res.failed(sys, wl, &cpfigs, &e);
            return self.res.failed(sys, wl_s3, &figs, &e);
        }
        let note = if figs != cpfigs {
            format!("the uploads went on after {what} returned ({wl_s3} counts them)")
        } else {
            String::new()
        };
        self.res.ok(sys, wl, &cpfigs, &note);
        self.res.ok(sys, wl_s3, &figs, "");
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
