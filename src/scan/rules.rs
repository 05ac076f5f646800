//! The rule tables: what the scanner knows about providers, frameworks and the
//! environment, kept as data in `src/scan/rules/*.toml` (compiled in) plus any rule
//! files a user passes with `--rules`. A new provider or framework is a table entry.

use std::collections::BTreeMap;

// foldhash: looked up for every call of every scanned file; the keys are the rules' own.
use foldhash::{HashMap, HashMapExt, HashSet};
use std::path::Path;

use serde::Deserialize;

use super::report::CallKind;

mod agents;

pub use agents::{
    AgentRule, AgentRules, FlowRule, GraphRule, GuardrailRule, McpRule, Site, ToolRule, TransportRule,
};

/// The rule files built into the binary.
const BUILT_IN: &[(&str, &str)] = &[
    ("env.toml", include_str!("rules/env.toml")),
    ("llm.toml", include_str!("rules/llm.toml")),
    ("frameworks.toml", include_str!("rules/frameworks.toml")),
    ("agents.toml", include_str!("rules/agents.toml")),
];

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("rule file {file}: {message}")]
    Invalid { file: String, message: String },
    #[error("rule file {file}: {source}")]
    Read { file: String, source: std::io::Error },
}

/// One rule file: every table is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    provider: Vec<Provider>,
    #[serde(default)]
    llm: Vec<LlmRule>,
    #[serde(default)]
    env_getter: Vec<EnvGetterRule>,
    #[serde(default)]
    env_object: Vec<String>,
    #[serde(default)]
    env_mapping: Vec<String>,
    #[serde(default)]
    fallback_method: Vec<String>,
    #[serde(default)]
    passthrough: Vec<String>,
    #[serde(default)]
    transparent_member: Vec<String>,
    #[serde(default)]
    constant: BTreeMap<String, String>,
    #[serde(default)]
    model_provider: BTreeMap<String, String>,
    #[serde(default)]
    base_url_provider: BTreeMap<String, String>,
    #[serde(default)]
    framework: BTreeMap<String, Vec<String>>,
    #[serde(flatten)]
    agents: agents::AgentTables,
}

/// A provider of the documented list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: String,
    pub description: String,
}

/// Where an argument is: by keyword (or key of an options object) or by position.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ArgRef {
    Name(String),
    Position(usize),
}

/// A site that is an LLM call: calling one of `symbols`, or calling one of `methods` on
/// an object made by one of `on`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmRule {
    pub provider: String,
    /// The framework the call goes through (langchain, llama_index…), if a wrapper.
    pub framework: Option<String>,
    pub call_kind: CallKind,
    #[serde(default)]
    pub symbols: Vec<String>,
    #[serde(default)]
    pub on: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    /// Where the model is given, tried in order.
    #[serde(default)]
    pub model: Vec<ArgRef>,
    /// Where a provider is given (`init_chat_model(model_provider=…)`), tried in order.
    #[serde(default)]
    pub provider_arg: Vec<ArgRef>,
    /// The library's default model when none is given.
    pub default_model: Option<String>,
    /// A site without a model is no finding (a client constructed without one).
    #[serde(default)]
    pub requires_model: bool,
    /// Modules whose import lets `methods` match on a receiver the scanner could not
    /// resolve (a client passed in as an untyped parameter), with lower confidence.
    #[serde(default)]
    pub packages: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvGetterRule {
    symbols: Vec<String>,
    #[serde(default)]
    var: usize,
    default: Option<usize>,
}

/// A function that reads an environment variable: the positions of its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvGetter {
    pub var: usize,
    pub default: Option<usize>,
}

/// A symbol pattern with `*` matching any run of characters, split at its stars once
/// rather than at every lookup.
#[derive(Debug, Clone)]
struct Glob {
    head: String,
    middle: Vec<String>,
    last: String,
}

impl Glob {
    fn new(pattern: &str) -> Glob {
        let mut parts = pattern.split('*').map(str::to_owned);
        let head = parts.next().unwrap_or_default();
        let mut middle: Vec<String> = parts.collect();
        let last = middle.pop().unwrap_or_default();
        Glob { head, middle, last }
    }

