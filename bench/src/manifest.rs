//! The keys a write workload must leave in S3, shared by the harness (which writes the manifest)
//! and raw-client (`await-keys`, which polls a LIST until it shows every key with its size).
//!
//! A manifest is text, one object a line: `SIZE<TAB>KEY`. A write counts as stored once a LIST
//! shows every key of its manifest with exactly that size (directory markers and other keys are
//! ignored: the byte-for-byte check after the workload catches extra or wrong objects).

use std::collections::HashMap;
use std::io;
use std::path::Path;

/// The regular files under `dir`, as (`/`-separated path relative to `dir`, size), sorted by path.
pub fn tree_files(dir: &Path) -> io::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                let path = entry.path();
                let rel = path
                    .strip_prefix(dir)
                    .ok()
                    .and_then(|p| p.to_str())
                    .ok_or_else(|| io::Error::other(format!("{}: not a UTF-8 path under the tree", path.display())))?
                    .to_string();
                out.push((rel, entry.metadata()?.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The keys of a tree's files stored under `prefix` (`PREFIX/REL`).
pub fn keys_under(prefix: &str, files: &[(String, u64)]) -> Vec<(String, u64)> {
    let prefix = prefix.trim_end_matches('/');
    files
        .iter()
        .map(|(rel, size)| (format!("{prefix}/{rel}"), *size))
        .collect()
}

/// The manifest text of (key, size) pairs.
pub fn to_text(keys: &[(String, u64)]) -> String {
    keys.iter().map(|(k, s)| format!("{s}\t{k}\n")).collect()
}

/// Parses a manifest; a malformed line or a key given twice is an error.
pub fn parse(text: &str) -> Result<Vec<(String, u64)>, String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let (size, key) = line
            .split_once('\t')
            .ok_or_else(|| format!("manifest line {}: not SIZE<TAB>KEY: {line:?}", i + 1))?;
        let size: u64 = size
            .parse()
            .map_err(|_| format!("manifest line {}: bad size {size:?}", i + 1))?;
        if key.is_empty() {
            return Err(format!("manifest line {}: empty key", i + 1));
        }
        if !seen.insert(key.to_string()) {
            return Err(format!("manifest line {}: {key} given twice", i + 1));
        }
        out.push((key.to_string(), size));
    }
    Ok(out)
}

/// How far a listing is from a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unmet {
    /// Keys of the manifest the listing does not show.
    pub missing: usize,
    /// Keys it shows with another size (being written, or wrong).
    pub wrong_size: usize,
    /// The first such key (in manifest order), to quote.
    pub first: Option<String>,
}

impl Unmet {
    /// Every key listed with its size.
    pub fn is_met(&self) -> bool {
        self.missing == 0 && self.wrong_size == 0
    }
}

/// Compares a listing (key, size) with the manifest's keys.
pub fn unmet(expected: &[(String, u64)], listed: &[(String, i64)]) -> Unmet {
    let sizes: HashMap<&str, i64> = listed.iter().map(|(k, s)| (k.as_str(), *s)).collect();
    let mut u = Unmet::default();
    for (key, size) in expected {
        match sizes.get(key.as_str()) {
            Some(s) if u64::try_from(*s).ok() == Some(*size) => continue,
            Some(_) => u.wrong_size += 1,
            None => u.missing += 1,
        }
        if u.first.is_none() {
            u.first = Some(key.clone());
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(items: &[(&str, u64)]) -> Vec<(String, u64)> {
        items.iter().map(|(k, s)| (k.to_string(), *s)).collect()
    }

    #[test]
    fn manifest_round_trip() {
        let keys = keys_under("tree-2/", &kv(&[("d00/f0000", 32768), ("d01/f0001", 7)]));
        assert_eq!(keys, kv(&[("tree-2/d00/f0000", 32768), ("tree-2/d01/f0001", 7)]));
        let text = to_text(&keys);
        assert_eq!(text, "32768\ttree-2/d00/f0000\n7\ttree-2/d01/f0001\n");
        assert_eq!(parse(&text).unwrap(), keys);
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn malformed_manifests() {
        assert!(parse("12 key\n").unwrap_err().contains("not SIZE<TAB>KEY"));
        assert!(parse("x\tkey\n").unwrap_err().contains("bad size"));
        assert!(parse("1\t\n").unwrap_err().contains("empty key"));
        assert!(parse("1\ta\n2\ta\n").unwrap_err().contains("a given twice"));
    }

    #[test]
    fn a_listing_meets_a_manifest_when_every_key_has_its_size() {
        let want = kv(&[("p/a", 10), ("p/b", 20), ("p/c", 0)]);
        let listed =
            |items: &[(&str, i64)]| -> Vec<(String, i64)> { items.iter().map(|(k, s)| (k.to_string(), *s)).collect() };
        let all = unmet(&want, &listed(&[("p/c", 0), ("p/a", 10), ("p/b", 20), ("p/extra", 5)]));
        assert!(all.is_met(), "{all:?}");
        assert_eq!(all.first, None);
        let partial = unmet(&want, &listed(&[("p/b", 12), ("p/c", 0)]));
        assert_eq!(
            partial,
            Unmet {
                missing: 1,
                wrong_size: 1,
                first: Some("p/a".into())
            }
        );
        assert!(!partial.is_met());
        assert_eq!(unmet(&want, &[]).missing, 3);
        // A negative size (never listed by S3) is a wrong size, not a match.
        assert_eq!(unmet(&kv(&[("k", 0)]), &listed(&[("k", -1)])).wrong_size, 1);
    }

    #[test]
    fn tree_files_are_relative_and_sorted() {
        let d = std::env::temp_dir().join(format!("cosmount-bench-manifest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("b/c")).unwrap();
        std::fs::create_dir_all(d.join("empty")).unwrap();
        std::fs::write(d.join("b/c/x"), b"12345").unwrap();
        std::fs::write(d.join("a"), b"").unwrap();
        std::fs::write(d.join("b/y"), b"1").unwrap();
        let files = tree_files(&d).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(files, kv(&[("a", 0), ("b/c/x", 5), ("b/y", 1)]));
    }
}
