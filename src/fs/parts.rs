//! Part buffers: the memory that holds one multipart part on its way to the server, charged to
//! the mount's budget and reused.
//!
//! A part buffer is allocated at the part size and charged in full when it is taken, so writers
//! wait for room as before (see `budget.rs`). When the upload that owns it is done, the buffer
//! goes back to the pool, still charged, and the next part reuses it. Reuse matters: an 8 MiB
//! buffer freshly mapped from the kernel costs a page fault and a zeroed page per 4 KiB, which
//! profiling showed to be a tenth of the daemon's CPU time during a large sequential write.
//! A buffer's bytes start at a 4 KiB-aligned address, so a full part can be written to the
//! staging file with `O_DIRECT` (see `write.rs`).
//! At most [`KEEP`] idle buffers are kept; the rest are freed with their charge, and idle ones
//! are freed too when the budget needs room (the pool is one of its reclaimers).

use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use crate::budget::{Budget, Charge};

/// Idle buffers kept for reuse (charged to the budget while idle).
pub const KEEP: usize = 2;

/// Alignment of a buffer's first byte (what `O_DIRECT` asks for).
pub const ALIGN: usize = 4096;

/// Reusable part buffers of one size.
#[derive(Debug)]
pub struct PartPool {
    budget: Arc<Budget>,
    size: usize,
    idle: Mutex<Vec<(Vec<u8>, Charge)>>,
}

