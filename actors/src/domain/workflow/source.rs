//! Definition files as text: YAML or JSON in, a [`WorkflowDef`] out, and every problem
//! as a [`Diagnostic`] at a line and column (`flow.yaml:12:9: … (at /steps/2/depends_on/0)`).
//!
//! Why these crates: a definition is read into a `serde_json::Value` first, so that the
//! same pointer names a place in the YAML text, in the JSON the API stores, and in the
//! problems of [`validate`]. The YAML side is `saphyr-parser`, the maintained YAML 1.2
//! parser of the saphyr project (the successor of yaml-rust and yaml-rust2): a small
//! crate whose events carry spans, which is all that is needed to build the value and a
//! map from JSON pointer to position in one pass. serde_yaml is unmaintained and its
//! forks either drop positions or are not maintained. JSON is YAML 1.2 (flow style), so
//! one parser reads both. `serde_path_to_error` gives the pointer of a deserialization
//! error (an unknown key such as `depend_on`, a wrong type), which serde alone does not.
//!
//! Scalars follow YAML 1.2's core schema (`yes` is a string, not true); anchors and
//! aliases are expanded, within a size bound so a few aliases cannot make a huge value.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde::Serialize;
use serde_json::{Map, Number, Value};

use super::definition::{StepDef, WorkflowDef};
use super::validate::{validate, KnownNames, Problem};

/// A place in the text: 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    fn of(span: &Span) -> Self {
        Position { line: span.start.line(), column: span.start.col() + 1 }
    }
}

/// Where each JSON pointer of a parsed value starts in its text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Positions {
    values: BTreeMap<String, Position>,
    keys: BTreeMap<String, Position>,
}

impl Positions {
    /// Where the value at `pointer` starts.
    pub fn value(&self, pointer: &str) -> Option<Position> {
        self.values.get(pointer).copied()
    }

    /// Where the key of the mapping entry at `pointer` starts.
    pub fn key(&self, pointer: &str) -> Option<Position> {
        self.keys.get(pointer).copied()
    }

    /// The position to show for `pointer`: its value, else that of the nearest enclosing
    /// value (a missing key is shown at its mapping), else the start of the text.
    pub fn locate(&self, pointer: &str) -> Position {
        let mut at = pointer;
        loop {
            if let Some(p) = self.value(at) {
                return p;
            }
            match at.rfind('/') {
                Some(i) => at = &at[..i],
                None => return Position { line: 1, column: 1 },
            }
        }
    }

    /// `problem` at its place in `file`.
    pub fn diagnostic(&self, file: Option<&str>, problem: &Problem) -> Diagnostic {
        let Position { line, column } = self.locate(&problem.pointer);
        Diagnostic {
            file: file.map(str::to_string),
            line,
            column,
            pointer: problem.pointer.clone(),
            message: problem.message.clone(),
        }
    }
}

/// A problem of a definition file, at its line and column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: Option<String>,
    pub line: usize,
    pub column: usize,
    /// The JSON pointer of what is wrong; `""` for the whole definition.
    pub pointer: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        write!(f, "{}:{}: {}", self.line, self.column, self.message)?;
        if !self.pointer.is_empty() {
            write!(f, " (at {})", self.pointer)?;
        }
        Ok(())
    }
}

/// A definition read from text, with the positions of its parts.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedDefinition {
    pub def: WorkflowDef,
    /// The text as JSON, as it was before deserialization.
    pub value: Value,
    pub positions: Positions,
}

