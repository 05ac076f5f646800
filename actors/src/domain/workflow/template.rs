//! Templates and expressions of workflow definitions: minijinja's (DESIGN §13.7).
//!
//! Three rules, one place:
//! - a string that is exactly one `{{ expression }}` evaluates to the expression's value,
//!   keeping its type (`"{{ steps.scan.output.files }}"` is a list, not its text);
//! - any other string with `{{ … }}` or `{% … %}` renders to a string;
//! - in `when` and `for_each`, a string without braces is an expression on its own
//!   (`when: "input.mode == 'full'"`); in `input` and `output` it is a literal.
//!
//! Templates see `input` (the run input), `steps.<id>.output|state|error`, and in a
//! `for_each` step `item` and `index`. Evaluation is bounded by fuel, so a template
//! cannot loop forever inside a run actor.

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// Instructions one evaluation may execute (loops included).
const FUEL: u64 = 100_000;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

impl From<minijinja::Error> for TemplateError {
    fn from(e: minijinja::Error) -> Self {
        // minijinja's Display names the template ("<expression>", "<string>") and the
        // line; the detail is what a person fixes.
        let detail = e.detail().map(str::to_string);
        TemplateError(match detail {
            Some(detail) => format!("{}: {detail}", e.kind()),
            None => e.kind().to_string(),
        })
    }
}

/// Where a string is used decides what a string without braces means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// `input` and `output`: plain strings are literals.
    Value,
    /// `when` and `for_each`: plain strings are expressions.
    Expression,
}

pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        let mut env = Environment::new();
        // A missing output field reads as undefined (falsy, null) rather than failing the
        // step: `when: "{{ steps.a.output.ok }}"` is false when `a` was skipped.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_fuel(Some(FUEL));
        Templates { env }
    }
}

/// What a string is, once the braces are looked at.
enum Form<'a> {
    Literal,
    Expression(&'a str),
    Template,
}

fn form(text: &str, usage: Usage) -> Form<'_> {
    let trimmed = text.trim();
    if let Some(inner) = trimmed.strip_prefix("{{").and_then(|t| t.strip_suffix("}}")) {
        if !inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%") {
            return Form::Expression(inner.trim_matches(|c: char| c == '-' || c.is_whitespace()));
        }
    }
    if text.contains("{{") || text.contains("{%") {
        Form::Template
    } else if usage == Usage::Expression {
        Form::Expression(trimmed)
    } else {
        Form::Literal
    }
}

impl Templates {
    pub fn new() -> Self {
        Self::default()
    }

    /// Evaluates one string against `ctx`.
    pub fn eval(&self, text: &str, usage: Usage, ctx: &minijinja::Value) -> Result<Value, TemplateError> {
        match form(text, usage) {
            Form::Literal => Ok(Value::String(text.to_string())),
            Form::Expression(expr) => {
                let value = self.env.compile_expression(expr)?.eval(ctx)?;
                to_json(&value)
            }
            Form::Template => Ok(Value::String(self.env.render_str(text, ctx)?)),
        }
    }

    /// Whether a `when` holds.
    pub fn truthy(&self, text: &str, ctx: &minijinja::Value) -> Result<bool, TemplateError> {
        Ok(match self.eval(text, Usage::Expression, ctx)? {
            Value::Null => false,
            Value::Bool(b) => b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !matches!(s.trim(), "" | "false" | "False" | "0" | "none" | "None"),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
        })
    }

