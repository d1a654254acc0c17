//! The delay proxy of the latency rows (`--latency MS`): a TCP proxy on 127.0.0.1 between the
//! clients (the raw client, the mounts) and bench-server that adds a fixed round-trip to every
//! request, as a real S3 endpoint 10–30 ms away would (/work/shared/BENCH.md, "Real latency").
//!
//! The model, per connection: the first bytes of each request are held for RTT/2 before they go to
//! the server, and the first bytes of each response for RTT/2 before they go back, so one
//! request-response exchange costs one RTT more than on loopback. Requests are found without
//! parsing HTTP: on a keep-alive connection a new request is the client sending after the server
//! has sent (and a new response the server sending after the client has sent), so the first chunk
//! of each client→server and each server→client burst is delayed and the rest of the burst streams
//! on at once: bandwidth is not throttled, and a big upload or download pays one RTT, not one per
//! TCP segment. Concurrent connections are independent (each pays its own RTT, at the same time).
//!
//! What it does not model: the TCP (and TLS) handshake of a new connection (connections are
//! pooled by every client measured here, so that is a one-time cost), bandwidth limits, jitter
//! and loss. A client that sends while the server is still answering (not HTTP/1.1 without
//! pipelining, which is what every client here speaks) would pay RTT/2 per direction change.
//! `Expect: 100-continue` pays two RTTs, as it does on a real network.
//!
//! Both sockets of each connection get `TCP_NODELAY` (bench-server's own reason: a small write
//! must not wait for the peer's delayed ACK). The proxy runs a tokio runtime of its own on a
//! thread of its own, so the harness stays synchronous; dropping the [`DelayProxy`] stops it.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Which side sent last on a connection (nobody yet, the client, the server).
const NOBODY: u8 = 0;
const CLIENT: u8 = 1;
const SERVER: u8 = 2;

/// Size of each read of a pump (bytes).
const CHUNK: usize = 64 * 1024;
/// The last stretch of each hold, slept on a blocking thread (see [`hold_until`]).
const FINE: Duration = Duration::from_millis(2);

/// A running delay proxy (see the module doc); stopped when dropped.
pub struct DelayProxy {
    addr: SocketAddr,
    rtt: Duration,
    requests: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DelayProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards every connection to `upstream`, adding
    /// `rtt` to each request-response exchange.
    pub fn start(upstream: SocketAddr, rtt: Duration) -> io::Result<DelayProxy> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("delay-proxy")
            .enable_all()
            .build()?;
        let requests = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = oneshot::channel();
        let counter = requests.clone();
        // Made inside the runtime (tokio's listener needs its reactor), checked before returning.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let thread = std::thread::Builder::new().name("delay-proxy".into()).spawn(move || {
            rt.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(l) => {
                        let _ = ready_tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                tokio::select! {
                    _ = accept_loop(listener, upstream, rtt / 2, counter) => {}
                    _ = stopped => {}
                }
            });
            rt.shutdown_timeout(Duration::from_secs(1));
        })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other("the delay proxy's thread ended at start")),
        }
        Ok(DelayProxy {
            addr,
            rtt,
            requests,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the endpoint URL clients are given instead of the server's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The round-trip it adds.
    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    /// Requests seen so far (client→server bursts, each delayed by RTT/2).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The server's address in an endpoint URL `http://HOST:PORT[/]` (HOST an IP address).
pub fn endpoint_addr(endpoint: &str) -> Option<SocketAddr> {
    let rest = endpoint.strip_prefix("http://")?;
    rest.trim_end_matches('/').parse().ok()
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, half: Duration, requests: Arc<AtomicU64>) {
    loop {
        let client = match listener.accept().await {
            Ok((c, _)) => c,
            Err(_) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let requests = requests.clone();
        tokio::spawn(async move {
            let _ = connection(client, upstream, half, requests).await;
        });
    }
}

/// One client connection: connects to the server and pumps both ways until both are done, or
/// either way fails (then the other is dropped too).
async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    half: Duration,
    requests: Arc<AtomicU64>,
) -> io::Result<()> {
    client.set_nodelay(true)?;
    let server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let last = Arc::new(AtomicU8::new(NOBODY));
    let up = pump(cr, sw, CLIENT, last.clone(), half, Some(requests));
    let down = pump(sr, cw, SERVER, last, half, None);
    tokio::pin!(up, down);
    // A way that ends cleanly (EOF, passed on as a shutdown) leaves the other running; a failed
    // one (a reset) ends the connection.
    tokio::select! {
        r = &mut up => if r.is_ok() { down.await?; },
        r = &mut down => if r.is_ok() { up.await?; },
    }
    Ok(())
}

/// Copies `from` to `to`; the first chunk of each burst of `me` (`me` sending after the other side
/// did, or first) waits `half` before it is forwarded, and counts in `requests` when given.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    me: u8,
    last: Arc<AtomicU8>,
    half: Duration,
    requests: Option<Arc<AtomicU64>>,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Half-close: the other side sees EOF, the other way goes on.
            let _ = to.shutdown().await;
            return Ok(());
        }
        if last.swap(me, Ordering::SeqCst) != me {
            if let Some(r) = &requests {
                r.fetch_add(1, Ordering::Relaxed);
            }
            if !half.is_zero() {
                hold_until(Instant::now() + half).await;
            }
        }
        to.write_all(&buf[..n]).await?;
    }
}

