//! Listing workloads: `ls -f` / `ls -l` of the LS directory cold and warm (and the same on a local
//! directory), `ls -f` of the big directory and the time to its first entry, `find` over the FIND
//! tree (the second `rsync -a` is in `rsync`). The listing data sets live in buckets
//! nothing writes to after they are filled (bench-ls, bench-lsbig, bench-find), so bench-server's
//! listing cache serves every system alike.

use std::fs;
use std::process::Command;
use std::time::Instant;

use super::super::checks::check_ls_l;
use super::super::config::{FIND_DIR, LS_BIG_DIR, LS_DIR, RAW_HEAD_CONC};
use super::super::parse::{head_raw, jget};
use super::super::{secs_since, Ctx};
use super::{head200, run_to};

fn s(x: impl ToString) -> String {
    x.to_string()
}

impl Ctx {
    pub fn ls_raw(&mut self, runs: &[u32]) {
        let (mut fl, mut fh) = (Vec::new(), Vec::new());
        let prefix = format!("{LS_DIR}/");
        let n = s(self.cfg.ls_n);
        for _ in runs {
            self.drop_caches();
            let j = match self.raw(&["list", "--bucket", "bench-ls", "--prefix", &prefix, "--delimiter", "/"]) {
                Ok(j) => j,
                Err(_) => return self.res.failed("raw", "ls_f_cold", &[], "list failed"),
            };
            if jget(&j, "keys") != n {
                let why = format!("listed {} keys, expected {n}", jget(&j, "keys"));
                return self.res.failed("raw", "ls_f_cold", &[], &why);
            }
            fl.push(jget(&j, "seconds"));
            self.drop_caches();
            let conc = s(RAW_HEAD_CONC);
            let args = [
                "list-head",
                "--bucket",
                "bench-ls",
                "--prefix",
                &prefix,
                "--delimiter",
                "/",
                "--concurrency",
                &conc,
            ];
            let j = match self.raw_quiet(&args) {
                Ok(j) => j,
                Err(e) => {
                    let why = format!("list-head: {}", head_raw(e.as_bytes(), 200));
                    return self.res.failed("raw", "ls_l_cold", &[], &why);
                }
            };
            if jget(&j, "keys") != n {
                let why = format!("listed {} keys, expected {n}", jget(&j, "keys"));
                return self.res.failed("raw", "ls_l_cold", &[], &why);
            }
            fh.push(jget(&j, "seconds"));
        }
        self.res.ok("raw", "ls_f_cold", &fl, "paginated LIST with delimiter");
        let note = format!("LIST + HEAD of every key, {RAW_HEAD_CONC} in flight");
        self.res.ok("raw", "ls_l_cold", &fh, &note);
    }

