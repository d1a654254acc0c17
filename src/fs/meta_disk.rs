//! The metadata cache on disk: POSIX attributes (mode, owner, times, device) of objects by key
//! and ETag, kept in the state directory across mounts, so that `ls -l` on a later mount of the
//! same bucket needs no HEAD for objects whose listed ETag is the one recorded.
//!
//! One file per endpoint and bucket (`metadata-<endpoint>-<bucket>.cache`), appended to as HEADs
//! answer and uploads complete; each record carries its own CRC32, so a torn or corrupt tail (a
//! crash, two mounts appending at once) ends the reading there and the file is rewritten from the
//! good records. At load the file is also compacted: one record per key, the latest, at most
//! [`MAX_RECORDS`] of them. A record only says "an object with this ETag had these attributes",
//! so a changed object (a new ETag in the listing) is never shown with old ones. The file stops
//! growing at [`MAX_BYTES`] until the next mount compacts it.
//!
//! Record: `u32 length | u32 crc32 | payload`, little-endian; payload: key and ETag (each `u16`
//! length and bytes), size, Last-Modified (ns since the epoch), a presence mask and the seven
//! POSIX fields.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::meta::Posix;

/// Records kept by a compaction (the in-memory cache holds as many).
pub const MAX_RECORDS: usize = 200_000;
/// Size at which the file stops growing until the next mount compacts it.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes buffered before they are written.
const BUFFER: usize = 64 * 1024;

/// What a HEAD said of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub etag: String,
    pub size: u64,
    pub last_modified: SystemTime,
    pub posix: Posix,
}

/// The open cache file.
#[derive(Debug)]
pub struct MetaDisk {
    path: PathBuf,
    out: Mutex<Out>,
}

#[derive(Debug)]
struct Out {
    file: Option<std::fs::File>,
    buf: Vec<u8>,
    bytes: u64,
    full_logged: bool,
}

fn nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

fn time(n: i64) -> SystemTime {
    if n >= 0 {
        UNIX_EPOCH + Duration::from_nanos(n as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(n.unsigned_abs())
    }
}

/// A record as bytes (header included); `None` if the key or ETag is too long to record.
pub fn encode(r: &Record) -> Option<Vec<u8>> {
    let (key, etag) = (r.key.as_bytes(), r.etag.as_bytes());
    let (kl, el) = (u16::try_from(key.len()).ok()?, u16::try_from(etag.len()).ok()?);
    let mut p = Vec::with_capacity(64 + key.len() + etag.len());
    p.extend_from_slice(&kl.to_le_bytes());
    p.extend_from_slice(key);
    p.extend_from_slice(&el.to_le_bytes());
    p.extend_from_slice(etag);
    p.extend_from_slice(&r.size.to_le_bytes());
    p.extend_from_slice(&nanos(r.last_modified).to_le_bytes());
    let x = &r.posix;
    let mask = [
        x.mode.is_some(),
        x.uid.is_some(),
        x.gid.is_some(),
        x.mtime.is_some(),
        x.atime.is_some(),
        x.ctime.is_some(),
        x.rdev.is_some(),
    ]
    .iter()
    .enumerate()
    .fold(0u8, |m, (i, on)| if *on { m | (1 << i) } else { m });
    p.push(mask);
    for v in [x.mode, x.uid, x.gid, x.rdev] {
        p.extend_from_slice(&v.unwrap_or(0).to_le_bytes());
    }
    for t in [x.mtime, x.atime, x.ctime] {
        p.extend_from_slice(&t.map_or(0, nanos).to_le_bytes());
    }
    let mut out = Vec::with_capacity(8 + p.len());
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
    out.extend_from_slice(&p);
    Some(out)
}

/// Reads fields off a payload.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn text(&mut self) -> Option<String> {
        let n = self.u16()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn decode_payload(p: &[u8]) -> Option<Record> {
    let mut c = Cursor(p);
    let key = c.text()?;
    let etag = c.text()?;
    let size = c.u64()?;
    let last_modified = time(c.u64()? as i64);
    let mask = c.take(1)?[0];
    let on = |i: u32| mask & (1 << i) != 0;
    let (mode, uid, gid, rdev) = (c.u32()?, c.u32()?, c.u32()?, c.u32()?);
    let (mtime, atime, ctime) = (c.u64()? as i64, c.u64()? as i64, c.u64()? as i64);
    let posix = Posix {
        mode: on(0).then_some(mode),
        uid: on(1).then_some(uid),
        gid: on(2).then_some(gid),
        mtime: on(3).then(|| time(mtime)),
        atime: on(4).then(|| time(atime)),
        ctime: on(5).then(|| time(ctime)),
        rdev: on(6).then_some(rdev),
    };
    Some(Record {
        key,
        etag,
        size,
        last_modified,
        posix,
    })
}

/// The good records at the start of `bytes`, and whether everything after them was good too.
pub fn decode_all(bytes: &[u8]) -> (Vec<Record>, bool) {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let good = (|| {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let crc = u32::from_le_bytes(rest.get(4..8)?.try_into().ok()?);
            let payload = rest.get(8..8 + len)?;
            if crc32fast::hash(payload) != crc {
                return None;
            }
            Some((decode_payload(payload)?, 8 + len))
        })();
        match good {
            Some((r, used)) => {
                out.push(r);
                rest = &rest[used..];
            }
            None => return (out, false),
        }
    }
    (out, true)
}

