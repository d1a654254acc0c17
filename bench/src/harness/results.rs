//! The results table being filled: one entry per (system, workload) with its status, figure
//! (median of the runs), runs and note, plus peak RSS per system and per workload group, and the
//! rsync re-copy counts.
//!
//! Rounds: a workload group runs REPS times over (the raw client and every system once per round,
//! so the machine's drift reaches all alike). In a later round, [`Results::record`] adds the new
//! run to the earlier ones and takes the median again; once an entry failed, later rounds leave it
//! failed; a failure in a later round keeps the earlier runs in the failed entry.
//!
//! Latency rows: while the latency groups run, [`Results::suffix`] is `@MSms` and every workload
//! and group recorded gets it (`ls_l_cold@20ms`), so the same workload code fills rows of its own.

use std::collections::HashMap;

use super::config::is_cosmount;
use super::log;
use super::stats::median;

/// Whether an entry's checks passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
        }
    }
}

/// One cell of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub status: Status,
    /// The median of `runs` (`""` when failed).
    pub figure: String,
    pub runs: Vec<String>,
    pub note: String,
}

/// All results of a run.
#[derive(Debug, Default)]
pub struct Results {
    entries: HashMap<(String, String), Entry>,
    /// Set while a group runs in rounds: a second record of a key joins the first.
    pub accumulate: bool,
    /// The current round, from 0 (for the log line).
    pub round: u32,
    /// Appended to the workload and group names recorded (`@20ms` under latency, else empty).
    pub suffix: String,
    /// A check of the raw client or of cosmount (in any mode) failed: the run exits 1.
    pub failed_core: bool,
    /// Peak RSS (MiB) per system (cosmount-la's also counts for cosmount).
    pub rss: HashMap<String, u64>,
    /// Peak RSS (MiB) per (system, workload group).
    pub rss_group: HashMap<(String, String), u64>,
    /// Files the second rsync re-copied, per system (the last non-zero run's count, else the first).
    pub recopied: HashMap<String, String>,
}

fn key(sys: &str, wl: &str) -> (String, String) {
    (sys.to_string(), wl.to_string())
}

impl Results {
    pub fn get(&self, sys: &str, wl: &str) -> Option<&Entry> {
        self.entries.get(&key(sys, wl))
    }

    /// Whether any system has a result for `wl`.
    pub fn has_workload(&self, wl: &str) -> bool {
        self.entries.keys().any(|(_, w)| w == wl)
    }

    /// Records a system's result for a workload (see the module doc for rounds) and logs it.
    pub fn record(&mut self, sys: &str, wl: &str, status: Status, figure: &str, runs: &[String], note: &str) {
        let wl = &format!("{wl}{}", self.suffix);
        let k = key(sys, wl);
        let mut runs = runs.to_vec();
        if self.accumulate {
            if let Some(e) = self.entries.get_mut(&k) {
                if e.status != Status::Ok {
                    return;
                }
                if status == Status::Ok {
                    e.runs.extend(runs);
                    e.figure = median(&e.runs);
                    if !note.is_empty() && note != e.note {
                        e.note = if e.note.is_empty() {
                            note.to_string()
                        } else {
                            format!("{}; {note}", e.note)
                        };
                    }
                    log(&format!(
                        "  {sys} {wl}: {figure} (round {}; median so far {})",
                        self.round + 1,
                        e.figure
                    ));
                    return;
                }
                let mut all = e.runs.clone();
                all.append(&mut runs);
                runs = all;
            }
        }
        if status != Status::Ok && (sys == "raw" || is_cosmount(sys)) {
            self.failed_core = true;
        }
        if status == Status::Ok {
            let note_part = if note.is_empty() {
                String::new()
            } else {
                format!(" — {note}")
            };
            log(&format!("  {sys} {wl}: {figure} (runs: {}){note_part}", runs.join(" ")));
        } else {
            let note_part = if note.is_empty() {
                String::new()
            } else {
                format!(" — {note}")
            };
            log(&format!("  {sys} {wl}: {}{note_part}", status.as_str()));
        }
        self.entries.insert(
            k,
            Entry {
                status,
                figure: figure.to_string(),
                runs,
                note: note.to_string(),
            },
        );
    }

    /// `record` of a success: the median of `runs` as the figure.
    pub fn ok(&mut self, sys: &str, wl: &str, runs: &[String], note: &str) {
        self.record(sys, wl, Status::Ok, &median(runs), runs, note);
    }

    /// `record` of a failure with the runs so far and why.
    pub fn failed(&mut self, sys: &str, wl: &str, runs: &[String], why: &str) {
        self.record(sys, wl, Status::Failed, "", runs, why);
    }