    /// Renders every string inside `value` (keys stay as they are).
    pub fn render(&self, value: &Value, ctx: &minijinja::Value) -> Result<Value, TemplateError> {
        Ok(match value {
            Value::String(s) => self.eval(s, Usage::Value, ctx)?,
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.render(v, ctx)).collect::<Result<_, TemplateError>>()?)
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render(v, ctx)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Compiles one string without running it and returns the variables it reads, with
    /// their attribute paths (`steps.scan.output`, `input.repo`, `item`): what validation
    /// checks references against.
    pub fn references(&self, text: &str, usage: Usage) -> Result<BTreeSet<String>, TemplateError> {
        Ok(match form(text, usage) {
            Form::Literal => BTreeSet::new(),
            Form::Expression(expr) => {
                self.env.compile_expression(expr)?.undeclared_variables(true).into_iter().collect()
            }
            Form::Template => {
                self.env.template_from_str(text)?.undeclared_variables(true).into_iter().collect()
            }
        })
    }

    /// Whether `name` is one of minijinja's global functions (`range`, `dict`, `namespace`…):
    /// templates may call them, so a reference to one is not an unknown variable.
    pub fn is_global(&self, name: &str) -> bool {
        self.env.globals().any(|(global, _)| global == name)
    }

    /// [`references`](Self::references) of every string inside `value`, each with the
    /// JSON pointer (relative to `value`) of the string that failed to compile.
    pub fn value_references(&self, value: &Value) -> (BTreeSet<String>, Vec<(String, TemplateError)>) {
        let mut refs = BTreeSet::new();
        let mut errors = Vec::new();
        for (pointer, found) in self.string_references(value) {
            match found {
                Ok(r) => refs.extend(r),
                Err(e) => errors.push((pointer, e)),
            }
        }
        (refs, errors)
    }

    /// [`references`](Self::references) of each string inside `value` that reads
    /// something or fails to compile, with its JSON pointer (relative to `value`), so a
    /// problem can name the very string.
    pub fn string_references(&self, value: &Value) -> Vec<(String, Result<BTreeSet<String>, TemplateError>)> {
        let mut found = Vec::new();
        walk_strings(value, String::new(), &mut |pointer, text| match self.references(text, Usage::Value) {
            Ok(r) if r.is_empty() => {}
            other => found.push((pointer, other)),
        });
        found
    }
}

fn walk_strings(value: &Value, pointer: String, visit: &mut impl FnMut(String, &str)) {
    match value {
        Value::String(s) => visit(pointer, s),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk_strings(v, format!("{pointer}/{i}"), visit);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let key = k.replace('~', "~0").replace('/', "~1");
                walk_strings(v, format!("{pointer}/{key}"), visit);
            }
        }
        _ => {}
    }
}

fn to_json(value: &minijinja::Value) -> Result<Value, TemplateError> {
    if value.is_undefined() {
        return Ok(Value::Null);
    }
    serde_json::to_value(value).map_err(|e| TemplateError(format!("the value cannot be JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx(v: Value) -> minijinja::Value {
        minijinja::Value::from_serialize(&v)
    }

    #[test]
    fn a_lone_expression_keeps_its_type_and_text_renders() {
        let t = Templates::new();
        let c = ctx(json!({"input": {"n": 2, "files": ["a", "b"]}}));
        assert_eq!(t.eval("{{ input.files }}", Usage::Value, &c).unwrap(), json!(["a", "b"]));
        assert_eq!(t.eval("{{ input.n * 2 }}", Usage::Value, &c).unwrap(), json!(4));
        assert_eq!(t.eval("n={{ input.n }}", Usage::Value, &c).unwrap(), json!("n=2"));
        assert_eq!(t.eval("input.n", Usage::Value, &c).unwrap(), json!("input.n"));
        assert_eq!(t.eval("input.n", Usage::Expression, &c).unwrap(), json!(2));
        assert_eq!(
            t.render(&json!({"f": "{{ input.files[0] }}", "k": [1, "{{ input.n }}"]}), &c).unwrap(),
            json!({"f": "a", "k": [1, 2]})
        );
    }

    #[test]
    fn conditions_and_missing_values() {
        let t = Templates::new();
        let c = ctx(json!({"steps": {"scan": {"output": {"calls": [1]}}}}));
        assert!(t.truthy("{{ steps.scan.output.calls | length > 0 }}", &c).unwrap());
        assert!(!t.truthy("steps.scan.output.missing.deeper", &c).unwrap());
        assert!(!t.truthy("{{ steps.other.output }}", &c).unwrap());
    }

    #[test]
    fn references_and_compile_errors() {
        let t = Templates::new();
        let refs = t.references("{{ steps.scan.output.files | length }} {{ item }}", Usage::Value).unwrap();
        assert!(refs.contains("steps.scan.output.files") && refs.contains("item"), "{refs:?}");
        assert!(t.references("{{ unclosed", Usage::Value).is_err());
        let (_, errors) = t.value_references(&json!({"a": {"b/c": ["ok", "{% if %}"]}}));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "/a/b~1c/1");
    }

    #[test]
    fn evaluation_is_bounded() {
        let t = Templates::new();
        let err = t
            .eval(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
                Usage::Value,
                &ctx(json!({})),
            )
            .unwrap_err();
        assert!(err.0.contains("fuel"), "{err}");
    }
}
