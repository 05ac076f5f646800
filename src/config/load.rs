//! Building the layered figment, turning its errors into [`ConfigError`], and resolving
//! relative paths.

use std::path::{Component, Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Serialize;

use super::{agents, Config, ConfigError, SECTIONS};

const ENV_PREFIX: &str = "MARK1_";
const ENV_SEPARATOR: &str = "__";

/// Which file the loader reads.
#[derive(Clone, Debug)]
enum FileChoice {
    /// `./config.toml` if it exists, else none.
    Default,
    /// This file, which must exist.
    Explicit(PathBuf),
    /// Compiled defaults only (plus env and overrides).
    None,
}

/// Builds a [`Config`] from its layers. `ConfigLoader::new().load()` is what `mark1 serve`
/// does without flags; tests inject the environment with [`ConfigLoader::env`].
///
/// Environment: only `MARK1_<SECTION>__<KEY>` variables (double underscore between levels,
/// matched case-sensitively on the `MARK1_` prefix, keys lowercased) are configuration, e.g.
/// `MARK1_SERVER__LISTEN=127.0.0.1:9000` or `MARK1_AGENTS__ECHO__POOL__MAX=3`. Names without
/// `__` (`MARK1_URL`, `MARK1_API_KEY`, `MARK1_TEST_POSTGRES_URL`) belong to others and are
/// ignored; a `__` name whose section is unknown is an error. Values are text, converted to
/// the key's type (`3`, `true`, `2s`); `[a, b]` is an array. Agents whose
/// names contain `-` cannot be reached from the environment: shells do not allow `-` in
/// variable names. Keys are lowercased, so an agent's `env` table (whose keys are variable
/// names, often uppercase) is best set in the file.
#[derive(Debug)]
pub struct ConfigLoader {
    file: FileChoice,
    /// `None`: read the process environment at load time.
    env: Option<Vec<(String, String)>>,
    /// Flag overrides in the order given; a serialization failure is reported at load.
    overrides: Vec<(String, Result<Value, String>)>,
}

impl Default for ConfigLoader {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigLoader {
    /// `./config.toml` when it exists, the process environment, no overrides.
    pub fn new() -> Self {
        ConfigLoader { file: FileChoice::Default, env: None, overrides: Vec::new() }
    }

    /// Reads this file (`--config FILE`); a missing file is an error.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = FileChoice::Explicit(path.into());
        self
    }

    /// Reads no file, not even `./config.toml`: compiled defaults, env and overrides only.
    pub fn no_file(mut self) -> Self {
        self.file = FileChoice::None;
        self
    }

    /// Uses these variables instead of the process environment (for tests and embedding).
    pub fn env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = Some(vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self
    }

    /// Overrides one key (dotted, e.g. `server.listen`) with a typed value; the top layer.
    /// This is how CLI flags reach the config (`--listen` → `server.listen`).
    pub fn set(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let value = Value::serialize(value).map_err(|e| e.to_string());
        self.overrides.push((key.into(), value));
        self
    }

    /// Overrides one key with text parsed like an environment value (for `--set key=value`).
    pub fn set_str(mut self, key: impl Into<String>, value: &str) -> Self {
        self.overrides.push((key.into(), Ok(parse_value(value))));
        self
    }

    /// Merges the layers, deserializes once, resolves relative paths and validates.
    pub fn load(self) -> Result<Config, ConfigError> {
        let cwd = std::env::current_dir().map_err(ConfigError::CurrentDir)?;
        let file = match self.file {
            FileChoice::Explicit(path) => {
                let path = absolute(&cwd, &path);
                if !path.is_file() {
                    return Err(ConfigError::FileNotFound { path });
                }
                Some(path)
            }
            FileChoice::Default => Some(cwd.join("config.toml")).filter(|p| p.is_file()),
            FileChoice::None => None,
        };

        let mut figment = Figment::new();
        if let Some(path) = &file {
            // Read it ourselves: figment reports an unreadable file as a bare message.
            std::fs::read_to_string(path)
                .map_err(|source| ConfigError::ReadFile { path: path.clone(), source })?;
            // `file_exact`: `Toml::file` would search parent folders for the name.
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = match self.env {
            Some(vars) => vars,
            None => process_env()?,
        };
        figment = figment.merge(EnvProvider::new(env)?);
        figment = figment.merge(OverridesProvider::new(self.overrides)?);

        let mut config: Config = figment.extract_lossy().map_err(|e| from_figment(e, file.as_deref()))?;
        config.base_dir = file.as_deref().and_then(Path::parent).map(Path::to_path_buf).unwrap_or(cwd);
        config.file = file;
        config.resolve_paths();
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// Makes every path absolute against `base_dir`; §13.1 says relative paths are relative
    /// to the config file's folder, whatever the node's cwd.
    fn resolve_paths(&mut self) {
        let base = self.base_dir.clone();
        let resolve = |p: &Path| absolute(&base, p);
        self.node.data_dir = resolve(&self.node.data_dir);
        if let Some(tls) = &mut self.server.tls {
            tls.cert_file = resolve(&tls.cert_file);
            tls.key_file = resolve(&tls.key_file);
        }
        self.auth.jwt.resolve_paths(&resolve);
        if let Some(file) = &mut self.store.password_file {
            *file = resolve(file);
        }
        if let Some(url) = &mut self.store.url {
            *url = resolve_sqlite_url(&base, url);
        }
        for dir in &mut self.process.allowed_dirs {
            *dir = resolve(dir);
        }
        if let Some(dir) = &mut self.process.work_dir {
            *dir = resolve(dir);
        }
        for dir in &mut self.scan.allowed_dirs {
            *dir = resolve(dir);
        }
        if let Some(dir) = &mut self.scan.agents_dir {
            *dir = resolve(dir);
        }
        self.mcp.resolve_paths(resolve);
        for agent in self.agents.values_mut() {
            agents::resolve_agent_paths(agent, resolve);
        }
    }
}

/// `base/p`, with `.` and `..` removed lexically so `starts_with` checks against
/// `process.allowed_dirs` cannot be fooled by `allowed/../elsewhere`.
pub(super) fn absolute(base: &Path, p: &Path) -> PathBuf {
    let joined = base.join(p);
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A relative SQLite path in `store.url` is relative to the config folder too.
fn resolve_sqlite_url(base: &Path, url: &str) -> String {
    let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
        return url.to_string();
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() || path.starts_with(":memory:") || Path::new(path).is_absolute() {
        return url.to_string();
    }
    let mut resolved = format!("sqlite://{}", absolute(base, Path::new(path)).display());
    if let Some(q) = query {
        resolved.push('?');
        resolved.push_str(q);
    }
    resolved
}

/// Text from the environment or `--set`. Arrays and tables (`[a, b]`, `{k = v}`) are parsed;
/// anything else stays a string and is converted only when the key wants a number or a bool
/// (`extract_lossy`), so `MARK1_NODE__DATA_DIR=2024` is a folder, not a type error.
fn parse_value(text: &str) -> Value {
    if text.trim_start().starts_with(['[', '{']) {
        text.parse().unwrap_or_else(|never: std::convert::Infallible| match never {})
    } else {
        Value::from(text.to_string())
    }
}

/// The process environment's config variables. Only `MARK1_` names are looked at, so a
/// non-UTF-8 variable of someone else cannot fail the load.
fn process_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)) else { continue };
        let name = name.to_string();
        match value.into_string() {
            Ok(value) => vars.push((name, value)),
            Err(_) if name.contains(ENV_SEPARATOR) => {
                return Err(ConfigError::Env { var: name, message: "value is not valid UTF-8".into() })
            }
            Err(_) => {}
        }
    }
    Ok(vars)
}

