//! Report rendering tested on the figures of a real quick run of the bash harness
//! (`testdata/quick.{md,json}`): the same results and run facts must give the same files, byte for
//! byte, and the tables' cells (ratios, baselines, RSS budget, re-copied counts) are checked too.

use super::*;
use crate::harness::config::{parse, Parsed};

/// (system, workload, runs, note) of the reference run, in recording order.
const ROWS: &[(&str, &str, &[&str], &str)] = &[
    ("raw", "seq_write", &["49.3"], ""),
    ("raw", "seq_read_cold", &["212.2"], ""),
    ("raw", "par_read_cold", &["324.2"], ""),
    ("raw", "rand_read", &["327.6"], ""),
    ("raw", "rand_read8", &["1191.1"], ""),
    ("raw", "small_write", &["1773.0"], ""),
    ("raw", "small_read", &["1297.0"], ""),
    ("raw", "ls_f_cold", &["0.0045"], "paginated LIST with delimiter"),
    (
        "raw",
        "ls_l_cold",
        &["0.1586"],
        "LIST + HEAD of every key, 32 in flight",
    ),
    ("raw", "ls_f_big_cold", &["0.0136"], "paginated LIST with delimiter"),
    ("raw", "ls_f_big_first", &["0.0076"], "first page of 1 000 keys"),
    ("raw", "find_cold", &["0.0024"], "paginated LIST without delimiter"),
    (
        "raw",
        "rsync2",
        &["0.0595"],
        "LIST (no delimiter) + HEAD of every key, 32 in flight",
    ),
    ("cosmount", "seq_write", &["56.1"], ""),
    ("cosmount", "seq_read_cold", &["121.5"], ""),
    ("cosmount", "par_read_cold", &["173.2"], ""),
    ("cosmount", "rand_read", &["362.2"], ""),
    ("cosmount", "rand_read8", &["500.7"], ""),
    ("cosmount", "small_write", &["299.0"], ""),
    ("cosmount", "small_read", &["243.8"], ""),
    ("cosmount", "ls_f_cold", &["0.0141"], ""),
    ("cosmount", "ls_l_cold", &["0.1692"], ""),
    ("cosmount", "ls_f_warm", &["0.0031"], ""),
    ("cosmount", "ls_l_warm", &["0.0219"], ""),
    ("cosmount", "ls_f_big_cold", &["0.0208"], ""),
    (
        "cosmount",
        "ls_f_big_first",
        &["0.01"],
        "os.scandir's first entry, fresh mount",
    ),
    ("cosmount", "find_cold", &["0.0257"], ""),
    (
        "cosmount",
        "rsync2",
        &["0.3826"],
        "first rsync 1.8252 s; files re-copied by the second: 0",
    ),
    ("cosmount-la", "ls_f_cold", &["0.0122"], ""),
    ("cosmount-la", "ls_l_cold", &["0.0788"], ""),
    ("cosmount-la", "ls_f_warm", &["0.0034"], ""),
    ("cosmount-la", "ls_l_warm", &["0.0105"], ""),
    ("cosmount-la", "ls_f_big_cold", &["0.0172"], ""),
    (
        "cosmount-la",
        "ls_f_big_first",
        &["0.0125"],
        "os.scandir's first entry, fresh mount",
    ),
    ("cosmount-la", "find_cold", &["0.0209"], ""),
    (
        "local",
        "ls_l_cold",
        &["0.0186"],
        "dentries and inodes dropped (echo 2 > drop_caches), blocks in the page cache",
    ),
    ("local", "ls_f_warm", &["0.0029"], ""),
    ("local", "ls_l_warm", &["0.0138"], ""),
];

/// (system, workload group, peak RSS MiB) of the reference run.
const RSS_GROUPS: &[(&str, &str, u64)] = &[
    ("cosmount", "seq_write", 63),
    ("cosmount", "seq_read_cold", 50),
    ("cosmount", "par_read_cold", 54),
    ("cosmount", "rand_read", 29),
    ("cosmount", "rand_read8", 30),
    ("cosmount", "small_write", 20),
    ("cosmount", "small_read", 20),
    ("cosmount", "ls", 20),
    ("cosmount", "ls_big", 19),
    ("cosmount", "find", 16),
    ("cosmount", "rsync", 21),
    ("cosmount-la", "ls", 16),
    ("cosmount-la", "ls_big", 18),
    ("cosmount-la", "find", 16),
];

