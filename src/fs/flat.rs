//! `FlatSplitter`: one flat listing (ListObjectsV2 without delimiter) of a directory's subtree,
//! split into the listing of every directory in it, each exactly as a delimiter listing of that
//! directory would give it (then merged by [`ListingMerger`], so every pitfall of `readdir.rs` is
//! handled the same way).
//!
//! A tree walk (`find`, `du`, `rsync`) over 50 directories of 100 files then costs 5 pages of
//! 1 000 keys instead of 51 listings. Keys arrive sorted, and the keys under any prefix are
//! contiguous in that order, so the directories whose prefix the listing has passed are
//! complete: they are handed out as soon as that happens, while the listing goes on.
//!
//! Pure: no I/O. Keys outside the listed prefix are ignored; a path segment that cannot be a name
//! (`a//b`) is given to its parent as a common prefix, which the merger skips, and nothing under
//! it becomes a directory.

use super::path::{join, listable};
use super::readdir::{Listed, ListingMerger};
use crate::store::{ListPage, ObjectMeta};

/// One directory of the subtree still receiving keys.
struct Open {
    /// Path relative to the mount root.
    path: String,
    /// S3 prefix (ends with `/`, or `""` for an unprefixed mount's root).
    prefix: String,
    objects: Vec<ObjectMeta>,
    prefixes: Vec<String>,
}

impl Open {
    fn new(path: String, prefix: String) -> Self {
        Self {
            path,
            prefix,
            objects: Vec::new(),
            prefixes: Vec::new(),
        }
    }

    /// The directory's entries, as its own delimiter listing would give them.
    fn finish(self) -> (String, Vec<Listed>) {
        let mut merger = ListingMerger::new(&self.prefix);
        let page = ListPage {
            objects: self.objects,
            prefixes: self.prefixes,
            next: None,
        };
        (self.path, merger.push_page(page, true))
    }
}

/// Splits the pages of a flat listing of directory `path` (S3 prefix `prefix`).
pub struct FlatSplitter {
    /// The directories on the path to the last key, outermost first; `[0]` is the listed one.
    open: Vec<Open>,
}

impl FlatSplitter {
    /// For a flat listing of directory `path` (relative to the mount root), S3 prefix `prefix`.
    pub fn new(path: &str, prefix: &str) -> Self {
        Self {
            open: vec![Open::new(path.to_string(), prefix.to_string())],
        }
    }

    /// Feed the next page's objects (in key order); returns the directories now complete, each
    /// with its entries. With `last`, every directory still open is complete too.
    pub fn push(&mut self, objects: Vec<ObjectMeta>, last: bool) -> Vec<(String, Vec<Listed>)> {
        let mut done = Vec::new();
        for o in objects {
            self.push_key(o, &mut done);
        }
        if last {
            while let Some(d) = self.open.pop() {
                done.push(d.finish());
            }
        }
        done
    }

    /// Directories still open, innermost last (incomplete when the listing stops early).
    pub fn open_dirs(&self) -> impl Iterator<Item = &str> {
        self.open.iter().map(|d| d.path.as_str())
    }

