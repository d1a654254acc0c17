//! What every answer is checked against: objects through the S3 API (size and MD5 of the input),
//! trees byte for byte (`diff -rq` of the input and a raw download), and `ls -l` outputs (entry
//! count and size). A check returns why it failed, which the report shows.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use super::config::{LS_SIZE, RAW_GET_CONC, RAW_RANGE_MIB, RAW_SMALL_CONC};
use super::parse::{first_lines, ls_l_entries_of_size};
use super::Ctx;

/// The MD5 of a file as `md5sum` prints it (the hex digest), or `None` when md5sum failed.
pub fn md5_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .map(str::to_string)
}

/// `md5sum FILE`'s digest (`""` when it failed).
pub fn md5_file(path: &Path) -> String {
    md5_of(Command::new("md5sum").arg(path)).unwrap_or_default()
}

/// An `ls -l` output lists `n` entries of LS_SIZE bytes; else why not.
pub fn check_ls_l(listing: &str, n: u64) -> Result<(), String> {
    let got = ls_l_entries_of_size(listing, LS_SIZE);
    if got == n {
        Ok(())
    } else {
        Err(format!(
            "ls -l showed {got} entries of {LS_SIZE} bytes, expected {n}: {}",
            first_lines(listing, 3)
        ))
    }
}

impl Ctx {
    /// The stored object BUCKET/KEY has `size` bytes and MD5 `md5`, through raw ranged GETs.
    pub fn check_object(&self, bucket: &str, key: &str, size: u64, md5: &str) -> Result<(), String> {
        let f = self.work.join("check.bin");
        let fs_ = f.to_string_lossy().into_owned();
        let (range, conc) = (RAW_RANGE_MIB.to_string(), RAW_GET_CONC.to_string());
        let args = [
            "get-ranged",
            "--bucket",
            bucket,
            "--key",
            key,
            "--range-size",
            &range,
            "--concurrency",
            &conc,
        ];
        if self.raw(&[&args[..], &["--out", &fs_]].concat()).is_err() {
            return Err(format!("GET {bucket}/{key} failed"));
        }
        let got_size = fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        let sum = md5_file(&f);
        let _ = fs::remove_file(&f);
        if got_size != size {
            return Err(format!("{bucket}/{key} has {got_size} bytes, expected {size}"));
        }
        if sum != md5 {
            return Err(format!("{bucket}/{key} MD5 {sum}, expected {md5}"));
        }
        Ok(())
    }

    /// The objects under BUCKET/PREFIX/ are exactly the small-file input tree, byte for byte.
    pub fn check_tree(&self, bucket: &str, prefix: &str) -> Result<(), String> {
        self.check_tree_of(&self.tree, bucket, prefix)
    }

    /// The objects under BUCKET/PREFIX/ are exactly the local tree `local`, byte for byte.
    pub fn check_tree_of(&self, local: &Path, bucket: &str, prefix: &str) -> Result<(), String> {
        let d = self.work.join("check-tree");
        let _ = fs::remove_dir_all(&d);
        let ds = d.to_string_lossy().into_owned();
        let conc = RAW_SMALL_CONC.to_string();
        let args = [
            "get-small",
            "--bucket",
            bucket,
            "--prefix",
            prefix,
            "--concurrency",
            &conc,
            "--out-dir",
            &ds,
        ];
        if self.raw(&args).is_err() {
            return Err(format!("GET of {bucket}/{prefix}/ failed"));
        }
        let result = match Command::new("diff")
            .arg("-rq")
            .arg(local)
            .arg(&d)
            .stdin(Stdio::null())
            .output()
        {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => {
                let text = [o.stdout, o.stderr].concat();
                Err(format!(
                    "{bucket}/{prefix}/ differs from the input: {}",
                    first_lines(&String::from_utf8_lossy(&text), 3)
                ))
            }
            Err(e) => Err(format!("{bucket}/{prefix}/ differs from the input: diff: {e}")),
        };
        let _ = fs::remove_dir_all(&d);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_l_check_counts_sizes() {
        let ok = "total 8\n-rw-r--r-- 1 u g 100 Dec  4 07:10 f0000\n-rw-r--r-- 1 u g 100 Dec  4 07:10 f0001\n";
        assert_eq!(check_ls_l(ok, 2), Ok(()));
        let e = check_ls_l(ok, 3).unwrap_err();
        assert!(
            e.starts_with("ls -l showed 2 entries of 100 bytes, expected 3: total 8;-rw-r--r--"),
            "{e}"
        );
    }

    #[test]
    fn md5_of_a_file() {
        let p = std::env::temp_dir().join(format!("cosmount-bench-md5-{}", std::process::id()));
        fs::write(&p, b"abc").unwrap();
        assert_eq!(md5_file(&p), "900150983cd24fb0d6963f7d28e17f72");
        fs::remove_file(&p).unwrap();
        assert_eq!(md5_file(Path::new("/nonexistent/file")), "");
    }
}
