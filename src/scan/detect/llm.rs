//! LLM call sites: calls whose resolved symbol an LLM rule names, with the model
//! followed to its literal, environment variable or parameter.

use std::collections::HashSet;

use super::argument;
use crate::scan::facts::Call;
use crate::scan::report::{LlmCall, ModelSource};
use crate::scan::resolve::{Resolver, Symbol, Value};
use crate::scan::rules::{LlmRule, Rules, AUTO_PROVIDER};

/// How sure a finding is, by how its symbol was resolved.
const RESOLVED_IMPORT: f32 = 0.95;
const RESOLVED_INSTANCE: f32 = 0.9;
const QUALIFIED_PATH: f32 = 0.85;
/// A method name alone, on a receiver the scanner could not follow, in a file that
/// imports the provider's package.
const METHOD_ONLY: f32 = 0.7;

/// The LLM calls of one file.
pub fn llm_calls(file: &str, resolver: &Resolver<'_>, rules: &Rules) -> Vec<LlmCall> {
    let facts = resolver.facts();
    let imported: HashSet<&str> = facts.imports.iter().map(|i| i.module.as_str()).collect();
    let mut found: Vec<(LlmCall, &Call, Option<&Call>)> = Vec::new();
    for call in &facts.calls {
        let Some(symbol) = resolver.call_symbol(call) else {
            continue;
        };
        let Some((rule, confidence)) = matching_rule(symbol, rules, &imported) else { continue };
        let origin = match &symbol {
            Symbol::Instance { origin, .. } => *origin,
            Symbol::Path { .. } => None,
        };
        if let Some(finding) = finding(file, call, symbol, origin, rule, confidence, resolver, rules) {
            found.push((finding, call, origin));
        }
    }
    // A request on an object whose construction already named the model is the same use
    // of that model: the construction is the finding. A call is known by its position and
    // its callee together, since every call of a chain (`Args::default().model(…)`)
    // starts where the chain does, and the origin may be a copy held by a binding.
    let is_site = |origin: &Call| found.iter().any(|(_, site, _)| same_call(site, origin));
    let keep: Vec<bool> = found.iter().map(|(_, _, origin)| origin.is_none_or(|o| !is_site(o))).collect();
    found.into_iter().zip(keep).filter(|(_, keep)| *keep).map(|((f, _, _), _)| f).collect()
}

fn same_call(a: &Call, b: &Call) -> bool {
    a.pos == b.pos && a.callee == b.callee
}

fn matching_rule<'r>(
    symbol: &Symbol<'_>,
    rules: &'r Rules,
    imported: &HashSet<&str>,
) -> Option<(&'r LlmRule, f32)> {
    match symbol {
        Symbol::Path { path, imported: resolved } => {
            if let Some(rule) = rules.llm_call(path) {
                return Some((rule, if *resolved { RESOLVED_IMPORT } else { QUALIFIED_PATH }));
            }
            if *resolved {
                return None;
            }
            let uses_package = |rule: &LlmRule| {
                rule.packages
                    .iter()
                    .any(|p| imported.iter().any(|m| m == p || m.starts_with(&format!("{p}."))))
            };
            rules.llm_heuristic(path, uses_package).map(|rule| (rule, METHOD_ONLY))
        }
        Symbol::Instance { class, rest, .. } => {
            rules.llm_method(class, rest).map(|rule| (rule, RESOLVED_INSTANCE))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn finding(
    file: &str,
    call: &Call,
    symbol: &Symbol<'_>,
    origin: Option<&Call>,
    rule: &LlmRule,
    confidence: f32,
    resolver: &Resolver<'_>,
    rules: &Rules,
) -> Option<LlmCall> {
    let function = call.function.as_deref();
    let given = argument(call, &rule.model);
    let (model, model_source, model_origin) = match given.map(|expr| resolver.value(expr, function, call.pos))
    {
        Some(Value::Literal(model)) => (Some(model), ModelSource::Literal, None),
        Some(Value::Env { var, default }) => (default, ModelSource::Dynamic, Some(format!("env:{var}"))),
        Some(Value::Param { name, default }) => {
            (default, ModelSource::Dynamic, Some(format!("param:{name}")))
        }
        // A rule that counts only a stated model (an agent given a model name) does not
        // count an object or an expression it cannot follow.
        Some(Value::Unknown { .. }) if rule.requires_model => return None,
        Some(Value::Unknown { default }) => (default, ModelSource::Dynamic, Some("expr".to_owned())),
        None if rule.requires_model => return None,
        // `ChatOpenAI(**kwargs)`: the model may well be among what is passed on.
        None if call.spread => (None, ModelSource::Dynamic, Some("spread".to_owned())),
        None => (rule.default_model.clone(), ModelSource::Default, None),
    };
    let provider = provider(call, origin, rule, model.as_deref(), resolver, rules);
    Some(LlmCall {
        kind: "llm_call".into(),
        provider,
        model,
        model_source,
        model_origin,
        call_kind: rule.call_kind,
        framework: rule.framework.clone(),
        symbol: symbol.display(),
        file: file.to_owned(),
        line: call.pos.line,
        column: call.pos.column,
        function: call.function.clone(),
        confidence,
    })
}

/// The rule's provider; for an `auto` rule the one the call states or the model's name
/// tells; for a client pointed elsewhere by its base URL (an OpenAI client on a local
/// Ollama), the one the URL tells.
fn provider(
    call: &Call,
    origin: Option<&Call>,
    rule: &LlmRule,
    model: Option<&str>,
    resolver: &Resolver<'_>,
    rules: &Rules,
) -> String {
    if let Some(provider) = origin.and_then(|o| base_url_provider(o, resolver, rules)) {
        return provider.to_owned();
    }
    if rule.provider != AUTO_PROVIDER {
        return rule.provider.clone();
    }
    let stated = argument(call, &rule.provider_arg).and_then(|expr| {
        match resolver.value(expr, call.function.as_deref(), call.pos) {
            Value::Literal(name) => rules.provider(&name).map(str::to_owned),
            _ => None,
        }
    });
    stated
        .or_else(|| model.and_then(|m| rules.provider_of_model(m)).map(str::to_owned))
        .or_else(|| rule.framework.as_deref().and_then(|f| rules.provider(f)).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn base_url_provider<'r>(origin: &Call, resolver: &Resolver<'_>, rules: &'r Rules) -> Option<&'r str> {
    let expr = ["base_url", "baseURL", "api_base", "host"].iter().find_map(|k| origin.arg(Some(k), None))?;
    match resolver.value(expr, origin.function.as_deref(), origin.pos) {
        Value::Literal(url) | Value::Env { default: Some(url), .. } => rules.provider_of_base_url(&url),
        _ => None,
    }
}
