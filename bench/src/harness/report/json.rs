//! The JSON result file: the same facts and figures as the markdown, for tools (one object per
//! (system, workload) with its unit, which way is better, baseline and ratio; with `--latency MS`
//! a `latency` object and, on each latency row, its `rtt_ms`).

use std::fmt::Write as _;

use super::super::config::is_cosmount;
use super::super::config::{
    Config, BLOCK, DIRS, FILE_SIZE, RAW_GET_CONC, RAW_HEAD_CONC, RAW_PART_MIB, RAW_PUT_CONC, RAW_RANGE_MIB,
    RAW_SMALL_CONC,
};
use super::super::datasets::tar_layout;
use super::super::results::Results;
use super::super::stats::{baseline_of, split_row, Unit};
use super::{entries_in_order, ratio_of, RunInfo};

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
    if let (Some(ms), Some(p)) = (cfg.latency_ms, &info.proxy) {
        let _ = writeln!(
            j,
            "  \"latency\": {{\"rtt_ms\": {ms}, \"row_suffix\": {}, \"proxy\": \"delay proxy in bench-harness: first bytes of each request and of each response held rtt_ms / 2, TCP_NODELAY\", \"latency_p50_ms\": {}, \"latency_p99_ms\": {}, \"requests\": {}}},",
            json_str(&cfg.lat_suffix()),
            or_null(&p.p50),
            or_null(&p.p99),
            p.requests
        );
    }
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
    if res.has_workload("tar_x") {
        // Inside "data" (its closing brace and comma re-added after).
        j.truncate(j.len() - "},\n".len());
        let (dirs, files) = tar_layout(cfg.tar_n, cfg.tar_dirs());
        let bytes: u64 = files.iter().map(|f| f.1).sum();
        let _ = writeln!(
            j,
            ", \"tar_files\": {}, \"tar_dirs\": {}, \"tar_bytes\": {bytes}}},",
            files.len(),
            dirs.len()
        );
    }
    let _ = writeln!(
        j,
        "  \"raw_client\": {{\"part_mib\": {RAW_PART_MIB}, \"put_concurrency\": {RAW_PUT_CONC}, \"range_mib\": {RAW_RANGE_MIB}, \"get_concurrency\": {RAW_GET_CONC}, \"small_concurrency\": {RAW_SMALL_CONC}, \"head_concurrency\": {RAW_HEAD_CONC}}},"
    );
    let _ = write!(j, "  \"versions\": {{\"cosmount\": {}", json_str(&info.cosmount_rev));
    for s in cfg.systems.iter().filter(|s| !is_cosmount(s)) {
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
            let unit = Unit::of(&w);
            let (bs, bw) = baseline_of(&s, &w);
            // A latency row says its round-trip (loopback rows are as they always were).
            let rtt = match (split_row(&w).1, cfg.latency_ms) {
                ("", _) | (_, None) => String::new(),
                (_, Some(ms)) => format!(", \"rtt_ms\": {ms}"),
            };
            format!(
                "    {{\"system\": {}, \"workload\": {}{rtt}, \"unit\": {}, \"better\": {}, \"status\": {}, \"figure\": {}, \"baseline\": {}, \"ratio\": {}, \"runs\": [{}], \"note\": {}}}",
                json_str(&s),
                json_str(&w),
                json_str(unit.as_str()),
                json_str(unit.better()),
                json_str(e.status.as_str()),
                or_null(&e.figure),
                json_str(&format!("{bs} {bw}")),
                ratio_of(res, &s, &w).unwrap_or_else(|| "null".to_string()),
                e.runs.join(", "),
                json_str(&e.note)
            )
        })
        .collect();
    j.push_str(&rows.join(",\n"));
    j.push_str("\n  ]\n}\n");
    j
}
