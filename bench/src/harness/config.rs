//! Configuration: `scripts/bench.sh [--quick] [--label NAME]` plus the `BENCH_*` overrides, with the
//! quick and full modes' defaults, the fixed sizes and the raw client's tuned settings.
//!
//! An override that is set but empty counts as unset (bash's `${BENCH_X:-default}`). The `--help`
//! text is the header comment of `scripts/bench.sh` (the one place it is written), read at build
//! time, so the script can print it without building and this program prints the same.

use super::error::{Error, Result};

/// Workload groups, in the order they run (`BENCH_WORKLOADS` selects some).
pub const ALL_GROUPS: [&str; 10] = [
    "seq_write",
    "seq_read",
    "par_read",
    "rand_read",
    "small_write",
    "small_read",
    "ls",
    "ls_big",
    "find",
    "rsync",
];

/// The overrides that are reported in the result's command line when set.
pub const REPORTED_OVERRIDES: [&str; 11] = [
    "BENCH_REPS",
    "BENCH_SYSTEMS",
    "BENCH_BIG_MIB",
    "BENCH_FILES",
    "BENCH_PAR_MIB",
    "BENCH_RAND",
    "BENCH_LS",
    "BENCH_LS_BIG",
    "BENCH_LS_BIG_REPS",
    "BENCH_FIND",
    "BENCH_WORKLOADS",
];

/// Size of each small file (bytes).
pub const FILE_SIZE: u64 = 32768;
/// Directories of the small-file tree.
pub const DIRS: u64 = 50;
/// Random-read block (bytes).
pub const BLOCK: u64 = 65536;
/// Size of each listing object (bytes).
pub const LS_SIZE: u64 = 100;
/// cosmount's memory budget for the run, if the build has `--max-memory`.
pub const MAX_MEMORY_MIB: u64 = 512;
/// The raw client's settings: the best of a sweep on this machine (see bench/README.md).
pub const RAW_PART_MIB: u64 = 8;
pub const RAW_PUT_CONC: u64 = 8;
pub const RAW_RANGE_MIB: u64 = 8;
pub const RAW_GET_CONC: u64 = 8;
pub const RAW_SMALL_CONC: u64 = 32;
pub const RAW_HEAD_CONC: u64 = 32;
/// The listing data sets: directory keys, each in a bucket nothing writes to after it is filled.
pub const LS_DIR: &str = "ls/d00";
pub const LS_BIG_DIR: &str = "lsbig/d00";
pub const FIND_DIR: &str = "find";

/// Quick (CI smoke run) or full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Quick,
    Full,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// Everything the arguments and overrides decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    /// `--label`, or the mode's name.
    pub label: String,
    /// Size of the big object (MiB).
    pub big_mib: u64,
    /// Number of small files.
    pub files: u64,
    /// Systems besides the raw client (`cosmount s3fs rclone`).
    pub systems: Vec<String>,
    /// Size of each of the 4 parallel-read objects (MiB).
    pub par_mib: u64,
    /// Random reads per run.
    pub rand_n: u64,
    /// Entries of the `ls` directory.
    pub ls_n: u64,
    /// Entries of the big `ls` directory.
    pub ls_big_n: u64,
    /// Files of the `find` tree, and its directories.
    pub find_n: u64,
    pub find_dirs: u64,
    /// Runs of each workload (rounds), and of the big listing.
    pub reps: u32,
    pub ls_big_reps: u32,
    /// Timeout of each measured command (s).
    pub cmd_timeout: u64,
    /// Workload groups to run.
    pub groups: Vec<String>,
    /// `BENCH_KEEP=1`: keep bench/work/ and the logs.
    pub keep: bool,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Config),
    Help,
}

/// An environment lookup where set-but-empty counts as unset.
fn env_nonempty(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

fn env_num<T: std::str::FromStr>(env: &dyn Fn(&str) -> Option<String>, name: &str, default: T) -> Result<T> {
    match env_nonempty(env, name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| Error::Usage(format!("bench: {name} must be a whole number, not {v:?}"))),
    }
}

