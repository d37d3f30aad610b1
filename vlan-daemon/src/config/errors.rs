//! Config errors: each names where it is (`networks.lan.subnet`), what is wrong and what to do.
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the offending key, e.g. `networks.lan.subnet`.
    pub key: String,
    /// 1-based line in the config file, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), line: None, message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} (line {line}): {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// All errors of one config, reported together so the user fixes them in one pass.
#[derive(Debug, Default)]
pub struct ConfigErrors {
    pub source_name: String,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(key, message));
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(f, "invalid config {}: {n} error{}", self.source_name, if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            writeln!(f, "  - {e}")?;
        }
        write!(f, "nothing was changed")
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects the errors of one table (`networks.lan`), then says whether any were added.
pub struct Scope<'a> {
    errors: &'a mut ConfigErrors,
    prefix: String,
    before: usize,
}

impl<'a> Scope<'a> {
    pub fn new(errors: &'a mut ConfigErrors, prefix: String) -> Self {
        let before = errors.errors.len();
        Scope { errors, prefix, before }
    }

    /// An error at `key` of this table.
    pub fn err(&mut self, key: &str, msg: impl Into<String>) {
        self.errors.push(format!("{}.{key}", self.prefix), msg);
    }

    /// No error was added since the scope began.
    pub fn ok(&self) -> bool {
        self.errors.errors.len() == self.before
    }
}
