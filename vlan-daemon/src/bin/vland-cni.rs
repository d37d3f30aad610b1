//! `vland-cni`: the CNI plugin (spec 1.1). A thin shim: it forwards each call (CNI_COMMAND and
//! the other CNI_* variables, the network config on stdin) to the vland daemon over its control
//! socket and prints the daemon's result, or the spec's error JSON. The daemon does the work,
//! keeps the state and counts (Multus' thick-plugin model). VERSION is answered here.
use serde_json::{Map, Value, json};
use std::io::{BufRead, Read, Write};
use std::process::ExitCode;

const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
const DEFAULT_SOCKET: &str = "/run/vland.sock";

// The spec's codes this shim reports itself.
const INCOMPATIBLE_VERSION: u32 = 1;
const INVALID_ENV: u32 = 4;
const IO: u32 = 5;
const DECODE: u32 = 6;
const TRY_AGAIN_LATER: u32 = 11;
const NOT_AVAILABLE: u32 = 50;

fn main() -> ExitCode {
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        return fail("1.1.0", IO, "cannot read the network config on stdin", "");
    }
    let config: Option<Map<String, Value>> = serde_json::from_str(&input).ok();
    let version = config.as_ref().and_then(|c| c.get("cniVersion")).and_then(Value::as_str).unwrap_or("1.1.0").to_string();
    if command == "VERSION" {
        println!("{}", json!({ "cniVersion": version, "supportedVersions": SUPPORTED }));
        return ExitCode::SUCCESS;
    }
    let Some(config) = config else {
        return fail(&version, DECODE, "the network config on stdin is not a JSON object", "");
    };
    if !SUPPORTED.contains(&version.as_str()) {
        return fail(&version, INCOMPATIBLE_VERSION, &format!("vland supports CNI versions {}", SUPPORTED.join(", ")), "");
    }
    if !["ADD", "DEL", "CHECK", "GC", "STATUS"].contains(&command.as_str()) {
        return fail(&version, INVALID_ENV, &format!("CNI_COMMAND `{command}` is not one of ADD, DEL, CHECK, GC, STATUS, VERSION"), "");
    }
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let socket = config.get("socket").and_then(Value::as_str).unwrap_or(DEFAULT_SOCKET).to_string();
    let request = json!({ "cni": {
        "command": command,
        "container_id": var("CNI_CONTAINERID"),
        "netns": var("CNI_NETNS"),
        "ifname": var("CNI_IFNAME"),
        "args": var("CNI_ARGS"),
        "config": config,
    }});
    let answer = match ask(&socket, &request) {
        Ok(answer) => answer,
        Err(e) => {
            let code = if command == "STATUS" { NOT_AVAILABLE } else { TRY_AGAIN_LATER };
            return fail(&version, code, &format!("the vland daemon does not answer on {socket}"), &e.to_string());
        }
    };
    if let Some(e) = answer.get("cni_error") {
        let code = e.get("code").and_then(Value::as_u64).unwrap_or(u64::from(IO)) as u32;
        let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        return fail(&version, code, &text("msg"), &text("details"));
    }
    match answer.get("result") {
        Some(Value::Null) => ExitCode::SUCCESS,
        Some(result) => {
            println!("{result}");
            ExitCode::SUCCESS
        }
        None => fail(&version, IO, "the vland daemon gave an unexpected answer", &answer.to_string()),
    }
}

/// One request line to the daemon, one answer line back. No timeout: an ADD waits for the
/// daemon's apply loop, which may be busy with another apply.
fn ask(socket: &str, request: &Value) -> std::io::Result<Value> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut line = String::new();
    std::io::BufReader::new(&stream).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The spec's error: JSON on stdout, a non-zero exit code.
fn fail(version: &str, code: u32, msg: &str, details: &str) -> ExitCode {
    let mut e = json!({ "cniVersion": version, "code": code, "msg": msg });
    if !details.is_empty() {
        e["details"] = json!(details);
    }
    println!("{e}");
    ExitCode::FAILURE
}
