//! The result files: `bench/results/<date>-<label>.md` (the tables README quotes, then every run
//! in order) and `.json` (the same figures for tools), rendered from the [`Results`] and a few
//! facts about the run ([`RunInfo`]). The layout is the bash harness's, byte for byte, so older
//! results stay comparable.
//!
//! Tables: system × workload; a cell is `figure (ratio×)`, `FAILED`, or `—` (not measured); the
//! ratio is figure / baseline (see `stats::baseline_of`). The data table carries the peak-RSS
//! column (the metadata table only when there is no data table).

use std::fmt::Write as _;

use super::config::{
    Config, BLOCK, DIRS, FILE_SIZE, LS_SIZE, RAW_GET_CONC, RAW_HEAD_CONC, RAW_PART_MIB, RAW_PUT_CONC, RAW_RANGE_MIB,
    RAW_SMALL_CONC,
};
use super::results::{Results, Status};
use super::stats::{baseline_of, ratio, Unit};

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
        ("small_write", &["small_write"]),
        ("small_read", &["small_read"]),
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
        ("ls", &["ls_f_cold", "ls_l_cold", "ls_f_warm", "ls_l_warm"][..]),
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

/// A workload's column title.
pub fn title(cfg: &Config, cold: bool, wl: &str) -> String {
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
        "small_read" => format!("read {files} files after remount (files/s)"),
        "ls_f_cold" => format!("`ls -f` {ls}, {coldw} (s)"),
        "ls_l_cold" => format!("`ls -l` {ls}, {coldw} (s)"),
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
        Some(m) if sys == "cosmount" => {
            let budget = m + 64;
            format!("{r} of {budget} ({})", if *r <= budget { "within" } else { "OVER" })
        }
        _ => r.to_string(),
    }
}

