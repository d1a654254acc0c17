//! Configuration: `scripts/bench.sh [--quick] [--label NAME] [--latency MS]` plus the `BENCH_*`
//! overrides, with the quick and full modes' defaults, the fixed sizes and the raw client's tuned
//! settings.
//!
//! `--latency MS` (or `BENCH_LATENCY_MS`) adds the latency groups: the groups of
//! [`LATENCY_GROUPS`] run a second time through the delay proxy, named `GROUP@lat` in
//! `BENCH_WORKLOADS` (`latency` stands for all of them) and reported as rows `WORKLOAD@MSms`.
//!
//! An override that is set but empty counts as unset (bash's `${BENCH_X:-default}`). The `--help`
//! text is the header comment of `scripts/bench.sh` (the one place it is written), read at build
//! time, so the script can print it without building and this program prints the same.

use super::error::{Error, Result};

/// Workload groups, in the order they run (`BENCH_WORKLOADS` selects some).
pub const ALL_GROUPS: [&str; 11] = [
    "seq_write",
    "seq_read",
    "par_read",
    "rand_read",
    "small_write",
    "small_read",
    "tar_x",
    "ls",
    "ls_big",
    "find",
    "rsync",
];

/// The groups that also run under latency (`--latency MS`), in the order they run: the chains and
/// fan-outs of small requests (BENCH.md, "Real latency"). In `BENCH_WORKLOADS` each is `GROUP@lat`.
pub const LATENCY_GROUPS: [&str; 4] = ["small_write", "small_read", "ls", "find"];
/// The suffix of a latency group's name in `BENCH_WORKLOADS`.
pub const LAT: &str = "@lat";
/// `BENCH_WORKLOADS`'s name for every latency group.
pub const LATENCY_ALIAS: &str = "latency";

/// The overrides that are reported in the result's command line when set (`BENCH_LATENCY_MS` is
/// reported as `--latency MS`).
pub const REPORTED_OVERRIDES: [&str; 12] = [
    "BENCH_REPS",
    "BENCH_SYSTEMS",
    "BENCH_BIG_MIB",
    "BENCH_FILES",
    "BENCH_TAR",
    "BENCH_PAR_MIB",
    "BENCH_RAND",
    "BENCH_LS",
    "BENCH_LS_BIG",
    "BENCH_LS_BIG_REPS",
    "BENCH_FIND",
    "BENCH_WORKLOADS",
];

/// The systems `BENCH_SYSTEMS` may name besides the raw client: cosmount, cosmount-la (with
/// `--listing-attributes`; also added after cosmount on the listing workloads), cosmount-wc (with
/// `--write-cache DIR`) and the peers.
pub const KNOWN_SYSTEMS: [&str; 5] = ["cosmount", "cosmount-la", "cosmount-wc", "s3fs", "rclone"];

/// Whether a system is cosmount in one of its modes (its checks decide the exit code; it is no
/// peer to install).
pub fn is_cosmount(sys: &str) -> bool {
    sys == "cosmount" || sys.starts_with("cosmount-")
}

/// The cosmount option that makes each cosmount-MODE system, if any.
pub fn cosmount_mode_option(sys: &str) -> Option<&'static str> {
    match sys {
        "cosmount-la" => Some("--listing-attributes"),
        "cosmount-wc" => Some("--write-cache"),
        _ => None,
    }
}

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
    /// Files of the tar_x tree.
    pub tar_n: u64,
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
    /// Workload groups to run (`GROUP@lat`: under latency).
    pub groups: Vec<String>,
    /// The round-trip the delay proxy adds for the latency groups (ms); `None`: no latency groups.
    pub latency_ms: Option<u64>,
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

/// The usage line of the error messages.
const USAGE: &str = "usage: scripts/bench.sh [--quick] [--label NAME] [--latency MS]";

fn latency_ms(v: &str, from: &str) -> Result<u64> {
    v.trim().parse().map_err(|_| {
        Error::Usage(format!(
            "bench: {from} must be a whole number of milliseconds, not {v:?}"
        ))
    })
}

