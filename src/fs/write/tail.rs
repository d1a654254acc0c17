//! The tail of an appending writer: the chunk being appended to, held in a part buffer, sent as
//! a part as it is once full and written to the staging file in the background (at most
//! [`STAGING_AHEAD`] such writes at once, with `O_DIRECT` where the staging filesystem allows
//! it). Anything but an append first *settles*: waits for those writes and writes the tail out,
//! so that the staging file is again the whole truth.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::Arc;

use bytes::Bytes;

use super::{io_err, Staged, STAGING_AHEAD};
use crate::error::{FsError, FsResult};

/// The chunk an appending writer is filling: its bytes from the chunk's start to the file's end.
#[derive(Debug)]
pub(super) struct Tail {
    pub(super) chunk: usize,
    pub(super) buf: super::PartBuf,
}

impl Staged {
    /// The staging file opened with `O_DIRECT`, if it can be and parts are aligned for it.
    pub(super) fn direct(&mut self) -> Option<Arc<File>> {
        self.direct
            .get_or_insert_with(|| {
                if !self.chunk.is_multiple_of(crate::fs::parts::ALIGN as u64) {
                    return None;
                }
                let path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
                std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(path)
                    .inspect_err(|e| tracing::debug!("staging without O_DIRECT: {e}"))
                    .ok()
                    .map(Arc::new)
            })
            .clone()
    }

    /// Write a full part at `offset` of the staging file in the background.
    pub(super) async fn stage_behind(&mut self, offset: u64, bytes: Bytes) {
        while self.staging.len() >= STAGING_AHEAD {
            let oldest = self.staging.remove(0);
            let r = oldest.await;
            self.note_staged(r);
        }
        let (file, direct) = (self.file.clone(), self.direct());
        self.staging.push(tokio::task::spawn_blocking(move || {
            #[cfg(test)]
            std::thread::sleep(std::time::Duration::from_millis(
                super::upload::tests::STAGE_DELAY_MS.load(std::sync::atomic::Ordering::Relaxed),
            ));
            match direct.map(|d| d.write_all_at(&bytes, offset)) {
                // EINVAL: this file or buffer is not fit for O_DIRECT after all.
                Some(Err(e)) if e.raw_os_error() == Some(libc::EINVAL) => file.write_all_at(&bytes, offset),
                Some(r) => r,
                None => file.write_all_at(&bytes, offset),
            }
        }));
    }

    pub(super) fn note_staged(&mut self, r: Result<std::io::Result<()>, tokio::task::JoinError>) {
        let e = match r {
            Ok(Ok(())) => return,
            Ok(Err(e)) => io_err("cannot write the staging file", e),
            Err(e) => FsError::new(libc::EIO, format!("a staging-file write failed: {e}")),
        };
        self.break_with(&e, "bytes written earlier are lost");
    }

    /// Wait for the background staging writes; fail if one failed.
    pub(super) async fn drain_staging(&mut self) -> FsResult<()> {
        for h in std::mem::take(&mut self.staging) {
            let r = h.await;
            self.note_staged(r);
        }
        self.check_broken()
    }

    /// Wait for the background staging writes, then write the tail to the staging file (before
    /// anything but an append). On failure the tail stays, so nothing written is lost.
    pub(super) async fn settle(&mut self) -> FsResult<()> {
        self.drain_staging().await?;
        write_out(&self.file, &mut self.tail, self.chunk)
    }

    /// An append at the end of a file past its first chunk: goes to the tail (started at a
    /// chunk boundary). Returns the chunks completed and how many bytes were taken, or `None`
    /// when this write is not such an append (the tail, if any, is then settled by the caller).
    /// A write that completes a part and goes on takes a new tail only if memory is free now:
    /// the completed part's buffer is released only once `stream` sends it, after this write, so
    /// waiting here could wait forever; the rest then goes through the staging file.
    pub(super) async fn append(&mut self, offset: u64, data: &[u8]) -> FsResult<Option<(Vec<usize>, usize)>> {
        if offset != self.size || offset < self.chunk {
            return Ok(None);
        }
        let starts_chunk = offset.is_multiple_of(self.chunk);
        match &self.tail {
            Some(t) if t.chunk as u64 == offset / self.chunk && !starts_chunk => {}
            None if starts_chunk => {}
            _ => return Ok(None),
        }
        let mut sealed = Vec::new();
        let mut at = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let c = (at / self.chunk) as usize;
            let c_end = (c as u64 + 1) * self.chunk;
            let n = rest.len().min((c_end - at) as usize);
            let mut tail = match self.tail.take() {
                Some(t) => t,
                None if self.ready.is_empty() => Tail {
                    chunk: c,
                    buf: self.pool.take().await,
                },
                None => match self.pool.try_take() {
                    Some(buf) => Tail { chunk: c, buf },
                    None => break,
                },
            };
            tail.buf.extend(&rest[..n]);
            let end = at + n as u64;
            self.size = end;
            self.resize_chunks();
            self.touch(at, end);
            self.dirty = true;
            if end == c_end {
                // Complete: on its way as a part, and into the staging file behind the writer.
                let bytes = tail.buf.into_bytes();
                self.stage_behind(c as u64 * self.chunk, bytes.clone()).await;
                sealed.push(c);
                self.ready.push((c, self.gens[c], bytes));
            } else {
                self.tail = Some(tail);
            }
            at = end;
            rest = &rest[n..];
        }
        if let Some(prev) = ((offset / self.chunk) as usize).checked_sub(1) {
            // As below: the chunk before is proposed again (it may have been completed while
            // the file still fit in one part).
            if self.present[prev] && !sealed.contains(&prev) {
                sealed.insert(0, prev);
            }
        }
        Ok(Some((sealed, data.len() - rest.len())))
    }
}

/// Write `tail` (of `chunk`-byte chunks) to the staging `file` and drop it; on failure it stays,
/// so nothing written is lost.
pub(super) fn write_out(file: &File, tail: &mut Option<Tail>, chunk: u64) -> FsResult<()> {
    if let Some(t) = tail {
        file.write_all_at(t.buf.as_ref(), t.chunk as u64 * chunk)
            .map_err(|e| io_err("cannot write the staging file", e))?;
        *tail = None;
    }
    Ok(())
}
