//! A TCP proxy between the mount and the local S3 server that can be switched off, cutting
//! every open connection and refusing new ones: "the S3 server stopped", without losing the
//! server's state.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Forward bytes both ways between `client` and `server` until either closes; both are kept in
/// `conns` so they can be cut.
fn splice(client: TcpStream, server: TcpStream, conns: &Mutex<Vec<TcpStream>>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    {
        let mut g = conns.lock().expect("conns");
        g.push(client.try_clone().expect("clone"));
        g.push(server.try_clone().expect("clone"));
    }
    for (mut from, mut to) in [
        (client.try_clone().expect("clone"), server.try_clone().expect("clone")),
        (server, client),
    ] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    }
}

pub struct Proxy {
    pub endpoint: String,
    down: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Forward 127.0.0.1:<free port> to `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let down = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (d, c) = (down.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                splice(client, server, &c);
            }
        });
        Proxy { endpoint, down, conns }
    }

    /// Stop (cutting all connections) or resume forwarding.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            for c in self.conns.lock().expect("conns").drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Faults a [`FaultProxy`] injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Close the connection without an answer.
    Drop,
    /// Answer 500 InternalError.
    Error500,
    /// Answer 503 SlowDown.
    Error503,
    /// Wait before forwarding.
    Delay,
    /// Forward, then cut the answer's body short and close.
    CutBody,
}

const FAULTS: [Fault; 5] = [
    Fault::Drop,
    Fault::Error500,
    Fault::Error503,
    Fault::Delay,
    Fault::CutBody,
];

/// An HTTP proxy that injects faults into a fraction of requests (or into all, when permanent).
pub struct FaultProxy {
    pub endpoint: String,
    /// Faults per thousand requests.
    per_mille: Arc<std::sync::atomic::AtomicU32>,
    pub requests: Arc<std::sync::atomic::AtomicUsize>,
    pub injected: Arc<Mutex<std::collections::HashMap<Fault, usize>>>,
    forced: Arc<Mutex<Option<Fault>>>,
    /// (request-line substring, n, fault): fault the n-th request whose line contains it.
    nth: Arc<Mutex<Vec<(String, usize, Fault)>>>,
}

impl FaultProxy {
    /// Forward to `upstream`, faulting `per_mille`/1000 of requests, chosen by a seeded generator.
    pub fn start(upstream: &str, per_mille: u32, seed: u64) -> FaultProxy {
        use std::io::{BufReader, Write};
        use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let rate = Arc::new(AtomicU32::new(per_mille));
        let requests = Arc::new(AtomicUsize::new(0));
        let injected: Arc<Mutex<std::collections::HashMap<Fault, usize>>> = Arc::default();
        let rng = Arc::new(AtomicU64::new(seed.max(1)));
        let forced: Arc<Mutex<Option<Fault>>> = Arc::default();
        let nth: Arc<Mutex<Vec<(String, usize, Fault)>>> = Arc::default();
        let (rt, rq, inj, fc, nt) = (
            rate.clone(),
            requests.clone(),
            injected.clone(),
            forced.clone(),
            nth.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (rt, rq, inj, rng, upstream) = (rt.clone(), rq.clone(), inj.clone(), rng.clone(), upstream.clone());
                let fc = fc.clone();
                let nt = nt.clone();
                std::thread::spawn(move || {
                    let Ok(server) = TcpStream::connect(&upstream) else {
                        return;
                    };
                    let mut to_client = client.try_clone().expect("clone");
                    let mut to_server = server.try_clone().expect("clone");
                    let mut from_client = BufReader::new(client);
                    let mut from_server = BufReader::new(server);
                    while let Some((line, headers, body)) = super::http::read_request(&mut from_client) {
                        rq.fetch_add(1, Ordering::SeqCst);
                        let mut x = rng.load(Ordering::SeqCst);
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        rng.store(x, Ordering::SeqCst);
                        let mut forced = *fc.lock().expect("forced");
                        for (pattern, n, f) in nt.lock().expect("nth").iter_mut() {
                            if line.contains(pattern.as_str()) {
                                *n = n.saturating_sub(1);
                                if *n == 0 {
                                    forced = forced.or(Some(*f));
                                    *n = usize::MAX;
                                }
                            }
                        }
                        let fault = forced.is_some() || ((x % 1000) as u32) < rt.load(Ordering::SeqCst);
                        let kind = forced.unwrap_or(FAULTS[((x / 1000) % FAULTS.len() as u64) as usize]);
                        if fault {
                            *inj.lock().expect("injected").entry(kind).or_insert(0) += 1;
                        }
                        let reply = |code: &str, s3: &str| {
                            let xml = format!(
                                "<?xml version=\"1.0\"?><Error><Code>{s3}</Code><Message>injected</Message></Error>"
                            );
                            format!(
                                "HTTP/1.1 {code}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{xml}",
                                xml.len()
                            )
                        };
                        match (fault, kind) {
                            (true, Fault::Drop) => return,
                            (true, Fault::Error500) => {
                                if to_client
                                    .write_all(reply("500 Internal Server Error", "InternalError").as_bytes())
                                    .is_err()
                                {
                                    return;
                                }
                                continue;
                            }
                            (true, Fault::Error503) => {
                                if to_client
                                    .write_all(reply("503 Slow Down", "SlowDown").as_bytes())
                                    .is_err()
                                {
                                    return;
                                }
                                continue;
                            }
                            (true, Fault::Delay) => std::thread::sleep(std::time::Duration::from_millis(300)),
                            _ => {}
                        }
                        let mut head = format!("{line}\r\n");
                        for (k, v) in &headers {
                            head.push_str(&format!("{k}: {v}\r\n"));
                        }
                        head.push_str("\r\n");
                        if to_server.write_all(head.as_bytes()).is_err() || to_server.write_all(&body).is_err() {
                            return;
                        }
                        let Some((_, rhead, rbody)) =
                            super::http::read_response(&mut from_server, line.starts_with("HEAD "))
                        else {
                            return;
                        };
                        if fault && kind == Fault::CutBody && rbody.len() > 1 {
                            let _ = to_client.write_all(&rhead);
                            let _ = to_client.write_all(&rbody[..rbody.len() / 2]);
                            return;
                        }
                        if to_client.write_all(&rhead).is_err() || to_client.write_all(&rbody).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FaultProxy {
            endpoint,
            per_mille: rate,
            requests,
            injected,
            forced,
            nth,
        }
    }

    /// Inject `fault` into the `n`-th request (counting from 1) whose request line contains
    /// `pattern` (e.g. `"partNumber=2"`: a part; `"POST "`: a completion).
    pub fn fail_nth(&self, pattern: &str, n: usize, fault: Fault) {
        self.nth.lock().expect("nth").push((pattern.to_string(), n, fault));
    }

    /// Fail every request with `fault` (a permanent outage), or stop doing so with `None`.
    pub fn force(&self, fault: Option<Fault>) {
        *self.forced.lock().expect("forced") = fault;
    }

    /// Change the fault rate (1000: every request fails).
    pub fn set_rate(&self, per_mille: u32) {
        self.per_mille.store(per_mille, Ordering::SeqCst);
    }

    /// Total faults injected so far.
    pub fn total_injected(&self) -> usize {
        self.injected.lock().expect("injected").values().sum()
    }
}

/// Copy `from` to `to` at the pace `pace` allows, until either side closes.
fn paced_copy(mut from: TcpStream, mut to: TcpStream, pace: Arc<Mutex<std::time::Instant>>, rate: u64) {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let start = {
            let mut next = pace.lock().expect("pace");
            let start = (*next).max(std::time::Instant::now());
            *next = start + std::time::Duration::from_secs_f64(n as f64 / rate as f64);
            start
        };
        std::thread::sleep(start.saturating_duration_since(std::time::Instant::now()));
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Give the sockets `listener` accepts a 64 KiB receive buffer. A network path holds about a
/// round trip's worth of data in flight; a proxy on loopback with the kernel's default buffers
/// would hold megabytes per connection, so that a client sees its bytes taken long before they
/// are passed on, which no real link at this rate does.
fn small_receive_buffer(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 64 * 1024;
    // SAFETY: setsockopt on a socket we own, with a pointer to a c_int that outlives the call and
    // its size.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt SO_RCVBUF");
}

/// A proxy that passes at most `rate` bytes per second each way, over all its connections: a
/// slow network that keeps moving.
pub struct Throttle {
    pub endpoint: String,
}

impl Throttle {
    pub fn start(upstream: &str, rate: u64) -> Throttle {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind throttle");
        small_receive_buffer(&listener);
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let up = Arc::new(Mutex::new(std::time::Instant::now()));
        let down = Arc::new(Mutex::new(std::time::Instant::now()));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (c2, s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                let (up, down) = (up.clone(), down.clone());
                std::thread::spawn(move || paced_copy(client, server, up, rate));
                std::thread::spawn(move || paced_copy(s2, c2, down, rate));
            }
        });
        Throttle { endpoint }
    }
}

/// A proxy whose port can be closed (new connections are refused, open ones cut) and opened
/// again on the same port: a server that went away, then came back.
pub struct Gate {
    pub endpoint: String,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Gate {
    pub fn start(upstream: &str) -> Gate {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind gate");
        let addr = listener.local_addr().expect("addr");
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (o, c) = (open.clone(), conns.clone());
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            loop {
                if !o.load(Ordering::SeqCst) {
                    listener = None; // the port is closed: connections are refused
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
                let l = match &listener {
                    Some(l) => l,
                    None => match TcpListener::bind(addr) {
                        Ok(l) => listener.insert(l),
                        Err(_) => {
                            std::thread::sleep(std::time::Duration::from_millis(10));
                            continue;
                        }
                    },
                };
                let _ = l.set_nonblocking(true);
                let client = match l.accept() {
                    Ok((client, _)) => client,
                    Err(_) => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                splice(client, server, &c);
            }
        });
        Gate {
            endpoint: format!("http://{addr}"),
            open,
            conns,
        }
    }

    /// Close the port (refusing connections, cutting open ones) or open it again.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
        if !open {
            for c in self.conns.lock().expect("conns").drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
            // Wait until the listener is gone.
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
