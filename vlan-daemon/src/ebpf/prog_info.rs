//! The name of a loaded program, by id (what netlink reports for an attached XDP program).
//! aya 0.14 has no lookup by id, so this walks `loaded_programs()`: it runs only when a child's
//! XDP hook holds a program other than this build's, which is rare.

/// The program's name (the kernel keeps its first 15 bytes); None if there is no such program.
pub fn program_name(id: u32) -> Option<String> {
    aya::programs::loaded_programs().filter_map(Result::ok).find(|p| p.id() == id).map(|p| String::from_utf8_lossy(p.name()).into_owned())
}