    fn matches(&self, symbol: &str) -> bool {
        let Some(mut text) = symbol.strip_prefix(self.head.as_str()) else { return false };
        for part in &self.middle {
            match text.find(part.as_str()) {
                Some(at) => text = &text[at + part.len()..],
                None => return false,
            }
        }
        text.ends_with(self.last.as_str())
    }

    /// The last dotted name of every symbol the pattern matches, when the pattern fixes
    /// it (`langchain*.ChatOpenAI` → `ChatOpenAI`).
    fn last_name(&self) -> Option<&str> {
        self.last.rsplit_once('.').map(|(_, name)| name).filter(|name| !name.is_empty())
    }
}

/// Symbols looked up by exact name first, then through the glob patterns. Globs are
/// indexed by the last name they fix, so a lookup tries the few that can match rather
/// than every one (rules are looked up for every call in a scanned file).
#[derive(Debug)]
struct SymbolIndex<T> {
    exact: HashMap<String, Vec<T>>,
    globs: Vec<(Glob, T)>,
    /// Last name → indices into `globs`, ascending.
    globs_by_last_name: HashMap<String, Vec<usize>>,
    /// Globs that end in a star: tried for every symbol.
    open_globs: Vec<usize>,
}

impl<T> Default for SymbolIndex<T> {
    fn default() -> Self {
        Self {
            exact: HashMap::new(),
            globs: Vec::new(),
            globs_by_last_name: HashMap::new(),
            open_globs: Vec::new(),
        }
    }
}

impl<T: Copy + PartialEq> SymbolIndex<T> {
    fn insert(&mut self, symbol: &str, value: T) {
        if !symbol.contains('*') {
            self.exact.entry(symbol.to_owned()).or_default().push(value);
            return;
        }
        let glob = Glob::new(symbol);
        let index = self.globs.len();
        match glob.last_name() {
            Some(name) => self.globs_by_last_name.entry(name.to_owned()).or_default().push(index),
            None => self.open_globs.push(index),
        }
        self.globs.push((glob, value));
    }

    /// The values of every pattern `symbol` matches, each once (a rule may list a symbol
    /// both exactly and through a glob), globs in the order they were listed.
    fn get<'a>(&'a self, symbol: &'a str) -> impl Iterator<Item = T> + 'a {
        let exact = self.exact.get(symbol).into_iter().flatten().copied();
        let last_name = symbol.rsplit('.').next().unwrap_or(symbol);
        let named = self.globs_by_last_name.get(last_name).map_or(&[][..], Vec::as_slice);
        let mut candidates: Vec<usize> = named.iter().chain(&self.open_globs).copied().collect();
        candidates.sort_unstable();
        let globs = candidates.into_iter().map(|i| &self.globs[i]).filter(|(g, _)| g.matches(symbol));
        let mut seen = Vec::new();
        exact.chain(globs.map(|(_, v)| *v)).filter(move |v| {
            let new = !seen.contains(v);
            seen.push(*v);
            new
        })
    }
}

/// All rules, indexed for lookup.
#[derive(Debug, Default)]
pub struct Rules {
    pub providers: Vec<Provider>,
    pub llm: Vec<LlmRule>,
    llm_by_symbol: SymbolIndex<usize>,
    llm_by_class: SymbolIndex<usize>,
    env_getters: SymbolIndex<EnvGetter>,
    env_objects: Vec<String>,
    env_mappings: HashSet<String>,
    fallback_methods: HashSet<String>,
    passthrough: HashSet<String>,
    /// Members that wrap a call without changing what it calls (`with_raw_response`).
    transparent_members: HashSet<String>,
    constants: BTreeMap<String, String>,
    model_providers: BTreeMap<String, String>,
    base_url_providers: BTreeMap<String, String>,
    /// Module → the frameworks it belongs to.
    framework_modules: BTreeMap<String, Vec<String>>,
    pub agents: AgentRules,
}

/// The provider of an `auto` rule: inferred from the model.
pub const AUTO_PROVIDER: &str = "auto";

