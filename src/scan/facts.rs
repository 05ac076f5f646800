//! The language-neutral facts one source file states: imports, bindings, calls,
//! functions and classes, with expressions lowered to [`Expr`]. Each language's
//! extractor (`extract/…`) fills them from its tree-sitter queries; resolution and the
//! rules never look at a syntax tree.

/// A 1-based position in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// An expression, as far as the scanner follows one.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Str(String),
    Num(String),
    Bool(bool),
    /// A name or a dotted member path as written: `client`, `openai.OpenAI`,
    /// `self.client`, `Model.GPT4`. Paths use `.` in every language (`a::b` → `a.b`).
    Name(String),
    /// A member path on something that is not a name: `OpenAI().chat.completions`.
    Member(Box<Expr>, String),
    Call(Box<Call>),
    /// `x[key]`.
    Subscript(Box<Expr>, Box<Expr>),
    /// Keyed values: a dict or object literal, a Go composite literal, a Rust struct literal.
    Object(Vec<(String, Expr)>),
    List(Vec<Expr>),
    /// `a or b`, `a || b`, `a ?? b`: the second is the fallback.
    Fallback(Box<Expr>, Box<Expr>),
    /// A lambda, closure or function value defined in place.
    Lambda,
    /// Anything else (arithmetic, f-strings with holes, comprehensions…).
    Other,
}

impl Expr {
    /// `self.attr`, keeping dotted names flat: `a.b` + `c` is the name `a.b.c`, and
    /// `f().a` + `b` is `f()` with the path `a.b`, so the rules see one path per base.
    pub(crate) fn member(self, attr: &str) -> Expr {
        match self {
            Expr::Name(path) => Expr::Name(format!("{path}.{attr}")),
            Expr::Member(base, path) => Expr::Member(base, format!("{path}.{attr}")),
            other => Expr::Member(Box::new(other), attr.to_owned()),
        }
    }
}

/// A call site: `callee(args…, name=kwarg…)`. JavaScript's trailing object argument
/// and Go's composite literal argument stay positional; the rules look inside them.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub callee: Expr,
    pub args: Vec<Expr>,
    pub kwargs: Vec<(String, Expr)>,
    /// `new X(…)` in JavaScript: a construction.
    pub is_new: bool,
    /// Arguments the scanner cannot see are passed (`**kwargs`, `...options`): an
    /// argument missing from `args` and `kwargs` may still be given.
    pub spread: bool,
    pub pos: Pos,
    /// The qualified name of the enclosing function (`Class.method`), if any.
    pub function: Option<String>,
}

impl Call {
    /// A plain call: no `new`, nothing spread.
    pub fn new(
        callee: Expr,
        args: Vec<Expr>,
        kwargs: Vec<(String, Expr)>,
        pos: Pos,
        function: Option<String>,
    ) -> Call {
        Call { callee, args, kwargs, is_new: false, spread: false, pos, function }
    }

    /// The argument given by keyword `name` — a keyword argument, or a key of an object
    /// argument (JavaScript's options object, Go's request struct) — else at `position`.
    pub fn arg(&self, name: Option<&str>, position: Option<usize>) -> Option<&Expr> {
        let keyed = |n: &str| {
            self.kwargs.iter().find(|(k, _)| k == n).map(|(_, v)| v).or_else(|| {
                self.args.iter().find_map(|a| match a {
                    Expr::Object(fields) => fields.iter().find(|(k, _)| k == n).map(|(_, v)| v),
                    _ => None,
                })
            })
        };
        name.and_then(keyed).or_else(|| position.and_then(|p| self.args.get(p)))
    }
}

/// `local` names `fqn` in this file: `import x as y` gives `y` → `x`; `from a import B
/// as C` gives `C` → `a.B`; `import { B as C } from "a"` gives `C` → `a.B`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub local: String,
    pub fqn: String,
    /// The module as written (for the package it maps to).
    pub module: String,
    pub pos: Pos,
}

/// `name = value`, in a function (`function`) or at module or class level (`None`).
/// Class attributes are bound as `Class.attr`, instance attributes as `self.attr`.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub name: String,
    pub value: Expr,
    pub function: Option<String>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    /// The annotation as written.
    pub ty: Option<String>,
    pub default: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// Qualified within the file: `Class.method` or `func`.
    pub name: String,
    /// The bare name.
    pub short_name: String,
    pub params: Vec<Param>,
    /// Decorators or attribute macros: names or calls.
    pub decorators: Vec<Expr>,
    pub doc: Option<String>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    pub name: String,
    pub bases: Vec<Expr>,
    pub decorators: Vec<Expr>,
    pub doc: Option<String>,
    pub pos: Pos,
}

/// Everything the scanner takes from one parsed file.
#[derive(Debug, Clone, Default)]
pub struct FileFacts {
    pub imports: Vec<Import>,
    pub bindings: Vec<Binding>,
    pub calls: Vec<Call>,
    pub functions: Vec<Function>,
    pub classes: Vec<Class>,
    /// Number of syntax errors and the first one's position.
    pub syntax_errors: usize,
    pub first_error: Option<Pos>,
}
