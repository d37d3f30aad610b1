//! Interface names, as the kernel takes them.

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