/// The latest record of each key, the most recent [`MAX_RECORDS`].
fn compact(records: Vec<Record>) -> Vec<Record> {
    let mut last: HashMap<String, usize> = HashMap::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        last.insert(r.key.clone(), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    let skip = keep.len().saturating_sub(MAX_RECORDS);
    let mut records: Vec<Option<Record>> = records.into_iter().map(Some).collect();
    keep.into_iter()
        .skip(skip)
        .filter_map(|i| records.get_mut(i).and_then(Option::take))
        .collect()
}

impl MetaDisk {
    /// Open (or create) the cache of `bucket` at `endpoint` in `dir`: its records, compacted;
    /// the file is rewritten when it held duplicates or a corrupt tail.
    pub fn open(dir: &Path, endpoint: &str, bucket: &str) -> std::io::Result<(Self, Vec<Record>)> {
        std::fs::create_dir_all(dir)?;
        let path = crate::store::journal::state_file(dir, "metadata", endpoint, bucket, "cache");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let (records, whole) = decode_all(&bytes);
        if !whole {
            tracing::warn!(
                "the metadata cache {} ends with a damaged record after {} good ones: rebuilt from those",
                path.display(),
                records.len()
            );
        }
        let read = records.len();
        let records = compact(records);
        let mut size = bytes.len() as u64;
        if !whole || records.len() < read {
            let mut all = Vec::new();
            for r in &records {
                all.extend(encode(r).unwrap_or_default());
            }
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, &all)?;
            std::fs::rename(&tmp, &path)?;
            size = all.len() as u64;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        Ok((
            Self {
                path,
                out: Mutex::new(Out {
                    file: Some(file),
                    buf: Vec::new(),
                    bytes: size,
                    full_logged: false,
                }),
            },
            records,
        ))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record `r` (written once enough has gathered, or at [`MetaDisk::flush`]).
    pub fn append(&self, r: &Record) {
        let Some(bytes) = encode(r) else { return };
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if out.bytes + (out.buf.len() + bytes.len()) as u64 > MAX_BYTES {
            if !out.full_logged {
                out.full_logged = true;
                tracing::info!(
                    "the metadata cache {} reached {} MiB: new records wait for the next mount's compaction",
                    self.path.display(),
                    MAX_BYTES >> 20
                );
            }
            return;
        }
        out.buf.extend_from_slice(&bytes);
        if out.buf.len() >= BUFFER {
            Self::write_out(&self.path, &mut out);
        }
    }

    /// Write what is buffered (whole records, in one write: appends of two mounts interleave
    /// by record, or are caught by the checksums).
    pub fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        Self::write_out(&self.path, &mut out);
    }

    fn write_out(path: &Path, out: &mut Out) {
        if out.buf.is_empty() {
            return;
        }
        let buf = std::mem::take(&mut out.buf);
        let Some(f) = out.file.as_mut() else { return };
        match f.write_all(&buf) {
            Ok(()) => out.bytes += buf.len() as u64,
            Err(e) => {
                tracing::warn!(
                    "cannot write the metadata cache {}: {e}; no longer writing it",
                    path.display()
                );
                out.file = None;
            }
        }
    }
}

impl Drop for MetaDisk {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, etag: &str, mode: u32) -> Record {
        Record {
            key: key.into(),
            etag: etag.into(),
            size: 42,
            last_modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            posix: Posix {
                mode: Some(mode),
                uid: Some(1000),
                gid: None,
                mtime: Some(UNIX_EPOCH + Duration::from_nanos(1_600_000_000_123_456_789)),
                atime: None,
                ctime: Some(UNIX_EPOCH - Duration::from_secs(5)),
                rdev: Some(7),
            },
        }
    }

    #[test]
    fn records_round_trip_and_a_damaged_tail_is_cut() {
        let (a, b) = (rec("dir/a", "\"e1\"", 0o100644), rec("dir/ü b", "\"e2\"", 0o100600));
        let mut bytes = encode(&a).expect("a");
        bytes.extend(encode(&b).expect("b"));
        assert_eq!(decode_all(&bytes), (vec![a.clone(), b.clone()], true));
        // A torn last record: the first survives.
        assert_eq!(decode_all(&bytes[..bytes.len() - 3]), (vec![a.clone()], false));
        // A flipped byte in the second record's payload: caught by its checksum.
        let mut bad = bytes.clone();
        let at = bad.len() - 10;
        bad[at] ^= 0x40;
        assert_eq!(decode_all(&bad), (vec![a], false));
        assert!(
            encode(&rec(&"k".repeat(70_000), "e", 1)).is_none(),
            "too long to record"
        );
    }

    #[test]
    fn the_file_is_kept_across_opens_compacted_and_rebuilt_when_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (disk, none) = MetaDisk::open(dir.path(), "http://h:1", "b").expect("open");
        assert!(none.is_empty());
        disk.append(&rec("a", "\"1\"", 0o100644));
        disk.append(&rec("b", "\"1\"", 0o100644));
        disk.append(&rec("a", "\"2\"", 0o100600));
        let path = disk.path().to_path_buf();
        drop(disk);
        let (disk, got) = MetaDisk::open(dir.path(), "http://h:1", "b").expect("reopen");
        let keys: Vec<(&str, &str)> = got.iter().map(|r| (r.key.as_str(), r.etag.as_str())).collect();
        assert_eq!(keys, [("b", "\"1\""), ("a", "\"2\"")], "the latest record of each key");
        drop(disk);
        assert_eq!(
            decode_all(&std::fs::read(&path).expect("read")).0.len(),
            2,
            "compacted on disk"
        );
        // Garbage appended (a crash mid-write): the good records stay, the file is rewritten.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(&[9, 0, 0, 0, 1, 2]).expect("write");
        drop(f);
        let (_, got) = MetaDisk::open(dir.path(), "http://h:1", "b").expect("reopen");
        assert_eq!(got.len(), 2);
        assert_eq!(decode_all(&std::fs::read(&path).expect("read")), (got, true));
        // Another bucket has a file of its own.
        let (_, other) = MetaDisk::open(dir.path(), "http://h:1", "c").expect("open");
        assert!(other.is_empty());
    }
}