    /// `ls -l` of the local directory into WORK/lsl.out; its seconds.
    fn ls_l_local(&self) -> Option<String> {
        let d = self.work.join("data").join(LS_DIR);
        let out = fs::File::create(self.work.join("lsl.out")).ok()?;
        let t0 = Instant::now();
        let ok = Command::new("ls")
            .arg("-l")
            .arg(&d)
            .stdout(out)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| secs_since(t0))
    }

    fn lsl_out(&self) -> String {
        fs::read_to_string(self.work.join("lsl.out")).unwrap_or_default()
    }

    /// The same listings on a local directory holding the same names and sizes: warm, and (when
    /// caches can be dropped) `ls -l` with the kernel's dentries and inodes dropped.
    pub fn ls_local(&mut self, runs: &[u32]) {
        let d = self.work.join("data").join(LS_DIR);
        let n = self.cfg.ls_n;
        for flag in ["-l", "-f"] {
            let _ = Command::new("ls")
                .arg(flag)
                .arg(&d)
                .stdout(std::process::Stdio::null())
                .status(); // warm
        }
        let (mut fl, mut ff) = (Vec::new(), Vec::new());
        for _ in runs {
            fl.push(self.ls_l_local().unwrap_or_default());
            if let Err(e) = check_ls_l(&self.lsl_out(), n) {
                return self.res.failed("local", "ls_l_warm", &[], &e);
            }
            let j = self
                .command("python3")
                .arg(&self.helpers)
                .arg("lsf")
                .arg(&d)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if jget(&j, "entries") != s(n) {
                return self
                    .res
                    .failed("local", "ls_f_warm", &[], &format!("ls -f: {}", j.trim_end()));
            }
            ff.push(jget(&j, "seconds"));
        }
        self.res.ok("local", "ls_l_warm", &fl, "");
        self.res.ok("local", "ls_f_warm", &ff, "");
        // What a local file system pays when `ls -l` needs inodes that are not in memory: the
        // kernel's dentries and inodes dropped (its directory blocks stay in the page cache).
        if !self.cold {
            return;
        }
        let mut fl = Vec::new();
        for _ in runs {
            let _ = Command::new("sync").status();
            let _ = fs::write("/proc/sys/vm/drop_caches", "2");
            fl.push(self.ls_l_local().unwrap_or_default());
            if let Err(e) = check_ls_l(&self.lsl_out(), n) {
                return self.res.failed("local", "ls_l_cold", &[], &e);
            }
        }
        let note = "dentries and inodes dropped (echo 2 > drop_caches), blocks in the page cache";
        self.res.ok("local", "ls_l_cold", &fl, note);
    }

    /// `ls -l MNT/LS_DIR` into WORK/lsl.out: its seconds, or why it failed (`warm` for the message).
    fn ls_l_on(&self, mnt: &std::path::Path, warm: bool) -> Result<String, String> {
        let err = self.work.join("ls.err");
        let lsl = self.work.join("lsl.out");
        let t0 = Instant::now();
        if !run_to(self.timed("ls").arg("-l").arg(mnt.join(LS_DIR)), Some(&lsl), &err) {
            let w = if warm { " (warm)" } else { "" };
            return Err(format!("ls -l{w} failed: {}", head200(&err)));
        }
        Ok(secs_since(t0))
    }

    pub fn ls(&mut self, sys: &str, runs: &[u32]) {
        let mnt = self.mnt(sys);
        let n = self.cfg.ls_n;
        let (mut fc, mut fw, mut lc, mut lw) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut ln = Vec::new();
        let mut err = String::new();
        for _ in runs {
            self.drop_caches();
            if let Err(e) = self.mount_fs(sys, "bench-ls", &mnt) {
                err = format!("mount: {e}");
                break;
            }
            match self.ls_f_on(&mnt, LS_DIR, n, false) {
                Ok((secs, _)) => fc.push(secs),
                Err(e) => {
                    err = e;
                    self.unmount_fs(sys, &mnt, "ls");
                    break;
                }
            }
            match self.ls_f_on(&mnt, LS_DIR, n, false) {
                Ok((secs, _)) => fw.push(secs),
                Err(e) => {
                    err = e;
                    self.unmount_fs(sys, &mnt, "ls");
                    break;
                }
            }
            self.unmount_fs(sys, &mnt, "ls");
            self.drop_caches();
            if let Err(e) = self.mount_fs(sys, "bench-ls", &mnt) {
                err = format!("mount: {e}");
                break;
            }
            // Each time is kept before its listing is checked, as the bash harness did.
            let step = (|| {
                lc.push(self.ls_l_on(&mnt, false)?);
                check_ls_l(&self.lsl_out(), n)?;
                lw.push(self.ls_l_on(&mnt, true)?);
                check_ls_l(&self.lsl_out(), n).map_err(|e| format!("warm: {e}"))
            })();
            if let Err(e) = step {
                err = e;
                self.unmount_fs(sys, &mnt, "ls");
                break;
            }
            self.unmount_fs(sys, &mnt, "ls");
            // The next mount (after an unmount or a reboot): kernel and daemon caches cold, what
            // the mount keeps on disk (cosmount's metadata cache) kept.
            self.drop_caches();
            self.keep_state = true;
            let mounted = self.mount_fs(sys, "bench-ls", &mnt);
            self.keep_state = false;
            if let Err(e) = mounted {
                err = format!("mount: {e}");
                break;
            }
            let step = (|| {
                ln.push(self.ls_l_on(&mnt, false)?);
                check_ls_l(&self.lsl_out(), n).map_err(|e| format!("next mount: {e}"))
            })();
            self.unmount_fs(sys, &mnt, "ls");
            if let Err(e) = step {
                err = e;
                break;
            }
        }
        let reps = runs.len();
        for (wl, arr) in [
            ("ls_f_cold", &fc),
            ("ls_f_warm", &fw),
            ("ls_l_cold", &lc),
            ("ls_l_warm", &lw),
            ("ls_l_next", &ln),
        ] {
            if arr.len() == reps {
                self.res.ok(sys, wl, arr, "");
            } else {
                self.res.failed(sys, wl, arr, &err);
            }
        }
    }

    pub fn ls_big_raw(&mut self, runs: &[u32]) {
        let (mut fs_, mut ff) = (Vec::new(), Vec::new());
        let prefix = format!("{LS_BIG_DIR}/");
        let n = s(self.cfg.ls_big_n);
        for _ in runs {
            self.drop_caches();
            let j = match self.raw(&[
                "list",
                "--bucket",
                "bench-lsbig",
                "--prefix",
                &prefix,
                "--delimiter",
                "/",
            ]) {
                Ok(j) => j,
                Err(_) => return self.res.failed("raw", "ls_f_big_cold", &[], "list failed"),
            };
            if jget(&j, "keys") != n {
                let why = format!("listed {} keys, expected {n}", jget(&j, "keys"));
                return self.res.failed("raw", "ls_f_big_cold", &[], &why);
            }
            fs_.push(jget(&j, "seconds"));
            ff.push(jget(&j, "first_page_seconds"));
        }
        self.res
            .ok("raw", "ls_f_big_cold", &fs_, "paginated LIST with delimiter");
        self.res.ok("raw", "ls_f_big_first", &ff, "first page of 1 000 keys");
    }

    pub fn ls_big(&mut self, sys: &str) {
        let mnt = self.mnt(sys);
        let n = self.cfg.ls_big_n;
        let (mut fs_, mut ff) = (Vec::new(), Vec::new());
        for _ in 0..self.cfg.ls_big_reps {
            self.drop_caches();
            if let Err(e) = self.mount_fs(sys, "bench-lsbig", &mnt) {
                return self.res.failed(sys, "ls_f_big_cold", &fs_, &format!("mount: {e}"));
            }
            match self.ls_f_on(&mnt, LS_BIG_DIR, n, false) {
                Ok((secs, _)) => {
                    self.unmount_fs(sys, &mnt, "ls_big");
                    fs_.push(secs);
                }
                Err(e) => {
                    self.unmount_fs(sys, &mnt, "ls_big");
                    return self.res.failed(sys, "ls_f_big_cold", &fs_, &e);
                }
            }
            self.drop_caches();
            if let Err(e) = self.mount_fs(sys, "bench-lsbig", &mnt) {
                self.res.failed(sys, "ls_f_big_first", &ff, &format!("mount: {e}"));
                continue;
            }
            match self.ls_f_on(&mnt, LS_BIG_DIR, n, true) {
                Ok((_, first)) => {
                    self.unmount_fs(sys, &mnt, "ls_big");
                    ff.push(first);
                }
                Err(e) => {
                    self.unmount_fs(sys, &mnt, "ls_big");
                    self.res.failed(sys, "ls_f_big_first", &ff, &e);
                }
            }
        }
        self.res.ok(sys, "ls_f_big_cold", &fs_, "");
        if ff.len() == self.cfg.ls_big_reps as usize {
            self.res
                .ok(sys, "ls_f_big_first", &ff, "os.scandir's first entry, fresh mount");
        }
    }

    pub fn find_raw(&mut self, runs: &[u32]) {
        let mut figs = Vec::new();
        let prefix = format!("{FIND_DIR}/");
        let n = s(self.cfg.find_n);
        for _ in runs {
            self.drop_caches();
            let j = match self.raw(&["list", "--bucket", "bench-find", "--prefix", &prefix]) {
                Ok(j) => j,
                Err(_) => return self.res.failed("raw", "find_cold", &[], "list failed"),
            };
            if jget(&j, "keys") != n {
                let why = format!("listed {} keys, expected {n}", jget(&j, "keys"));
                return self.res.failed("raw", "find_cold", &[], &why);
            }
            figs.push(jget(&j, "seconds"));
        }
        self.res
            .ok("raw", "find_cold", &figs, "paginated LIST without delimiter");
    }

    pub fn find(&mut self, sys: &str, runs: &[u32]) {
        let mnt = self.mnt(sys);
        let mut figs = Vec::new();
        let (out, err) = (self.work.join("find.out"), self.work.join("find.err"));
        let want = self.cfg.find_n + self.cfg.find_dirs + 1;
        for _ in runs {
            self.drop_caches();
            if let Err(e) = self.mount_fs(sys, "bench-find", &mnt) {
                return self.res.failed(sys, "find_cold", &figs, &format!("mount: {e}"));
            }
            let t0 = Instant::now();
            if !run_to(self.timed("find").arg(mnt.join(FIND_DIR)), Some(&out), &err) {
                self.unmount_fs(sys, &mnt, "find");
                return self
                    .res
                    .failed(sys, "find_cold", &figs, &format!("find failed: {}", head200(&err)));
            }
            let secs = secs_since(t0);
            self.unmount_fs(sys, &mnt, "find");
            let n = fs::read(&out)
                .map(|t| t.iter().filter(|b| **b == b'\n').count() as u64)
                .unwrap_or(0);
            if n != want {
                return self.res.failed(
                    sys,
                    "find_cold",
                    &figs,
                    &format!("find printed {n} paths, expected {want}"),
                );
            }
            figs.push(secs);
        }
        self.res.ok(sys, "find_cold", &figs, "");
    }
}
