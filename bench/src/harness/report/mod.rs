//! The result files: `bench/results/<date>-<label>.md` (the tables README quotes, then every run
//! in order) and `.json` (the same figures for tools), rendered from the [`Results`] and a few
//! facts about the run ([`RunInfo`]). The layout is the bash harness's, byte for byte, so older
//! results stay comparable.
//!
//! Tables: system × workload; a cell is `figure (ratio×)`, `FAILED`, or `—` (not measured); the
//! ratio is figure / baseline (see `stats::baseline_of`). The data table carries the peak-RSS
//! column (the metadata table only when there is no data table). The latency rows (`--latency MS`,
//! workloads named `WORKLOAD@MSms`) have a table of their own, titled with the round-trip, their
//! ratios taken to the raw client through the same delay proxy. This file holds what both files
//! share (titles, names, cells, tables, the order of entries); `markdown.rs` and `json.rs` write
//! the files; `tests.rs` checks them against a real quick run of the bash harness
//! (`testdata/quick.{md,json}`).

use std::fmt::Write as _;

mod json;
mod markdown;

pub use json::{json, json_str};
pub use markdown::markdown;

use super::config::{Config, LATENCY_GROUPS};
use super::results::{Results, Status};
use super::stats::{baseline_of, ratio, split_row};

/// What the delay proxy did in a run with latency rows.
#[derive(Debug, Clone, Default)]
pub struct ProxyInfo {
    /// 1-byte GET latency through the proxy, p50 and p99 (ms).
    pub p50: String,
    pub p99: String,
    /// Requests that went through it (client→server bursts).
    pub requests: u64,
}

/// Facts about the run that the report states besides the figures.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub date: String,
    /// The command that reproduces the run (see `Config::command_line`).
    pub command: String,
    pub nproc: String,
    pub mem_mib: u64,
    pub kernel: String,
    pub load_before: String,
    pub load_after: String,
    /// Seconds the workloads took (rounded).
    pub elapsed: String,
    pub lat_p50: String,
    pub lat_p99: String,
    /// The delay proxy, when latency rows ran.
    pub proxy: Option<ProxyInfo>,
    pub big_md5: String,
    /// Whether the page cache could be dropped.
    pub cold: bool,
    /// cosmount's git revision (`abc1234` or `abc1234 + uncommitted changes`).
    pub cosmount_rev: String,
    /// `--max-memory` given to cosmount (MiB), if the build has it.
    pub max_memory_mib: Option<u64>,
    /// Each peer's version line, in the order of the systems.
    pub peer_versions: Vec<(String, String)>,
}

/// The workloads of the data table, in order.
pub fn data_workloads(cfg: &Config) -> Vec<&'static str> {
    let mut v = Vec::new();
    for (g, wls) in [
        ("seq_write", &["seq_write"][..]),
        ("seq_read", &["seq_read_cold"]),
        ("par_read", &["par_read_cold"]),
        ("rand_read", &["rand_read", "rand_read8"]),
        ("small_write", &["small_write", "small_write_s3"]),
        ("small_read", &["small_read"]),
        ("tar_x", &["tar_x", "tar_x_s3"]),
    ] {
        if cfg.want(g) {
            v.extend_from_slice(wls);
        }
    }
    v
}

/// The workloads of the listings-and-metadata table, in order.
pub fn meta_workloads(cfg: &Config) -> Vec<&'static str> {
    let mut v = Vec::new();
    for (g, wls) in [
        (
            "ls",
            &["ls_f_cold", "ls_l_cold", "ls_l_next", "ls_f_warm", "ls_l_warm"][..],
        ),
        ("ls_big", &["ls_f_big_cold", "ls_f_big_first"]),
        ("find", &["find_cold"]),
        ("rsync", &["rsync2"]),
    ] {
        if cfg.want(g) {
            v.extend_from_slice(wls);
        }
    }
    v
}

/// The workloads of the latency table (`WORKLOAD@MSms`), in order: the small files, then the
/// listings, as their loopback rows.
pub fn latency_workloads(cfg: &Config) -> Vec<String> {
    let sfx = cfg.lat_suffix();
    let mut v = Vec::new();
    for g in LATENCY_GROUPS {
        if !cfg.want_lat(g) {
            continue;
        }
        let wls: &[&str] = match g {
            "ls" => &["ls_f_cold", "ls_l_cold", "ls_l_next", "ls_f_warm", "ls_l_warm"],
            "find" => &["find_cold"],
            "small_write" => &["small_write", "small_write_s3"],
            other => &[other][..],
        };
        v.extend(wls.iter().map(|w| format!("{w}{sfx}")));
    }
    v
}

/// A workload's column title; a latency row's is its workload's with the round-trip before the
/// unit: "`ls -l` 300, cold @20ms (s)".
pub fn title(cfg: &Config, cold: bool, wl: &str) -> String {
    let (base, sfx) = split_row(wl);
    let t = base_title(cfg, cold, base);
    if sfx.is_empty() {
        return t;
    }
    match t.rfind(" (") {
        Some(i) => format!("{} {sfx}{}", &t[..i], &t[i..]),
        None => format!("{t} {sfx}"),
    }
}

