//! A minimal HTTP/1.0 GET from inside a lab namespace (for the daemon's /metrics).
use std::io::{Read, Write};

/// The response body, or None when nothing answered.
pub fn get_in_netns(ns: &str, addr: &str, path: &str) -> Option<String> {
    let netns = vland::netns::open(&vland::netns::named_path(ns)).ok()?;
    // The connection is made on a thread inside the namespace; the test's other threads stay out.
    let body = vland::netns::run_in(&netns, || {
        let mut s = std::net::TcpStream::connect(addr)?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        Ok(resp.split_once("\r\n\r\n").map(|(_, body)| body.to_string()))
    });
    body.ok().flatten()
}