/// Reads a definition from YAML or JSON. Fails with every syntax or shape error found
/// (each step's own errors, then those of the rest), positioned.
pub fn parse(text: &str, file: Option<&str>) -> Result<ParsedDefinition, Vec<Diagnostic>> {
    let (value, positions) = parse_value(text).map_err(|d| vec![d.in_file(file)])?;
    match deserialize(&value) {
        Ok(def) => Ok(ParsedDefinition { def, value, positions }),
        Err(errors) => {
            let mut diagnostics: Vec<Diagnostic> = errors
                .into_iter()
                .map(|(pointer, message)| {
                    // An unknown key is shown at the key; other errors at the value.
                    let at_key = message.starts_with("unknown field");
                    let position = positions
                        .key(&pointer)
                        .filter(|_| at_key)
                        .unwrap_or_else(|| positions.locate(&pointer));
                    Diagnostic {
                        file: file.map(str::to_string),
                        line: position.line,
                        column: position.column,
                        pointer,
                        message,
                    }
                })
                .collect();
            sort(&mut diagnostics);
            Err(diagnostics)
        }
    }
}

/// [`parse`], then [`validate`] against `known`: the definition when it may run, else
/// every problem, positioned and in the order of the text.
pub fn check(text: &str, file: Option<&str>, known: &KnownNames) -> Result<WorkflowDef, Vec<Diagnostic>> {
    let parsed = parse(text, file)?;
    let problems = validate(&parsed.def, known);
    if problems.is_empty() {
        return Ok(parsed.def);
    }
    let mut diagnostics: Vec<Diagnostic> =
        problems.iter().map(|p| parsed.positions.diagnostic(file, p)).collect();
    sort(&mut diagnostics);
    Err(diagnostics)
}

fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.line, d.column));
}

impl Diagnostic {
    fn in_file(mut self, file: Option<&str>) -> Self {
        self.file = file.map(str::to_string);
        self
    }
}

/// Deserializes, collecting the errors of each step and of the rest when it fails.
fn deserialize(value: &Value) -> Result<WorkflowDef, Vec<(String, String)>> {
    let first = match serde_path_to_error::deserialize::<_, WorkflowDef>(value) {
        Ok(def) => return Ok(def),
        Err(e) => e,
    };
    let mut errors = Vec::new();
    if let Some(Value::Array(steps)) = value.get("steps") {
        for (i, step) in steps.iter().enumerate() {
            if let Err(e) = serde_path_to_error::deserialize::<_, StepDef>(step) {
                errors.push(located(&format!("/steps/{i}"), e));
            }
        }
        let mut rest = value.clone();
        rest["steps"] = Value::Array(Vec::new());
        if let Err(e) = serde_path_to_error::deserialize::<_, WorkflowDef>(&rest) {
            errors.push(located("", e));
        }
    }
    if errors.is_empty() {
        errors.push(located("", first));
    }
    Err(errors)
}

pub(super) fn located(prefix: &str, e: serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    use serde_path_to_error::Segment;
    let mut pointer = prefix.to_string();
    for segment in e.path().iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push('/');
                pointer.push_str(&escape(key));
            }
            Segment::Unknown => break,
        }
    }
    (pointer, e.into_inner().to_string())
}

/// One JSON pointer token: `~` and `/` escaped (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Nodes one text may expand to (aliases included).
const MAX_NODES: usize = 200_000;

/// Lists and mappings nested at most, so that deserializing, templating and dropping
/// the value (all recursive) cannot exhaust a thread's stack.
const MAX_DEPTH: usize = 64;

/// Reads YAML or JSON into a value and the positions of its parts. No definition shape
/// is checked here: any document is a value.
pub fn parse_value(text: &str) -> Result<(Value, Positions), Diagnostic> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(event) => event,
            Err(e) => {
                let (line, column) = (e.marker().line(), e.marker().col() + 1);
                let message = format!("this is not valid YAML or JSON: {}", e.info());
                return Err(builder.error(Position { line, column }, message));
            }
        };
        builder.event(event, &span)?;
    }
    Ok((builder.root.unwrap_or(Value::Null), builder.positions))
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    documents: usize,
    positions: Positions,
    /// Anchor id → its value and how many nodes it holds.
    anchors: HashMap<usize, (Value, usize)>,
    nodes: usize,
}

struct Frame {
    pointer: String,
    anchor: usize,
    /// Nodes created when the frame started, to size its anchor.
    nodes_at_start: usize,
    container: Container,
}

