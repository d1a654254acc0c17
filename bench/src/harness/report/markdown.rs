//! The markdown result file: what was run and on what (machine, server, data, each system's
//! options, how answers were checked), the data table, the listings table, the latency table
//! (with `--latency MS`), every run in order and the peak RSS by workload group.

use std::fmt::Write as _;

use super::super::config::{
    Config, DIRS, LATENCY_GROUPS, LS_SIZE, RAW_GET_CONC, RAW_HEAD_CONC, RAW_PART_MIB, RAW_PUT_CONC, RAW_RANGE_MIB,
    RAW_SMALL_CONC,
};
use super::super::datasets::{tar_layout, TAR_MAX_SIZE, TAR_MIN_SIZE};
use super::super::results::{Results, Status};
use super::super::stats::Unit;
use super::{
    data_workloads, entries_in_order, latency_workloads, list, measured, meta_workloads, system_name, table, RunInfo,
};

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
    if let (Some(ms), Some(p)) = (cfg.latency_ms, &info.proxy) {
        let half = ms as f64 / 2.0;
        let _ = writeln!(
            m,
            "- Latency rows (@{ms}ms): every client (the raw client and each mount) goes through a delay proxy in bench-harness that holds the first bytes of each request and of each response {half} ms (one {ms} ms round-trip per request-response exchange, the rest of a request or response streamed without delay, `TCP_NODELAY`; connection set-up, bandwidth limits and jitter not modelled); 1-byte GET latency through it p50 {} ms, p99 {} ms; {} requests went through it.",
            p.p50, p.p99, p.requests
        );
    }
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
    if res.has_workload("tar_x") {
        let (dirs, files) = tar_layout(cfg.tar_n, cfg.tar_dirs());
        let bytes: u64 = files.iter().map(|f| f.1).sum();
        let depth = dirs.iter().map(|d| d.matches('/').count()).max().unwrap_or(0);
        let _ = writeln!(
            m,
            "- tar x: a source-like tree of {} files ({bytes} bytes, {TAR_MIN_SIZE} B to {} KiB, log-uniform; {} directories, nesting depth {depth}), the same in every run, in one uncompressed tarball (`tar --sort=name`, owner 0, modes 644/755, one mtime) extracted with `tar -xf TARBALL -C MNT/tarx-R` (as root, so tar also restores owners, modes and mtimes); raw: the same files PUT {RAW_SMALL_CONC} in flight.",
            files.len(),
            TAR_MAX_SIZE / 1024,
            dirs.len()
        );
    }
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
    // Measured on loopback, or only in the latency pass (where it is the same local directory).
    let local_cold = |wl: &str| res.get("local", wl).map(|e| e.status) == Some(Status::Ok);
    if local_cold("ls_l_cold") || local_cold(&format!("ls_l_cold{}", cfg.lat_suffix())) {
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
            "cosmount-wc" => {
                let _ = writeln!(m, "- cosmount --write-cache: cosmount's options plus `--write-cache DIR` (a directory of its own under bench/work, on the same disk as the server's, emptied before each mount): `close` returns once the file is durable there and the uploads run in the background; its other write-cache options at their defaults (a file larger than `--write-cache-max-file` is uploaded at close, as without the cache).");
            }
            _ => {}
        }
    }
    if res.has_workload("small_write_s3") || res.has_workload("tar_x_s3") {
        m.push_str("- Writes: the seq write is timed until the object is stored in S3 (cp returning, including close, plus any upload after it); `cp -r` and `tar x` until the command returns, and in their \"until in S3\" columns from the command's start until a LIST of the prefix by the raw client (warmed up before the clock; a LIST right after the command returned, then 50 ms after each LIST that still missed a key) shows every key with its size (when that first LIST already does, the figure is the command's time: the LIST's own duration, logged, bounds the error; the raw client's PUTs return once stored: its figure is the same in both). What was written is then checked through the S3 API (size + MD5; byte-for-byte for the small files, the tar tree and the rsync tree); reads are checked through the mount (MD5; `diff -r`; every random block compared with the input); listings by entry count (and, for `ls -l`, every entry's size).\n");
    } else {
        m.push_str("- Writes are timed until the data is stored in S3 (cp returning, including close, plus any upload after it) and then checked through the S3 API (size + MD5; byte-for-byte for the small files and the rsync tree); reads are checked through the mount (MD5; `diff -r`; every random block compared with the input); listings by entry count (and, for `ls -l`, every entry's size).\n");
    }
    let _ = writeln!(
        m,
        "- Warm listings: the same command again right after the cold one on the same mount (cosmount's default --metadata-ttl is 1 s), against the same command on a local directory of {} files. `rsync -a --stats` after a first rsync and a remount; \"re-copied N\" when it transferred files again.\n",
        cfg.ls_n
    );
    // The columns older runs did not measure are there only when this run measured them.
    let measured = |w: &str| measured(res, w);
    let data: Vec<&str> = data_workloads(cfg).into_iter().filter(|w| measured(w)).collect();
    let meta: Vec<&str> = meta_workloads(cfg).into_iter().filter(|w| measured(w)).collect();
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
    let lat: Vec<String> = latency_workloads(cfg).into_iter().filter(|w| measured(w)).collect();
    if let (Some(ms), false) = (cfg.latency_ms, lat.is_empty()) {
        let _ = writeln!(
            m,
            "Under a {ms} ms round-trip (the delay proxy between every client and the server; ratio = figure / the raw client's through the same proxy in this run, or the local directory's for warm listings; files/s: higher is better, seconds: lower is better):\n"
        );
        let mut systems = list(&["raw"]);
        if cfg.want_lat("ls") || cfg.want_lat("find") {
            systems.extend(ls_systems.iter().cloned());
        } else {
            systems.extend(cfg.systems.iter().cloned());
        }
        if cfg.want_lat("ls") {
            systems.push("local".to_string());
        }
        m.push_str(&table(
            cfg,
            res,
            info,
            &systems,
            data.is_empty() && meta.is_empty(),
            &lat,
        ));
        m.push('\n');
    }
    m.push_str("Runs (in order):\n\n");
    for (s, w, e) in entries_in_order(cfg, res) {
        let runs = if e.runs.is_empty() {
            "none".to_string()
        } else {
            e.runs.join(" ")
        };
        let mut line = format!("- {}, {w}: {runs} {}", system_name(&s), Unit::of(&w).as_str());
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
        let lat_groups: Vec<String> = LATENCY_GROUPS
            .iter()
            .map(|g| format!("{g}{}", cfg.lat_suffix()))
            .collect();
        for s in &ls_systems {
            let groups = [
                "seq_write",
                "seq_read_cold",
                "par_read_cold",
                "rand_read",
                "rand_read8",
                "small_write",
                "small_read",
                "tar_x",
                "ls",
                "ls_big",
                "find",
                "rsync",
            ]
            .map(String::from);
            let lat = if cfg.latency_ms.is_some() { &lat_groups[..] } else { &[] };
            for g in groups.iter().chain(lat) {
                if let Some(v) = res.rss_group.get(&(s.clone(), g.clone())) {
                    let _ = write!(m, " {s} {g} {v};");
                }
            }
        }
        m.push('\n');
    }
    m
}
