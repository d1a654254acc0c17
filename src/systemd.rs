//! systemd readiness: `sd_notify(3)` over `$NOTIFY_SOCKET`, so a unit with `Type=notify` is
//! "started" exactly when the mount is live and "stopping" when the unmount begins.
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the socket named by `NOTIFY_SOCKET`
//! (a path, or `@name` for the abstract namespace); std's `UnixDatagram` is all it takes. Outside
//! systemd the variable is unset and every call is a no-op.

use std::io;
use std::os::unix::net::UnixDatagram;

/// Send `state` (such as `READY=1`) to the service manager, if there is one. Returns whether it
/// was sent; failures are logged at debug level and otherwise ignored (readiness reporting must
/// never stop a mount).
pub fn notify(state: &str) -> bool {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    match send(&socket.to_string_lossy(), state) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!("sd_notify {state:?} to {socket:?} failed: {e}");
            false
        }
    }
}

fn send(socket: &str, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = socket.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), socket)?;
    }
    Ok(())
}

/// The mount is live.
pub fn ready() -> bool {
    notify("READY=1\nSTATUS=mounted")
}

/// The unmount has begun.
pub fn stopping() -> bool {
    notify("STOPPING=1\nSTATUS=unmounting")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_one_datagram_to_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).expect("bind");
        send(path.to_str().expect("utf8"), "READY=1").expect("send");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("cosmount-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let server = UnixDatagram::bind_addr(&addr).expect("bind");
        send(&format!("@{name}"), "STOPPING=1").expect("send");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
