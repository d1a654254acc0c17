//! The workload groups. Each group runs the raw client, then every system (a peer that cannot run
//! gets its workloads marked failed), and records every result; most groups run in rounds (see
//! [`Ctx::rounds`]): the big object in [`data`], small files in [`small`], listings in
//! [`listing`], the second rsync in [`rsync`].
//!
//! Writes are timed until the command returns and until every object is in S3: a raw-client
//! `await-keys` ([`Waiter`]) is started and warmed up before the clock, told when the command
//! returned, and LISTs the prefix until every key of the workload's manifest shows its size.
//!
//! A workload function takes the run numbers it should do (`runs`): 1..=REPS, or this round's one
//! number. Run i of every system uses the same object names and random offsets.

pub mod data;
pub mod listing;
pub mod rsync;
pub mod small;

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::config::BLOCK;
use super::parse::{head_raw, jget};
use super::stats::fixed;
use super::{log, Ctx};

impl Ctx {
    /// Runs `group` REPS times over with one run number each (round i: run i), joining each
    /// round's figure to the earlier ones (see `results`), so that each round finds every system
    /// under the same machine conditions.
    pub fn rounds(&mut self, mut group: impl FnMut(&mut Ctx, &[u32])) {
        self.res.accumulate = true;
        for round in 0..self.cfg.reps {
            self.res.round = round;
            group(self, &[round + 1]);
        }
        self.res.accumulate = false;
        self.res.round = 0;
    }

    /// Run numbers 1..=REPS (for a group that does not run in rounds).
    pub fn all_runs(&self) -> Vec<u32> {
        (1..=self.cfg.reps).collect()
    }

    /// `f(self, system)` for each system; a peer that cannot run gets `workloads` marked failed.
    pub fn run_systems(&mut self, workloads: &[&str], systems: &[String], mut f: impl FnMut(&mut Ctx, &str)) {
        for s in systems {
            if let Some(why) = self.peer_err.get(s).cloned() {
                for w in workloads {
                    self.res.failed(s, w, &[], &why);
                }
                continue;
            }
            f(self, s);
        }
    }

    /// `sync`, then drops the page cache (dentries, inodes and pages) before a cold run; the first
    /// time that fails (not root), read figures are marked warm from then on.
    pub fn drop_caches(&mut self) {
        let _ = Command::new("sync").status();
        if self.cold && fs::write("/proc/sys/vm/drop_caches", "3").is_err() {
            self.cold = false;
            log("cannot write /proc/sys/vm/drop_caches (not root?): read figures are not cold");
        }
    }

    /// The mount point of a system.
    pub fn mnt(&self, sys: &str) -> PathBuf {
        self.work.join(format!("mnt-{sys}"))
    }

    /// The offsets file of run `run` with `threads` in flight (made once, seeded, by helpers.py).
    pub fn offsets_file(&self, threads: u32, run: u32) -> PathBuf {
        let f = self.work.join(format!("offsets-{threads}-{run}"));
        if fs::metadata(&f).map(|m| m.len() == 0).unwrap_or(true) {
            let seed = (threads * 1000 + run).to_string();
            let out = self
                .command("python3")
                .arg(&self.helpers)
                .args(["offsets", "--seed", &seed, "--count", &self.cfg.rand_n.to_string()])
                .args([
                    "--size",
                    &self.cfg.big_bytes().to_string(),
                    "--block",
                    &BLOCK.to_string(),
                ])
                .output();
            if let Ok(o) = out {
                let _ = fs::write(&f, o.stdout);
            }
        }
        f
    }

    /// `helpers.py lsf|first MNT/DIR`, checked to list `n` entries: (seconds, first_seconds).
    pub fn ls_f_on(&self, mnt: &Path, dir: &str, n: u64, first: bool) -> Result<(String, String), String> {
        let what = if first { "first" } else { "lsf" };
        let shown = if first { "first" } else { "ls -f" };
        let out = self
            .timed("python3")
            .arg(&self.helpers)
            .arg(what)
            .arg(mnt.join(dir))
            .output()
            .map_err(|e| format!("{shown} failed: {e}"))?;
        if !out.status.success() {
            return Err(format!("{shown} failed: {}", head_raw(&out.stderr, 200)));
        }
        let j = String::from_utf8_lossy(&out.stdout);
        let entries = jget(&j, "entries");
        if entries != n.to_string() {
            return Err(format!("{shown} listed {entries} entries, expected {n}"));
        }
        Ok((jget(&j, "seconds"), jget(&j, "first_seconds")))
    }
}