fn quick_config(label: &str) -> Config {
    let args = vec!["--quick".to_string(), "--label".to_string(), label.to_string()];
    match parse(&args, &|_| None) {
        Ok(Parsed::Run(c)) => c,
        other => panic!("{other:?}"),
    }
}

fn reference() -> (Config, Results, RunInfo) {
    let cfg = quick_config("old-quick");
    let mut res = Results::default();
    for (s, w, runs, note) in ROWS {
        let runs: Vec<String> = runs.iter().map(|r| r.to_string()).collect();
        res.ok(s, w, &runs, note);
    }
    for (s, g, mib) in RSS_GROUPS {
        res.note_rss(s, g, *mib);
    }
    res.recopied.insert("cosmount".into(), "0".into());
    let info = RunInfo {
        date: "2026-12-04".into(),
        command: cfg.command_line(&[]),
        nproc: "2".into(),
        mem_mib: 24105,
        kernel: "6.18.44-fc-v1147".into(),
        load_before: "2.38 2.09 2.02".into(),
        load_after: "2.67 2.24 2.08".into(),
        elapsed: "65".into(),
        lat_p50: "0.259".into(),
        lat_p99: "2.525".into(),
        proxy: None,
        big_md5: "5f718677b9ca2778f482f44e6f12400b".into(),
        cold: true,
        cosmount_rev: "8c3c4ef".into(),
        max_memory_mib: Some(512),
        peer_versions: vec![],
    };
    (cfg, res, info)
}

#[test]
fn markdown_is_the_bash_harness_report() {
    let (cfg, res, info) = reference();
    let md = markdown(&cfg, &res, &info);
    let want = include_str!("testdata/quick.md");
    for (i, (got, want)) in md.lines().zip(want.lines()).enumerate() {
        assert_eq!(got, want, "line {}", i + 1);
    }
    assert_eq!(md, want);
}

#[test]
fn json_is_the_bash_harness_report() {
    let (cfg, res, info) = reference();
    let j = json(&cfg, &res, &info);
    let want = include_str!("testdata/quick.json");
    for (i, (got, want)) in j.lines().zip(want.lines()).enumerate() {
        assert_eq!(got, want, "line {}", i + 1);
    }
    assert_eq!(j, want);
    // And it is valid JSON with the figures as numbers.
    let v: serde_json::Value = serde_json::from_str(&j).expect("valid JSON");
    let r = &v["results"][14];
    assert_eq!(r["system"], "cosmount");
    assert_eq!(r["workload"], "seq_read_cold");
    assert_eq!(r["ratio"], 0.57);
    assert_eq!(v["peak_rss_mib"]["cosmount"], 63);
}

#[test]
fn cells_ratios_and_baselines() {
    let (cfg, res, info) = reference();
    assert_eq!(cell(&res, "cosmount", "seq_write"), "56.1 (1.14×)");
    // cosmount-la's cold `ls -l` is compared with the raw LIST (0.0045), not LIST + HEAD.
    assert_eq!(cell(&res, "cosmount-la", "ls_l_cold"), "0.0788 (17.51×)");
    // Warm listings are compared with the local directory.
    assert_eq!(cell(&res, "cosmount", "ls_l_warm"), "0.0219 (1.59×)");
    assert_eq!(cell(&res, "raw", "ls_f_warm"), "—");
    assert_eq!(rss_cell(&res, &info, "cosmount"), "63 of 576 (within)");
    assert_eq!(rss_cell(&res, &info, "cosmount-la"), "18");
    let no_budget = RunInfo {
        max_memory_mib: None,
        ..info.clone()
    };
    assert_eq!(rss_cell(&res, &no_budget, "cosmount"), "63");
    let mut res2 = Results::default();
    res2.note_rss("cosmount", "seq_write", 600);
    assert_eq!(rss_cell(&res2, &info, "cosmount"), "600 of 576 (OVER)");
    let _ = cfg;
}

#[test]
fn failures_and_recopies_show_in_cells() {
    let (cfg, mut res, info) = reference();
    res.recopied.insert("cosmount".into(), "1000".into());
    assert_eq!(cell(&res, "cosmount", "rsync2"), "0.3826 (6.43×) re-copied 1000");
    res.failed("raw", "seq_write", &[], "put-multipart failed");
    // The raw figure failed: no ratio for anyone.
    assert_eq!(cell(&res, "raw", "seq_write"), "FAILED");
    assert_eq!(ratio_of(&res, "cosmount", "seq_write"), None);
    assert_eq!(cell(&res, "cosmount", "seq_write"), "56.1");
    let md = markdown(&cfg, &res, &info);
    assert!(
        md.contains("- raw aws-sdk-s3, seq_write: none MB/s — FAILED — put-multipart failed\n"),
        "{md}"
    );
    assert!(json(&cfg, &res, &info).contains(
        r#"{"system": "raw", "workload": "seq_write", "unit": "MB/s", "better": "higher", "status": "failed", "figure": null, "baseline": "raw seq_write", "ratio": null, "runs": [], "note": "put-multipart failed"}"#
    ));
}

