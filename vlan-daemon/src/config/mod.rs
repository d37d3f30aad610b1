//! The declarative config: TOML as written by the user (`schema`), read with every unknown key
//! reported (`parse`), and checked into the typed model the rest of vland uses (`validate`).
mod engine_keys;
mod errors;
mod model;
mod parse;
mod schema;
mod validate;

pub use engine_keys::{network_from_json, network_from_strings};
pub use errors::{ConfigErrors, Scope};
pub use model::*;
pub use parse::{LoadError, load, load_daemon_section, load_effective, load_with, parse_str, parse_with};
pub use schema::{DaemonConfig, RawEndpoint, RawNetwork, RawRoute, endpoint_keys, network_keys};
pub use validate::{check_ifname, check_name, dummy_name, is_network_or_broadcast};

/// Every error `text` gets, as the user reads them (none when it is valid); for the tests.
#[cfg(test)]
pub(crate) fn errors_in(text: &str) -> Vec<String> {
    match parse_str(text, "test.toml") {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
