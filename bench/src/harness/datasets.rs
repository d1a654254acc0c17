//! The data sets, made once per run before any workload, untimed: the big random file and the
//! small-file tree (local inputs), the objects the read workloads use (written by the raw client,
//! the 4 parallel objects checked by MD5), and the listing data sets in buckets of their own
//! (bench-ls, bench-lsbig, bench-find) plus the same names in a local directory.

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::checks::md5_file;
use super::config::{
    DIRS, FILE_SIZE, FIND_DIR, LS_BIG_DIR, LS_DIR, LS_SIZE, RAW_PART_MIB, RAW_PUT_CONC, RAW_SMALL_CONC,
};
use super::error::{fatal, Error, Result};
use super::{log, Ctx};

/// `head -c N /dev/urandom > path`.
fn random_file(path: &Path, bytes: u64) -> Result<()> {
    let mut src = fs::File::open("/dev/urandom")
        .map_err(Error::io("/dev/urandom"))?
        .take(bytes);
    let mut dst = fs::File::create(path).map_err(Error::io(path.display().to_string()))?;
    std::io::copy(&mut src, &mut dst).map_err(Error::io(path.display().to_string()))?;
    dst.flush().map_err(Error::io(path.display().to_string()))?;
    Ok(())
}

/// The input data and the data sets of the read and listing workloads, written by the raw client,
/// untimed; each listing bucket is listed once so bench-server's walk is in no figure.
pub fn make_data(ctx: &mut Ctx) -> Result<()> {
    let cfg = ctx.cfg.clone();
    let data = ctx.work.join("data");
    fs::create_dir_all(&data).map_err(Error::io("bench/work/data"))?;
    log(&format!(
        "data: {} MiB random file, {} x {FILE_SIZE}-byte files in {DIRS} directories",
        cfg.big_mib, cfg.files
    ));
    random_file(&ctx.big, cfg.big_bytes())?;
    ctx.big_md5 = md5_file(&ctx.big);
    let status = ctx
        .command(ctx.bench_bin.join("raw-client"))
        .arg("gen-tree")
        .arg("--dir")
        .arg(&ctx.tree)
        .args([
            "--count",
            &cfg.files.to_string(),
            "--size",
            &FILE_SIZE.to_string(),
            "--dirs",
            &DIRS.to_string(),
        ])
        .status()
        .map_err(Error::io("raw-client gen-tree"))?;
    if !status.success() {
        return Err(fatal("raw-client gen-tree failed"));
    }
    let big = ctx.big.to_string_lossy().into_owned();
    let tree = ctx.tree.to_string_lossy().into_owned();
    let (part, put, small) = (
        RAW_PART_MIB.to_string(),
        RAW_PUT_CONC.to_string(),
        RAW_SMALL_CONC.to_string(),
    );
    if !cfg.want("seq_write") && (cfg.want("seq_read") || cfg.want("rand_read")) {
        let args = [
            "put-multipart",
            "--bucket",
            "bench-raw",
            "--key",
            "big-1",
            "--file",
            &big,
        ];
        ctx.raw_setup(&[&args[..], &["--part-size", &part, "--concurrency", &put]].concat())?;
    }
    // small_read (loopback or under latency) reads tree-1, which the raw client's loopback
    // small_write writes in its first run; without that group, it is written here.
    if !cfg.want("small_write") && cfg.want_any("small_read") {
        let args = [
            "put-small",
            "--bucket",
            "bench-raw",
            "--prefix",
            "tree-1",
            "--from-dir",
            &tree,
        ];
        ctx.raw_setup(&[&args[..], &["--concurrency", &small]].concat())?;
    }
    if cfg.want("par_read") {
        log(&format!("data: 4 x {} MiB random objects par-0..3", cfg.par_mib));
        let par: PathBuf = data.join("par");
        let ps = par.to_string_lossy().into_owned();
        for i in 0..4 {
            random_file(&par, cfg.par_bytes())?;
            let md5 = md5_file(&par);
            let key = format!("par-{i}");
            let args = ["put-multipart", "--bucket", "bench-raw", "--key", &key, "--file", &ps];
            ctx.raw_setup(&[&args[..], &["--part-size", &part, "--concurrency", &put]].concat())?;
            ctx.check_object("bench-raw", &key, cfg.par_bytes(), &md5)
                .map_err(fatal)?;
            ctx.par_md5.push(md5);
        }
        let _ = fs::remove_file(&par);
    }
    let put_listing = |ctx: &Ctx, bucket: &str, prefix: &str, n: u64, dirs: u64| -> Result<()> {
        let (n, size, dirs) = (n.to_string(), LS_SIZE.to_string(), dirs.to_string());
        let args = [
            "put-small",
            "--bucket",
            bucket,
            "--prefix",
            prefix,
            "--count",
            &n,
            "--size",
            &size,
        ];
        ctx.raw_setup(&[&args[..], &["--dirs", &dirs, "--concurrency", &small]].concat())?;
        ctx.raw_setup(&["list", "--bucket", bucket])?; // bench-server walks a bucket once after writes
        Ok(())
    };
    if cfg.want_any("ls") {
        log(&format!(
            "data: {} objects of {LS_SIZE} bytes in {LS_DIR}/ (and the same names in a local directory)",
            cfg.ls_n
        ));
        put_listing(ctx, "bench-ls", LS_DIR.trim_end_matches("/d00"), cfg.ls_n, 1)?;
        let local = data.join(LS_DIR);
        fs::create_dir_all(&local).map_err(Error::io(local.display().to_string()))?;
        for i in 0..cfg.ls_n {
            let f = local.join(format!("f{i:04}"));
            fs::File::create(&f)
                .and_then(|h| h.set_len(LS_SIZE))
                .map_err(Error::io(f.display().to_string()))?;
        }
    }
    if cfg.want("ls_big") {
        log(&format!("data: {} objects in {LS_BIG_DIR}/", cfg.ls_big_n));
        put_listing(ctx, "bench-lsbig", LS_BIG_DIR.trim_end_matches("/d00"), cfg.ls_big_n, 1)?;
    }
    if cfg.want_any("find") {
        log(&format!(
            "data: {} objects in {} directories of {FIND_DIR}/",
            cfg.find_n, cfg.find_dirs
        ));
        put_listing(ctx, "bench-find", FIND_DIR, cfg.find_n, cfg.find_dirs)?;
    }
    let _ = Command::new("sync").status();
    Ok(())
}