#[test]
fn subsets_and_peers() {
    let mut cfg = quick_config("dev");
    cfg.groups = vec!["ls".into()];
    cfg.systems = vec!["cosmount".into(), "s3fs".into()];
    let (_, res, mut info) = reference();
    info.peer_versions = vec![("s3fs".into(), "V1.90".into())];
    let md = markdown(&cfg, &res, &info);
    assert!(
        !md.contains("Data (higher is better"),
        "no data table without data workloads"
    );
    // Without a data table, the metadata table carries the RSS column.
    assert!(md.contains("| system | `ls -f` 300, cold (s) | `ls -l` 300, cold (s) | `ls -f` 300, warm (s) | `ls -l` 300, warm (s) | peak RSS (MiB) |\n"), "{md}");
    assert!(md.contains("| s3fs | — | — | — | — | — |\n"), "{md}");
    assert!(
        md.contains("| local directory | — | 0.0186 (4.13×) | 0.0029 (1.00×) | 0.0138 (1.00×) | — |\n"),
        "{md}"
    );
    assert!(md.contains("- s3fs (V1.90): `-o url=ENDPOINT"), "{md}");
    let j = json(&cfg, &res, &info);
    assert!(
        j.contains(r#""versions": {"cosmount": "8c3c4ef", "s3fs": "V1.90"},"#),
        "{j}"
    );
    assert!(
        j.contains(r#""peak_rss_mib": {"cosmount": 63, "cosmount-la": 18, "s3fs": null},"#),
        "{j}"
    );
    // Not cold: the titles and the data line say so.
    info.cold = false;
    assert_eq!(title(&cfg, false, "ls_f_cold"), "`ls -f` 300, warm (s)");
    assert!(markdown(&cfg, &res, &info).contains("NOT cold (could not drop the page cache)"));
}

#[test]
fn json_strings_are_escaped() {
    assert_eq!(json_str(r#"a "b" \ c"#), r#""a \"b\" \\ c""#);
    assert_eq!(json_str("two\nlines"), r#""two lines""#);
}

/// The reference run with latency rows at 20 ms (`--latency 20`, every group): the loopback rows
/// as above, plus (system, workload, runs, note) recorded under the suffix `@20ms`.
const LAT_ROWS: &[(&str, &str, &[&str], &str)] = &[
    ("raw", "small_write", &["160.0"], ""),
    ("raw", "small_read", &["250.0"], ""),
    ("raw", "ls_f_cold", &["0.0300"], "paginated LIST with delimiter"),
    (
        "raw",
        "ls_l_cold",
        &["0.2500"],
        "LIST + HEAD of every key, 32 in flight",
    ),
    ("raw", "find_cold", &["0.0250"], "paginated LIST without delimiter"),
    ("cosmount", "small_write", &["40.0"], ""),
    ("cosmount", "small_read", &["50.0"], ""),
    ("cosmount", "ls_f_cold", &["0.0600"], ""),
    ("cosmount", "ls_l_cold", &["0.5000"], ""),
    ("cosmount", "ls_f_warm", &["0.0031"], ""),
    ("cosmount", "ls_l_warm", &["0.0280"], ""),
    ("cosmount", "find_cold", &["0.3000"], ""),
    ("cosmount-la", "ls_f_cold", &["0.0550"], ""),
    ("cosmount-la", "ls_l_cold", &["0.0600"], ""),
    ("cosmount-la", "ls_f_warm", &["0.0030"], ""),
    ("cosmount-la", "ls_l_warm", &["0.0140"], ""),
    ("cosmount-la", "find_cold", &["0.2000"], ""),
    ("local", "ls_l_cold", &["0.0180"], ""),
    ("local", "ls_f_warm", &["0.0029"], ""),
    ("local", "ls_l_warm", &["0.0140"], ""),
];

fn latency_reference(groups: Option<&str>) -> (Config, Results, RunInfo) {
    let (_, mut res, mut info) = reference();
    if groups == Some("latency") {
        // Only the latency groups ran: no loopback row at all.
        res = Results::default();
    }
    let args: Vec<String> = ["--quick", "--label", "lat", "--latency", "20"]
        .map(String::from)
        .to_vec();
    let cfg = match parse(&args, &|k| {
        (k == "BENCH_WORKLOADS").then(|| groups.map(String::from)).flatten()
    }) {
        Ok(Parsed::Run(c)) => c,
        other => panic!("{other:?}"),
    };
    res.suffix = cfg.lat_suffix();
    for (s, w, runs, note) in LAT_ROWS {
        let runs: Vec<String> = runs.iter().map(|r| r.to_string()).collect();
        res.ok(s, w, &runs, note);
    }
    res.note_rss("cosmount", "ls", 21);
    res.suffix.clear();
    info.command = cfg.command_line(&[]);
    info.proxy = Some(ProxyInfo {
        p50: "20.61".into(),
        p99: "22.4".into(),
        requests: 4321,
    });
    (cfg, res, info)
}

#[test]
fn latency_rows_have_a_table_of_their_own_with_ratios_under_the_same_latency() {
    let (cfg, res, info) = latency_reference(None);
    assert_eq!(
        latency_workloads(&cfg),
        [
            "small_write@20ms",
            "small_write_s3@20ms",
            "small_read@20ms",
            "ls_f_cold@20ms",
            "ls_l_cold@20ms",
            "ls_l_next@20ms",
            "ls_f_warm@20ms",
            "ls_l_warm@20ms",
            "find_cold@20ms"
        ]
    );
    assert_eq!(title(&cfg, true, "ls_l_cold@20ms"), "`ls -l` 300, cold @20ms (s)");
    assert_eq!(
        title(&cfg, true, "small_write@20ms"),
        "cp -r 100 x 32 KiB @20ms (files/s)"
    );
    // Ratios to the raw client under the same latency, not on loopback.
    assert_eq!(cell(&res, "cosmount", "ls_l_cold@20ms"), "0.5000 (2.00×)");
    assert_eq!(cell(&res, "cosmount", "ls_l_cold"), "0.1692 (1.07×)");
    assert_eq!(cell(&res, "cosmount-la", "ls_l_cold@20ms"), "0.0600 (2.00×)");
    assert_eq!(cell(&res, "cosmount", "small_read@20ms"), "50.0 (0.20×)");
    assert_eq!(cell(&res, "cosmount", "ls_l_warm@20ms"), "0.0280 (2.00×)");
    let md = markdown(&cfg, &res, &info);
    assert!(md.starts_with("# cosmount benchmark: 2026-12-04, lat (quick mode)\n\n`bash scripts/bench.sh --quick --label lat --latency 20`"), "{md}");
    assert!(md.contains("\n- Latency rows (@20ms): every client (the raw client and each mount) goes through a delay proxy in bench-harness that holds the first bytes of each request and of each response 10 ms (one 20 ms round-trip per request-response exchange"), "{md}");
    assert!(
        md.contains("1-byte GET latency through it p50 20.61 ms, p99 22.4 ms; 4321 requests went through it.\n"),
        "{md}"
    );
    // The loopback tables are as without latency; then the latency table, without RSS.
    let (_, loopback_res, loopback_info) = reference();
    let loopback = markdown(&quick_config("lat"), &loopback_res, &loopback_info);
    let meta_table =
        &loopback[loopback.find("Listings and metadata").unwrap()..loopback.find("Runs (in order)").unwrap()];
    assert!(md.contains(meta_table));
    let lat_table = "Under a 20 ms round-trip (the delay proxy between every client and the server; ratio = figure / the raw client's through the same proxy in this run, or the local directory's for warm listings; files/s: higher is better, seconds: lower is better):\n\n\
| system | cp -r 100 x 32 KiB @20ms (files/s) | read 100 files after remount @20ms (files/s) | `ls -f` 300, cold @20ms (s) | `ls -l` 300, cold @20ms (s) | `ls -f` 300, warm @20ms (s) | `ls -l` 300, warm @20ms (s) | `find` 200 files, cold @20ms (s) |\n\
|---|---:|---:|---:|---:|---:|---:|---:|\n\
| raw aws-sdk-s3 | 160.0 (1.00×) | 250.0 (1.00×) | 0.0300 (1.00×) | 0.2500 (1.00×) | — | — | 0.0250 (1.00×) |\n\
| cosmount | 40.0 (0.25×) | 50.0 (0.20×) | 0.0600 (2.00×) | 0.5000 (2.00×) | 0.0031 (1.07×) | 0.0280 (2.00×) | 0.3000 (12.00×) |\n\
| cosmount --listing-attributes | — | — | 0.0550 (1.83×) | 0.0600 (2.00×) | 0.0030 (1.03×) | 0.0140 (1.00×) | 0.2000 (8.00×) |\n\
| local directory | — | — | — | 0.0180 (0.60×) | 0.0029 (1.00×) | 0.0140 (1.00×) | — |\n\n\
Runs (in order):";
    assert!(md.contains(lat_table), "{md}");
    // Every latency run is listed after the loopback ones, with its unit.
    assert!(md.contains("- cosmount, ls_l_cold@20ms: 0.5000 s\n"), "{md}");
    assert!(
        md.contains("- raw aws-sdk-s3, small_write@20ms: 160.0 files/s\n"),
        "{md}"
    );
    // The latency groups' peak RSS follows the loopback groups'.
    assert!(
        md.contains(" cosmount rsync 21; cosmount ls@20ms 21; cosmount-la ls 16;"),
        "{md}"
    );
}

#[test]
fn latency_rows_only_and_in_json() {
    let (cfg, res, info) = latency_reference(Some("latency"));
    let md = markdown(&cfg, &res, &info);
    assert!(
        !md.contains("Data (higher is better") && !md.contains("Listings and metadata"),
        "{md}"
    );
    // The local directory measured in the latency pass is described as on loopback.
    assert!(
        md.contains("\n- local directory, cold `ls -l`: the same 300 files after"),
        "{md}"
    );
    // The only table carries the peak-RSS column.
    assert!(
        md.contains("| `find` 200 files, cold @20ms (s) | peak RSS (MiB) |\n"),
        "{md}"
    );
    assert!(md.contains("| cosmount | 40.0 (0.25×) |"), "{md}");
    assert!(md.contains(" 0.3000 (12.00×) | 21 of 576 (within) |\n"), "{md}");
    let j = json(&cfg, &res, &info);
    let v: serde_json::Value = serde_json::from_str(&j).expect("valid JSON");
    assert_eq!(v["latency"]["rtt_ms"], 20);
    assert_eq!(v["latency"]["row_suffix"], "@20ms");
    assert_eq!(v["latency"]["latency_p50_ms"], 20.61);
    assert_eq!(v["latency"]["requests"], 4321);
    let rows = v["results"].as_array().unwrap();
    assert!(
        rows.iter().all(|r| r["workload"].as_str().unwrap().ends_with("@20ms")),
        "{j}"
    );
    assert_eq!(rows.len(), LAT_ROWS.len());
    let row = rows
        .iter()
        .find(|r| r["system"] == "cosmount" && r["workload"] == "ls_l_cold@20ms")
        .unwrap();
    assert_eq!(row["rtt_ms"], 20);
    assert_eq!(row["unit"], "s");
    assert_eq!(row["baseline"], "raw ls_l_cold@20ms");
    assert_eq!(row["ratio"], 2.0);
    let la = rows
        .iter()
        .find(|r| r["system"] == "cosmount-la" && r["workload"] == "ls_l_cold@20ms")
        .unwrap();
    assert_eq!(la["baseline"], "raw ls_f_cold@20ms");
    // Without latency, no latency object and no rtt_ms anywhere (the loopback file is unchanged).
    let (cfg0, res0, info0) = reference();
    assert!(!json(&cfg0, &res0, &info0).contains("rtt_ms"));
}

/// The write rows of a run with cosmount --write-cache: (system, workload, runs, note).
const WRITE_ROWS: &[(&str, &str, &[&str], &str)] = &[
    ("raw", "small_write_s3", &["1773.0"], "PUTs return once stored"),
    ("raw", "tar_x", &["1500.0"], ""),
    ("raw", "tar_x_s3", &["1500.0"], "PUTs return once stored"),
    ("cosmount", "small_write_s3", &["299.0"], ""),
    ("cosmount", "tar_x", &["300.0"], ""),
    ("cosmount", "tar_x_s3", &["300.0"], ""),
    ("cosmount-wc", "seq_write", &["40.0"], ""),
    (
        "cosmount-wc",
        "small_write",
        &["3546.0"],
        "the uploads went on after cp -r returned (small_write_s3 counts them)",
    ),
    ("cosmount-wc", "small_write_s3", &["443.3"], ""),
    (
        "cosmount-wc",
        "tar_x",
        &["3000.0"],
        "the uploads went on after tar -xf returned (tar_x_s3 counts them)",
    ),
    ("cosmount-wc", "tar_x_s3", &["750.0"], ""),
];

#[test]
fn write_rows_until_in_s3_and_the_write_cache_system() {
    let (_, mut res, mut info) = reference();
    let mut cfg = quick_config("wc");
    cfg.systems = vec!["cosmount".into(), "cosmount-wc".into(), "s3fs".into()];
    info.peer_versions = vec![("s3fs".into(), "V1.90".into())];
    for (s, w, runs, note) in WRITE_ROWS {
        let runs: Vec<String> = runs.iter().map(|r| r.to_string()).collect();
        res.ok(s, w, &runs, note);
    }
    res.note_rss("cosmount-wc", "tar_x", 80);
    assert_eq!(cell(&res, "cosmount-wc", "small_write"), "3546.0 (2.00×)");
    assert_eq!(cell(&res, "cosmount-wc", "small_write_s3"), "443.3 (0.25×)");
    assert_eq!(cell(&res, "cosmount-wc", "tar_x_s3"), "750.0 (0.50×)");
    assert_eq!(cell(&res, "raw", "tar_x_s3"), "1500.0 (1.00×)");
    assert_eq!(rss_cell(&res, &info, "cosmount-wc"), "80 of 576 (within)");
    assert_eq!(title(&cfg, true, "tar_x_s3"), "tar x 200 files, until in S3 (files/s)");
    assert_eq!(
        title(&cfg, true, "small_write_s3@20ms"),
        "cp -r 100 x 32 KiB, until in S3 @20ms (files/s)"
    );
    let md = markdown(&cfg, &res, &info);
    assert!(md.contains("| system | seq write 32 MiB (MB/s) | seq read 32 MiB cold (MB/s) | 4 × 8 MiB read at once, cold (MB/s) | random 64 KiB reads, 1 in flight (ops/s) | random 64 KiB reads, 8 in flight (ops/s) | cp -r 100 x 32 KiB (files/s) | cp -r 100 x 32 KiB, until in S3 (files/s) | read 100 files after remount (files/s) | tar x 200 files (files/s) | tar x 200 files, until in S3 (files/s) | peak RSS (MiB) |\n"), "{md}");
    assert!(
        md.contains("| cosmount --write-cache | 40.0 (0.81×) | — | — | — | — | 3546.0 (2.00×) | 443.3 (0.25×) | — | 3000.0 (2.00×) | 750.0 (0.50×) | 80 of 576 (within) |\n"),
        "{md}"
    );
    assert!(
        md.contains("| s3fs | — | — | — | — | — | — | — | — | — | — | — |\n"),
        "{md}"
    );
    assert!(
        md.contains("- cosmount --write-cache: cosmount's options plus `--write-cache DIR`"),
        "{md}"
    );
    assert!(md.contains("- tar x: a source-like tree of 200 files ("), "{md}");
    assert!(md.contains("; 8 directories, nesting depth 1)"), "{md}");
    assert!(
        md.contains("- Writes: the seq write is timed until the object is stored in S3"),
        "{md}"
    );
    assert!(!md.contains("- Writes are timed until"), "{md}");
    assert!(md.contains("- cosmount --write-cache, small_write: 3546.0 files/s — the uploads went on after cp -r returned (small_write_s3 counts them)\n"), "{md}");
    assert!(md.contains(" cosmount-wc tar_x 80;"), "{md}");
    let j = json(&cfg, &res, &info);
    let v: serde_json::Value = serde_json::from_str(&j).expect("valid JSON");
    assert_eq!(v["data"]["tar_files"], 200);
    assert_eq!(v["data"]["tar_dirs"], 8);
    assert!(v["data"]["tar_bytes"].as_u64().unwrap() > 200 * 200);
    assert_eq!(v["data"]["cold"], true);
    assert!(
        j.contains(r#""versions": {"cosmount": "8c3c4ef", "s3fs": "V1.90"},"#),
        "{j}"
    );
    assert!(
        j.contains(r#""peak_rss_mib": {"cosmount": 63, "cosmount-la": 18, "cosmount-wc": 80, "s3fs": null},"#),
        "{j}"
    );
    let row = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["system"] == "cosmount-wc" && r["workload"] == "tar_x_s3")
        .unwrap();
    assert_eq!(
        (row["unit"].as_str(), row["ratio"].as_f64()),
        (Some("files/s"), Some(0.5))
    );
    assert_eq!(row["baseline"], "raw tar_x_s3");
}
