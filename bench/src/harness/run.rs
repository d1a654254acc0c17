//! The order of a run: prerequisites, the cosmount build, the peers, the server and credentials,
//! the data sets, the workload groups, then (with `--latency MS`) the latency groups through the
//! delay proxy, the report and the exit code (0 only if every check of the raw client and of
//! cosmount passed; peers' failures are in the table, not fatal).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::config::{cosmount_mode_option, is_cosmount, Config, MAX_MEMORY_MIB, REPORTED_OVERRIDES};
use super::delay_proxy::{endpoint_addr, DelayProxy};
use super::error::{fatal, Error, Result};
use super::mounts::Janitor;
use super::parse::{loadavg3, mem_total_mib};
use super::report::{self, ProxyInfo, RunInfo};
use super::results::Results;
use super::servers::{build_cosmount, has_option, have, peer_version_of};
use super::stats::fixed;
use super::{log, Ctx};

/// Runs the benchmark; returns the exit code. Cleanup happens on every path out.
pub fn run(cfg: Config) -> i32 {
    let janitor = Janitor::default();
    janitor.handle_signals();
    let rc = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_inner(cfg, &janitor))) {
        Ok(Ok(rc)) => rc,
        Ok(Err(e)) => {
            log(&format!("ERROR: {e}"));
            e.exit_code()
        }
        Err(_) => 101,
    };
    janitor.cleanup(rc);
    rc
}

fn sh_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
        .unwrap_or_default()
}

fn prerequisites(cfg: &Config) -> Result<()> {
    if !have("cargo") {
        return Err(fatal("cargo is missing"));
    }
    if !have("fusermount3") {
        return Err(fatal("fusermount3 is missing: run scripts/setup.sh (installs fuse3)"));
    }
    if !Path::new("/dev/fuse").exists() {
        return Err(fatal(
            "/dev/fuse is missing: this machine cannot mount FUSE file systems",
        ));
    }
    if !have("python3") {
        return Err(fatal(
            "python3 is missing (bench/helpers.py measures through the mounts)",
        ));
    }
    if cfg.want("tar_x") && !have("tar") {
        return Err(fatal("tar is missing (workload tar_x; BENCH_WORKLOADS selects others)"));
    }
    if cfg.want("rsync") && !have("rsync") {
        return Err(fatal(
            "rsync is missing (workload rsync; BENCH_WORKLOADS selects others)",
        ));
    }
    Ok(())
}