/// Parses the arguments (without the program name) and the overrides read through `env`.
pub fn parse(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Parsed> {
    let mut quick = false;
    let mut label = String::new();
    let mut latency: Option<u64> = None;
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
            "--latency" => {
                i += 1;
                match args.get(i) {
                    Some(v) => latency = Some(latency_ms(v, "--latency")?),
                    None => {
                        return Err(Error::Usage(format!(
                            "bench: --latency needs a round-trip in ms ({USAGE})"
                        )))
                    }
                }
            }
            "-h" | "--help" => return Ok(Parsed::Help),
            _ => {
                if let Some(v) = a.strip_prefix("--label=") {
                    label = v.to_string();
                } else if let Some(v) = a.strip_prefix("--latency=") {
                    latency = Some(latency_ms(v, "--latency")?);
                } else {
                    return Err(Error::Usage(format!("bench: unknown argument {a} ({USAGE})")));
                }
            }
        }
        i += 1;
    }
    let latency = match (latency, env_nonempty(env, "BENCH_LATENCY_MS")) {
        (Some(ms), _) => Some(ms),
        (None, Some(v)) => Some(latency_ms(&v, "BENCH_LATENCY_MS")?),
        (None, None) => None,
    };
    let mode = if quick { Mode::Quick } else { Mode::Full };
    let reps_default = if quick { 1 } else { 3 };
    let reps: u32 = env_num(env, "BENCH_REPS", reps_default)?;
    let cfg = Config {
        mode,
        label: String::new(),
        big_mib: env_num(env, "BENCH_BIG_MIB", if quick { 32 } else { 1024 })?,
        files: env_num(env, "BENCH_FILES", if quick { 100 } else { 1000 })?,
        tar_n: env_num(env, "BENCH_TAR", if quick { 200 } else { 2000 })?,
        systems: systems(env_nonempty(env, "BENCH_SYSTEMS"), quick)?,
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
        groups: groups(env_nonempty(env, "BENCH_WORKLOADS"), latency)?,
        latency_ms: latency,
        keep: env("BENCH_KEEP").as_deref() == Some("1"),
    };
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

/// The systems: `BENCH_SYSTEMS` (each known, each once), else the mode's default.
fn systems(selected: Option<String>, quick: bool) -> Result<Vec<String>> {
    let selected = selected.unwrap_or_else(|| if quick { "cosmount" } else { "cosmount s3fs rclone" }.to_string());
    let mut v: Vec<String> = Vec::new();
    for s in selected.split_whitespace() {
        if !KNOWN_SYSTEMS.contains(&s) {
            return Err(Error::Usage(format!(
                "bench: unknown system {s} (BENCH_SYSTEMS; systems: {})",
                KNOWN_SYSTEMS.join(" ")
            )));
        }
        if !v.iter().any(|x| x == s) {
            v.push(s.to_string());
        }
    }
    Ok(v)
}

/// The workload groups: `BENCH_WORKLOADS` (with `latency` expanded), else every group (and, with a
/// latency, every latency group); checked against the known groups.
fn groups(selected: Option<String>, latency: Option<u64>) -> Result<Vec<String>> {
    let lat_groups = || LATENCY_GROUPS.iter().map(|g| format!("{g}{LAT}"));
    let Some(selected) = selected else {
        let mut v: Vec<String> = ALL_GROUPS.iter().map(|g| g.to_string()).collect();
        if latency.is_some() {
            v.extend(lat_groups());
        }
        return Ok(v);
    };
    let mut v = Vec::new();
    for g in selected.split_whitespace() {
        if g == LATENCY_ALIAS {
            v.extend(lat_groups());
            continue;
        }
        if let Some(base) = g.strip_suffix(LAT) {
            if !LATENCY_GROUPS.contains(&base) {
                return Err(Error::Usage(format!(
                    "bench: {g}: only {} run under latency (BENCH_WORKLOADS)",
                    LATENCY_GROUPS.join(" ")
                )));
            }
        } else if !ALL_GROUPS.contains(&g) {
            return Err(Error::Usage(format!(
                "bench: unknown workload group {g} (BENCH_WORKLOADS; groups: {}; under latency: {} or {LATENCY_ALIAS})",
                ALL_GROUPS.join(" "),
                lat_groups().collect::<Vec<_>>().join(" ")
            )));
        }
        v.push(g.to_string());
    }
    if latency.is_none() {
        if let Some(g) = v.iter().find(|g| g.ends_with(LAT)) {
            return Err(Error::Usage(format!(
                "bench: workload group {g} needs a latency: --latency MS (or BENCH_LATENCY_MS)"
            )));
        }
    }
    Ok(v)
}

