//! Big-object workloads: sequential write and cold read of the big object, 4 objects read at
//! once, random 64 KiB reads (1 and 8 in flight); the small-file ones are in `small`. Writes go
//! to each system's own bucket and are checked through S3; reads use the objects the raw client
//! wrote and are checked through the mount.

use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::super::config::{BLOCK, RAW_GET_CONC, RAW_PART_MIB, RAW_PUT_CONC, RAW_RANGE_MIB};
use super::super::parse::{head_raw, jget};
use super::super::stats::{median, rate};
use super::super::{checks, secs_since, Ctx};
use super::{head200, run_to, stored_secs};

const MB: f64 = 1e6;

fn s(x: impl ToString) -> String {
    x.to_string()
}

impl Ctx {
    fn big_mb(&self) -> f64 {
        self.cfg.big_bytes() as f64 / MB
    }

    pub fn seq_write_raw(&mut self, runs: &[u32]) {
        let mut figs = Vec::new();
        let big = self.big.to_string_lossy().into_owned();
        for r in runs {
            let _ = Command::new("sync").status();
            let key = format!("big-{r}");
            let args = ["put-multipart", "--bucket", "bench-raw", "--key", &key, "--file", &big];
            let j = match self.raw(
                &[
                    &args[..],
                    &["--part-size", &s(RAW_PART_MIB), "--concurrency", &s(RAW_PUT_CONC)],
                ]
                .concat(),
            ) {
                Ok(j) => j,
                Err(_) => return self.res.failed("raw", "seq_write", &[], "put-multipart failed"),
            };
            figs.push(rate(self.big_mb(), &jget(&j, "seconds")));
        }
        match self.check_object("bench-raw", "big-1", self.cfg.big_bytes(), &self.big_md5) {
            Ok(()) => self.res.ok("raw", "seq_write", &figs, ""),
            Err(e) => self.res.failed("raw", "seq_write", &figs, &e),
        }
    }

    pub fn seq_write(&mut self, sys: &str, runs: &[u32]) {
        let (mnt, bucket) = (self.mnt(sys), format!("bench-{sys}"));
        if let Err(e) = self.mount_fs(sys, &bucket, &mnt) {
            return self.res.failed(sys, "seq_write", &[], &format!("mount: {e}"));
        }
        let (mut figs, mut cpfigs, mut err) = (Vec::new(), Vec::new(), None);
        let cp_err = self.work.join("cp.err");
        for r in runs {
            // Told when cp returned, it LISTs until big-R is stored with its size (warmed up
            // before the clock, so its start-up is in no figure).
            let key = format!("big-{r}");
            let waiter = match self.start_waiter(&bucket, &key, &[(key.clone(), self.cfg.big_bytes())]) {
                Ok(w) => w,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            };
            let _ = Command::new("sync").status();
            let t0 = Instant::now();
            if !run_to(self.timed("cp").arg(&self.big).arg(mnt.join(&key)), None, &cp_err) {
                waiter.cancel();
                err = Some(format!("cp failed: {}", head200(&cp_err)));
                break;
            }
            let cpsecs = secs_since(t0);
            let w = match waiter.go() {
                Ok(w) => w,
                Err(e) => {
                    err = Some(format!(
                        "object {key} never appeared with {} bytes: {e}",
                        self.cfg.big_bytes()
                    ));
                    break;
                }
            };
            let stored = stored_secs(&cpsecs, &w);
            figs.push(rate(self.big_mb(), &stored));
            cpfigs.push(rate(self.big_mb(), &cpsecs));
        }
        self.unmount_fs(sys, &mnt, "seq_write");
        if let Some(e) = err {
            return self.res.failed(sys, "seq_write", &figs, &e);
        }
        if let Err(e) = self.check_object(&bucket, "big-1", self.cfg.big_bytes(), &self.big_md5) {
            return self.res.failed(sys, "seq_write", &figs, &e);
        }
        let note = if figs == cpfigs {
            String::new()
        } else {
            format!(
                "cp returned before the upload finished: {} MB/s counting cp alone",
                median(&cpfigs)
            )
        };
        self.res.ok(sys, "seq_write", &figs, &note);
    }

