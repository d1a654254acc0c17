//! Directory listings: ListObjectsV2 pages (delimiter `/`) turned into a stream of directory
//! entries with stable offsets.
//!
//! Pitfalls, and where each is handled:
//! 1. **A file and a directory with the same name** (`a` and `a/x`): the directory wins and the
//!    file is hidden (as Mountpoint does; `lookup` agrees). Because `a-/`, `a.txt` and friends sort
//!    between `a` and `a/`, a file is held in `pending` until the listing has passed `a/`.
//! 2. **`a-/` sorts before `a/`** although `a-` sorts after `a`: entries are emitted in key order,
//!    never re-sorted by name, and nothing relies on name order.
//! 3. **Keys that cannot be names** (`a//b`, `.`, `..`, segments over 255 bytes): skipped with a
//!    DEBUG log (see `path.rs`), never an error for the whole directory.
//! 4. **The directory's own marker** (`dir/` listed under `dir/`): not a child.
//! 5. **Huge directories stream**: a page is fetched only when the kernel asks past what has been
//!    listed so far, so the first entries of a 100 000-key directory come back after one request.
//! 6. **Stable offsets**: every entry ever emitted stays in `entries`; offset `n` always means
//!    "after the n-th entry", also after a rewind (offsets 1 and 2 are `.` and `..`).
//! 7. **Duplicates across pages** (a common prefix repeated by a server): dropped by `seen`.

use std::collections::VecDeque;

use foldhash::{HashSet, HashSetExt};

use tracing::debug;

use super::inode::Kind;
use super::path::listable;
use crate::store::{ListPage, ObjectMeta};

/// One name of a directory, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub kind: Kind,
    /// The object, for files (size, mtime, ETag).
    pub object: Option<ObjectMeta>,
}

/// Merges listing pages into entries (pitfalls 1–4, 7). Pure: no I/O.
#[derive(Debug)]
pub struct ListingMerger {
    /// S3 prefix of the directory (`""` or ending with `/`).
    prefix: String,
    pending: VecDeque<ObjectMeta>,
    seen: HashSet<String>,
}

enum Item {
    Object(Box<ObjectMeta>),
    Prefix(String),
}

impl Item {
    fn key(&self) -> &str {
        match self {
            Item::Object(o) => &o.key,
            Item::Prefix(p) => p,
        }
    }
}

