//! Name resolution within one file: local names to fully qualified symbols (through
//! imports, aliases and the variables a value was bound to), and values to the literal,
//! environment variable or parameter they come from.

// foldhash: the maps are keyed by the file's own names and looked up for every call.
use foldhash::{HashMap, HashMapExt};

use super::facts::{Binding, Call, Expr, FileFacts, Function, Pos};
use super::rules::Rules;

/// How deep resolution follows names to names; a cycle (`x = x.y`) ends here.
const MAX_DEPTH: usize = 8;

/// What a callee or receiver resolved to.
#[derive(Debug, Clone, PartialEq)]
pub enum Symbol<'f> {
    /// A module-level path: `openai.OpenAI`, `litellm.completion`. `imported` says the
    /// path is rooted in an import (or written fully qualified where the language
    /// allows it) rather than a bare local or unknown name.
    Path { path: String, imported: bool },
    /// A member path on an object made by `class` (`openai.OpenAI` + `chat.completions.create`),
    /// with the call that made it where the file shows it.
    Instance { class: String, rest: String, origin: Option<&'f Call> },
}

impl Symbol<'_> {
    /// The symbol as one string: `openai.OpenAI().chat.completions.create`.
    pub fn display(&self) -> String {
        match self {
            Self::Path { path, .. } => path.clone(),
            Self::Instance { class, rest, .. } if rest.is_empty() => format!("{class}()"),
            Self::Instance { class, rest, .. } => format!("{class}().{rest}"),
        }
    }
}

/// Where a value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Literal(String),
    Env {
        var: String,
        default: Option<String>,
    },
    Param {
        name: String,
        default: Option<String>,
    },
    /// Something the scanner does not follow; a literal fallback where the code gives one.
    Unknown {
        default: Option<String>,
    },
}

pub struct Resolver<'f> {
    facts: &'f FileFacts,
    rules: &'f Rules,
    imports: HashMap<&'f str, &'f str>,
    bindings: HashMap<&'f str, Vec<&'f Binding>>,
    functions: HashMap<&'f str, &'f Function>,
    /// Whether a dotted name nobody imported is still a qualified path (Rust's
    /// `async_openai::Client::new`, Go's package-qualified names after import mapping).
    bare_paths_qualified: bool,
    /// The name each call's value is bound to (`researcher = Agent(…)`), by the call's position.
    bound_calls: HashMap<Pos, &'f str>,
    /// What each of the file's calls calls, resolved once: every detector asks.
    call_symbols: Vec<Option<Symbol<'f>>>,
}

impl<'f> Resolver<'f> {
    pub fn new(facts: &'f FileFacts, rules: &'f Rules, bare_paths_qualified: bool) -> Self {
        let imports = facts
            .imports
            .iter()
            .filter(|i| !i.local.is_empty())
            .map(|i| (i.local.as_str(), i.fqn.as_str()))
            .collect();
        let mut bindings: HashMap<&str, Vec<&Binding>> = HashMap::new();
        for binding in &facts.bindings {
            bindings.entry(binding.name.as_str()).or_default().push(binding);
        }
        let functions = facts.functions.iter().map(|f| (f.name.as_str(), f)).collect();
        let bound_calls = facts
            .bindings
            .iter()
            .filter_map(|b| match &b.value {
                Expr::Call(call) => Some((call.pos, b.name.as_str())),
                _ => None,
            })
            .collect();
        let mut resolver = Self {
            facts,
            rules,
            imports,
            bindings,
            functions,
            bare_paths_qualified,
            bound_calls,
            call_symbols: Vec::new(),
        };
        resolver.call_symbols =
            facts.calls.iter().map(|c| resolver.symbol(&c.callee, c.function.as_deref(), c.pos)).collect();
        resolver
    }

