//! One entry of the write cache on disk: a file's contents and what its upload stores with them,
//! in one file named after its sequence number, synced before `close` returns.
//!
//! Layout (little-endian): magic `CMWC1\n`, `u64 lineage`, `u64 seq`, the key, the Content-Type
//! (`u32` length, `u32::MAX` for none), `u32` count of metadata pairs and the pairs, `u64` size,
//! the contents, and a `u32` CRC32 of everything before it. Strings are `u32` length + UTF-8.
//!
//! An entry is written in place and synced, then its directory is synced; one whose write was cut
//! off (a crash inside `close`, which then never returned) fails its CRC and is set aside at the
//! next mount. The lineage is the file's: later entries of the same file (written again, renamed,
//! attributes changed) carry a higher `seq`, and only the highest of a lineage is uploaded.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 6] = b"CMWC1\n";
/// Bytes copied at a time.
const COPY: usize = 1024 * 1024;

/// What an entry says besides the contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub lineage: u64,
    pub seq: u64,
    pub key: String,
    pub content_type: Option<String>,
    pub metadata: HashMap<String, String>,
    pub size: u64,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.key.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.lineage.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        put_str(&mut out, &self.key);
        match &self.content_type {
            Some(t) => put_str(&mut out, t),
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
        let mut pairs: Vec<_> = self.metadata.iter().collect();
        pairs.sort();
        out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
        for (k, v) in pairs {
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
        out.extend_from_slice(&self.size.to_le_bytes());
        out
    }
}

/// Write an entry at `path`: `header`, then `header.size` bytes read from `contents` at offset 0
/// on; synced. Any failure removes the partial file.
pub fn write(path: &Path, header: &Header, contents: &File) -> std::io::Result<()> {
    let r = write_inner(path, header, contents);
    if r.is_err() {
        let _ = std::fs::remove_file(path);
    }
    r
}

fn write_inner(path: &Path, header: &Header, contents: &File) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut out = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    let head = header.encode();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head);
    let mut buf = Vec::with_capacity(head.len() + (header.size as usize).min(COPY) + 4);
    buf.extend_from_slice(&head);
    let mut at = 0u64;
    while at < header.size {
        let n = ((header.size - at) as usize).min(COPY);
        let start = buf.len();
        buf.resize(start + n, 0);
        contents.read_exact_at(&mut buf[start..], at)?;
        crc.update(&buf[start..]);
        at += n as u64;
        if at < header.size {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    out.write_all(&buf)?;
    out.sync_data()
}

/// Why an entry cannot be used.
#[derive(Debug)]
pub enum Bad {
    Io(std::io::Error),
    /// Not an entry, cut short, or its CRC does not match.
    Damaged(String),
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bad::Io(e) => write!(f, "{e}"),
            Bad::Damaged(why) => write!(f, "damaged: {why}"),
        }
    }
}

impl From<std::io::Error> for Bad {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Bad::Damaged("cut short".into())
        } else {
            Bad::Io(e)
        }
    }
}

