//! The benchmark harness of `scripts/bench.sh` (see its header, `--help`, for what it measures and
//! /work/shared/BENCH.md for the method). Layout, one concern per module:
//!
//! - [`config`]: arguments, `BENCH_*` overrides, quick/full defaults, fixed sizes, `--help`;
//! - [`error`]: the error type and its exit codes;
//! - [`servers`]: bench-server, credentials and the environment of every child, the raw client,
//!   the peers' installation;
//! - [`mounts`]: mounting and unmounting systems, daemon RSS, cleanup on any exit;
//! - [`delay_proxy`]: the TCP proxy that adds a round-trip to every request (`--latency MS`);
//! - [`datasets`]: the input data and the data sets the workloads read or list;
//! - [`workloads`]: the workload groups, run in rounds over the raw client and every system;
//! - [`checks`]: what every answer is checked against (MD5, byte-for-byte trees, listing sizes);
//! - [`stats`]: medians, rates, ratios, units;
//! - [`parse`]: reading the tools' outputs;
//! - [`results`]: the table being filled;
//! - [`report`]: the markdown and JSON result files;
//! - [`run`]: the order of it all.
//!
//! Tools are shelled out to as the bash harness did (cp, cat, find, ls, rsync, md5sum, diff,
//! timeout, helpers.py, raw-client); the logic — parsing, statistics, orchestration, reporting —
//! is here.

pub mod checks;
pub mod config;
pub mod datasets;
pub mod delay_proxy;
pub mod error;
pub mod mounts;
pub mod parse;
pub mod report;
pub mod results;
pub mod run;
pub mod servers;
pub mod stats;
pub mod workloads;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use config::Config;
use mounts::Janitor;
use results::Results;

/// A progress line on stderr: `bench: MSG`.
pub fn log(msg: &str) {
    eprintln!("bench: {msg}");
}

/// Seconds since `t0`, four decimals (the form every time figure takes).
pub fn secs_since(t0: Instant) -> String {
    stats::fixed(t0.elapsed().as_secs_f64(), 4)
}

/// The state of a run, shared by the workloads.
pub struct Ctx {
    pub cfg: Config,
    /// The repository root (the current directory).
    pub repo: PathBuf,
    /// bench/work/run-PID and its logs/ directory.
    pub work: PathBuf,
    pub logs: PathBuf,
    /// bench/target/release (bench-server, raw-client).
    pub bench_bin: PathBuf,
    /// bench/helpers.py.
    pub helpers: PathBuf,
    /// The cosmount binary and the options every mount of it gets (`--max-memory`).
    pub cosmount: PathBuf,
    pub cosmount_args: Vec<String>,
    /// `--max-memory` in MiB, when the build has it.
    pub max_memory_mib: Option<u64>,
    /// http://127.0.0.1:PORT of bench-server, or of the delay proxy while the latency groups run
    /// (see `Ctx::use_endpoint`).
    pub endpoint: String,
    /// Variables set for every child (credentials, proxies, rclone's remote).
    pub env: Vec<(String, String)>,
    /// Whether the page cache can be dropped (else read figures are warm).
    pub cold: bool,
    /// The big input file, its MD5; the small-file tree; the 4 parallel objects' MD5s.
    pub big: PathBuf,
    pub big_md5: String,
    pub tree: PathBuf,
    pub par_md5: Vec<String>,
    /// The small-file tree's files (relative path, size), for the manifests of small_write.
    pub tree_files: Vec<(String, u64)>,
    /// tar_x: the source-like tree (`tar_src/proj/...`), its tarball and its files.
    pub tar_src: PathBuf,
    pub tarball: PathBuf,
    pub tar_files: Vec<(String, u64)>,
    /// Peers that cannot run, and why.
    pub peer_err: HashMap<String, String>,
    pub res: Results,
    pub janitor: Janitor,
    /// Keep cosmount's state directory (its metadata cache on disk) for the next mount; else
    /// every mount starts with an empty one, as the first mount of a bucket does.
    pub keep_state: bool,
}

/// Variables no child may inherit: nothing here is https (a CA bundle only breaks rclone's S3
/// client), and the endpoint and region are given explicitly.
pub const ENV_REMOVED: [&str; 7] = [
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_CA_BUNDLE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "COSMOUNT_ENDPOINT_URL",
    "COSMOUNT_REGION",
];

impl Ctx {
    /// A command with the run's environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        for v in ENV_REMOVED {
            c.env_remove(v);
        }
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Whether the latency groups are running (the clients go through the delay proxy and the
    /// rows are recorded as `WORKLOAD@MSms`).
    pub fn under_latency(&self) -> bool {
        !self.res.suffix.is_empty()
    }

    /// `timeout -k 10 CMD_TIMEOUT program`: every measured command is bounded.
    pub fn timed(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = self.command("timeout");
        c.args(["-k", "10", &self.cfg.cmd_timeout.to_string()]).arg(program);
        c
    }
}

/// The harness's entry point: parses the arguments and environment, runs, returns the exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match config::parse(&args, &|k| std::env::var(k).ok()) {
        Ok(config::Parsed::Help) => {
            print!("{}", config::help_text());
            return 0;
        }
        Ok(config::Parsed::Run(c)) => c,
        Err(e) => {
            eprintln!("{e}");
            return e.exit_code();
        }
    };
    run::run(cfg)
}
