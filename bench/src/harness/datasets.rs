//! The data sets, made once per run before any workload, untimed: the big random file and the
//! small-file tree (local inputs), the source-like tree of tar_x and its tarball (deterministic:
//! the same names, sizes and bytes in every run of the same size), the objects the read workloads
//! use (written by the raw client, the 4 parallel objects checked by MD5), and the listing data
//! sets in buckets of their own (bench-ls, bench-lsbig, bench-find) plus the same names in a local
//! directory.

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

/// SplitMix64: a small deterministic generator for the tar_x tree.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The root directory of the tar_x tree (in the tarball and under each run's key prefix).
pub const TAR_ROOT: &str = "proj";
/// The sizes of the tar_x files: log-uniform between these (bytes), as a source tree's.
pub const TAR_MIN_SIZE: u64 = 200;
pub const TAR_MAX_SIZE: u64 = 65536;
const TAR_SEED: u64 = 0x7a72_5f78_2d74_7265;

/// The layout of the tar_x tree, a pure function of its size: `dirs` directories (the root
/// `proj`, top-level ones such as `proj/src`, then subdirectories of those, a few levels deep),
/// and `files` files as (path, size), each directory holding at least one (so that a tree rebuilt
/// from the stored keys has every directory). Names use `[a-z0-9_.]` only (no `+`).
pub fn tar_layout(files: u64, dirs: u64) -> (Vec<String>, Vec<(String, u64)>) {
    const TOP: [&str; 8] = ["src", "include", "tests", "docs", "tools", "examples", "scripts", "lib"];
    const SUB: [&str; 8] = ["core", "util", "net", "io", "fmt", "parse", "sys", "mem"];
    const STEM: [&str; 8] = ["main", "lib", "util", "test", "parse", "config", "types", "error"];
    const EXT: [&str; 8] = ["rs", "c", "h", "py", "md", "txt", "json", "toml"];
    let mut rng = SplitMix(TAR_SEED);
    let dirs = dirs.max(1).min(files.max(1));
    let mut dv: Vec<String> = vec![TAR_ROOT.to_string()];
    for i in 1..dirs as usize {
        let d = if i <= TOP.len() {
            format!("{TAR_ROOT}/{}", TOP[i - 1])
        } else {
            let parent = &dv[1 + rng.below(i as u64 - 1) as usize];
            format!("{parent}/{}{i:02}", SUB[rng.below(SUB.len() as u64) as usize])
        };
        dv.push(d);
    }
    let ratio = TAR_MAX_SIZE as f64 / TAR_MIN_SIZE as f64;
    let fv = (0..files)
        .map(|i| {
            let d = if i < dirs { i } else { rng.below(dirs) };
            let stem = STEM[rng.below(STEM.len() as u64) as usize];
            let ext = EXT[rng.below(EXT.len() as u64) as usize];
            let size = ((TAR_MIN_SIZE as f64 * ratio.powf(rng.unit())) as u64).clamp(TAR_MIN_SIZE, TAR_MAX_SIZE);
            (format!("{}/{stem}_{i:04}.{ext}", dv[d as usize]), size)
        })
        .collect();
    (dv, fv)
}

/// Text-like contents for file `i` of the tar_x tree: lines of words, `size` bytes.
fn tar_content(i: u64, size: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "let", "fn", "return", "self", "value", "buffer", "index", "if", "else", "match", "for", "in", "struct",
        "count", "error", "=",
    ];
    let mut rng = SplitMix(TAR_SEED ^ i.wrapping_mul(0xA24B_AED4_963E_E407));
    let mut v = Vec::with_capacity(size as usize + 16);
    let mut col = 0;
    while (v.len() as u64) < size {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        v.extend_from_slice(w.as_bytes());
        col += w.len() + 1;
        if col > 60 + rng.below(20) as usize {
            v.push(b'\n');
            col = 0;
        } else {
            v.push(b' ');
        }
    }
    v.truncate(size as usize);
    v
}

