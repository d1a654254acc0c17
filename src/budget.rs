//! `Budget`: the one memory budget (`--max-memory`) shared by the read cache, read-ahead and
//! write buffers.
//!
//! Every buffer of object data the daemon holds is *charged* to the budget while it lives (a
//! [`Charge`] gives its bytes back when dropped). Who gives way under pressure, in order:
//! 1. **cached blocks** are evicted, then idle part buffers are freed (the block cache and the
//!    part-buffer pool register themselves as *reclaimers*, in that order);
//! 2. **read-ahead** asks with [`Budget::try_charge`] and, refused, fetches less (the window
//!    shrinks) — a reader never waits for memory;
//! 3. **the bytes a `read` needs right now** are charged with [`Budget::force`]: they may go over
//!    the limit for the moment (at most one request's worth per reader), so a read never stalls;
//! 4. **writers wait** in [`Budget::charge`] until uploads in flight finish and give their
//!    memory back. A single request larger than the whole budget waits until nothing else is
//!    charged and then goes alone, so nothing waits forever and nothing is killed for memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Frees up to the given number of bytes (by evicting cached data); returns how many it freed.
pub type Reclaimer = Box<dyn Fn(u64) -> u64 + Send + Sync>;

/// The shared memory budget.
pub struct Budget {
    limit: u64,
    used: AtomicU64,
    peak: AtomicU64,
    freed: Notify,
    reclaimers: Mutex<Vec<Reclaimer>>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("limit", &self.limit)
            .field("used", &self.used())
            .finish()
    }
}

/// Bytes charged to a [`Budget`]; given back on drop.
#[must_use = "a charge is given back as soon as it is dropped"]
pub struct Charge {
    budget: Arc<Budget>,
    bytes: u64,
}

impl std::fmt::Debug for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Charge({} bytes)", self.bytes)
    }
}

impl Charge {
    /// The bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let now = self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel) - self.bytes;
            crate::metrics::set_memory(now, self.budget.limit);
            self.budget.freed.notify_waiters();
        }
    }
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            used: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            freed: Notify::new(),
            reclaimers: Mutex::new(Vec::new()),
        })
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes charged now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The most bytes ever charged at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Acquire)
    }

    /// Register what frees memory when a writer or read-ahead needs it (the block cache, the
    /// part-buffer pool); asked in the order registered.
    pub fn add_reclaimer(&self, r: Reclaimer) {
        self.reclaimers.lock().unwrap_or_else(|p| p.into_inner()).push(r);
    }

    fn note_peak(&self, now: u64) {
        self.peak.fetch_max(now, Ordering::AcqRel);
        crate::metrics::set_memory(now, self.limit);
    }

    fn charge_of(self: &Arc<Self>, bytes: u64) -> Charge {
        Charge {
            budget: self.clone(),
            bytes,
        }
    }

    /// Charge `bytes` if they fit under the limit now; `None` otherwise. Never evicts.
    pub fn try_charge_now(self: &Arc<Self>, bytes: u64) -> Option<Charge> {
        let mut used = self.used();
        loop {
            let next = used.checked_add(bytes)?;
            if next > self.limit {
                return None;
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.note_peak(next);
                    return Some(self.charge_of(bytes));
                }
                Err(now) => used = now,
            }
        }
    }

    /// Ask the reclaimers to free room for `bytes`.
    fn reclaim(&self, bytes: u64) -> u64 {
        let mut freed = 0;
        for r in self.reclaimers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let want = (self.used() + bytes).saturating_sub(self.limit);
            if want == 0 {
                break;
            }
            freed += r(want);
        }
        freed
    }

    /// Charge `bytes`, evicting cached data to make room if needed; `None` if they still do
    /// not fit (what read-ahead uses: refused, it fetches less).
    pub fn try_charge(self: &Arc<Self>, bytes: u64) -> Option<Charge> {
        if let Some(c) = self.try_charge_now(bytes) {
            return Some(c);
        }
        self.reclaim(bytes);
        self.try_charge_now(bytes)
    }

    /// Wake whoever waits in [`Budget::charge`] to try again (memory became reclaimable).
    pub fn wake_waiters(&self) {
        self.freed.notify_waiters();
    }

    /// Charge `bytes` whatever the limit (the bytes a read needs now).
    pub fn force(self: &Arc<Self>, bytes: u64) -> Charge {
        let now = self.used.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.note_peak(now);
        self.charge_of(bytes)
    }

    /// Charge `bytes`, waiting until they fit (what writers use). A request larger than the
    /// limit waits until nothing else is charged.
    pub async fn charge(self: &Arc<Self>, bytes: u64) -> Charge {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(c) = self.try_charge(bytes) {
                return c;
            }
            if bytes > self.limit && self.used() == 0 {
                return self.force(bytes);
            }
            freed.await;
        }
    }
}

/// Parse a size such as `512M`, `2G`, `1.5GiB` or `1048576` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (examples: 512M, 2G, 1048576)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("`{s}`: unknown unit `{other}` (use K, M, G or T)")),
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{s}` is not a usable size"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn charges_are_bounded_and_given_back() {
        let b = Budget::new(100);
        let a = b.try_charge(60).expect("fits");
        assert!(b.try_charge(50).is_none());
        let c = b.try_charge(40).expect("fits exactly");
        assert_eq!(b.used(), 100);
        drop(a);
        assert_eq!(b.used(), 40);
        drop(c);
        assert_eq!(b.used(), 0);
        assert_eq!(b.peak(), 100);
        // Forced charges may go over, and are counted.
        let f = b.force(150);
        assert_eq!(b.used(), 150);
        assert!(b.try_charge(1).is_none());
        drop(f);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn the_reclaimer_makes_room() {
        let b = Budget::new(100);
        let held = Arc::new(Mutex::new(vec![
            b.try_charge(50).expect("a"),
            b.try_charge(50).expect("b"),
        ]));
        let h = held.clone();
        b.add_reclaimer(Box::new(move |want| {
            let mut v = h.lock().expect("lock");
            let mut freed = 0;
            while freed < want {
                match v.pop() {
                    Some(c) => freed += c.bytes(),
                    None => break,
                }
            }
            freed
        }));
        let c = b.try_charge(30).expect("room made");
        assert_eq!(held.lock().expect("lock").len(), 1);
        assert_eq!(b.used(), 80);
        drop(c);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writers_wait_and_never_deadlock() {
        // 16 writers want 40 bytes each of a 100-byte budget, holding it briefly: all finish, and
        // the budget is never exceeded.
        let b = Budget::new(100);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let b = b.clone();
            tasks.spawn(async move {
                for _ in 0..20 {
                    let c = b.charge(40).await;
                    assert!(b.used() <= 100, "over budget: {}", b.used());
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    drop(c);
                }
            });
        }
        let all = async { while tasks.join_next().await.transpose().expect("task").is_some() {} };
        tokio::time::timeout(Duration::from_secs(20), all)
            .await
            .expect("writers deadlocked");
        assert_eq!(b.used(), 0);
        assert!(b.peak() <= 100);
        // Larger than the whole budget: waits for the others, then goes alone.
        let small = b.charge(10).await;
        let b2 = b.clone();
        let big = tokio::spawn(async move { b2.charge(500).await.bytes() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!big.is_finished());
        drop(small);
        let got = tokio::time::timeout(Duration::from_secs(5), big)
            .await
            .expect("big charge waited forever")
            .expect("join");
        assert_eq!(got, 500);
    }
}