struct Crc<R> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Crc<R> {
    fn exact(&mut self, n: usize) -> Result<Vec<u8>, Bad> {
        let mut b = vec![0u8; n];
        self.inner.read_exact(&mut b)?;
        self.crc.update(&b);
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, Bad> {
        let b = self.exact(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, Bad> {
        let b = self.exact(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_le_bytes(a))
    }
    fn string(&mut self) -> Result<Option<String>, Bad> {
        let n = self.u32()?;
        if n == u32::MAX {
            return Ok(None);
        }
        if n > 64 * 1024 {
            return Err(Bad::Damaged(format!("a {n}-byte string")));
        }
        let b = self.exact(n as usize)?;
        String::from_utf8(b)
            .map(Some)
            .map_err(|_| Bad::Damaged("a string is not UTF-8".into()))
    }
    fn text(&mut self) -> Result<String, Bad> {
        self.string()?.ok_or_else(|| Bad::Damaged("a missing string".into()))
    }
}

/// Read the entry at `path`, checking its CRC; its contents are copied to `out` (truncated
/// first) when given.
pub fn read(path: &Path, out: Option<&mut File>) -> Result<Header, Bad> {
    let file = File::open(path)?;
    let mut r = Crc {
        inner: BufReader::with_capacity(COPY, file),
        crc: crc32fast::Hasher::new(),
    };
    if r.exact(MAGIC.len())? != MAGIC {
        return Err(Bad::Damaged("not a write-cache entry".into()));
    }
    let lineage = r.u64()?;
    let seq = r.u64()?;
    let key = r.text()?;
    let content_type = r.string()?;
    let pairs = r.u32()?;
    if pairs > 10_000 {
        return Err(Bad::Damaged(format!("{pairs} metadata pairs")));
    }
    let mut metadata = HashMap::new();
    for _ in 0..pairs {
        let k = r.text()?;
        let v = r.text()?;
        metadata.insert(k, v);
    }
    let size = r.u64()?;
    let mut out = out;
    if let Some(f) = out.as_deref_mut() {
        f.set_len(0)?;
    }
    let mut left = size;
    let mut buf = vec![0u8; COPY.min(size as usize)];
    while left > 0 {
        let n = (left as usize).min(COPY);
        r.inner.read_exact(&mut buf[..n])?;
        r.crc.update(&buf[..n]);
        if let Some(f) = out.as_deref_mut() {
            f.write_all(&buf[..n])?;
        }
        left -= n as u64;
    }
    let want = r.crc.clone().finalize();
    let mut tail = [0u8; 4];
    r.inner.read_exact(&mut tail)?;
    if u32::from_le_bytes(tail) != want {
        return Err(Bad::Damaged("its CRC does not match".into()));
    }
    let mut extra = [0u8; 1];
    if r.inner.read(&mut extra)? != 0 {
        return Err(Bad::Damaged("bytes after its end".into()));
    }
    Ok(Header {
        lineage,
        seq,
        key,
        content_type,
        metadata,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Seek;

    fn header(size: u64) -> Header {
        Header {
            lineage: 7,
            seq: 42,
            key: "dir/naïve name.txt".into(),
            content_type: Some("text/plain".into()),
            metadata: [("mode".to_string(), "33188".to_string())].into(),
            size,
        }
    }

    fn contents(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().expect("tempfile");
        f.write_all(bytes).expect("write");
        f
    }

    #[test]
    fn an_entry_reads_back_with_its_contents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..3 * COPY + 17).map(|i| (i % 251) as u8).collect();
        let path = dir.path().join("1.wc");
        write(&path, &header(data.len() as u64), &contents(&data)).expect("write");
        let mut out = tempfile::tempfile().expect("tempfile");
        let h = read(&path, Some(&mut out)).expect("read");
        assert_eq!(h, header(data.len() as u64));
        let mut back = Vec::new();
        out.rewind().expect("rewind");
        out.read_to_end(&mut back).expect("read back");
        assert_eq!(back, data);
        assert!(write(&path, &h, &contents(&data)).is_err(), "never over an entry");
    }

    #[test]
    fn a_cut_or_flipped_entry_is_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = vec![5u8; 1000];
        let path = dir.path().join("1.wc");
        write(&path, &header(1000), &contents(&data)).expect("write");
        let whole = std::fs::read(&path).expect("read");
        for cut in [3, 40, whole.len() - 500, whole.len() - 1] {
            std::fs::write(&path, &whole[..cut]).expect("cut");
            assert!(matches!(read(&path, None), Err(Bad::Damaged(_))), "cut at {cut}");
        }
        let mut flipped = whole.clone();
        flipped[whole.len() - 300] ^= 1;
        std::fs::write(&path, &flipped).expect("flip");
        assert!(matches!(read(&path, None), Err(Bad::Damaged(_))));
        let empty = header(0);
        let p0 = dir.path().join("0.wc");
        write(&p0, &empty, &contents(b"")).expect("write");
        assert_eq!(read(&p0, None).expect("read"), empty);
    }
}