/// Parses the arguments (without the program name) and the overrides read through `env`.
pub fn parse(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Parsed> {
    let mut quick = false;
    let mut label = String::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "--quick" => quick = true,
            "--label" => {
                i += 1;
                match args.get(i).filter(|v| !v.is_empty()) {
                    Some(v) => label = v.clone(),
                    // Exit 1, as bash's `${2:?}` did in the script this replaces.
                    None => return Err(Error::Fatal("bench: --label needs a name".into())),
                }
            }
            "-h" | "--help" => return Ok(Parsed::Help),
            _ => {
                if let Some(v) = a.strip_prefix("--label=") {
                    label = v.to_string();
                } else {
                    return Err(Error::Usage(format!(
                        "bench: unknown argument {a} (usage: scripts/bench.sh [--quick] [--label NAME])"
                    )));
                }
            }
        }
        i += 1;
    }
    let mode = if quick { Mode::Quick } else { Mode::Full };
    let reps_default = if quick { 1 } else { 3 };
    let reps: u32 = env_num(env, "BENCH_REPS", reps_default)?;
    let cfg = Config {
        mode,
        label: String::new(),
        big_mib: env_num(env, "BENCH_BIG_MIB", if quick { 32 } else { 1024 })?,
        files: env_num(env, "BENCH_FILES", if quick { 100 } else { 1000 })?,
        systems: env_nonempty(env, "BENCH_SYSTEMS")
            .unwrap_or_else(|| if quick { "cosmount" } else { "cosmount s3fs rclone" }.to_string())
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        par_mib: env_num(env, "BENCH_PAR_MIB", if quick { 8 } else { 256 })?,
        rand_n: env_num(env, "BENCH_RAND", if quick { 100 } else { 2000 })?,
        ls_n: env_num(env, "BENCH_LS", if quick { 300 } else { 10000 })?,
        ls_big_n: env_num(env, "BENCH_LS_BIG", if quick { 2000 } else { 100000 })?,
        find_n: env_num(env, "BENCH_FIND", if quick { 200 } else { 5000 })?,
        find_dirs: if quick { 10 } else { 50 },
        // Quick mode: BENCH_LS_BIG_REPS, else BENCH_REPS, else 1; full mode: BENCH_LS_BIG_REPS or 1.
        ls_big_reps: env_num(env, "BENCH_LS_BIG_REPS", if quick { reps } else { 1 })?,
        reps,
        cmd_timeout: if quick { 120 } else { 900 },
        groups: env_nonempty(env, "BENCH_WORKLOADS")
            .unwrap_or_else(|| ALL_GROUPS.join(" "))
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        keep: env("BENCH_KEEP").as_deref() == Some("1"),
    };
    for g in &cfg.groups {
        if !ALL_GROUPS.contains(&g.as_str()) {
            return Err(Error::Usage(format!(
                "bench: unknown workload group {g} (BENCH_WORKLOADS; groups: {})",
                ALL_GROUPS.join(" ")
            )));
        }
    }
    let label = if label.is_empty() {
        mode.as_str().to_string()
    } else {
        label
    };
    if !label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(Error::Usage("bench: --label may only use A-Z a-z 0-9 . _ -".into()));
    }
    Ok(Parsed::Run(Config { label, ..cfg }))
}

impl Config {
    pub fn quick(&self) -> bool {
        self.mode == Mode::Quick
    }

    /// Whether workload group `g` runs.
    pub fn want(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }

    pub fn big_bytes(&self) -> u64 {
        self.big_mib * 1024 * 1024
    }

    pub fn par_bytes(&self) -> u64 {
        self.par_mib * 1024 * 1024
    }

    /// The systems of the listing workloads: cosmount is followed by cosmount-la
    /// (`--listing-attributes`).
    pub fn ls_systems(&self) -> Vec<String> {
        let mut v = Vec::new();
        for s in &self.systems {
            v.push(s.clone());
            if s == "cosmount" {
                v.push("cosmount-la".to_string());
            }
        }
        v
    }

    /// The command that reproduces this run, as the report shows it: the reported overrides
    /// (`NAME=value`, sorted), then `bash scripts/bench.sh [--quick] [--label NAME]`.
    pub fn command_line(&self, env: &[(String, String)]) -> String {
        let mut cmd = "bash scripts/bench.sh".to_string();
        if self.quick() {
            cmd.push_str(" --quick");
        }
        if self.label != self.mode.as_str() {
            cmd.push_str(" --label ");
            cmd.push_str(&self.label);
        }
        let mut set: Vec<String> = env
            .iter()
            .filter(|(k, _)| REPORTED_OVERRIDES.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        set.sort();
        if set.is_empty() {
            cmd
        } else {
            format!("{} {cmd}", set.join(" "))
        }
    }
}

/// The `--help` text: the header comment of scripts/bench.sh, from its second line up to the line
/// before `set -euo pipefail`, with each line's `# ` removed.
pub fn help_text() -> String {
    help_from_script(include_str!("../../../scripts/bench.sh"))
}

fn help_from_script(script: &str) -> String {
    let mut out = String::new();
    for line in script.lines().skip(1) {
        if line.starts_with("set -euo") {
            break;
        }
        let l = line.strip_prefix('#').unwrap_or(line);
        let l = l.strip_prefix(' ').unwrap_or(l);
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse_with(args: &[&str], vars: &[(&str, &str)]) -> Result<Parsed> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&args, &|k| map.get(k).cloned())
    }