impl ListingMerger {
    /// A merger for the directory listed with S3 prefix `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            pending: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    /// Feed one page; returns the entries that are now certain. With `last`, also flushes what is held.
    pub fn push_page(&mut self, page: ListPage, last: bool) -> Vec<Listed> {
        let mut out = Vec::with_capacity(page.objects.len() + page.prefixes.len() + self.pending.len());
        let mut objects = page.objects.into_iter().peekable();
        let mut prefixes = page.prefixes.into_iter().peekable();
        loop {
            let take_object = match (objects.peek(), prefixes.peek()) {
                (Some(o), Some(p)) => o.key.as_str() < p.as_str(),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let item = if take_object {
                objects.next().map(|o| Item::Object(Box::new(o)))
            } else {
                prefixes.next().map(Item::Prefix)
            };
            if let Some(item) = item {
                self.push_item(item, &mut out);
            }
        }
        if last {
            while let Some(o) = self.pending.pop_front() {
                self.emit_file(o, &mut out);
            }
        }
        out
    }

    fn push_item(&mut self, item: Item, out: &mut Vec<Listed>) {
        // Release held files whose `name/` would have come before this key (pitfall 1).
        while let Some(front) = self.pending.front() {
            if dir_key_before(&front.key, item.key()) {
                if let Some(o) = self.pending.pop_front() {
                    self.emit_file(o, out);
                }
            } else {
                break;
            }
        }
        match item {
            Item::Prefix(p) => {
                let Some(name) = p.strip_prefix(&self.prefix).and_then(|n| n.strip_suffix('/')) else {
                    return;
                };
                let dir_key = &p[..p.len() - 1];
                if let Some(pos) = self.pending.iter().position(|o| o.key == dir_key) {
                    debug!(key = dir_key, "hiding file that shares its name with a directory");
                    self.pending.remove(pos);
                }
                if !listable(name) {
                    debug!(key = p.as_str(), "skipping a prefix that cannot be a directory name");
                    return;
                }
                if self.seen.insert(name.to_string()) {
                    out.push(Listed {
                        name: name.to_string(),
                        kind: Kind::Dir,
                        object: None,
                    });
                }
            }
            Item::Object(o) => {
                if o.key == self.prefix {
                    return; // pitfall 4: the directory's own marker
                }
                self.pending.push_back(*o);
            }
        }
    }

    fn emit_file(&mut self, o: ObjectMeta, out: &mut Vec<Listed>) {
        let Some(name) = o.key.strip_prefix(&self.prefix) else {
            return;
        };
        if !listable(name) || name.contains('/') {
            debug!(key = o.key.as_str(), "skipping a key that cannot be a file name");
            return;
        }
        if self.seen.insert(name.to_string()) {
            out.push(Listed {
                name: name.to_string(),
                kind: Kind::File,
                object: Some(o),
            });
        }
    }
}

/// Whether `file` + "/" sorts before `key` (without building that string).
fn dir_key_before(file: &str, key: &str) -> bool {
    let (f, k) = (file.as_bytes(), key.as_bytes());
    match k.get(..f.len()) {
        Some(head) if head == f => match k.get(f.len()) {
            Some(&c) => c > b'/' || (c == b'/' && k.len() > f.len() + 1),
            None => false,
        },
        _ => f < k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn obj(key: &str) -> ObjectMeta {
        ObjectMeta {
            key: key.into(),
            size: 1,
            etag: None,
            last_modified: SystemTime::UNIX_EPOCH,
            metadata: Default::default(),
            content_type: None,
            extra: Default::default(),
        }
    }

    fn names(v: &[Listed]) -> Vec<(String, Kind)> {
        v.iter().map(|l| (l.name.clone(), l.kind)).collect()
    }

    #[test]
    fn file_hidden_by_directory_of_same_name_even_across_pages() {
        let mut m = ListingMerger::new("p/");
        let mut out = m.push_page(
            ListPage {
                objects: vec![obj("p/"), obj("p/a"), obj("p/a.txt")],
                prefixes: vec![],
                next: None,
            },
            false,
        );
        out.extend(m.push_page(
            ListPage {
                objects: vec![],
                prefixes: vec!["p/a-/".into(), "p/a/".into()],
                next: None,
            },
            false,
        ));
        out.extend(m.push_page(
            ListPage {
                objects: vec![obj("p/b")],
                prefixes: vec![],
                next: None,
            },
            true,
        ));
        assert_eq!(
            names(&out),
            vec![
                ("a-".into(), Kind::Dir),
                ("a".into(), Kind::Dir),
                ("a.txt".into(), Kind::File),
                ("b".into(), Kind::File)
            ]
        );
    }

    #[test]
    fn dir_key_before_matches_the_string_comparison() {
        let keys = [
            "", "a", "a/", "a-", "a.txt", "a/b", "a0", "ab", "b", "a//", "\u{e9}", "a\u{e9}",
        ];
        for f in keys {
            for k in keys {
                assert_eq!(dir_key_before(f, k), format!("{f}/").as_str() < k, "{f:?} {k:?}");
            }
        }
    }

    #[test]
    fn bad_names_are_skipped_not_fatal() {
        let long = format!("{}/", "z".repeat(256));
        let mut m = ListingMerger::new("");
        let out = m.push_page(
            ListPage {
                objects: vec![obj("."), obj(".."), obj("ok")],
                prefixes: vec!["../".into(), "/".into(), "d/".into(), "d/".into(), long],
                next: None,
            },
            true,
        );
        assert_eq!(names(&out), vec![("d".into(), Kind::Dir), ("ok".into(), Kind::File)]);
    }
}
