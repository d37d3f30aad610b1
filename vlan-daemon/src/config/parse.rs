//! Reading the config file: syntax and type errors, then every unknown key with its line, then
//! the semantic checks, all reported together.
use super::errors::{ConfigError, ConfigErrors};
use super::model::Config;
use super::schema::{DaemonConfig, RawConfig};
use super::validate::validate;
use crate::frontends::store::Fragments;
use anyhow::Context;
use std::path::Path;
use toml::de::{DeTable, DeValue};

pub enum LoadError {
    /// The file could not be read at all.
    Io(anyhow::Error),
    Invalid(ConfigErrors),
}

impl From<LoadError> for anyhow::Error {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Io(e) => e,
            LoadError::Invalid(errors) => anyhow::Error::new(errors),
        }
    }
}

pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = read_text(path).map_err(LoadError::Io)?;
    parse_str(&text, &path.display().to_string()).map_err(LoadError::Invalid)
}

/// The largest config file vland reads; far above any real one.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// The config file's text: a regular file only (not a FIFO that blocks or a device that never
/// ends), opened without blocking and read up to a size cap.
fn read_text(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let what = || format!("cannot read config {}", path.display());
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).with_context(what)?;
    let meta = file.metadata().with_context(what)?;
    anyhow::ensure!(meta.is_file(), "config {} is not a regular file: give the path of a TOML file", path.display());
    anyhow::ensure!(
        meta.len() <= MAX_CONFIG_BYTES,
        "config {} is {} bytes, more than the {MAX_CONFIG_BYTES} vland reads: is it the right file?",
        path.display(),
        meta.len()
    );
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text).with_context(what)?;
    anyhow::ensure!(text.len() as u64 <= MAX_CONFIG_BYTES, "config {} grew past {MAX_CONFIG_BYTES} bytes while being read", path.display());
    Ok(text)
}

/// The effective config: the file's, plus the networks and endpoints the front-ends (CNI,
/// Docker) created, kept in the state dir. Validated together, so every rule holds across both
/// and every error is reported at once. `vland apply` and the daemon apply this, so applying the
/// file never removes what a front-end made.
pub fn load_effective(path: &Path) -> Result<Config, LoadError> {
    let text = read_text(path).map_err(LoadError::Io)?;
    let daemon = toml::from_str::<DaemonOnly>(&text).map(|d| d.daemon).unwrap_or_default();
    let fragments = crate::frontends::store::read(&daemon.state_dir).map_err(LoadError::Io)?;
    parse_with(&text, &path.display().to_string(), &fragments).map_err(LoadError::Invalid)
}

/// The config file plus `fragments` (the front-ends' tables, maybe not saved yet).
pub fn load_with(path: &Path, fragments: &Fragments) -> Result<Config, LoadError> {
    let text = read_text(path).map_err(LoadError::Io)?;
    parse_with(&text, &path.display().to_string(), fragments).map_err(LoadError::Invalid)
}

pub fn parse_str(text: &str, source_name: &str) -> Result<Config, ConfigErrors> {
    parse_with(text, source_name, &Fragments::default())
}

pub fn parse_with(text: &str, source_name: &str, fragments: &Fragments) -> Result<Config, ConfigErrors> {
    let mut errors = ConfigErrors { source_name: source_name.to_string(), errors: Vec::new() };
    let mut unknown: Vec<Vec<String>> = Vec::new();
    let raw = toml::Deserializer::parse(text)
        .and_then(|de| serde_ignored::deserialize(de, |path| unknown.push(segments(&path))).map(|r: RawConfig| r));
    let raw = match raw {
        Ok(raw) => raw,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start));
            // A value of the wrong type in well-formed TOML: named by its key; a syntax error has
            // only its line.
            let key = match (DeTable::parse(text), e.span()) {
                (Ok(table), Some(span)) => key_at(table.get_ref(), span.start).join("."),
                _ => String::new(),
            };
            let key = if key.is_empty() { "config".to_string() } else { key };
            errors.errors.push(ConfigError { key, line, message: e.message().trim().to_string() });
            return Err(errors);
        }
    };
    let spans = DeTable::parse(text).ok();
    for path in unknown {
        let line = spans.as_ref().and_then(|t| key_line(text, t.get_ref(), &path));
        errors.errors.push(ConfigError {
            key: path.join("."),
            line,
            message: format!(
                "unknown key `{}`: remove it or check its spelling against the README's config reference",
                path.last().map(String::as_str).unwrap_or("")
            ),
        });
    }
    let mut raw = raw;
    fragments.merge_into(&mut raw.networks, &mut raw.endpoints, &mut errors);
    let config = validate(raw, &mut errors);
    if errors.is_empty() { Ok(config) } else { Err(errors) }
}

fn segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
    use serde_ignored::Path as P;
    match path {
        P::Root => Vec::new(),
        P::Map { parent, key } => {
            let mut v = segments(parent);
            v.push(key.clone());
            v
        }
        P::Seq { parent, index } => {
            let mut v = segments(parent);
            v.push(index.to_string());
            v
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => segments(parent),
    }
}

/// The dotted path of the innermost key whose value (or name) spans `offset`. Tables are
/// searched whatever their span: a `[table]`'s span covers its header, not its keys.
fn key_at(table: &DeTable<'_>, offset: usize) -> Vec<String> {
    for (key, value) in table.iter() {
        let here = value.span().contains(&offset) || key.span().contains(&offset);
        let inner = match value.get_ref() {
            DeValue::Table(inner) => key_at(inner, offset),
            // Likewise for the tables of an `[[array]]`.
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| {
                    let inner = match item.get_ref() {
                        DeValue::Table(t) => key_at(t, offset),
                        _ => Vec::new(),
                    };
                    (item.span().contains(&offset) || !inner.is_empty()).then(|| std::iter::once(i.to_string()).chain(inner).collect())
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if here || !inner.is_empty() {
            let mut path = vec![key.get_ref().to_string()];
            path.extend(inner);
            return path;
        }
    }
    Vec::new()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

fn key_line(text: &str, table: &DeTable<'_>, path: &[String]) -> Option<usize> {
    let (first, rest) = path.split_first()?;
    let (key, value) = table.iter().find(|(k, _)| k.get_ref().as_ref() == first.as_str())?;
    if rest.is_empty() {
        return Some(line_of(text, key.span().start));
    }
    match value.get_ref() {
        DeValue::Table(inner) => key_line(text, inner, rest),
        _ => None,
    }
}

/// Only the `[daemon]` table: `down` and `stats` must work even when the rest of the config has
/// since become invalid (or its networks were deleted from it).
#[derive(serde::Deserialize)]
struct DaemonOnly {
    #[serde(default)]
    daemon: DaemonConfig,
}

pub fn load_daemon_section(path: &Path) -> anyhow::Result<DaemonConfig> {
    let text = read_text(path)?;
    let parsed: DaemonOnly = toml::from_str(&text).with_context(|| format!("cannot read the [daemon] table of {}", path.display()))?;
    Ok(parsed.daemon)
}
