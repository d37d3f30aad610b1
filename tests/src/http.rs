//! A minimal HTTP/1.0 GET from inside a lab namespace (for the daemon's /metrics).
use std::io::{Read, Write};
use std::os::fd::AsRawFd;

/// The response body, or None when nothing answered.
pub fn get_in_netns(ns: &str, addr: &str, path: &str) -> Option<String> {
    let (ns_path, addr, path) = (format!("/run/netns/{ns}"), addr.to_string(), path.to_string());
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns_path).ok()?;
        // setns is per thread: this thread joins the namespace, the test's others do not.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return None;
        }
        let mut s = std::net::TcpStream::connect(&addr).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).ok()?;
        resp.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
    })
    .join()
    .ok()
    .flatten()
}