impl Rules {
    /// The built-in rules plus the rule files in `extra` (each a TOML file).
    pub fn load(extra: &[impl AsRef<Path>]) -> Result<Self, RuleError> {
        let mut files = Vec::new();
        for (name, text) in BUILT_IN {
            files.push((name.to_string(), parse(name, text)?));
        }
        for path in extra {
            let path = path.as_ref();
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|source| RuleError::Read { file: file.clone(), source })?;
            let parsed = parse(&file, &text)?;
            files.push((file, parsed));
        }
        // A provider may be listed in any file, so every file is checked against all of them.
        let known: HashSet<String> =
            files.iter().flat_map(|(_, f)| f.provider.iter().map(|p| p.name.clone())).collect();
        let mut rules = Self::default();
        for (name, file) in files {
            validate(&name, &file, &known)?;
            rules.add(file);
        }
        Ok(rules)
    }

    /// The built-in rules; they are tested, so they always load.
    pub fn built_in() -> &'static Self {
        static RULES: std::sync::LazyLock<Rules> = std::sync::LazyLock::new(|| {
            Rules::load(&[] as &[&Path]).expect("built-in scanner rules are valid")
        });
        &RULES
    }

    fn add(&mut self, file: RuleFile) {
        self.providers.extend(file.provider);
        for rule in file.llm {
            let index = self.llm.len();
            for symbol in &rule.symbols {
                self.llm_by_symbol.insert(symbol, index);
            }
            for class in &rule.on {
                self.llm_by_class.insert(class, index);
            }
            self.llm.push(rule);
        }
        for getter in file.env_getter {
            for symbol in &getter.symbols {
                self.env_getters.insert(symbol, EnvGetter { var: getter.var, default: getter.default });
            }
        }
        self.env_objects.extend(file.env_object);
        self.env_mappings.extend(file.env_mapping);
        self.fallback_methods.extend(file.fallback_method);
        self.passthrough.extend(file.passthrough);
        self.transparent_members.extend(file.transparent_member);
        self.constants.extend(file.constant);
        self.model_providers.extend(file.model_provider);
        self.base_url_providers.extend(file.base_url_provider);
        self.agents.add(file.agents);
        for (framework, modules) in file.framework {
            for module in modules {
                self.framework_modules.entry(module).or_default().push(framework.clone());
            }
        }
    }

    /// The first LLM rule for a call of `symbol`.
    pub fn llm_call(&self, symbol: &str) -> Option<&LlmRule> {
        let symbol = self.without_transparent(symbol);
        let found = self.llm_by_symbol.get(&symbol).next();
        found.map(|i| &self.llm[i])
    }

    /// The first LLM rule for calling `method` on an object made by `class`: the rule's
    /// method is the member path or its tail (`with_options(…).chat.completions.create`).
    pub fn llm_method(&self, class: &str, method: &str) -> Option<&LlmRule> {
        let method = &self.without_transparent(method);
        self.llm_by_class
            .get(class)
            .map(|i| &self.llm[i])
            .find(|rule| rule.methods.iter().any(|m| ends_with_member(method, m)))
    }

    /// The first rule whose dotted method `path` ends with, on a receiver the scanner
    /// could not resolve, among the rules `applies` accepts (those whose package the
    /// file imports).
    pub fn llm_heuristic(&self, path: &str, applies: impl Fn(&LlmRule) -> bool) -> Option<&LlmRule> {
        let path = &self.without_transparent(path);
        self.llm.iter().find(|rule| {
            !rule.packages.is_empty()
                && rule.methods.iter().any(|m| m.contains('.') && ends_with_member(path, m))
                && applies(rule)
        })
    }

    /// `chat.completions.with_raw_response.create` calls `chat.completions.create`.
    fn without_transparent<'p>(&self, path: &'p str) -> std::borrow::Cow<'p, str> {
        if !path.split('.').any(|m| self.transparent_members.contains(m)) {
            return path.into();
        }
        path.split('.')
            .filter(|m| !self.transparent_members.contains(*m))
            .collect::<Vec<_>>()
            .join(".")
            .into()
    }

    pub fn env_getter(&self, symbol: &str) -> Option<EnvGetter> {
        self.env_getters.get(symbol).next()
    }

    /// `process.env.NAME` → `NAME`.
    pub fn env_object_var<'p>(&self, path: &'p str) -> Option<&'p str> {
        self.env_objects
            .iter()
            .find_map(|prefix| path.strip_prefix(prefix.as_str())?.strip_prefix('.'))
            .filter(|v| !v.contains('.'))
    }

    /// `os.environ`: indexing it reads a variable.
    pub fn is_env_mapping(&self, symbol: &str) -> bool {
        self.env_mappings.contains(symbol)
    }

    /// `unwrap_or`: a method whose argument is the fallback of what it is called on.
    pub fn is_fallback_method(&self, method: &str) -> bool {
        self.fallback_methods.contains(method)
    }

    /// `str(x)`, `String::from(x)`: calls whose value is their first argument's.
    pub fn is_passthrough(&self, symbol: &str) -> bool {
        self.passthrough.contains(symbol)
    }

    /// The provider a model's name tells: its `provider/` or `provider:` prefix, else the
    /// longest known start of the name (`claude-…`, `gpt-…`).
    pub fn provider_of_model(&self, model: &str) -> Option<&str> {
        let model = model.to_ascii_lowercase();
        if let Some((prefix, _)) = model.split_once(['/', ':']) {
            if let Some(provider) = self.model_providers.get(prefix) {
                return Some(provider);
            }
        }
        self.model_providers
            .iter()
            .filter(|(start, _)| model.starts_with(start.as_str()))
            .max_by_key(|(start, _)| start.len())
            .map(|(_, provider)| provider.as_str())
    }

    /// The provider an OpenAI-compatible client's base URL points at.
    pub fn provider_of_base_url(&self, url: &str) -> Option<&str> {
        let url = url.to_ascii_lowercase();
        self.base_url_providers.iter().find(|(part, _)| url.contains(part.as_str())).map(|(_, p)| p.as_str())
    }

    /// The provider named `name`, if it is on the documented list.
    pub fn provider(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.model_providers
            .get(&name)
            .or_else(|| self.providers.iter().map(|p| &p.name).find(|p| **p == name))
            .map(String::as_str)
    }

    /// The frameworks an imported module belongs to (the module or a parent of it).
    pub fn frameworks_of(&self, module: &str) -> Vec<&str> {
        self.framework_modules
            .iter()
            .filter(|(m, _)| {
                module == m.as_str()
                    || module.strip_prefix(m.as_str()).is_some_and(|rest| rest.starts_with(['.', '/']))
            })
            .flat_map(|(_, frameworks)| frameworks.iter().map(String::as_str))
            .collect()
    }

    /// A constant a library exports, by its qualified name.
    pub fn constant(&self, symbol: &str) -> Option<&str> {
        self.constants.get(symbol).map(String::as_str)
    }
}