enum Container {
    Seq(Vec<Value>),
    /// A mapping and the key whose value comes next.
    Map(Map<String, Value>, Option<String>),
}

impl Builder {
    /// An error at the node that comes next (or at its mapping, when a key comes next).
    fn error(&self, at: Position, message: String) -> Diagnostic {
        let pointer = match self.stack.last() {
            Some(frame) if self.is_key_next() => frame.pointer.clone(),
            _ => self.next_pointer(),
        };
        Diagnostic { file: None, line: at.line, column: at.column, pointer, message }
    }

    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), Diagnostic> {
        let at = Position::of(span);
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    let message = "a file holds one definition: remove the second document (after ---)";
                    return Err(self.error(at, message.into()));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                if self.is_key_next() {
                    return self.key(text.into_owned(), at);
                }
                let value = resolve(&text, style, tag.as_deref()).map_err(|m| self.error(at, m))?;
                self.grow(1, at)?;
                if anchor > 0 {
                    self.anchors.insert(anchor, (value.clone(), 1));
                }
                self.place_new(value, at);
            }
            Event::Alias(anchor) => {
                if self.is_key_next() {
                    return Err(self.error(at, "an alias cannot be a key: write the key out".into()));
                }
                let Some((value, size)) = self.anchors.get(&anchor).cloned() else {
                    return Err(self.error(at, "this alias names no anchor before it".into()));
                };
                self.grow(size, at)?;
                self.place_new(value, at);
            }
            Event::SequenceStart(anchor, tag) => self.start(anchor, tag.as_deref(), at, "seq")?,
            Event::MappingStart(anchor, tag) => self.start(anchor, tag.as_deref(), at, "map")?,
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = self.stack.pop().expect("the parser balances starts and ends");
                let value = match frame.container {
                    Container::Seq(items) => Value::Array(items),
                    Container::Map(map, _) => Value::Object(map),
                };
                if frame.anchor > 0 {
                    let size = self.nodes - frame.nodes_at_start;
                    self.anchors.insert(frame.anchor, (value.clone(), size));
                }
                self.place(value);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        Ok(())
    }

    fn start(
        &mut self,
        anchor: usize,
        tag: Option<&Tag>,
        at: Position,
        kind: &str,
    ) -> Result<(), Diagnostic> {
        if self.is_key_next() {
            return Err(self.error(at, "a key must be plain text, not a list or a mapping".into()));
        }
        if let Some(tag) = tag.filter(|t| !(t.is_yaml_core_schema() && t.suffix == kind)) {
            return Err(self.error(at, format!("tag {tag} is not supported: definitions are plain data")));
        }
        if self.stack.len() >= MAX_DEPTH {
            let message =
                format!("lists and mappings nest deeper than {MAX_DEPTH} levels here: flatten them");
            return Err(self.error(at, message));
        }
        self.grow(1, at)?;
        let pointer = self.next_pointer();
        self.positions.values.insert(pointer.clone(), at);
        let container =
            if kind == "seq" { Container::Seq(Vec::new()) } else { Container::Map(Map::new(), None) };
        self.stack.push(Frame { pointer, anchor, nodes_at_start: self.nodes, container });
        Ok(())
    }

    /// Whether the next node is a mapping key.
    fn is_key_next(&self) -> bool {
        matches!(self.stack.last(), Some(Frame { container: Container::Map(_, None), .. }))
    }

    fn key(&mut self, key: String, at: Position) -> Result<(), Diagnostic> {
        let Some(Frame { pointer, container: Container::Map(map, pending), .. }) = self.stack.last_mut()
        else {
            unreachable!("is_key_next said a mapping waits for a key");
        };
        let entry = format!("{pointer}/{}", escape(&key));
        if map.contains_key(&key) {
            let message = format!("key {key:?} appears twice in this mapping: keep one");
            let pointer = entry.clone();
            return Err(Diagnostic { file: None, line: at.line, column: at.column, pointer, message });
        }
        *pending = Some(key);
        self.positions.keys.insert(entry, at);
        Ok(())
    }

    /// The pointer of the value that comes next.
    fn next_pointer(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame { pointer, container: Container::Seq(items), .. }) => {
                format!("{pointer}/{}", items.len())
            }
            Some(Frame { pointer, container: Container::Map(_, key), .. }) => {
                format!("{pointer}/{}", escape(key.as_deref().unwrap_or_default()))
            }
        }
    }

    fn grow(&mut self, nodes: usize, at: Position) -> Result<(), Diagnostic> {
        self.nodes += nodes;
        if self.nodes > MAX_NODES {
            let message = format!("the definition expands to more than {MAX_NODES} values: make it smaller");
            return Err(self.error(at, message));
        }
        Ok(())
    }

    /// A scalar or alias: recorded where it is, then placed.
    fn place_new(&mut self, value: Value, at: Position) {
        self.positions.values.insert(self.next_pointer(), at);
        self.place(value);
    }

    fn place(&mut self, value: Value) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame { container: Container::Seq(items), .. }) => items.push(value),
            Some(Frame { container: Container::Map(map, key), .. }) => {
                let key = key.take().expect("a value follows its key");
                map.insert(key, value);
            }
        }
    }
}