impl Config {
    pub fn quick(&self) -> bool {
        self.mode == Mode::Quick
    }

    /// Whether workload group `g` runs (on loopback; `g@lat` for under latency).
    pub fn want(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }

    /// Whether workload group `g` runs under latency (`g@lat` is selected).
    pub fn want_lat(&self, g: &str) -> bool {
        self.latency_ms.is_some() && self.want(&format!("{g}{LAT}"))
    }

    /// Whether workload group `g` runs on loopback or under latency (its data set is needed).
    pub fn want_any(&self, g: &str) -> bool {
        self.want(g) || self.want_lat(g)
    }

    /// Whether any latency group runs (the delay proxy is needed).
    pub fn any_lat(&self) -> bool {
        LATENCY_GROUPS.iter().any(|g| self.want_lat(g))
    }

    /// The suffix of the latency rows' workload names: `@20ms` (`""` without a latency).
    pub fn lat_suffix(&self) -> String {
        self.latency_ms.map(|ms| format!("@{ms}ms")).unwrap_or_default()
    }

    pub fn big_bytes(&self) -> u64 {
        self.big_mib * 1024 * 1024
    }

    pub fn par_bytes(&self) -> u64 {
        self.par_mib * 1024 * 1024
    }

    /// The systems of the listing workloads: cosmount is followed by cosmount-la
    /// (`--listing-attributes`) unless BENCH_SYSTEMS names that itself.
    pub fn ls_systems(&self) -> Vec<String> {
        let mut v = Vec::new();
        let la_named = self.systems.iter().any(|s| s == "cosmount-la");
        for s in &self.systems {
            v.push(s.clone());
            if s == "cosmount" && !la_named {
                v.push("cosmount-la".to_string());
            }
        }
        v
    }

    /// Directories of the tar_x tree (a few dozen in full mode).
    pub fn tar_dirs(&self) -> u64 {
        (self.tar_n / 50).clamp(8, 200)
    }

    /// The command that reproduces this run, as the report shows it: the reported overrides
    /// (`NAME=value`, sorted), then `bash scripts/bench.sh [--quick] [--label NAME] [--latency MS]`.
    pub fn command_line(&self, env: &[(String, String)]) -> String {
        let mut cmd = "bash scripts/bench.sh".to_string();
        if self.quick() {
            cmd.push_str(" --quick");
        }
        if self.label != self.mode.as_str() {
            cmd.push_str(" --label ");
            cmd.push_str(&self.label);
        }
        if let Some(ms) = self.latency_ms {
            cmd.push_str(&format!(" --latency {ms}"));
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
        assert_eq!((c.tar_n, c.tar_dirs()), (200, 8));
        assert_eq!(c.groups.len(), 11);
        assert!(c.want("tar_x"));
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
        assert_eq!((c.tar_n, c.tar_dirs()), (2000, 40));
    }

    #[test]
    fn systems_are_checked_and_cosmount_modes_known() {
        let c = cfg(&[], &[("BENCH_SYSTEMS", "cosmount cosmount-wc s3fs rclone cosmount")]);
        assert_eq!(c.systems, vec!["cosmount", "cosmount-wc", "s3fs", "rclone"]);
        assert_eq!(
            c.ls_systems(),
            vec!["cosmount", "cosmount-la", "cosmount-wc", "s3fs", "rclone"]
        );
        // Named in BENCH_SYSTEMS, cosmount-la is not added a second time.
        let la = cfg(&["--quick"], &[("BENCH_SYSTEMS", "cosmount-la cosmount")]);
        assert_eq!(la.ls_systems(), vec!["cosmount-la", "cosmount"]);
        assert_eq!(
            cfg(&[], &[("BENCH_SYSTEMS", "cosmount-wc")]).ls_systems(),
            vec!["cosmount-wc"]
        );
        let e = parse_with(&[], &[("BENCH_SYSTEMS", "cosmount goofys")]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("bench: unknown system goofys"), "{e}");
        for s in ["cosmount", "cosmount-la", "cosmount-wc"] {
            assert!(is_cosmount(s), "{s}");
        }
        assert!(!is_cosmount("s3fs") && !is_cosmount("rclone") && !is_cosmount("raw"));
        assert_eq!(cosmount_mode_option("cosmount-wc"), Some("--write-cache"));
        assert_eq!(cosmount_mode_option("cosmount-la"), Some("--listing-attributes"));
        assert_eq!(cosmount_mode_option("cosmount"), None);
        assert_eq!(cfg(&[], &[("BENCH_TAR", "500")]).tar_dirs(), 10);
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
            "bench: unknown argument --bogus (usage: scripts/bench.sh [--quick] [--label NAME] [--latency MS])"
        );
    }

