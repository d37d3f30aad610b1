//! Names: interface names as the kernel takes them, and the names of networks, endpoints and
//! namespaces, which also appear in logs, tables, link aliases and /run/netns.

/// The kernel's IFNAMSIZ minus the terminating NUL.
pub const MAX_IFNAME_LEN: usize = 15;

pub fn check_ifname(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_IFNAME_LEN {
        return Err(format!("interface name `{value}` is {} bytes; Linux allows 1 to {MAX_IFNAME_LEN}: use a shorter name", value.len()));
    }
    if value == "." || value == ".." || value.contains(['/', ':']) || value.chars().any(char::is_whitespace) {
        return Err(format!("interface name `{value}` may not be `.`/`..` or contain `/`, `:` or spaces"));
    }
    Ok(())
}

/// The longest network, endpoint or namespace name: an endpoint's name is part of its child's
/// alias (`vland:NAME`), which the kernel caps at 255 bytes.
pub const MAX_NAME_LEN: usize = 200;

/// A name of vland's own objects: letters, digits, `.`, `-` and `_`, starting with a letter or
/// digit (Docker's rule for network names), so it can never forge a log line or a path.
pub fn check_name(value: &str) -> Result<(), String> {
    let fine = value.len() <= MAX_NAME_LEN
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if fine {
        return Ok(());
    }
    Err(format!(
        "`{}` is not a usable name: use 1 to {MAX_NAME_LEN} letters, digits, `.`, `-` or `_`, starting with a letter or digit",
        value.escape_debug()
    ))
}