/// Whether the member path `path` is `member` or ends with `.member`.
fn ends_with_member(path: &str, member: &str) -> bool {
    path == member || path.strip_suffix(member).is_some_and(|head| head.ends_with('.'))
}

/// Every LLM rule of `file` names a listed provider and says what it matches; every
/// provider table names a listed provider. The error names the file and what to change.
fn validate(name: &str, file: &RuleFile, known: &HashSet<String>) -> Result<(), RuleError> {
    let invalid = |message: String| Err(RuleError::Invalid { file: name.to_owned(), message });
    let unlisted = |provider: &str| provider != AUTO_PROVIDER && !known.contains(provider);
    let tables = file.model_provider.iter().map(|e| ("model_provider", e));
    for (table, (key, provider)) in
        tables.chain(file.base_url_provider.iter().map(|e| ("base_url_provider", e)))
    {
        if unlisted(provider) {
            return invalid(format!(
                "[{table}] `{key}` names `{provider}`, which is not in the provider list: add a [[provider]] named `{provider}`"
            ));
        }
    }
    for flow in &file.agents.flow {
        if flow.steps.is_empty() && (flow.start.is_empty() || flow.listen.is_empty()) {
            return invalid(format!(
                "a `{}` [[flow]] needs `start` with `listen`, or `steps`",
                flow.framework
            ));
        }
    }
    for rule in &file.llm {
        if unlisted(&rule.provider) {
            return invalid(format!(
                "provider `{}` is not in the provider list: add a [[provider]] named `{}`, or use `auto`",
                rule.provider, rule.provider
            ));
        }
        if rule.symbols.is_empty() && (rule.on.is_empty() || rule.methods.is_empty()) {
            return invalid(format!("a `{}` rule needs `symbols`, or `on` with `methods`", rule.provider));
        }
    }
    Ok(())
}