    #[test]
    fn latency_groups_and_overrides() {
        let off = cfg(&["--quick"], &[]);
        assert_eq!(
            (off.latency_ms, off.any_lat(), off.lat_suffix().as_str()),
            (None, false, "")
        );
        assert!(!off.want_lat("ls") && off.want_any("ls"));
        // With a latency, every group runs, then the latency groups.
        let c = cfg(&["--quick", "--latency", "20"], &[]);
        assert_eq!(c.latency_ms, Some(20));
        assert_eq!(c.groups.len(), 15);
        assert_eq!(
            &c.groups[11..],
            ["small_write@lat", "small_read@lat", "ls@lat", "find@lat"]
        );
        assert!(c.want("ls") && c.want_lat("ls") && c.want_lat("small_read") && !c.want_lat("rsync"));
        assert_eq!(c.lat_suffix(), "@20ms");
        // `latency` alone: the latency groups only; a single one selects itself.
        let only = cfg(&["--latency=5"], &[("BENCH_WORKLOADS", "latency")]);
        assert_eq!(only.groups, ["small_write@lat", "small_read@lat", "ls@lat", "find@lat"]);
        assert!(!only.want("ls") && only.want_lat("ls") && only.want_any("ls") && only.any_lat());
        let one = cfg(&[], &[("BENCH_LATENCY_MS", "30"), ("BENCH_WORKLOADS", "ls ls@lat")]);
        assert_eq!(one.latency_ms, Some(30));
        assert!(one.want("ls") && one.want_lat("ls") && !one.want_lat("find") && !one.want_any("find"));
        // The argument wins over the override; an empty override is unset; 0 is a latency.
        assert_eq!(
            cfg(&["--latency", "7"], &[("BENCH_LATENCY_MS", "30")]).latency_ms,
            Some(7)
        );
        assert_eq!(cfg(&[], &[("BENCH_LATENCY_MS", "")]).latency_ms, None);
        assert_eq!(cfg(&["--latency", "0"], &[]).lat_suffix(), "@0ms");
        // The command line says --latency, whichever way it was given.
        assert_eq!(
            only.command_line(&[("BENCH_WORKLOADS".to_string(), "latency".to_string())]),
            "BENCH_WORKLOADS=latency bash scripts/bench.sh --latency 5"
        );
        for (args, vars, msg) in [
            (vec!["--latency"], vec![], "bench: --latency needs a round-trip in ms"),
            (
                vec!["--latency", "20ms"],
                vec![],
                "bench: --latency must be a whole number",
            ),
            (
                vec![],
                vec![("BENCH_LATENCY_MS", "x")],
                "bench: BENCH_LATENCY_MS must be",
            ),
            (
                vec![],
                vec![("BENCH_WORKLOADS", "ls@lat")],
                "bench: workload group ls@lat needs a latency",
            ),
            (
                vec![],
                vec![("BENCH_WORKLOADS", "latency")],
                "bench: workload group small_write@lat needs",
            ),
            (
                vec!["--latency", "20"],
                vec![("BENCH_WORKLOADS", "rsync@lat")],
                "bench: rsync@lat: only",
            ),
            (
                vec!["--latency", "20"],
                vec![("BENCH_WORKLOADS", "ls@20ms")],
                "bench: unknown workload group ls@20ms",
            ),
        ] {
            match parse_with(&args, &vars) {
                Err(e) => {
                    assert_eq!(e.exit_code(), 2, "{args:?} {vars:?}: {e}");
                    assert!(e.to_string().starts_with(msg), "{args:?} {vars:?}: {e}");
                }
                Ok(p) => panic!("{args:?} {vars:?} parsed as {p:?}"),
            }
        }
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
        assert!(h.contains("scripts/bench.sh [--quick] [--label NAME] [--latency MS]"));
        assert!(h.contains("BENCH_LATENCY_MS"));
        assert!(h.contains("BENCH_KEEP=1"));
        assert!(!h.contains("set -euo"));
    }
}