    /// Notes a daemon's peak RSS (MiB) in a workload group.
    pub fn note_rss(&mut self, sys: &str, group: &str, mib: u64) {
        let group = format!("{group}{}", self.suffix);
        let g = self.rss_group.entry(key(sys, &group)).or_insert(0);
        *g = (*g).max(mib);
        for s in [sys, sys.trim_end_matches("-la")] {
            let r = self.rss.entry(s.to_string()).or_insert(0);
            *r = (*r).max(mib);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_record_keeps_the_median() {
        let mut r = Results::default();
        r.ok("raw", "seq_write", &v(&["40.0", "49.3", "45.1"]), "");
        let e = r.get("raw", "seq_write").unwrap();
        assert_eq!((e.status, e.figure.as_str()), (Status::Ok, "45.1"));
        assert_eq!(e.runs, v(&["40.0", "49.3", "45.1"]));
        assert!(!r.failed_core);
    }

    #[test]
    fn rounds_accumulate_runs_and_notes() {
        let mut r = Results {
            accumulate: true,
            ..Default::default()
        };
        r.ok("cosmount", "seq_write", &v(&["50.0"]), "");
        r.round = 1;
        r.ok("cosmount", "seq_write", &v(&["60.0"]), "cp returned early");
        r.round = 2;
        r.ok("cosmount", "seq_write", &v(&["55.0"]), "cp returned early");
        let e = r.get("cosmount", "seq_write").unwrap();
        assert_eq!(e.runs, v(&["50.0", "60.0", "55.0"]));
        assert_eq!(e.figure, "55.0");
        assert_eq!(e.note, "cp returned early");
        r.ok("cosmount", "seq_write", &v(&["1.0"]), "other");
        assert_eq!(r.get("cosmount", "seq_write").unwrap().note, "cp returned early; other");
        assert_eq!(r.get("cosmount", "seq_write").unwrap().figure, "52.5");
    }

    #[test]
    fn a_failed_round_sticks_and_keeps_earlier_runs() {
        let mut r = Results {
            accumulate: true,
            ..Default::default()
        };
        r.ok("s3fs", "small_read", &v(&["10.0"]), "");
        r.failed("s3fs", "small_read", &v(&[]), "find/cat failed");
        r.ok("s3fs", "small_read", &v(&["12.0"]), "");
        let e = r.get("s3fs", "small_read").unwrap();
        assert_eq!(e.status, Status::Failed);
        assert_eq!(e.runs, v(&["10.0"]));
        assert_eq!(e.note, "find/cat failed");
        assert_eq!(e.figure, "");
        assert!(!r.failed_core, "a peer's failure is not fatal");
    }

    #[test]
    fn failures_of_raw_or_cosmount_are_core() {
        for sys in ["raw", "cosmount", "cosmount-la", "cosmount-wc"] {
            let mut r = Results::default();
            r.failed(sys, "ls_f_cold", &[], "x");
            assert!(r.failed_core, "{sys}");
        }
    }

    #[test]
    fn without_rounds_a_second_record_replaces() {
        let mut r = Results::default();
        r.failed("cosmount", "ls_f_big_first", &[], "mount");
        r.ok("cosmount", "ls_f_big_first", &v(&["0.01"]), "");
        assert_eq!(r.get("cosmount", "ls_f_big_first").unwrap().status, Status::Ok);
    }

    #[test]
    fn the_suffix_names_latency_rows_and_groups() {
        let mut r = Results::default();
        r.ok("raw", "ls_l_cold", &v(&["0.15"]), "");
        r.suffix = "@20ms".into();
        r.accumulate = true;
        r.ok("raw", "ls_l_cold", &v(&["0.9"]), "");
        r.ok("raw", "ls_l_cold", &v(&["1.1"]), "");
        r.failed("cosmount", "find_cold", &[], "mount");
        r.note_rss("cosmount", "ls", 20);
        assert_eq!(
            r.get("raw", "ls_l_cold").unwrap().runs,
            v(&["0.15"]),
            "the loopback row is apart"
        );
        assert_eq!(r.get("raw", "ls_l_cold@20ms").unwrap().runs, v(&["0.9", "1.1"]));
        assert_eq!(r.get("raw", "ls_l_cold@20ms").unwrap().figure, "1");
        assert_eq!(r.get("cosmount", "find_cold@20ms").unwrap().status, Status::Failed);
        assert!(r.get("cosmount", "find_cold").is_none());
        assert!(r.failed_core);
        assert_eq!(r.rss_group[&key("cosmount", "ls@20ms")], 20);
        assert_eq!(r.rss["cosmount"], 20);
    }

    #[test]
    fn rss_peaks() {
        let mut r = Results::default();
        r.note_rss("cosmount", "seq_write", 63);
        r.note_rss("cosmount", "seq_write", 40);
        r.note_rss("cosmount-la", "ls", 70);
        assert_eq!(r.rss_group[&key("cosmount", "seq_write")], 63);
        assert_eq!(r.rss["cosmount-la"], 70);
        assert_eq!(r.rss["cosmount"], 70, "cosmount-la's peak counts for cosmount");
    }
}