fn base_title(cfg: &Config, cold: bool, wl: &str) -> String {
    let coldw = if cold { "cold" } else { "warm" };
    let (big, par, files) = (cfg.big_mib, cfg.par_mib, cfg.files);
    let (ls, lsb, find) = (cfg.ls_n, cfg.ls_big_n, cfg.find_n);
    match wl {
        "seq_write" => format!("seq write {big} MiB (MB/s)"),
        "seq_read_cold" => format!("seq read {big} MiB {coldw} (MB/s)"),
        "par_read_cold" => format!("4 × {par} MiB read at once, {coldw} (MB/s)"),
        "rand_read" => "random 64 KiB reads, 1 in flight (ops/s)".to_string(),
        "rand_read8" => "random 64 KiB reads, 8 in flight (ops/s)".to_string(),
        "small_write" => format!("cp -r {files} x 32 KiB (files/s)"),
        "small_write_s3" => format!("cp -r {files} x 32 KiB, until in S3 (files/s)"),
        "tar_x" => format!("tar x {} files (files/s)", cfg.tar_n),
        "tar_x_s3" => format!("tar x {} files, until in S3 (files/s)", cfg.tar_n),
        "small_read" => format!("read {files} files after remount (files/s)"),
        "ls_f_cold" => format!("`ls -f` {ls}, {coldw} (s)"),
        "ls_l_cold" => format!("`ls -l` {ls}, {coldw} (s)"),
        "ls_l_next" => format!("`ls -l` {ls}, next mount (s)"),
        "ls_f_warm" => format!("`ls -f` {ls}, warm (s)"),
        "ls_l_warm" => format!("`ls -l` {ls}, warm (s)"),
        "ls_f_big_cold" => format!("`ls -f` {lsb}, {coldw} (s)"),
        "ls_f_big_first" => format!("{lsb}: first entry, {coldw} (s)"),
        "find_cold" => format!("`find` {find} files, {coldw} (s)"),
        "rsync2" => format!("2nd `rsync -a` {files} files (s)"),
        other => other.to_string(),
    }
}

/// A system's name in the report.
pub fn system_name(sys: &str) -> &str {
    match sys {
        "raw" => "raw aws-sdk-s3",
        "cosmount-la" => "cosmount --listing-attributes",
        "cosmount-wc" => "cosmount --write-cache",
        "rclone" => "rclone mount",
        "local" => "local directory",
        other => other,
    }
}

/// The ratio of `sys`'s figure for `wl` to its baseline, when both passed.
pub fn ratio_of(res: &Results, sys: &str, wl: &str) -> Option<String> {
    let e = res.get(sys, wl)?;
    let (bs, bw) = baseline_of(sys, wl);
    let b = res.get(bs, &bw)?;
    if e.status != Status::Ok || b.status != Status::Ok || e.figure.is_empty() || b.figure.is_empty() {
        return None;
    }
    Some(ratio(&e.figure, &b.figure))
}

fn cell(res: &Results, sys: &str, wl: &str) -> String {
    let Some(e) = res.get(sys, wl) else {
        return "—".to_string();
    };
    if e.status != Status::Ok {
        return "FAILED".to_string();
    }
    let mut s = e.figure.clone();
    if let Some(r) = ratio_of(res, sys, wl) {
        let _ = write!(s, " ({r}×)");
    }
    if wl == "rsync2" {
        if let Some(n) = res.recopied.get(sys).filter(|n| n.as_str() != "0") {
            let _ = write!(s, " re-copied {n}");
        }
    }
    s
}

fn rss_cell(res: &Results, info: &RunInfo, sys: &str) -> String {
    let Some(r) = res.rss.get(sys) else {
        return "—".to_string();
    };
    match info.max_memory_mib {
        Some(m) if sys == "cosmount" || sys == "cosmount-wc" => {
            let budget = m + 64;
            format!("{r} of {budget} ({})", if *r <= budget { "within" } else { "OVER" })
        }
        _ => r.to_string(),
    }
}

/// A markdown table of `systems` × `workloads`, with the peak-RSS column when `rss`.
pub fn table<W: AsRef<str>>(
    cfg: &Config,
    res: &Results,
    info: &RunInfo,
    systems: &[String],
    rss: bool,
    workloads: &[W],
) -> String {
    let mut t = String::new();
    if workloads.is_empty() {
        return t;
    }
    t.push_str("| system |");
    for w in workloads {
        let _ = write!(t, " {} |", title(cfg, info.cold, w.as_ref()));
    }
    t.push_str(if rss { " peak RSS (MiB) |\n" } else { "\n" });
    t.push_str("|---|");
    for _ in workloads {
        t.push_str("---:|");
    }
    t.push_str(if rss { "---:|\n" } else { "\n" });
    for s in systems {
        let _ = write!(t, "| {} |", system_name(s));
        for w in workloads {
            let _ = write!(t, " {} |", cell(res, s, w.as_ref()));
        }
        if !rss {
            t.push('\n');
        } else if s == "raw" {
            t.push_str(" — |\n");
        } else {
            let _ = writeln!(t, " {} |", rss_cell(res, info, s));
        }
    }
    t
}

/// Columns that older runs did not measure: a table has them only when this run recorded them
/// (so that an older run's results render as they always did).
pub fn measured(res: &Results, wl: &str) -> bool {
    let optional = ["ls_l_next", "small_write_s3", "tar_x", "tar_x_s3"];
    !optional.contains(&split_row(wl).0) || res.has_workload(wl)
}

pub(crate) fn list(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every recorded entry: systems raw, the listing systems, local; workloads data, metadata, then
/// the latency rows.
pub(crate) fn entries_in_order<'a>(cfg: &Config, res: &'a Results) -> Vec<(String, String, &'a super::results::Entry)> {
    let mut systems = list(&["raw"]);
    systems.extend(cfg.ls_systems());
    systems.push("local".to_string());
    let mut workloads: Vec<String> = data_workloads(cfg).into_iter().map(String::from).collect();
    workloads.extend(meta_workloads(cfg).into_iter().map(String::from));
    workloads.extend(latency_workloads(cfg));
    let mut v = Vec::new();
    for s in systems {
        for w in &workloads {
            if let Some(e) = res.get(&s, w) {
                v.push((s.clone(), w.clone(), e));
            }
        }
    }
    v
}

#[cfg(test)]
mod tests;