    fn push_key(&mut self, o: ObjectMeta, done: &mut Vec<(String, Vec<Listed>)>) {
        let Some(root) = self.open.first() else { return };
        if !o.key.starts_with(&root.prefix) {
            return;
        }
        // Close the directories this key is not under (it sorts after all their keys).
        while self.open.len() > 1 && self.open.last().is_some_and(|d| !o.key.starts_with(&d.prefix)) {
            if let Some(d) = self.open.pop() {
                done.push(d.finish());
            }
        }
        // Descend through the key's directories below the innermost open one.
        loop {
            let Some(inner) = self.open.last_mut() else { return };
            let rest = &o.key[inner.prefix.len()..];
            let Some(slash) = rest.find('/') else {
                inner.objects.push(o);
                return;
            };
            let name = &rest[..slash];
            let sub_prefix = o.key[..inner.prefix.len() + slash + 1].to_string();
            if inner.prefixes.last() != Some(&sub_prefix) {
                inner.prefixes.push(sub_prefix.clone());
            }
            if !listable(name) {
                return; // the merger skips this prefix; nothing under it is a directory
            }
            let path = join(&inner.path, name);
            self.open.push(Open::new(path, sub_prefix));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::inode::Kind;
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    fn obj(key: &str) -> ObjectMeta {
        ObjectMeta {
            key: key.into(),
            size: key.len() as u64,
            etag: None,
            last_modified: SystemTime::UNIX_EPOCH,
            metadata: Default::default(),
            content_type: None,
            extra: Default::default(),
        }
    }

    /// What a delimiter listing of S3 prefix `prefix` returns for `keys` (sorted), merged.
    fn delimited(keys: &[String], prefix: &str) -> Vec<(String, Kind, u64)> {
        let mut objects = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        for k in keys.iter().filter(|k| k.starts_with(prefix)) {
            match k[prefix.len()..].find('/') {
                None => objects.push(obj(k)),
                Some(i) => {
                    let p = k[..prefix.len() + i + 1].to_string();
                    if prefixes.last() != Some(&p) {
                        prefixes.push(p);
                    }
                }
            }
        }
        let page = ListPage {
            objects,
            prefixes,
            next: None,
        };
        entries(&ListingMerger::new(prefix).push_page(page, true))
    }

    fn entries(l: &[Listed]) -> Vec<(String, Kind, u64)> {
        l.iter()
            .map(|l| (l.name.clone(), l.kind, l.object.as_ref().map_or(0, |o| o.size)))
            .collect()
    }

    /// Split `keys` (a flat listing of `path` = S3 `prefix`) in pages of `page` keys.
    fn split(keys: &[String], path: &str, prefix: &str, page: usize) -> BTreeMap<String, Vec<(String, Kind, u64)>> {
        let mut s = FlatSplitter::new(path, prefix);
        let mut out = BTreeMap::new();
        let chunks: Vec<&[String]> = keys.chunks(page.max(1)).collect();
        let n = chunks.len();
        for (i, c) in chunks.into_iter().enumerate() {
            for (dir, listed) in s.push(c.iter().map(|k| obj(k)).collect(), i + 1 == n) {
                assert!(out.insert(dir.clone(), entries(&listed)).is_none(), "{dir} twice");
            }
        }
        if n == 0 {
            for (dir, listed) in s.push(Vec::new(), true) {
                out.insert(dir, entries(&listed));
            }
        }
        out
    }

    #[test]
    fn every_directory_matches_its_own_delimiter_listing() {
        let mut keys: Vec<String> = [
            "t/",
            "t/a",
            "t/a.txt",
            "t/a/",
            "t/a/x",
            "t/a/y/",
            "t/a/y/z",
            "t/a-/q",
            "t/b//c",
            "t/b/d",
            "t/c/../e",
            "t/c/f",
            "t/d/d/d/d",
            "t/e",
            "t/e/f",
            "t/./g",
            "tz/outside",
        ]
        .iter()
        .map(|k| k.to_string())
        .collect();
        keys.sort();
        let got = split(&keys, "top", "t/", 3);
        let dirs = [
            ("top", "t/"),
            ("top/a", "t/a/"),
            ("top/a/y", "t/a/y/"),
            ("top/a-", "t/a-/"),
            ("top/b", "t/b/"),
            ("top/c", "t/c/"),
            ("top/d", "t/d/"),
            ("top/d/d", "t/d/d/"),
            ("top/d/d/d", "t/d/d/d/"),
            ("top/e", "t/e/"),
        ];
        for (path, prefix) in dirs {
            assert_eq!(got.get(path), Some(&delimited(&keys, prefix)), "{path}");
        }
        assert_eq!(got.len(), dirs.len(), "no other directory: {:?}", got.keys());
        assert!(got["top"].iter().any(|e| e == &("a".to_string(), Kind::Dir, 0)));
        assert!(
            !got["top"].iter().any(|e| e.0 == "a" && e.1 == Kind::File),
            "a/ hides the file a"
        );
    }

    #[test]
    fn random_trees_match_delimiter_listings_for_any_page_size() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let parts = ["a", "b", "a-", "a.b", "", ".", "c"];
        for _ in 0..200 {
            let mut keys: Vec<String> = (0..next(30))
                .map(|_| {
                    let depth = 1 + next(4);
                    let segs: Vec<&str> = (0..depth).map(|_| parts[next(parts.len() as u64) as usize]).collect();
                    format!("p/{}", segs.join("/"))
                })
                .collect();
            keys.sort();
            keys.dedup();
            let whole = split(&keys, "", "p/", usize::MAX);
            for page in [1, 2, 5] {
                assert_eq!(split(&keys, "", "p/", page), whole, "page size {page}: {keys:?}");
            }
            for (path, listed) in &whole {
                let prefix = if path.is_empty() {
                    "p/".to_string()
                } else {
                    format!("p/{path}/")
                };
                assert_eq!(listed, &delimited(&keys, &prefix), "{path}: {keys:?}");
            }
        }
    }

    #[test]
    fn stopping_early_leaves_the_open_directories_out() {
        let keys: Vec<String> = ["r/a/1", "r/a/2", "r/b/1", "r/b/2"]
            .iter()
            .map(|k| k.to_string())
            .collect();
        let mut s = FlatSplitter::new("r", "r/");
        let done = s.push(keys[..3].iter().map(|k| obj(k)).collect(), false);
        let names: Vec<&str> = done.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(names, vec!["r/a"], "only a is complete");
        assert_eq!(s.open_dirs().collect::<Vec<_>>(), vec!["r", "r/b"]);
    }
}
