//! Minimal HTTP/1.1 framing for the test proxies: read one request or one response from a
//! keep-alive connection (Content-Length and chunked bodies).

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

/// A request: its request line, its headers (lower-case names) and its body bytes as sent.
pub type Request = (String, Vec<(String, String)>, Vec<u8>);

pub fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let request_line = line.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            body.extend_from_slice(size.as_bytes());
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).ok()?;
            if n == 0 {
                loop {
                    let mut t = String::new();
                    r.read_line(&mut t).ok()?;
                    body.extend_from_slice(t.as_bytes());
                    if t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk);
        }
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    }
    Some((request_line, headers, body))
}

/// One response: status line, raw head bytes, and body bytes as sent. `head_request`: no body.
pub fn read_response(r: &mut BufReader<TcpStream>, head_request: bool) -> Option<(u16, Vec<u8>, Vec<u8>)> {
    let mut head = Vec::new();
    let mut status_line = String::new();
    if r.read_line(&mut status_line).ok()? == 0 {
        return None;
    }
    head.extend_from_slice(status_line.as_bytes());
    let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        head.extend_from_slice(h.as_bytes());
        let t = h.trim_end();
        if t.is_empty() {
            break;
        }
        if let Some((k, v)) = t.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                length = v.trim().parse::<usize>().ok();
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if head_request || status == 204 || status == 304 {
        return Some((status, head, body));
    }
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            body.extend_from_slice(size.as_bytes());
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).ok()?;
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end).ok()?;
                body.extend_from_slice(end.as_bytes());
                break;
            }
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    }
    Some((status, head, body))
}