/// `MARK1_<SECTION>__<KEY>…` variables as one nested dict. figment's own `Env` reads the
/// process environment directly, which tests must not mutate; this one takes the pairs.
struct EnvProvider {
    dict: Dict,
}

impl EnvProvider {
    fn new(vars: Vec<(String, String)>) -> Result<Self, ConfigError> {
        let mut dict = Dict::new();
        for (var, value) in vars {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else { continue };
            if !rest.contains(ENV_SEPARATOR) {
                continue; // MARK1_URL, MARK1_API_KEY, …: not configuration.
            }
            let keys: Vec<String> = rest.split(ENV_SEPARATOR).map(str::to_ascii_lowercase).collect();
            if !SECTIONS.contains(&keys[0].as_str()) {
                return Err(ConfigError::UnknownEnvSection {
                    section: keys[0].clone(),
                    var,
                    known: SECTIONS.join(", "),
                });
            }
            if keys.iter().any(String::is_empty) {
                return Err(ConfigError::Env {
                    var,
                    message: "empty key between '__' separators; use MARK1_<SECTION>__<KEY>".into(),
                });
            }
            insert(&mut dict, &keys, parse_value(&value))
                .map_err(|message| ConfigError::Env { var, message })?;
        }
        Ok(EnvProvider { dict })
    }
}