/// A markdown table of `systems` × `workloads`, with the peak-RSS column when `rss`.
pub fn table(cfg: &Config, res: &Results, info: &RunInfo, systems: &[String], rss: bool, workloads: &[&str]) -> String {
    let mut t = String::new();
    if workloads.is_empty() {
        return t;
    }
    t.push_str("| system |");
    for w in workloads {
        let _ = write!(t, " {} |", title(cfg, info.cold, w));
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
            let _ = write!(t, " {} |", cell(res, s, w));
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

fn list(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The markdown report.
pub fn markdown(cfg: &Config, res: &Results, info: &RunInfo) -> String {
    let mut m = String::new();
    let (date, label, mode) = (&info.date, &cfg.label, cfg.mode.as_str());
    let ls_systems = cfg.ls_systems();
    let _ = writeln!(m, "# cosmount benchmark: {date}, {label} ({mode} mode)\n");
    let _ = writeln!(
        m,
        "`{}` — ratios are to the raw aws-sdk-s3 client in this same run (BENCH.md); for warm listings, to a local directory.\n",
        info.command
    );
    let _ = writeln!(
        m,
        "- Machine: {} CPUs, {} MiB RAM, kernel {}; load average (1/5/15 min) {} before the workloads, {} after; workloads took {} s.",
        info.nproc, info.mem_mib, info.kernel, info.load_before, info.load_after, info.elapsed
    );
    let _ = writeln!(
        m,
        "- Server: bench-server (s3s-fs 0.14.1 with TCP_NODELAY) on 127.0.0.1; 1-byte GET latency p50 {} ms, p99 {} ms.",
        info.lat_p50, info.lat_p99
    );
    let cold_text = if info.cold {
        "cold (page cache dropped, fresh mount each run)"
    } else {
        "NOT cold (could not drop the page cache), fresh mount each run"
    };
    let _ = writeln!(
        m,
        "- Data: one {} MiB random file; 4 random objects of {} MiB; {} random files of 32 KiB in {DIRS} directories; {} random 64 KiB-aligned offsets per run; listings: {} and {} objects of {LS_SIZE} bytes in one directory each, {} in {} directories. Median of {} runs ({} for the {} listing); reads and cold listings {cold_text}.",
        cfg.big_mib, cfg.par_mib, cfg.files, cfg.rand_n, cfg.ls_n, cfg.ls_big_n, cfg.find_n, cfg.find_dirs,
        cfg.reps, cfg.ls_big_reps, cfg.ls_big_n
    );
    let _ = writeln!(
        m,
        "- raw: bench/ raw-client (aws-sdk-s3, the mount's SDK): multipart {RAW_PART_MIB} MiB parts x {RAW_PUT_CONC}, ranged GETs {RAW_RANGE_MIB} MiB x {RAW_GET_CONC} (the 4 objects: one pool of {RAW_GET_CONC}), random 64 KiB ranged GETs 1 / 8 in flight, small PUT/GET {RAW_SMALL_CONC} in flight (LIST then GETs), listings: paginated ListObjectsV2 (1 000 a page; delimiter `/` for a directory, none for `find`), `ls -l` and `rsync`: LIST + HEAD of every key, {RAW_HEAD_CONC} in flight; CRC32 request checksums like the mount."
    );
    let mut opts = "`--force-path-style`, part size 8 MiB, upload concurrency 8".to_string();
    if let Some(mm) = info.max_memory_mib {
        let _ = write!(opts, ", `--max-memory {mm}M` (peak RSS shown against that + 64 MiB)");
    }
    let _ = writeln!(
        m,
        "- cosmount {}: defaults ({opts}); cosmount --listing-attributes: the same plus that option, on listings only (its cold `ls -l` ratio is to the raw LIST without HEADs).",
        info.cosmount_rev
    );
    if res.get("local", "ls_l_cold").map(|e| e.status) == Some(Status::Ok) {
        let _ = writeln!(
            m,
            "- local directory, cold `ls -l`: the same {} files after `echo 2 > /proc/sys/vm/drop_caches` (the kernel's dentries and inodes dropped, the directory's blocks still in the page cache): what building the inodes costs a local file system; its ratio is to the raw LIST, like cosmount --listing-attributes.",
            cfg.ls_n
        );
    }
    for s in &cfg.systems {
        let version = info
            .peer_versions
            .iter()
            .find(|(p, _)| p == s)
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        match s.as_str() {
            "s3fs" => {
                let _ = writeln!(m, "- s3fs ({version}): `-o url=ENDPOINT -o use_path_request_style -o passwd_file=FILE`, otherwise defaults.");
            }
            "rclone" => {
                let _ = writeln!(m, "- rclone mount ({version}): S3 remote (provider Other) from RCLONE_CONFIG_* variables, `--vfs-cache-mode writes --daemon`, otherwise defaults (write-back after 5 s: its write figures count until the objects are stored).");
            }
            _ => {}
        }
    }
    m.push_str("- Writes are timed until the data is stored in S3 (cp returning, including close, plus any upload after it) and then checked through the S3 API (size + MD5; byte-for-byte for the small files and the rsync tree); reads are checked through the mount (MD5; `diff -r`; every random block compared with the input); listings by entry count (and, for `ls -l`, every entry's size).\n");
    let _ = writeln!(
        m,
        "- Warm listings: the same command again right after the cold one on the same mount (cosmount's default --metadata-ttl is 1 s), against the same command on a local directory of {} files. `rsync -a --stats` after a first rsync and a remount; \"re-copied N\" when it transferred files again.\n",
        cfg.ls_n
    );
    let data = data_workloads(cfg);
    let meta = meta_workloads(cfg);
    if !data.is_empty() {
        m.push_str("Data (higher is better; ratio = figure / raw):\n\n");
        let mut systems = list(&["raw"]);
        systems.extend(cfg.systems.iter().cloned());
        m.push_str(&table(cfg, res, info, &systems, true, &data));
        m.push('\n');
    }
    if !meta.is_empty() {
        m.push_str("Listings and metadata (seconds, lower is better; ratio = time / baseline time: raw, or the local directory for warm listings):\n\n");
        let mut systems = list(&["raw"]);
        systems.extend(ls_systems.iter().cloned());
        if cfg.want("ls") {
            systems.push("local".to_string());
        }
        m.push_str(&table(cfg, res, info, &systems, data.is_empty(), &meta));
        m.push('\n');
    }
    m.push_str("Runs (in order):\n\n");
    for (s, w, e) in entries_in_order(cfg, res) {
        let runs = if e.runs.is_empty() {
            "none".to_string()
        } else {
            e.runs.join(" ")
        };
        let mut line = format!("- {}, {w}: {runs} {}", system_name(&s), Unit::of(w).as_str());
        if e.status != Status::Ok {
            line.push_str(" — FAILED");
        }
        if !e.note.is_empty() {
            let _ = write!(line, " — {}", e.note);
        }
        m.push_str(&line);
        m.push('\n');
    }
    if !res.rss_group.is_empty() {
        m.push_str("\nPeak RSS by workload group (MiB):");
        for s in &ls_systems {
            for g in [
                "seq_write",
                "seq_read_cold",
                "par_read_cold",
                "rand_read",
                "rand_read8",
                "small_write",
                "small_read",
                "ls",
                "ls_big",
                "find",
                "rsync",
            ] {
                if let Some(v) = res.rss_group.get(&(s.clone(), g.to_string())) {
                    let _ = write!(m, " {s} {g} {v};");
                }
            }
        }
        m.push('\n');
    }
    m
}

/// Every recorded entry: systems raw, the listing systems, local; workloads data then metadata.
fn entries_in_order<'a>(cfg: &Config, res: &'a Results) -> Vec<(String, &'static str, &'a super::results::Entry)> {
    let mut systems = list(&["raw"]);
    systems.extend(cfg.ls_systems());
    systems.push("local".to_string());
    let mut workloads = data_workloads(cfg);
    workloads.extend(meta_workloads(cfg));
    let mut v = Vec::new();
    for s in systems {
        for w in &workloads {
            if let Some(e) = res.get(&s, w) {
                v.push((s.clone(), *w, e));
            }
        }
    }
    v
}

/// A JSON string literal as the bash harness wrote it: `\` and `"` escaped, newlines as spaces.
pub fn json_str(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', " ")
    )
}

fn or_null(s: &str) -> &str {
    if s.is_empty() {
        "null"
    } else {
        s
    }
}

/// The JSON report.
pub fn json(cfg: &Config, res: &Results, info: &RunInfo) -> String {
    let mut j = String::new();
    let _ = writeln!(
        j,
        "{{\n  \"date\": {}, \"label\": {}, \"mode\": {}, \"command\": {},",
        json_str(&info.date),
        json_str(&cfg.label),
        json_str(cfg.mode.as_str()),
        json_str(&info.command)
    );
    let _ = writeln!(
        j,
        "  \"machine\": {{\"nproc\": {}, \"mem_mib\": {}, \"kernel\": {}, \"load_before\": {}, \"load_after\": {}, \"seconds\": {}}},",
        info.nproc,
        info.mem_mib,
        json_str(&info.kernel),
        json_str(&info.load_before),
        json_str(&info.load_after),
        info.elapsed
    );
    let _ = writeln!(
        j,
        "  \"server\": {{\"name\": \"bench-server (s3s-fs 0.14.1, TCP_NODELAY)\", \"latency_p50_ms\": {}, \"latency_p99_ms\": {}}},",
        info.lat_p50, info.lat_p99
    );
    let _ = writeln!(
        j,
        "  \"data\": {{\"big_bytes\": {}, \"big_md5\": {}, \"files\": {}, \"file_size\": {FILE_SIZE}, \"dirs\": {DIRS}, \"par_bytes\": {}, \"random_reads\": {}, \"block\": {BLOCK}, \"ls_entries\": {}, \"ls_big_entries\": {}, \"find_files\": {}, \"find_dirs\": {}, \"reps\": {}, \"ls_big_reps\": {}, \"cold\": {}}},",
        cfg.big_bytes(),
        json_str(&info.big_md5),
        cfg.files,
        cfg.par_bytes(),
        cfg.rand_n,
        cfg.ls_n,
        cfg.ls_big_n,
        cfg.find_n,
        cfg.find_dirs,
        cfg.reps,
        cfg.ls_big_reps,
        info.cold
    );
    let _ = writeln!(
        j,
        "  \"raw_client\": {{\"part_mib\": {RAW_PART_MIB}, \"put_concurrency\": {RAW_PUT_CONC}, \"range_mib\": {RAW_RANGE_MIB}, \"get_concurrency\": {RAW_GET_CONC}, \"small_concurrency\": {RAW_SMALL_CONC}, \"head_concurrency\": {RAW_HEAD_CONC}}},"
    );
    let _ = write!(j, "  \"versions\": {{\"cosmount\": {}", json_str(&info.cosmount_rev));
    for s in cfg.systems.iter().filter(|s| s.as_str() != "cosmount") {
        let version = info
            .peer_versions
            .iter()
            .find(|(p, _)| p == s)
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let _ = write!(j, ", {}: {}", json_str(s), json_str(version));
    }
    let max_mem = info
        .max_memory_mib
        .map(|m| m.to_string())
        .unwrap_or_else(|| "null".to_string());
    let _ = write!(
        j,
        "}},\n  \"cosmount_max_memory_mib\": {max_mem},\n  \"peak_rss_mib\": {{"
    );
    let rss: Vec<String> = cfg
        .ls_systems()
        .iter()
        .map(|s| {
            format!(
                "{}: {}",
                json_str(s),
                res.rss.get(s).map(|r| r.to_string()).unwrap_or_else(|| "null".into())
            )
        })
        .collect();
    j.push_str(&rss.join(", "));
    j.push_str("},\n  \"results\": [\n");
    let rows: Vec<String> = entries_in_order(cfg, res)
        .into_iter()
        .map(|(s, w, e)| {
            let unit = Unit::of(w);
            let (bs, bw) = baseline_of(&s, w);
            format!(
                "    {{\"system\": {}, \"workload\": {}, \"unit\": {}, \"better\": {}, \"status\": {}, \"figure\": {}, \"baseline\": {}, \"ratio\": {}, \"runs\": [{}], \"note\": {}}}",
                json_str(&s),
                json_str(w),
                json_str(unit.as_str()),
                json_str(unit.better()),
                json_str(e.status.as_str()),
                or_null(&e.figure),
                json_str(&format!("{bs} {bw}")),
                ratio_of(res, &s, w).unwrap_or_else(|| "null".to_string()),
                e.runs.join(", "),
                json_str(&e.note)
            )
        })
        .collect();
    j.push_str(&rows.join(",\n"));
    j.push_str("\n  ]\n}\n");
    j
}

#[cfg(test)]
mod tests;