    pub fn facts(&self) -> &'f FileFacts {
        self.facts
    }

    /// The symbol one of this file's calls (an element of `facts().calls`) calls.
    pub fn call_symbol(&self, call: &Call) -> Option<&Symbol<'f>> {
        // The calls are one slice: a call's index is its offset in it.
        let base = self.facts.calls.as_ptr() as usize;
        let index = (call as *const Call as usize).checked_sub(base)? / std::mem::size_of::<Call>().max(1);
        self.call_symbols.get(index)?.as_ref()
    }

    /// The variable the call at `pos` is assigned to, if any.
    pub fn bound_name(&self, pos: Pos) -> Option<&'f str> {
        self.bound_calls.get(&pos).copied()
    }

    /// A function of this file by its qualified name.
    pub fn function(&self, name: &str) -> Option<&'f Function> {
        self.functions.get(name).copied()
    }

    /// The literal `expr` comes to, if it comes to one.
    pub fn literal(&self, expr: &'f Expr, function: Option<&str>, at: Pos) -> Option<String> {
        match self.value(expr, function, at) {
            Value::Literal(s) => Some(s),
            _ => None,
        }
    }

    /// The symbol a call's callee (or any name) refers to.
    pub fn symbol(&self, expr: &'f Expr, function: Option<&str>, at: Pos) -> Option<Symbol<'f>> {
        self.symbol_at(expr, function, at, 0)
    }

    fn symbol_at(&self, expr: &'f Expr, function: Option<&str>, at: Pos, depth: usize) -> Option<Symbol<'f>> {
        if depth > MAX_DEPTH {
            return None;
        }
        match expr {
            Expr::Name(path) => Some(self.path_symbol(path, function, at, depth)),
            // `OpenAI().chat.completions.create`: a member of what the call made.
            Expr::Member(base, rest) => Some(join(self.symbol_at(base, function, at, depth + 1)?, rest)),
            Expr::Call(call) => {
                match self.symbol_at(&call.callee, call.function.as_deref(), call.pos, depth + 1)? {
                    Symbol::Path { path, .. } => {
                        Some(Symbol::Instance { class: path, rest: String::new(), origin: Some(call) })
                    }
                    instance => Some(extend(instance, "")),
                }
            }
            _ => None,
        }
    }

    /// Resolves a dotted path by its longest prefix that is bound or imported.
    fn path_symbol(&self, path: &str, function: Option<&str>, at: Pos, depth: usize) -> Symbol<'f> {
        // Prefixes from the whole path down to its first segment, as slices of it: this
        // runs for every call of every file.
        let cuts = path.match_indices('.').map(|(at, _)| at).rev();
        for cut in std::iter::once(path.len()).chain(cuts) {
            let prefix = &path[..cut];
            let rest = path.get(cut + 1..).unwrap_or("");
            if let Some(binding) = self.binding(prefix, function, at) {
                if let Some(symbol) = self.bound_symbol(binding, rest, depth) {
                    return symbol;
                }
            }
            if let Some(fqn) = self.imports.get(prefix) {
                return Symbol::Path { path: joined(fqn, rest), imported: true };
            }
            if !prefix.contains('.') {
                if let Some(class) = self.param_type(prefix, function) {
                    let class = self.path_symbol(class, None, at, depth + 1);
                    if let Symbol::Path { path: class, imported: true } = class {
                        return Symbol::Instance { class, rest: rest.to_owned(), origin: None };
                    }
                }
            }
        }
        Symbol::Path { path: path.to_owned(), imported: self.bare_paths_qualified && path.contains('.') }
    }

    /// What `prefix` means given the binding it resolved to, with `rest` after it.
    fn bound_symbol(&self, binding: &'f Binding, rest: &str, depth: usize) -> Option<Symbol<'f>> {
        let symbol = self.symbol_at(&binding.value, binding.function.as_deref(), binding.pos, depth + 1)?;
        Some(match (&binding.value, symbol) {
            (Expr::Call(_), made) => extend(made, rest),
            (_, alias) => join(alias, rest),
        })
    }

    /// The qualified path a type written in an annotation names at module level
    /// (`StartEvent` → `llama_index.core.workflow.StartEvent`), where it is a path.
    pub fn type_path(&self, name: &str, at: Pos) -> Option<String> {
        match self.path_symbol(name, None, at, 0) {
            Symbol::Path { path, .. } => Some(path),
            Symbol::Instance { .. } => None,
        }
    }

    /// The binding of `name` visible at `at` in `function`: the latest one before `at` in
    /// the same function, else in the same class's methods (for `self.x`), else at
    /// module level.
    pub fn binding(&self, name: &str, function: Option<&str>, at: Pos) -> Option<&'f Binding> {
        let candidates = self.bindings.get(name)?;
        let in_function = |b: &&&Binding| b.function.as_deref() == function;
        candidates
            .iter()
            .rfind(|b| in_function(b) && b.pos < at)
            .or_else(|| candidates.iter().find(in_function))
            .or_else(|| {
                let class = function?.rsplit_once('.')?.0;
                candidates.iter().find(|b| {
                    b.function.as_deref().and_then(|f| f.rsplit_once('.')).is_some_and(|(c, _)| c == class)
                })
            })
            .or_else(|| candidates.iter().rfind(|b| b.function.is_none()))
            .copied()
    }

    fn param(&self, name: &str, function: Option<&str>) -> Option<&'f super::facts::Param> {
        self.functions.get(function?)?.params.iter().find(|p| p.name == name)
    }

    fn param_type(&self, name: &str, function: Option<&str>) -> Option<&'f str> {
        let ty = self.param(name, function)?.ty.as_deref()?;
        // `Optional[OpenAI]`, `OpenAI | None`: the class is what matters.
        let ty = ty.trim_start_matches("Optional[").trim_end_matches(']');
        let ty = ty.split('|').next()?.trim();
        // A pointer or reference to the class (Go's `*genai.Client`, Rust's `&Client<C>`)
        // calls the same methods.
        let ty = ty.trim_start_matches(['*', '&']).trim_start_matches("mut ");
        Some(ty.split('<').next()?.trim())
    }

    /// Where the value of `expr` comes from.
    pub fn value(&self, expr: &'f Expr, function: Option<&str>, at: Pos) -> Value {
        self.value_at(expr, function, at, 0)
    }

    fn value_at(&self, expr: &'f Expr, function: Option<&str>, at: Pos, depth: usize) -> Value {
        let unknown = Value::Unknown { default: None };
        if depth > MAX_DEPTH {
            return unknown;
        }
        match expr {
            Expr::Str(s) => Value::Literal(s.clone()),
            Expr::Name(path) => self.name_value(path, function, at, depth),
            Expr::Subscript(base, key) => {
                let Expr::Str(key) = &**key else { return unknown };
                self.keyed_value(base, key, function, at, depth)
            }
            Expr::Call(call) => self.call_value(call, depth),
            Expr::Fallback(first, second) => {
                let fallback = || match self.value_at(second, function, at, depth + 1) {
                    Value::Literal(s) => Some(s),
                    Value::Env { default, .. }
                    | Value::Param { default, .. }
                    | Value::Unknown { default } => default,
                };
                match self.value_at(first, function, at, depth + 1) {
                    Value::Env { var, default: None } => Value::Env { var, default: fallback() },
                    Value::Param { name, default: None } => Value::Param { name, default: fallback() },
                    Value::Unknown { default: None } => {
                        match self.value_at(second, function, at, depth + 1) {
                            Value::Literal(s) => Value::Unknown { default: Some(s) },
                            other => other,
                        }
                    }
                    // Nobody writes a literal before `||`; a literal with an alternative is
                    // one branch of a choice (`hard ? SMART : FAST`): which one runs is
                    // decided at run time, the first is the one reported.
                    Value::Literal(s) => Value::Unknown { default: Some(s) },
                    known => known,
                }
            }
            _ => unknown,
        }
    }

    fn name_value(&self, path: &'f str, function: Option<&str>, at: Pos, depth: usize) -> Value {
        if let Some(var) = self.rules.env_object_var(path) {
            return Value::Env { var: var.to_owned(), default: None };
        }
        // `Model.GPT4.value` is the member `Model.GPT4`.
        let path = path.strip_suffix(".value").filter(|p| self.bindings.contains_key(p)).unwrap_or(path);
        if let Some(binding) = self.binding(path, function, at) {
            let value = self.value_at(&binding.value, binding.function.as_deref(), binding.pos, depth + 1);
            return match (value, self.earlier_env(path, binding, depth)) {
                (Value::Literal(default), Some(var)) => Value::Env { var, default: Some(default) },
                (value, _) => value,
            };
        }
        if let Some(value) = self.field_value(path, function, depth) {
            return value;
        }
        if !path.contains('.') {
            if let Some(param) = self.param(path, function) {
                let default =
                    param.default.as_ref().and_then(|d| match self.value_at(d, None, at, depth + 1) {
                        Value::Literal(s) => Some(s),
                        _ => None,
                    });
                return Value::Param { name: path.to_owned(), default };
            }
        }
        // `MODELS.fast` where `MODELS` is a dict or object literal.
        if let Some((base, key)) = path.rsplit_once('.') {
            if self.binding(base, function, at).is_some() {
                if let Value::Literal(s) = self.keyed(base, key, function, at, depth) {
                    return Value::Literal(s);
                }
            }
        }
        // A constant a library exports (`openai.GPT4o` in Go), from the rule tables.
        if let Symbol::Path { path, .. } = self.path_symbol(path, function, at, depth + 1) {
            if let Some(value) = self.rules.constant(&path) {
                return Value::Literal(value.to_owned());
            }
        }
        Value::Unknown { default: None }
    }

    /// The variable `name` was read from before `binding` gave it a literal in the same
    /// function: `m := os.Getenv("M"); if m == "" { m = "llama3" }` is the variable `M`
    /// with the default `llama3`. The scanner does not follow control flow, and this
    /// shape is the idiom for a default where the language has no `||`.
    fn earlier_env(&self, name: &str, binding: &'f Binding, depth: usize) -> Option<String> {
        self.bindings
            .get(name)?
            .iter()
            .filter(|b| b.function == binding.function && b.pos < binding.pos)
            .find_map(|earlier| {
                match self.value_at(&earlier.value, earlier.function.as_deref(), earlier.pos, depth + 1) {
                    Value::Env { var, default: None } => Some(var),
                    _ => None,
                }
            })
    }

    /// `self.model` or `this.model` that no method assigns: the class's own field
    /// (`Class.model`, a class attribute or field initializer), else what a constructor
    /// literal of the type gave it (Rust's `Self { model, .. }` in `new`).
    fn field_value(&self, path: &str, function: Option<&str>, depth: usize) -> Option<Value> {
        let field = path.strip_prefix("self.").or_else(|| path.strip_prefix("this."))?;
        let class = function?.rsplit_once('.')?.0;
        if let Some(binding) = self.binding(&format!("{class}.{field}"), None, Pos::default()) {
            return Some(self.value_at(&binding.value, binding.function.as_deref(), binding.pos, depth + 1));
        }
        let in_class = |f: &str| f.rsplit_once('.').is_some_and(|(c, _)| c == class);
        self.facts.calls.iter().find_map(|call| {
            let built = matches!(&call.callee, Expr::Name(n) if n == "Self" || n == class);
            if !built || !call.function.as_deref().is_some_and(in_class) {
                return None;
            }
            let (_, value) = call.kwargs.iter().find(|(k, _)| k == field)?;
            Some(self.value_at(value, call.function.as_deref(), call.pos, depth + 1))
        })
    }

    fn keyed_value(&self, base: &'f Expr, key: &str, function: Option<&str>, at: Pos, depth: usize) -> Value {
        if let Some(Symbol::Path { path, .. }) = self.symbol_at(base, function, at, depth + 1) {
            if self.rules.is_env_mapping(&path) {
                return Value::Env { var: key.to_owned(), default: None };
            }
        }
        match base {
            Expr::Name(name) => self.keyed(name, key, function, at, depth),
            _ => Value::Unknown { default: None },
        }
    }

    /// `name[key]` or `name.key` where `name` is bound to an object literal.
    fn keyed(&self, name: &str, key: &str, function: Option<&str>, at: Pos, depth: usize) -> Value {
        let Some(binding) = self.binding(name, function, at) else { return Value::Unknown { default: None } };
        match &binding.value {
            Expr::Object(fields) => match fields.iter().find(|(k, _)| k == key) {
                Some((_, v)) => self.value_at(v, binding.function.as_deref(), binding.pos, depth + 1),
                None => Value::Unknown { default: None },
            },
            _ => Value::Unknown { default: None },
        }
    }

    fn call_value(&self, call: &'f Call, depth: usize) -> Value {
        let function = call.function.as_deref();
        // `env::var("M").unwrap_or("llama3")`: the variable, with the fallback as its default.
        if let Expr::Member(base, method) = &call.callee {
            if self.rules.is_fallback_method(method) {
                let fallback = call.args.first().map(|a| self.value_at(a, function, call.pos, depth + 1));
                let default = match fallback {
                    Some(Value::Literal(s)) => Some(s),
                    _ => None,
                };
                return match self.value_at(base, function, call.pos, depth + 1) {
                    Value::Env { var, default: None } => Value::Env { var, default },
                    other => other,
                };
            }
        }
        // `model.clone()`, `EMBED_MODEL.to_string()`: a conversion method keeps its receiver's value.
        if call.args.is_empty() {
            let receiver = match &call.callee {
                Expr::Member(base, method) if self.rules.is_passthrough(method) => Some(&**base),
                _ => None,
            };
            if let Some(receiver) = receiver {
                return self.value_at(receiver, function, call.pos, depth + 1);
            }
            if let Expr::Name(path) = &call.callee {
                if let Some((receiver, method)) = path.rsplit_once('.') {
                    if self.rules.is_passthrough(method) {
                        return self.name_value(receiver, function, call.pos, depth + 1);
                    }
                }
            }
        }
        let Some(Symbol::Path { path, .. }) = self.symbol_at(&call.callee, function, call.pos, depth + 1)
        else {
            return Value::Unknown { default: None };
        };
        if let Some(getter) = self.rules.env_getter(&path) {
            let literal =
                |e: Option<&'f Expr>| match e.map(|e| self.value_at(e, function, call.pos, depth + 1)) {
                    Some(Value::Literal(s)) => Some(s),
                    _ => None,
                };
            return match literal(call.arg(None, Some(getter.var))) {
                Some(var) => {
                    Value::Env { var, default: getter.default.and_then(|d| literal(call.args.get(d))) }
                }
                None => Value::Unknown { default: None },
            };
        }
        if self.rules.is_passthrough(&path) {
            if let Some(inner) = call.args.first() {
                return self.value_at(inner, function, call.pos, depth + 1);
            }
        }
        Value::Unknown { default: None }
    }
}

fn joined(base: &str, rest: &str) -> String {
    match (base.is_empty(), rest.is_empty()) {
        (_, true) => base.to_owned(),
        (true, false) => rest.to_owned(),
        (false, false) => format!("{base}.{rest}"),
    }
}

/// `rest` after a name that stands for `symbol` (an alias or an import).
fn join<'f>(symbol: Symbol<'f>, rest: &str) -> Symbol<'f> {
    match symbol {
        Symbol::Path { path, imported } => Symbol::Path { path: joined(&path, rest), imported },
        Symbol::Instance { class, rest: r, origin } => {
            Symbol::Instance { class, rest: joined(&r, rest), origin }
        }
    }
}

/// `rest` after what a call made: a member of an instance.
fn extend<'f>(made: Symbol<'f>, rest: &str) -> Symbol<'f> {
    match made {
        Symbol::Path { path, .. } => Symbol::Instance { class: path, rest: rest.to_owned(), origin: None },
        Symbol::Instance { class, rest: r, origin } => {
            Symbol::Instance { class, rest: joined(&r, rest), origin }
        }
    }
}