impl PartPool {
    /// A pool of `size`-byte buffers charged to `budget`.
    pub fn new(budget: Arc<Budget>, size: u64) -> Arc<Self> {
        let pool = Arc::new(Self {
            budget: budget.clone(),
            size: usize::try_from(size).unwrap_or(usize::MAX),
            idle: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&pool);
        budget.add_reclaimer(Box::new(move |want| weak.upgrade().map_or(0, |p| p.free_idle(want))));
        pool
    }

    /// Free idle buffers worth up to `want` bytes (at least one if any); returns bytes freed.
    fn free_idle(&self, want: u64) -> u64 {
        let mut idle = self.lock();
        let mut freed = 0;
        while freed < want {
            match idle.pop() {
                Some((_, charge)) => freed += charge.bytes(),
                None => break,
            }
        }
        freed
    }

    /// The budget buffers are charged to.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Idle buffers held now.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Vec<u8>, Charge)>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An empty buffer with room for one part: an idle one, or a new one once the budget has
    /// room for it (writers wait here).
    pub async fn take(self: &Arc<Self>) -> PartBuf {
        let reused = self.lock().pop();
        let (buf, charge) = match reused {
            Some(idle) => idle,
            None => {
                let charge = self.budget.charge(self.size as u64).await;
                (Vec::with_capacity(self.size.saturating_add(ALIGN)), charge)
            }
        };
        self.part(buf, charge)
    }

    /// Like [`PartPool::take`], but only if an idle buffer or room in the budget is there now.
    pub fn try_take(self: &Arc<Self>) -> Option<PartBuf> {
        let reused = self.lock().pop();
        let (buf, charge) = match reused {
            Some(idle) => idle,
            None => {
                let charge = self.budget.try_charge(self.size as u64)?;
                (Vec::with_capacity(self.size.saturating_add(ALIGN)), charge)
            }
        };
        Some(self.part(buf, charge))
    }

    fn part(self: &Arc<Self>, buf: Vec<u8>, charge: Charge) -> PartBuf {
        let mut part = PartBuf {
            start: 0,
            buf,
            charge: Some(charge),
            home: Arc::downgrade(self),
        };
        part.start = part.buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        part.buf.resize(part.start, 0);
        part
    }

    fn give_back(&self, mut buf: Vec<u8>, charge: Charge) {
        if buf.capacity() < self.size.saturating_add(ALIGN) {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < KEEP {
            buf.clear();
            idle.push((buf, charge));
            drop(idle);
            // A writer may be waiting for room this buffer holds: let it ask again (its retry
            // frees idle buffers through the reclaimer).
            self.budget.wake_waiters();
        }
    }
}

/// One part's bytes; goes back to its pool when dropped (also when held by [`Bytes`]).
#[derive(Debug)]
pub struct PartBuf {
    /// Where the bytes start in `buf` (the first aligned address).
    start: usize,
    buf: Vec<u8>,
    charge: Option<Charge>,
    home: Weak<PartPool>,
}

impl PartBuf {
    /// Bytes held.
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append `data`.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// `len` bytes to fill in place (zeroed first).
    pub fn filled(&mut self, len: usize) -> &mut [u8] {
        self.buf.truncate(self.start);
        self.buf.resize(self.start + len, 0);
        &mut self.buf[self.start..]
    }

    /// The bytes as a request body, without copying; the buffer comes back to the pool when
    /// the body is dropped.
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PartBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

impl Drop for PartBuf {
    fn drop(&mut self) {
        if let (Some(pool), Some(charge)) = (self.home.upgrade(), self.charge.take()) {
            pool.give_back(std::mem::take(&mut self.buf), charge);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buffers_are_reused_charged_and_at_most_keep_stay_idle() {
        let budget = Budget::new(64 << 20);
        let pool = PartPool::new(budget.clone(), 8 << 20);
        let mut a = pool.take().await;
        a.extend(b"hello");
        let ptr = a.as_ref().as_ptr();
        assert_eq!(ptr as usize % ALIGN, 0, "bytes start aligned");
        assert_eq!(budget.used(), 8 << 20);
        let body = a.into_bytes();
        assert_eq!(&body[..], b"hello");
        drop(body);
        // Back in the pool, still charged, and handed out again empty.
        assert_eq!((pool.idle(), budget.used()), (1, 8 << 20));
        let b = pool.take().await;
        assert_eq!((b.len(), b.as_ref().as_ptr()), (0, ptr));
        assert_eq!(pool.idle(), 0);
        let more: Vec<PartBuf> = vec![b, pool.take().await, pool.take().await, pool.take().await];
        assert_eq!(budget.used(), 32 << 20);
        drop(more);
        // Only KEEP stay; the others give their memory back.
        assert_eq!(pool.idle(), KEEP);
        assert_eq!(budget.used(), KEEP as u64 * (8 << 20));
        drop(pool);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn idle_buffers_make_room_when_the_budget_is_spent() {
        // Two idle buffers fill a 16 MiB budget: a writer asking for more gets their room.
        let budget = Budget::new(16 << 20);
        let pool = PartPool::new(budget.clone(), 8 << 20);
        drop(vec![pool.take().await, pool.take().await]);
        assert_eq!((pool.idle(), budget.used()), (2, 16 << 20));
        let small = tokio::time::timeout(std::time::Duration::from_secs(5), budget.charge(1 << 20))
            .await
            .expect("waited on idle buffers");
        assert_eq!((pool.idle(), budget.used()), (1, 9 << 20));
        drop(small);
    }

    #[tokio::test]
    async fn a_writer_waiting_for_room_gets_it_when_a_buffer_goes_back_to_the_pool() {
        // The budget holds one part: a second take waits, and the first buffer going back to
        // the pool (still charged, idle) must wake it, not leave it waiting forever.
        let budget = Budget::new(6 << 20);
        let pool = PartPool::new(budget.clone(), 5 << 20);
        let first = pool.take().await;
        let p = pool.clone();
        let second = tokio::spawn(async move { p.take().await.len() });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "no room yet");
        assert!(pool.try_take().is_none(), "try_take does not wait");
        drop(first.into_bytes());
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), second)
            .await
            .expect("the waiting writer was never woken")
            .expect("join");
        assert_eq!(got, 0);
        assert!(budget.used() <= 6 << 20);
    }

    #[tokio::test]
    async fn a_buffer_outliving_its_pool_frees_its_charge() {
        let budget = Budget::new(64 << 20);
        let pool = PartPool::new(budget.clone(), 1 << 20);
        let mut a = pool.take().await;
        assert_eq!(a.filled(3), &[0, 0, 0]);
        drop(pool);
        drop(a);
        assert_eq!(budget.used(), 0);
    }
}
