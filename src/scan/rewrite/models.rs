//! The model a rewritten call site names: its literal, or the literal of the same-file
//! constant the resolver follows it to, replaced with `--model`.

use tree_sitter::{Node, Tree};

use super::syntax::{self, binding_value, items, quote, string_value};
use super::{ChangeKind, FilePlan, Target};
use crate::scan::facts::{Call, Expr, Pos};
use crate::scan::report::Language;
use crate::scan::resolve::{Resolver, Value};

/// The keywords (Python) and option keys (JavaScript) that name the model.
const MODEL_KEYS: &[&str] = &["model", "model_name", "modelName"];

/// How far a constant is followed through other constants (`A = B`, `B = "x"`).
const MAX_DEPTH: usize = 8;

/// Plans the model edit of one detected call site.
pub(super) fn rewrite<'f>(
    plan: &mut FilePlan<'_>,
    call: &'f Call,
    node: Node<'_>,
    resolver: &Resolver<'f>,
    tree: &Tree,
) {
    let line = call.pos.line;
    let Some((key, value)) = model_argument(plan, node) else {
        if plan.options.model.is_some() {
            plan.skip(line, "no model argument (the library's default model is used); add one by hand");
        }
        return;
    };
    let function = call.function.as_deref();
    let literal = match string_value(value, plan.src) {
        Some(_) => Some(value),
        None => call
            .arg(Some(key), None)
            .and_then(|expr| constant(resolver, tree, plan.src, expr, function, call.pos, 0)),
    };
    match literal {
        Some(literal) => replace_literal(plan, literal),
        None if plan.options.model.is_some() => {
            let reason = match call.arg(Some(key), None).map(|expr| resolver.value(expr, function, call.pos))
            {
                Some(Value::Env { var, .. }) => {
                    format!("the model comes from the environment variable {var}; set it there")
                }
                Some(Value::Param { name, .. }) => {
                    format!(
                        "the model comes from the parameter `{name}`; pass the new model where it is called"
                    )
                }
                Some(Value::Literal(_)) => {
                    "the model is a constant in another file, a dict or an enum; change it by hand".to_owned()
                }
                _ => "the model is an expression; change it by hand".to_owned(),
            };
            plan.skip(line, reason);
        }
        None => {}
    }
}

/// The model's key and value node at the call: a keyword argument in Python, a key of
/// the options object in JavaScript.
fn model_argument<'t>(plan: &FilePlan<'_>, node: Node<'t>) -> Option<(&'static str, Node<'t>)> {
    let args = node.child_by_field_name("arguments")?;
    let holder = if plan.language == Language::Python {
        args
    } else {
        items(args).into_iter().find(|a| a.kind() == "object")?
    };
    items(holder).into_iter().find_map(|item| {
        let (key, value) = match item.kind() {
            "keyword_argument" => (item.child_by_field_name("name")?, item.child_by_field_name("value")?),
            "pair" => (item.child_by_field_name("key")?, item.child_by_field_name("value")?),
            // `{ model }` names a variable of the same name.
            "shorthand_property_identifier" => (item, item),
            _ => return None,
        };
        let name = &plan.src[key.byte_range()];
        let name = string_value(key, plan.src).unwrap_or(name);
        MODEL_KEYS.iter().find(|k| **k == name).map(|k| (*k, value))
    })
}

/// The string literal a name is bound to in this file, through other names.
fn constant<'t, 'f>(
    resolver: &Resolver<'f>,
    tree: &'t Tree,
    src: &str,
    expr: &'f Expr,
    function: Option<&str>,
    at: Pos,
    depth: usize,
) -> Option<Node<'t>> {
    let Expr::Name(name) = expr else { return None };
    if depth > MAX_DEPTH {
        return None;
    }
    let binding = resolver.binding(name, function, at)?;
    match &binding.value {
        Expr::Str(_) => binding_value(tree, binding.pos).filter(|n| string_value(*n, src).is_some()),
        Expr::Name(_) => {
            constant(resolver, tree, src, &binding.value, binding.function.as_deref(), binding.pos, depth + 1)
        }
        _ => None,
    }
}

fn replace_literal(plan: &mut FilePlan<'_>, literal: Node<'_>) {
    let text = &plan.src[literal.byte_range()];
    let current = string_value(literal, plan.src).unwrap_or(text);
    match plan.options.model.clone() {
        Some(model) if model != current => {
            plan.replace(literal, quote(&model, Some(text)), ChangeKind::Model)
        }
        Some(_) => {}
        None if plan.options.target == Target::Ollama => {
            let line = syntax::pos(literal).line;
            plan.skip(
                line,
                format!("model {current:?} left unchanged: OpenAI model names do not exist on Ollama; pass --model"),
            );
        }
        None => {}
    }
}