/// A scalar as YAML 1.2's core schema reads it: quoted and block scalars are strings;
/// plain ones may be null, booleans or numbers.
fn resolve(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    let as_type = match tag {
        None => None,
        Some(tag) if tag.is_yaml_core_schema() => Some(tag.suffix.as_str()),
        Some(tag) => return Err(format!("tag {tag} is not supported: definitions are plain data")),
    };
    match as_type {
        Some("str") => return Ok(Value::String(text.to_string())),
        None if style != ScalarStyle::Plain => return Ok(Value::String(text.to_string())),
        None | Some("null" | "bool" | "int" | "float") => {}
        Some(other) => {
            return Err(format!("tag !!{other} is not supported here: definitions are plain data"))
        }
    }
    let value = plain(text)?;
    let fits = match as_type {
        None => true,
        Some("null") => value.is_null(),
        Some("bool") => value.is_boolean(),
        Some("int") => value.is_i64() || value.is_u64(),
        Some(_) => value.is_number(),
    };
    if !fits {
        return Err(format!("{text:?} is not a {}", as_type.unwrap_or_default()));
    }
    Ok(value)
}

fn plain(text: &str) -> Result<Value, String> {
    Ok(match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | ".nan"
        | ".NaN" | ".NAN" => {
            return Err(format!("{text} is not a number JSON can hold: quote it to make it a string"))
        }
        _ => {
            if let Some(n) = integer(text) {
                n
            } else if is_float(text) {
                let f: f64 = text.parse().map_err(|_| format!("{text} is not a number"))?;
                Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("{text} is too large"))?
            } else {
                Value::String(text.to_string())
            }
        }
    })
}

/// `[-+]?[0-9]+`, `0o[0-7]+` or `0x[0-9a-fA-F]+`.
fn integer(text: &str) -> Option<Value> {
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    if let Some(octal) = text.strip_prefix("0o").filter(|s| digits(s, 8)) {
        return u64::from_str_radix(octal, 8).ok().map(Value::from);
    }
    if let Some(hex) = text.strip_prefix("0x").filter(|s| digits(s, 16)) {
        return u64::from_str_radix(hex, 16).ok().map(Value::from);
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits(unsigned, 10) {
        return None;
    }
    // Too large for 64 bits: a float, as JSON parsers read it.
    text.parse::<i64>()
        .map(Value::from)
        .or_else(|_| text.parse::<u64>().map(Value::from))
        .ok()
        .or_else(|| text.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number))
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(text: &str) -> bool {
    let s = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => !frac.is_empty() && all_digits(frac),
        Some((int, frac)) => all_digits(int) && all_digits(frac),
        None => !mantissa.is_empty() && all_digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests;