/// Writes the tar_x tree under `root` (`root/proj/...`) and the tarball of it (`tar` with fixed
/// owner, modes and mtime, names sorted); returns the tree's bytes.
fn make_tar_data(root: &Path, tarball: &Path, files: u64, dirs: u64) -> Result<u64> {
    let (dv, fv) = tar_layout(files, dirs);
    for d in &dv {
        let p = root.join(d);
        fs::create_dir_all(&p).map_err(Error::io(p.display().to_string()))?;
    }
    let mut bytes = 0;
    for (i, (f, size)) in fv.iter().enumerate() {
        let p = root.join(f);
        fs::write(&p, tar_content(i as u64, *size)).map_err(Error::io(p.display().to_string()))?;
        bytes += size;
    }
    let status = Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mode=u=rwX,go=rX",
            "--mtime=@1767225600",
            "--format=gnu",
            "-cf",
        ])
        .arg(tarball)
        .arg("-C")
        .arg(root)
        .arg(TAR_ROOT)
        .status()
        .map_err(Error::io("tar -c"))?;
    if !status.success() {
        return Err(fatal("tar -c of the tar_x tree failed"));
    }
    Ok(bytes)
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
    ctx.tree_files = crate::manifest::tree_files(&ctx.tree).map_err(Error::io("the small-file tree"))?;
    if cfg.want_any("tar_x") {
        let (tar_src, tarball) = (ctx.tar_src.clone(), ctx.tarball.clone());
        let bytes = make_tar_data(&tar_src, &tarball, cfg.tar_n, cfg.tar_dirs())?;
        ctx.tar_files = crate::manifest::tree_files(&tar_src).map_err(Error::io("the tar_x tree"))?;
        log(&format!(
            "data: a source-like tree of {} files ({bytes} bytes, {} directories) and its tarball",
            ctx.tar_files.len(),
            cfg.tar_dirs()
        ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tar_layout_is_a_deterministic_source_like_tree() {
        let (dirs, files) = tar_layout(2000, 40);
        assert_eq!((dirs.len(), files.len()), (40, 2000));
        assert_eq!(tar_layout(2000, 40), (dirs.clone(), files.clone()), "deterministic");
        assert_eq!(dirs[0], "proj");
        assert_eq!(dirs[1], "proj/src");
        assert!(dirs.iter().all(|d| d == "proj" || d.starts_with("proj/")));
        // Every directory's parent is a directory of the tree; some are nested a few levels.
        for d in &dirs[1..] {
            let parent = &d[..d.rfind('/').unwrap()];
            assert!(dirs.iter().any(|x| x == parent), "{d}");
        }
        assert!(dirs.iter().any(|d| d.matches('/').count() >= 3), "{dirs:?}");
        // Unique paths, no `+`, no file where a directory is, every directory holds a file.
        let names: HashSet<&str> = files.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names.len(), files.len());
        for (f, size) in &files {
            assert!(!f.contains('+') && !f.ends_with('/') && !f.contains("//"), "{f}");
            assert!(f.chars().all(|c| c.is_ascii_alphanumeric() || "_./".contains(c)), "{f}");
            assert!((TAR_MIN_SIZE..=TAR_MAX_SIZE).contains(size), "{f} {size}");
            assert!(!dirs.iter().any(|d| d == f));
        }
        for d in &dirs {
            assert!(
                files
                    .iter()
                    .any(|(f, _)| f.rsplit_once('/').map(|x| x.0) == Some(d.as_str())),
                "{d} holds no file"
            );
        }
        // Sizes spread from a few hundred bytes to tens of KiB; the total is that of a small tree.
        let total: u64 = files.iter().map(|f| f.1).sum();
        assert!((15_000_000..30_000_000).contains(&total), "{total}");
        assert!(files.iter().filter(|f| f.1 < 1024).count() > 300);
        assert!(files.iter().filter(|f| f.1 > 32768).count() > 150);
        // The quick size, and more directories than files asked for.
        let (qd, qf) = tar_layout(200, 8);
        assert_eq!((qd.len(), qf.len()), (8, 200));
        assert_eq!(tar_layout(3, 10).0.len(), 3);
    }

    #[test]
    fn tar_contents_are_text_of_the_size_asked() {
        let a = tar_content(7, 5000);
        assert_eq!(a.len(), 5000);
        assert_eq!(a, tar_content(7, 5000));
        assert_ne!(a, tar_content(8, 5000));
        assert!(a.iter().all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\n'));
        assert!(a.contains(&b'\n'));
        assert_eq!(tar_content(1, 200).len(), 200);
    }
}