/// Waits until `deadline`, to a fraction of a millisecond: tokio's timer has a 1 ms resolution and
/// fires up to about a millisecond late (2.5 ms too much per 20 ms exchange, measured here), so
/// it sleeps until [`FINE`] before the deadline and a blocking thread sleeps the rest with the
/// kernel's high-resolution timer (0.5–0.8 ms too much per exchange, proxy hops included; few
/// such threads at once: each holds its thread about 2 ms).
async fn hold_until(deadline: Instant) {
    if let Some(coarse) = deadline.checked_sub(FINE) {
        if coarse > Instant::now() {
            tokio::time::sleep_until(coarse.into()).await;
        }
    }
    let rest = deadline.saturating_duration_since(Instant::now());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener as StdListener, TcpStream as StdStream};
    use std::time::Instant;

    const RTT: Duration = Duration::from_millis(80);
    /// What a loaded 2-core machine may add to an exchange beyond the RTT.
    const SLACK: Duration = Duration::from_millis(150);

    /// A request-response server: each message is a 4-byte big-endian length and that many
    /// bytes; the whole request is read before its response (the same bytes) is sent, as an HTTP
    /// server reads a request before it answers. Serves connections until the test ends.
    fn echo_server() -> SocketAddr {
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { return };
                std::thread::spawn(move || {
                    c.set_nodelay(true).unwrap();
                    loop {
                        let mut len = [0u8; 4];
                        if c.read_exact(&mut len).is_err() {
                            return;
                        }
                        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                        c.read_exact(&mut body).unwrap();
                        c.write_all(&len).unwrap();
                        c.write_all(&body).unwrap();
                    }
                });
            }
        });
        addr
    }

    fn connect(p: &DelayProxy) -> StdStream {
        let c = StdStream::connect(p.addr()).unwrap();
        c.set_nodelay(true).unwrap();
        c
    }

    /// One exchange of `body` (sent in one write, or header and body apart): what came back.
    fn exchange(c: &mut StdStream, body: &[u8], split: bool) -> Vec<u8> {
        let len = (body.len() as u32).to_be_bytes();
        if split {
            c.write_all(&len).unwrap();
            c.write_all(body).unwrap();
        } else {
            c.write_all(&[&len[..], body].concat()).unwrap();
        }
        let mut got_len = [0u8; 4];
        c.read_exact(&mut got_len).unwrap();
        assert_eq!(got_len, len);
        let mut got = vec![0u8; body.len()];
        c.read_exact(&mut got).unwrap();
        got
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn an_exchange_takes_one_rtt_and_keep_alive_pays_it_per_request() {
        let p = DelayProxy::start(echo_server(), RTT).unwrap();
        let mut c = connect(&p);
        for i in 0..3 {
            let t0 = Instant::now();
            assert_eq!(
                exchange(&mut c, b"GET / HTTP/1.1\r\n\r\n", i == 1),
                b"GET / HTTP/1.1\r\n\r\n"
            );
            let took = t0.elapsed();
            assert!(took >= RTT && took < RTT + SLACK, "exchange {i} took {took:?}");
        }
        assert_eq!(p.requests(), 3, "each request is one client burst");
    }

    #[test]
    fn bytes_arrive_intact_and_bandwidth_is_not_throttled() {
        let p = DelayProxy::start(echo_server(), RTT).unwrap();
        let mut c = connect(&p);
        // 8 MiB each way: 128 chunks of 64 KiB, of which only the first of each way waits.
        let body = pattern(8 << 20);
        let t0 = Instant::now();
        let got = exchange(&mut c, &body, true);
        let took = t0.elapsed();
        assert!(got == body, "the echoed bytes differ");
        assert!(took >= RTT, "{took:?}");
        assert!(took < RTT + Duration::from_secs(2), "8 MiB each way took {took:?}");
        assert_eq!(p.requests(), 1);
    }

    #[test]
    fn concurrent_connections_each_pay_one_rtt_at_the_same_time() {
        let p = DelayProxy::start(echo_server(), RTT).unwrap();
        let n = 16;
        let t0 = Instant::now();
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let mut c = connect(&p);
                std::thread::spawn(move || {
                    let body = pattern(1000 + i);
                    let t = Instant::now();
                    assert!(exchange(&mut c, &body, false) == body);
                    t.elapsed()
                })
            })
            .collect();
        for t in threads {
            let took = t.join().unwrap();
            assert!(took >= RTT, "{took:?}");
        }
        let all = t0.elapsed();
        // Serialised, 16 exchanges would take 16 RTTs.
        assert!(all < 2 * RTT + SLACK, "{n} concurrent exchanges took {all:?}");
        assert_eq!(p.requests(), n as u64);
    }

    #[test]
    fn zero_rtt_passes_through_and_half_close_is_passed_on() {
        let p = DelayProxy::start(echo_server(), Duration::ZERO).unwrap();
        let mut c = connect(&p);
        let t0 = Instant::now();
        assert_eq!(exchange(&mut c, b"ping", false), b"ping");
        assert!(t0.elapsed() < SLACK, "{:?}", t0.elapsed());
        // The client closes its sending side: the server sees EOF and closes, and so the
        // client reads EOF through the proxy.
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }

    #[test]
    fn an_unreachable_server_closes_the_client_and_drop_stops_listening() {
        // A port nothing listens on (bound, then freed).
        let gone = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let p = DelayProxy::start(gone, RTT).unwrap();
        let mut c = connect(&p);
        let _ = c.write_all(b"x");
        let mut buf = Vec::new();
        // EOF or a reset, but an answer, not a hang.
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let r = c.read_to_end(&mut buf);
        assert!(r.is_ok() || r.as_ref().is_err_and(|e| e.kind() != io::ErrorKind::WouldBlock));
        assert!(buf.is_empty());
        let addr = p.addr();
        assert_eq!(p.endpoint(), format!("http://{addr}"));
        drop(p);
        assert!(StdStream::connect(addr).is_err(), "still listening after drop");
    }

    #[test]
    fn endpoint_addresses() {
        assert_eq!(
            endpoint_addr("http://127.0.0.1:9000"),
            Some("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            endpoint_addr("http://127.0.0.1:9000/"),
            Some("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(endpoint_addr("https://127.0.0.1:9000"), None);
        assert_eq!(endpoint_addr("http://localhost:9000"), None);
    }
}
