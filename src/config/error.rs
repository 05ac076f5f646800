//! The configuration layer's one error type, and secret reading.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while loading or validating configuration.
///
/// Messages name the key (dotted, as in the TOML file) and where its value came from, and
/// say what to change. They never contain a secret value: only variable names and paths.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {} does not exist; pass an existing file to --config, or omit --config to use ./config.toml or the built-in defaults", path.display())]
    FileNotFound { path: PathBuf },

    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile { path: PathBuf, source: io::Error },

    /// The file is not valid TOML; `message` carries the parser's line and column.
    #[error("config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },

    #[error("unknown key '{key}' in {origin}{}", expected_hint(expected))]
    UnknownKey { key: String, origin: String, expected: Vec<String> },

    /// A value of the wrong type or out of range. `origin` is empty when unknown.
    #[error("{key}: {message}{}", origin_suffix(origin))]
    InvalidValue { key: String, message: String, origin: String },

    #[error("environment variable {var}: unknown config section '{section}' (known: {known}); only MARK1_<SECTION>__<KEY> variables are configuration")]
    UnknownEnvSection { var: String, section: String, known: String },

    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },

    /// An `[agents.<name>]` table that does not make a valid agent.
    #[error("agents.{name}: {message}")]
    Agent { name: String, message: String },

    #[error("cannot determine the current directory (relative paths need it): {0}")]
    CurrentDir(io::Error),

    #[error("secret: set either the *_env key or the *_file key, not both")]
    SecretConflict,

    #[error("secret: environment variable {var} is not set (or is empty); export it, or point the *_file key at a file holding the secret")]
    SecretEnvMissing { var: String },

    #[error("secret: environment variable {var} is not valid UTF-8")]
    SecretEnvNotUnicode { var: String },

    #[error("secret: cannot read file {}: {source}", path.display())]
    SecretFile { path: PathBuf, source: io::Error },

    #[error("secret: file {} is empty", path.display())]
    SecretFileEmpty { path: PathBuf },
}

fn expected_hint(expected: &[String]) -> String {
    if expected.is_empty() {
        String::new()
    } else {
        format!(" (expected one of: {})", expected.join(", "))
    }
}

fn origin_suffix(origin: &str) -> String {
    if origin.is_empty() {
        String::new()
    } else {
        format!(" (from {origin})")
    }
}

/// Reads a secret given as the name of an environment variable or the path of a file.
///
/// Secrets never sit in config text (DESIGN §13.1): the config names where the secret is.
/// A file's trailing newline is dropped, since editors and `echo` add one. Neither source
/// set means "no secret" (`Ok(None)`); both set is an error, to avoid guessing which wins.
pub fn read_secret(env: Option<&str>, file: Option<&Path>) -> Result<Option<String>, ConfigError> {
    read_secret_with(|name| std::env::var_os(name), env, file)
}

/// As [`read_secret`], with the environment lookup injected so tests need not mutate the
/// process environment (tests run in parallel).
pub(crate) fn read_secret_with(
    lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<String>, ConfigError> {
    match (env, file) {
        (Some(_), Some(_)) => Err(ConfigError::SecretConflict),
        (None, None) => Ok(None),
        (Some(var), None) => match lookup(var) {
            None => Err(ConfigError::SecretEnvMissing { var: var.to_string() }),
            Some(v) if v.is_empty() => Err(ConfigError::SecretEnvMissing { var: var.to_string() }),
            Some(v) => v
                .into_string()
                .map(Some)
                .map_err(|_| ConfigError::SecretEnvNotUnicode { var: var.to_string() }),
        },
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::SecretFile { path: path.to_path_buf(), source })?;
            let secret = text.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&text);
            if secret.is_empty() {
                return Err(ConfigError::SecretFileEmpty { path: path.to_path_buf() });
            }
            Ok(Some(secret.to_string()))
        }
    }
}