impl Provider for EnvProvider {
    fn metadata(&self) -> Metadata {
        // The interpolater turns an error's key path back into the variable's name.
        Metadata::named("environment variable").interpolater(|_: &Profile, keys: &[&str]| {
            format!("{ENV_PREFIX}{}", keys.join(ENV_SEPARATOR).to_ascii_uppercase())
        })
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// Flag overrides: the top layer.
struct OverridesProvider {
    dict: Dict,
}

impl OverridesProvider {
    fn new(overrides: Vec<(String, Result<Value, String>)>) -> Result<Self, ConfigError> {
        let mut dict = Dict::new();
        for (key, value) in overrides {
            let keys: Vec<String> = key.split('.').map(str::to_string).collect();
            let invalid = |message: String| ConfigError::InvalidValue {
                key: key.clone(),
                message,
                origin: "command-line override".into(),
            };
            if keys.iter().any(String::is_empty) {
                return Err(invalid("not a dotted key such as server.listen".into()));
            }
            insert(&mut dict, &keys, value.map_err(invalid)?).map_err(invalid)?;
        }
        Ok(OverridesProvider { dict })
    }
}

impl Provider for OverridesProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named("command-line override").interpolater(|_: &Profile, keys: &[&str]| keys.join("."))
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// Sets `keys` (a path) in `dict`, creating tables on the way. A scalar in the way (e.g.
/// both `MARK1_NODE__NAME` and `MARK1_NODE__NAME__X`) is a conflict.
fn insert(dict: &mut Dict, keys: &[String], value: Value) -> Result<(), String> {
    let (last, parents) = keys.split_last().expect("split yields at least one key");
    let mut current = dict;
    for key in parents {
        let entry = current.entry(key.clone()).or_insert_with(|| Value::from(Dict::new()));
        current = match entry {
            Value::Dict(_, inner) => inner,
            _ => return Err(format!("'{key}' is set both as a value and as a table")),
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// figment's messages are generic; ours name the dotted key and its origin (file path,
/// variable name or override). serde stops at the first error, so the first is reported.
fn from_figment(error: figment::Error, file: Option<&Path>) -> ConfigError {
    let error = error.into_iter().next().expect("a figment error holds at least one");
    let key = error.path.join(".");
    let origin = match &error.metadata {
        Some(md) => match md.source.as_ref().and_then(|s| s.file_path()) {
            Some(path) => path.display().to_string(),
            None if error.path.is_empty() => md.name.to_string(),
            None => {
                let profile = error.profile.clone().unwrap_or_default();
                format!("{} {}", md.name, md.interpolate(&profile, &error.path))
            }
        },
        None => String::new(),
    };
    use figment::error::Kind;
    match error.kind {
        // A file that is not TOML: figment's data error carries no path of its own.
        Kind::Message(message) if key.is_empty() && error.metadata.as_ref().is_some_and(is_file) => {
            ConfigError::Parse { path: file.map(Path::to_path_buf).unwrap_or_default(), message }
        }
        Kind::UnknownField(_, expected) => ConfigError::UnknownKey {
            key,
            origin,
            expected: expected.iter().map(|s| s.to_string()).collect(),
        },
        Kind::MissingField(field) => ConfigError::InvalidValue {
            key: if key.is_empty() { field.to_string() } else { format!("{key}.{field}") },
            message: "is required".into(),
            origin,
        },
        Kind::UnknownVariant(found, expected) => ConfigError::InvalidValue {
            key,
            message: format!("unknown value {found:?}, expected one of: {}", expected.join(", ")),
            origin,
        },
        kind => ConfigError::InvalidValue { key, message: kind.to_string(), origin },
    }
}

fn is_file(md: &Metadata) -> bool {
    md.source.as_ref().is_some_and(|s| s.file_path().is_some())
}