    pub fn seq_read_raw(&mut self, runs: &[u32]) {
        let mut figs = Vec::new();
        for _ in runs {
            self.drop_caches();
            let args = [
                "get-ranged",
                "--bucket",
                "bench-raw",
                "--key",
                "big-1",
                "--range-size",
                &s(RAW_RANGE_MIB),
            ];
            let j = match self.raw(&[&args[..], &["--concurrency", &s(RAW_GET_CONC)]].concat()) {
                Ok(j) => j,
                Err(_) => return self.res.failed("raw", "seq_read_cold", &[], "get-ranged failed"),
            };
            if jget(&j, "bytes") != s(self.cfg.big_bytes()) {
                return self
                    .res
                    .failed("raw", "seq_read_cold", &[], &format!("short read: {}", j.trim_end()));
            }
            figs.push(rate(self.big_mb(), &jget(&j, "seconds")));
        }
        self.res.ok("raw", "seq_read_cold", &figs, ""); // content checked in seq_write
    }

    pub fn seq_read(&mut self, sys: &str, runs: &[u32]) {
        let (mnt, wl) = (self.mnt(sys), "seq_read_cold");
        let mut figs = Vec::new();
        let cat_err = self.work.join("cat.err");
        for r in runs {
            self.drop_caches();
            if let Err(e) = self.mount_fs(sys, "bench-raw", &mnt) {
                return self.res.failed(sys, wl, &figs, &format!("mount: {e}"));
            }
            let t0 = Instant::now();
            if !run_to(self.timed("cat").arg(mnt.join("big-1")), None, &cat_err) {
                self.unmount_fs(sys, &mnt, wl);
                return self
                    .res
                    .failed(sys, wl, &figs, &format!("cat failed: {}", head200(&cat_err)));
            }
            figs.push(rate(self.big_mb(), &secs_since(t0)));
            if *r == 1 {
                let sum = checks::md5_of(self.timed("md5sum").arg(mnt.join("big-1")))
                    .unwrap_or_else(|| "(md5sum failed)".to_string());
                if sum != self.big_md5 {
                    self.unmount_fs(sys, &mnt, wl);
                    let why = format!("read MD5 {sum}, expected {}", self.big_md5);
                    return self.res.failed(sys, wl, &figs, &why);
                }
            }
            self.unmount_fs(sys, &mnt, wl);
        }
        self.res.ok(sys, wl, &figs, "");
    }

    pub fn par_read_raw(&mut self, runs: &[u32]) {
        let mut figs: Vec<String> = Vec::new();
        let total = 4 * self.cfg.par_bytes();
        for _ in runs {
            self.drop_caches();
            let mut args = vec!["get-many", "--bucket", "bench-raw"];
            for k in ["par-0", "par-1", "par-2", "par-3"] {
                args.extend(["--key", k]);
            }
            let (range, conc) = (s(RAW_RANGE_MIB), s(RAW_GET_CONC));
            args.extend(["--range-size", &range, "--concurrency", &conc]);
            let j = match self.raw(&args) {
                Ok(j) => j,
                Err(_) => return self.res.failed("raw", "par_read_cold", &figs, "get-many failed"),
            };
            if jget(&j, "bytes") != s(total) {
                return self
                    .res
                    .failed("raw", "par_read_cold", &[], &format!("short read: {}", j.trim_end()));
            }
            figs.push(rate(total as f64 / MB, &jget(&j, "seconds")));
        }
        self.res.ok("raw", "par_read_cold", &figs, ""); // content checked after the upload
    }

