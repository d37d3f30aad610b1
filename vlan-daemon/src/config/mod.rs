//! The declarative config: TOML as written by the user (`schema`), read with every unknown key
//! reported (`parse`), and checked into the typed model the rest of vland uses (`validate`).
mod errors;
mod model;
mod parse;
mod schema;
mod validate;

pub use errors::ConfigErrors;
pub use model::*;
pub use parse::{load, load_daemon_section};
pub use schema::DaemonConfig;
pub use validate::{is_network_or_broadcast, parse_mac};

#[cfg(test)]
mod tests;