fn run_inner(cfg: Config, janitor: &Janitor) -> Result<i32> {
    let repo = std::env::current_dir().map_err(Error::io("current directory"))?;
    if !repo.join("bench/Cargo.toml").is_file() {
        return Err(fatal(format!(
            "{} is not the repository root (run scripts/bench.sh)",
            repo.display()
        )));
    }
    prerequisites(&cfg)?;
    // bench/ itself was built by scripts/bench.sh before it started this program.
    log("building cosmount (release)");
    let cosmount = build_cosmount(&repo)?;
    let (cosmount_args, max_memory_mib) = if has_option(&cosmount, "--max-memory") {
        (
            vec!["--max-memory".to_string(), format!("{MAX_MEMORY_MIB}M")],
            Some(MAX_MEMORY_MIB),
        )
    } else {
        (Vec::new(), None)
    };
    let t_start = Instant::now();
    let work = repo.join(format!("bench/work/run-{}", std::process::id()));
    let logs = work.join("logs");
    janitor.set_work(&repo, &work, cfg.keep);
    fs::create_dir_all(work.join("s3root")).map_err(Error::io("bench/work"))?;
    fs::create_dir_all(&logs).map_err(Error::io("bench/work/logs"))?;
    let data = work.join("data");
    let mut ctx = Ctx {
        bench_bin: repo.join("bench/target/release"),
        helpers: repo.join("bench/helpers.py"),
        big: data.join("big"),
        tree: data.join("tree"),
        tar_src: data.join("tarsrc"),
        tarball: data.join("src.tar"),
        cfg,
        repo,
        work,
        logs,
        cosmount,
        cosmount_args,
        max_memory_mib,
        endpoint: String::new(),
        env: Vec::new(),
        cold: true,
        big_md5: String::new(),
        par_md5: Vec::new(),
        tree_files: Vec::new(),
        tar_files: Vec::new(),
        peer_err: Default::default(),
        res: Results::default(),
        janitor: janitor.clone(),
        keep_state: false,
    };
    for s in &ctx.cfg.systems {
        if let Some(opt) = cosmount_mode_option(s) {
            if !has_option(&ctx.cosmount, opt) {
                log(&format!("{s}: this cosmount build has no {opt}: its workloads fail"));
                ctx.peer_err
                    .insert(s.clone(), format!("this cosmount build has no {opt}"));
            }
        }
    }
    ctx.install_peers();
    ctx.set_credentials();
    ctx.start_server()?;
    let mut buckets = vec!["raw".to_string()];
    buckets.extend(ctx.cfg.systems.iter().cloned());
    buckets.extend(["ls", "lsbig", "find", "rsrc"].map(String::from));
    for b in buckets {
        ctx.raw_setup(&["create-bucket", "--bucket", &format!("bench-{b}")])?;
    }
    let (lat_p50, lat_p99) = ctx.latency_check()?;
    ctx.write_peer_configs()?;
    super::datasets::make_data(&mut ctx)?;

    let load_before = loadavg3(&fs::read_to_string("/proc/loadavg").unwrap_or_default());
    let cfg = ctx.cfg.clone();
    run_groups(&mut ctx, |g| cfg.want(g));
    let proxy = if cfg.any_lat() {
        Some(run_latency(&mut ctx)?)
    } else {
        None
    };
    let load_after = loadavg3(&fs::read_to_string("/proc/loadavg").unwrap_or_default());
    let elapsed = fixed(t_start.elapsed().as_secs_f64(), 0);

    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| REPORTED_OVERRIDES.contains(&k.as_str()))
        .collect();
    let mut rev = sh_output("git", &["rev-parse", "--short", "HEAD"]);
    if rev.is_empty() {
        rev = "unknown".into();
    }
    if !sh_output(
        "git",
        &["status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"],
    )
    .is_empty()
    {
        rev.push_str(" + uncommitted changes");
    }
    let info = RunInfo {
        date: sh_output("date", &["+%Y-%m-%d"]),
        command: ctx.cfg.command_line(&env),
        nproc: sh_output("nproc", &[]),
        mem_mib: mem_total_mib(&fs::read_to_string("/proc/meminfo").unwrap_or_default()).unwrap_or(0),
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim_end()
            .to_string(),
        load_before,
        load_after,
        elapsed,
        lat_p50,
        lat_p99,
        proxy,
        big_md5: ctx.big_md5.clone(),
        cold: ctx.cold,
        cosmount_rev: rev,
        max_memory_mib: ctx.max_memory_mib,
        peer_versions: ctx
            .cfg
            .systems
            .iter()
            .filter(|s| !is_cosmount(s))
            .map(|s| (s.clone(), peer_version_of(s)))
            .collect(),
    };
    let results = ctx.repo.join("bench/results");
    fs::create_dir_all(&results).map_err(Error::io("bench/results"))?;
    let name = format!("{}-{}", info.date, ctx.cfg.label);
    let (md_path, json_path) = (results.join(format!("{name}.md")), results.join(format!("{name}.json")));
    let md = report::markdown(&ctx.cfg, &ctx.res, &info);
    fs::write(&md_path, &md).map_err(Error::io(md_path.display().to_string()))?;
    fs::write(&json_path, report::json(&ctx.cfg, &ctx.res, &info))
        .map_err(Error::io(json_path.display().to_string()))?;
    println!("\n{md}");
    log(&format!("results: bench/results/{name}.md, bench/results/{name}.json"));
    if ctx.res.failed_core {
        log("FAILED: a check of the raw client or of cosmount did not pass (see the table)");
        return Ok(1);
    }
    Ok(0)
}

/// The latency groups: a delay proxy adding the round-trip between every client and bench-server,
/// checked with 1-byte GETs through it, then the same groups as on loopback through it, each
/// row recorded as `WORKLOAD@MSms`. The clients go back to the server itself afterwards.
fn run_latency(ctx: &mut Ctx) -> Result<ProxyInfo> {
    let cfg = ctx.cfg.clone();
    let ms = cfg.latency_ms.unwrap_or(0);
    let server = ctx.endpoint.clone();
    let upstream = endpoint_addr(&server).ok_or_else(|| fatal(format!("cannot proxy the endpoint {server}")))?;
    let proxy = DelayProxy::start(upstream, Duration::from_millis(ms)).map_err(Error::io("delay proxy"))?;
    log(&format!(
        "latency: delay proxy at {} adds {ms} ms to each request-response exchange with {server}",
        proxy.endpoint()
    ));
    ctx.use_endpoint(&proxy.endpoint());
    let (p50, p99) = match ctx.proxy_check(ms) {
        Ok(v) => v,
        Err(e) => {
            ctx.use_endpoint(&server);
            return Err(e);
        }
    };
    ctx.res.suffix = cfg.lat_suffix();
    run_groups(ctx, |g| cfg.want_lat(g));
    ctx.res.suffix.clear();
    ctx.use_endpoint(&server);
    let requests = proxy.requests();
    log(&format!("latency: {requests} requests went through the delay proxy"));
    Ok(ProxyInfo { p50, p99, requests })
}