fn parse(file: &str, text: &str) -> Result<RuleFile, RuleError> {
    toml::from_str(text).map_err(|e| RuleError::Invalid { file: file.to_owned(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_rules_load() {
        let rules = Rules::built_in();
        assert!(rules.providers.iter().any(|p| p.name == "openai"));
        assert_eq!(rules.llm_call("langchain_openai.ChatOpenAI").unwrap().provider, "openai");
        let rule = rules.llm_method("openai.OpenAI", "with_options.chat.completions.create").unwrap();
        assert_eq!(rule.call_kind, CallKind::Chat);
        assert!(rules.llm_method("openai.OpenAI", "chat.completions.created").is_none());
        assert!(rules.env_getter("os.getenv").is_some());
    }

    #[test]
    fn providers_are_inferred_from_model_names() {
        let rules = Rules::built_in();
        assert_eq!(rules.provider_of_model("ollama/llama3"), Some("ollama"));
        assert_eq!(rules.provider_of_model("anthropic:claude-3-5-sonnet"), Some("anthropic"));
        assert_eq!(rules.provider_of_model("claude-3-opus-20240229"), Some("anthropic"));
        assert_eq!(rules.provider_of_model("gpt-4o-mini"), Some("openai"));
        assert_eq!(rules.provider_of_model("gemini/gemini-1.5-pro"), Some("google"));
        assert_eq!(rules.provider_of_model("my-finetune"), None);
    }

    #[test]
    fn globs_match_any_run() {
        let glob = |pattern: &str, symbol: &str| Glob::new(pattern).matches(symbol);
        assert!(glob("langchain*.ChatOpenAI", "langchain_openai.chat_models.ChatOpenAI"));
        assert!(glob("a.*.c", "a.b.c"));
        assert!(!glob("a.*.c", "a.b.d"));
        assert!(glob("a.*", "a.b") && glob("*/x.js.C", "../y/x.js.C") && !glob("a*b*c", "abd"));
    }

    #[test]
    fn the_index_finds_exact_symbols_then_the_globs_that_match_in_listed_order() {
        let mut index = SymbolIndex::default();
        for (symbol, value) in
            [("rig.Client.*", 1), ("a*.Chat", 2), ("a.b.Chat", 3), ("*.Chat", 4), ("x*.Other", 5)]
        {
            index.insert(symbol, value);
        }
        assert_eq!(index.get("a.b.Chat").collect::<Vec<_>>(), [3, 2, 4]);
        assert_eq!(index.get("rig.Client.Chat").collect::<Vec<_>>(), [1, 4]);
        assert_eq!(index.get("x.y.Other").collect::<Vec<_>>(), [5]);
        assert!(index.get("x.y").next().is_none());
    }

    #[test]
    fn a_rule_for_an_unlisted_provider_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(
            &path,
            "[[llm]]\nprovider = \"acme\"\ncall_kind = \"chat\"\nsymbols = [\"acme.chat\"]\n",
        )
        .unwrap();
        let err = Rules::load(&[&path]).unwrap_err().to_string();
        assert!(err.contains("`acme` is not in the provider list") && err.contains("mine.toml"), "{err}");
        std::fs::write(&path, "[[provider]]\nname = \"acme\"\ndescription = \"Acme\"\n[[llm]]\nprovider = \"acme\"\ncall_kind = \"chat\"\nsymbols = [\"acme.chat\"]\n").unwrap();
        assert!(Rules::load(&[&path]).unwrap().llm_call("acme.chat").is_some());
        std::fs::write(&path, "[[llm]]\nprovder = \"x\"\n").unwrap();
        let err = Rules::load(&[&path]).unwrap_err().to_string();
        assert!(err.contains("mine.toml") && err.contains("provder"), "{err}");
    }
}