    fn cfg(args: &[&str], vars: &[(&str, &str)]) -> Config {
        match parse_with(args, vars) {
            Ok(Parsed::Run(c)) => c,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn quick_defaults() {
        let c = cfg(&["--quick"], &[]);
        assert_eq!(c.mode, Mode::Quick);
        assert_eq!(c.label, "quick");
        assert_eq!((c.big_mib, c.files, c.par_mib, c.rand_n), (32, 100, 8, 100));
        assert_eq!((c.ls_n, c.ls_big_n, c.find_n, c.find_dirs), (300, 2000, 200, 10));
        assert_eq!((c.reps, c.ls_big_reps, c.cmd_timeout), (1, 1, 120));
        assert_eq!(c.systems, vec!["cosmount"]);
        assert_eq!(c.groups.len(), 10);
        assert_eq!(c.ls_systems(), vec!["cosmount", "cosmount-la"]);
        assert_eq!(c.big_bytes(), 32 * 1024 * 1024);
        assert!(!c.keep);
    }

    #[test]
    fn full_defaults() {
        let c = cfg(&[], &[]);
        assert_eq!(c.mode, Mode::Full);
        assert_eq!(c.label, "full");
        assert_eq!((c.big_mib, c.files, c.par_mib, c.rand_n), (1024, 1000, 256, 2000));
        assert_eq!((c.ls_n, c.ls_big_n, c.find_n, c.find_dirs), (10000, 100000, 5000, 50));
        assert_eq!((c.reps, c.ls_big_reps, c.cmd_timeout), (3, 1, 900));
        assert_eq!(c.systems, vec!["cosmount", "s3fs", "rclone"]);
        assert_eq!(c.ls_systems(), vec!["cosmount", "cosmount-la", "s3fs", "rclone"]);
    }

    #[test]
    fn overrides_and_empty_values() {
        let c = cfg(
            &["--label=dev"],
            &[
                ("BENCH_REPS", "5"),
                ("BENCH_SYSTEMS", "s3fs"),
                ("BENCH_FILES", ""),
                ("BENCH_WORKLOADS", "ls find"),
            ],
        );
        assert_eq!(c.label, "dev");
        assert_eq!(c.reps, 5);
        // Full mode: the big listing keeps 1 run whatever BENCH_REPS says.
        assert_eq!(c.ls_big_reps, 1);
        assert_eq!(c.files, 1000, "an empty override counts as unset");
        assert_eq!(c.systems, vec!["s3fs"]);
        assert!(c.want("ls") && c.want("find") && !c.want("seq_write"));
        // Quick mode: the big listing follows BENCH_REPS unless BENCH_LS_BIG_REPS is set.
        assert_eq!(cfg(&["--quick"], &[("BENCH_REPS", "3")]).ls_big_reps, 3);
        assert_eq!(
            cfg(&["--quick"], &[("BENCH_REPS", "3"), ("BENCH_LS_BIG_REPS", "2")]).ls_big_reps,
            2
        );
        assert!(cfg(&[], &[("BENCH_KEEP", "1")]).keep);
    }

    #[test]
    fn usage_errors_exit_2() {
        for (args, vars) in [
            (vec!["--bogus"], vec![]),
            (vec!["--label", "a b"], vec![]),
            (vec!["--label=x/y"], vec![]),
            (vec![], vec![("BENCH_WORKLOADS", "ls nope")]),
            (vec![], vec![("BENCH_REPS", "three")]),
        ] {
            match parse_with(&args, &vars) {
                Err(e) => assert_eq!(e.exit_code(), 2, "{args:?} {vars:?}: {e}"),
                Ok(p) => panic!("{args:?} {vars:?} parsed as {p:?}"),
            }
        }
        let e = parse_with(&["--label"], &[]).unwrap_err();
        assert_eq!(
            (e.exit_code(), e.to_string().as_str()),
            (1, "bench: --label needs a name")
        );
        let e = parse_with(&["--bogus"], &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            "bench: unknown argument --bogus (usage: scripts/bench.sh [--quick] [--label NAME])"
        );
    }

    #[test]
    fn help_wins_where_bash_saw_it() {
        assert_eq!(parse_with(&["--quick", "-h"], &[]).unwrap(), Parsed::Help);
        assert!(parse_with(&["--bogus", "--help"], &[]).is_err());
    }

    #[test]
    fn command_line_lists_reported_overrides_sorted() {
        let c = cfg(&["--quick", "--label", "x"], &[]);
        let env = vec![
            ("BENCH_WORKLOADS".to_string(), "ls".to_string()),
            ("BENCH_KEEP".to_string(), "1".to_string()),
            ("BENCH_LS_BIG".to_string(), "10".to_string()),
            ("BENCH_LS".to_string(), "5".to_string()),
        ];
        assert_eq!(
            c.command_line(&env),
            "BENCH_LS=5 BENCH_LS_BIG=10 BENCH_WORKLOADS=ls bash scripts/bench.sh --quick --label x"
        );
        let q = cfg(&["--quick"], &[]);
        assert_eq!(q.command_line(&[]), "bash scripts/bench.sh --quick");
        let f = cfg(&["--label", "full"], &[]);
        assert_eq!(f.command_line(&[]), "bash scripts/bench.sh");
    }

    #[test]
    fn help_is_the_script_header() {
        let script = "#!/usr/bin/env bash\n# Title line\n#\n#   usage\n#no space\nset -euo pipefail\necho\n";
        assert_eq!(help_from_script(script), "Title line\n\n  usage\nno space\n");
        let h = help_text();
        assert!(h.starts_with("Benchmarks cosmount"), "{h}");
        assert!(h.contains("scripts/bench.sh [--quick] [--label NAME]"));
        assert!(h.contains("BENCH_KEEP=1"));
        assert!(!h.contains("set -euo"));
    }
}