    pub fn par_read(&mut self, sys: &str, runs: &[u32]) {
        let (mnt, wl) = (self.mnt(sys), "par_read_cold");
        let mut figs = Vec::new();
        let total = 4 * self.cfg.par_bytes();
        for r in runs {
            self.drop_caches();
            if let Err(e) = self.mount_fs(sys, "bench-raw", &mnt) {
                return self.res.failed(sys, wl, &figs, &format!("mount: {e}"));
            }
            let mut err: Option<String> = None;
            let t0 = Instant::now();
            let children: Vec<std::io::Result<Child>> = (0..4)
                .map(|i| {
                    let e = std::fs::File::create(self.work.join(format!("cat-{i}.err")))?;
                    self.timed("cat")
                        .arg(mnt.join(format!("par-{i}")))
                        .stdout(Stdio::null())
                        .stderr(e)
                        .spawn()
                })
                .collect();
            for (i, c) in children.into_iter().enumerate() {
                let ok = c.and_then(|mut c| c.wait()).map(|s| s.success()).unwrap_or(false);
                if !ok {
                    err = Some(format!(
                        "cat par-{i} failed: {}",
                        head200(&self.work.join(format!("cat-{i}.err")))
                    ));
                }
            }
            let secs = secs_since(t0);
            if err.is_none() && *r == 1 {
                for i in 0..4 {
                    let sum = checks::md5_of(self.timed("md5sum").arg(mnt.join(format!("par-{i}"))))
                        .unwrap_or_else(|| "(md5sum failed)".to_string());
                    let want = self.par_md5.get(i).cloned().unwrap_or_default();
                    if sum != want {
                        err = Some(format!("par-{i} read MD5 {sum}, expected {want}"));
                    }
                }
            }
            self.unmount_fs(sys, &mnt, wl);
            if let Some(e) = err {
                return self.res.failed(sys, wl, &figs, &e);
            }
            figs.push(rate(total as f64 / MB, &secs));
        }
        self.res.ok(sys, wl, &figs, "");
    }

    /// Random reads, raw: ranged GETs `threads` in flight at run R's offsets, verified.
    pub fn rand_read_raw(&mut self, threads: u32, wl: &str, runs: &[u32]) {
        let mut figs = Vec::new();
        let big = self.big.to_string_lossy().into_owned();
        for r in runs {
            self.drop_caches();
            let offsets = self.offsets_file(threads, *r).to_string_lossy().into_owned();
            let (block, conc) = (s(BLOCK), s(threads));
            let args = [
                "random-read",
                "--bucket",
                "bench-raw",
                "--key",
                "big-1",
                "--offsets-file",
                &offsets,
            ];
            let more = ["--block", &block, "--concurrency", &conc, "--verify-file", &big];
            match self.raw_quiet(&[&args[..], &more[..]].concat()) {
                Ok(j) => figs.push(jget(&j, "ops_s")),
                Err(e) => {
                    let why = format!("random-read: {}", head_raw(e.as_bytes(), 200));
                    return self.res.failed("raw", wl, &figs, &why);
                }
            }
        }
        self.res.ok("raw", wl, &figs, "");
    }

    /// Random reads through a mount: helpers.py preads from `threads` threads, verified.
    pub fn rand_read(&mut self, sys: &str, threads: u32, wl: &str, runs: &[u32]) {
        let mnt = self.mnt(sys);
        let mut figs = Vec::new();
        for r in runs {
            self.drop_caches();
            if let Err(e) = self.mount_fs(sys, "bench-raw", &mnt) {
                return self.res.failed(sys, wl, &figs, &format!("mount: {e}"));
            }
            let offsets = self.offsets_file(threads, *r);
            let out = self
                .timed("python3")
                .arg(&self.helpers)
                .args(["randread", "--file"])
                .arg(mnt.join("big-1"))
                .arg("--offsets-file")
                .arg(&offsets)
                .args(["--block", &s(BLOCK), "--threads", &s(threads), "--verify"])
                .arg(&self.big)
                .output();
            let j = match out {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
                Ok(o) => {
                    self.unmount_fs(sys, &mnt, wl);
                    return self.res.failed(sys, wl, &figs, &head_raw(&o.stderr, 200));
                }
                Err(e) => {
                    self.unmount_fs(sys, &mnt, wl);
                    return self.res.failed(sys, wl, &figs, &e.to_string());
                }
            };
            self.unmount_fs(sys, &mnt, wl);
            figs.push(jget(&j, "ops_s"));
        }
        self.res.ok(sys, wl, &figs, "");
    }
}