/// The workload groups in order (those `want` selects): for each, the raw client, then each
/// system, in REPS rounds (ls_big and rsync run their own repetitions). The listing groups also
/// run cosmount-la. Under latency the log names each group with the rows' suffix.
fn run_groups(ctx: &mut Ctx, want: impl Fn(&str) -> bool) {
    let cfg = ctx.cfg.clone();
    let sfx = ctx.res.suffix.clone();
    let (systems, ls_systems) = (cfg.systems.clone(), cfg.ls_systems());
    let reps = cfg.reps;
    // bench-server lists a bucket by walking it once after a write, then from memory: list
    // bench-raw, untimed, before the groups that read it, so that no system pays that walk.
    let prewarm = |ctx: &Ctx| {
        let _ = ctx.raw(&["list", "--bucket", "bench-raw"]);
    };
    if want("seq_write") {
        log(&format!("workload seq_write{sfx} ({} MiB, {reps} rounds)", cfg.big_mib));
        ctx.rounds(|c, runs| {
            c.seq_write_raw(runs);
            c.run_systems(&["seq_write"], &systems, |c, s| c.seq_write(s, runs));
        });
    }
    if want("seq_read") {
        prewarm(ctx);
        log(&format!(
            "workload seq_read_cold{sfx} ({} MiB, {reps} rounds)",
            cfg.big_mib
        ));
        ctx.rounds(|c, runs| {
            c.seq_read_raw(runs);
            c.run_systems(&["seq_read_cold"], &systems, |c, s| c.seq_read(s, runs));
        });
    }
    if want("par_read") {
        prewarm(ctx);
        log(&format!(
            "workload par_read_cold{sfx} (4 x {} MiB, {reps} rounds)",
            cfg.par_mib
        ));
        ctx.rounds(|c, runs| {
            c.par_read_raw(runs);
            c.run_systems(&["par_read_cold"], &systems, |c, s| c.par_read(s, runs));
        });
    }
    if want("rand_read") {
        prewarm(ctx);
        for (t, wl) in [(1, "rand_read"), (8, "rand_read8")] {
            log(&format!(
                "workload {wl}{sfx} ({} x 64 KiB, {t} in flight, {reps} rounds)",
                cfg.rand_n
            ));
            ctx.rounds(|c, runs| {
                c.rand_read_raw(t, wl, runs);
                c.run_systems(&[wl], &systems, |c, s| c.rand_read(s, t, wl, runs));
            });
        }
    }
    if want("small_write") {
        log(&format!(
            "workload small_write{sfx} ({} files, {reps} rounds)",
            cfg.files
        ));
        let wls = ["small_write", "small_write_s3"];
        ctx.rounds(|c, runs| {
            c.small_write_raw(runs);
            c.run_systems(&wls, &systems, |c, s| c.small_write(s, runs));
        });
    }
    if want("small_read") {
        prewarm(ctx);
        log(&format!(
            "workload small_read{sfx} ({} files, {reps} rounds)",
            cfg.files
        ));
        ctx.rounds(|c, runs| {
            c.small_read_raw(runs);
            c.run_systems(&["small_read"], &systems, |c, s| c.small_read(s, runs));
        });
    }
    if want("tar_x") {
        log(&format!(
            "workload tar_x{sfx} ({} files in {} directories, {reps} rounds)",
            ctx.tar_files.len(),
            cfg.tar_dirs()
        ));
        let wls = ["tar_x", "tar_x_s3"];
        ctx.rounds(|c, runs| {
            c.tar_x_raw(runs);
            c.run_systems(&wls, &systems, |c, s| c.tar_x(s, runs));
        });
    }
    if want("ls") {
        log(&format!(
            "workload ls{sfx} ({} entries: ls -f, ls -l, cold and warm, {reps} rounds)",
            cfg.ls_n
        ));
        let wls = ["ls_f_cold", "ls_f_warm", "ls_l_cold", "ls_l_warm"];
        ctx.rounds(|c, runs| {
            c.ls_raw(runs);
            c.ls_local(runs);
            c.run_systems(&wls, &ls_systems, |c, s| c.ls(s, runs));
        });
    }
    if want("ls_big") {
        log(&format!(
            "workload ls_big{sfx} ({} entries: ls -f cold, {} runs)",
            cfg.ls_big_n, cfg.ls_big_reps
        ));
        let runs = ctx.all_runs();
        ctx.ls_big_raw(&runs);
        ctx.run_systems(&["ls_f_big_cold", "ls_f_big_first"], &ls_systems, |c, s| c.ls_big(s));
    }
    if want("find") {
        log(&format!(
            "workload find{sfx} ({} files in {} directories, {reps} rounds)",
            cfg.find_n, cfg.find_dirs
        ));
        ctx.rounds(|c, runs| {
            c.find_raw(runs);
            c.run_systems(&["find_cold"], &ls_systems, |c, s| c.find(s, runs));
        });
    }
    if want("rsync") {
        log(&format!(
            "workload rsync{sfx} ({} files: second rsync -a after a remount, {reps} runs)",
            cfg.files
        ));
        let runs = ctx.all_runs();
        ctx.rsync_raw(&runs);
        ctx.run_systems(&["rsync2"], &systems, |c, s| c.rsync(s, &runs));
    }
}