/// A raw-client `await-keys` waiting for a write command to return (see the module doc).
pub struct Waiter {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    err: PathBuf,
}

impl Ctx {
    /// Starts `raw-client await-keys` for `keys` (key, size) under the LIST prefix `prefix` of
    /// `bucket`, and returns once its client is warmed up (call it before the clock starts).
    pub fn start_waiter(&self, bucket: &str, prefix: &str, keys: &[(String, u64)]) -> Result<Waiter, String> {
        let manifest = self.work.join("manifest");
        fs::write(&manifest, crate::manifest::to_text(keys)).map_err(|e| format!("manifest: {e}"))?;
        let err = self.work.join("await-keys.err");
        let ef = fs::File::create(&err).map_err(|e| format!("{}: {e}", err.display()))?;
        let mut child = self
            .command(self.bench_bin.join("raw-client"))
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(["await-keys", "--bucket", bucket, "--prefix", prefix, "--manifest"])
            .arg(&manifest)
            .args(["--timeout", &self.cfg.cmd_timeout.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(ef)
            .spawn()
            .map_err(|e| format!("raw-client await-keys: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("raw-client await-keys: no pipes".to_string());
        };
        let mut w = Waiter {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            err,
        };
        let mut line = String::new();
        match w.stdout.read_line(&mut line) {
            Ok(n) if n > 0 && jget(&line, "ready") == "true" => Ok(w),
            _ => {
                w.stdin.take();
                let _ = w.child.wait();
                Err(format!("raw-client await-keys did not start: {}", head200(&w.err)))
            }
        }
    }
}

impl Waiter {
    /// The command returned: the waiter LISTs now; its JSON once every key is listed with its
    /// size, or why not (its error output).
    pub fn go(mut self) -> Result<String, String> {
        if let Some(mut i) = self.stdin.take() {
            let _ = i.write_all(b"returned\n");
        }
        let mut out = String::new();
        let _ = self.stdout.read_to_string(&mut out);
        match self.child.wait() {
            Ok(s) if s.success() => Ok(out),
            _ => Err(head200(&self.err)
                .trim_start_matches("raw-client: ")
                .trim_end()
                .to_string()),
        }
    }

    /// The command failed: the waiter gives up (its stdin closes before any line).
    pub fn cancel(mut self) {
        self.stdin.take();
        let _ = self.child.wait();
    }
}

/// The time until written data was stored: `cp`'s seconds, plus the wait's when its first poll
/// (which is immediate) did not already find everything.
pub fn stored_secs(cp_secs: &str, wait_json: &str) -> String {
    if jget(wait_json, "polls") == "1" {
        cp_secs.to_string()
    } else {
        fixed(
            super::stats::num(cp_secs) + super::stats::num(&jget(wait_json, "seconds")),
            4,
        )
    }
}

/// Runs a command with stdout and stderr to files (`>out 2>err`); whether it succeeded.
pub fn run_to(cmd: &mut Command, out: Option<&Path>, err: &Path) -> bool {
    let (Ok(e), o) = (fs::File::create(err), out.map(fs::File::create)) else {
        return false;
    };
    cmd.stderr(e);
    match o {
        Some(Ok(f)) => {
            cmd.stdout(f);
        }
        Some(Err(_)) => return false,
        None => {
            cmd.stdout(std::process::Stdio::null());
        }
    }
    cmd.status().map(|s| s.success()).unwrap_or(false)
}

/// The first 200 bytes of a file (an error output the report quotes).
pub fn head200(path: &Path) -> String {
    head_raw(&fs::read(path).unwrap_or_default(), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_time() {
        assert_eq!(
            stored_secs("0.6806", r#"{"op":"wait-object","seconds":0.0003,"polls":1}"#),
            "0.6806"
        );
        assert_eq!(
            stored_secs("0.5000", r#"{"op":"wait-prefix","seconds":5.25,"polls":12}"#),
            "5.7500"
        );
        assert_eq!(
            stored_secs(
                "1.2000",
                r#"{"keys":1000,"list_seconds":0.81,"op":"await-keys","polls":9,"seconds":0.8634}"#
            ),
            "2.0634"
        );
    }
}
