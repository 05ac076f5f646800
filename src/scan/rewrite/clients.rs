//! OpenAI-style client constructions: which classes count, where each takes its base
//! URL and API key, and the edits that point one at the target.

use std::collections::HashMap;

use tree_sitter::Node;

use super::syntax::{self, append, items, quote, string_value, Edit};
use super::{ChangeKind, FilePlan};
use crate::scan::report::Language;

/// Where a client class takes its base URL and API key. The first name of each list is
/// the one written when the call gives none; the others are older spellings it accepts.
#[derive(Debug)]
pub(super) struct Client {
    base_url: &'static [&'static str],
    api_key: &'static [&'static str],
    /// LangChain JS takes the base URL inside this object (`configuration: { baseURL }`).
    nested: Option<&'static str>,
}

const OPENAI_PYTHON: Client = Client { base_url: &["base_url"], api_key: &["api_key"], nested: None };
const LANGCHAIN_PYTHON: Client = Client {
    base_url: &["base_url", "openai_api_base"],
    api_key: &["api_key", "openai_api_key"],
    nested: None,
};
const OPENAI_JS: Client = Client { base_url: &["baseURL"], api_key: &["apiKey"], nested: None };
const LANGCHAIN_JS: Client =
    Client { base_url: &["baseURL"], api_key: &["apiKey", "openAIApiKey"], nested: Some("configuration") };

/// LangChain's OpenAI classes, by their last segment (Azure's take other arguments).
const LANGCHAIN_CLASSES: &[&str] = &["ChatOpenAI", "OpenAIEmbeddings", "OpenAI"];

/// The client a fully qualified class names, in `language`.
pub(super) fn client(class: &str, language: Language) -> Option<&'static Client> {
    let short = class.rsplit(['.', '/']).next().unwrap_or(class);
    let langchain = LANGCHAIN_CLASSES.contains(&short);
    if language == Language::Python {
        match class {
            "openai.OpenAI" | "openai.AsyncOpenAI" | "openai.Client" | "openai.AsyncClient" => {
                Some(&OPENAI_PYTHON)
            }
            _ if langchain && class.starts_with("langchain") => Some(&LANGCHAIN_PYTHON),
            _ => None,
        }
    } else {
        match class {
            "openai.default" | "openai.OpenAI" => Some(&OPENAI_JS),
            _ if langchain
                && (class.starts_with("@langchain/openai.") || class.starts_with("langchain/")) =>
            {
                Some(&LANGCHAIN_JS)
            }
            _ => None,
        }
    }
}

/// Points the client constructed by `call` at the target, unless it already points there.
pub(super) fn rewrite(plan: &mut FilePlan<'_>, call: Node<'_>, client: &Client) {
    if plan.language == Language::Python {
        python(plan, call, client);
    } else {
        javascript(plan, call, client);
    }
}

fn python(plan: &mut FilePlan<'_>, call: Node<'_>, client: &Client) {
    let line = syntax::pos(call).line;
    let Some(args) = call.child_by_field_name("arguments").filter(|a| a.kind() == "argument_list") else {
        return;
    };
    let mut keyword = HashMap::new();
    let mut splat = false;
    for item in items(args) {
        match item.kind() {
            "keyword_argument" => {
                if let (Some(name), Some(value)) =
                    (item.child_by_field_name("name"), item.child_by_field_name("value"))
                {
                    keyword.insert(&plan.src[name.byte_range()], value);
                }
            }
            "dictionary_splat" => splat = true,
            _ => {}
        }
    }
    let base = client.base_url.iter().find_map(|k| keyword.get(k).copied());
    if base.and_then(|v| string_value(v, plan.src)) == Some(plan.options.base_url.as_str()) {
        return;
    }
    let key = client.api_key.iter().find_map(|k| keyword.get(k).copied());
    let key_text = plan.api_key();
    if splat && (base.is_none() || key.is_none()) {
        // `**config` may hold the same keyword; adding it again fails at run time.
        plan.skip(line, "the client's arguments come from `**…`; set its base URL and API key by hand");
        return;
    }
    let url = plan.options.base_url.clone();
    let mut new = Vec::new();
    match base {
        Some(value) => {
            plan.replace(value, quote(&url, Some(&plan.src[value.byte_range()])), ChangeKind::BaseUrl)
        }
        None => new.push((ChangeKind::BaseUrl, format!("{}={}", client.base_url[0], quote(&url, None)))),
    }
    match key {
        Some(value) if plan.src[value.byte_range()] == key_text => {}
        Some(value) => plan.replace(value, key_text, ChangeKind::ApiKey),
        None => new.push((ChangeKind::ApiKey, format!("{}={key_text}", client.api_key[0]))),
    }
    plan.append(args, new, line, false);
}

/// A JavaScript object literal's items by key: the item, and its value unless shorthand.
fn fields<'t>(object: Node<'t>, src: &str) -> HashMap<String, (Node<'t>, Option<Node<'t>>)> {
    let mut fields = HashMap::new();
    for item in items(object) {
        match item.kind() {
            "pair" => {
                let (Some(key), Some(value)) =
                    (item.child_by_field_name("key"), item.child_by_field_name("value"))
                else {
                    continue;
                };
                let name = match key.kind() {
                    "property_identifier" => Some(&src[key.byte_range()]),
                    _ => string_value(key, src),
                };
                if let Some(name) = name {
                    fields.insert(name.to_owned(), (item, Some(value)));
                }
            }
            "shorthand_property_identifier" => {
                fields.insert(src[item.byte_range()].to_owned(), (item, None));
            }
            _ => {}
        }
    }
    fields
}

fn javascript(plan: &mut FilePlan<'_>, call: Node<'_>, client: &Client) {
    let line = syntax::pos(call).line;
    let url = quote(&plan.options.base_url, None);
    let key_text = plan.api_key();
    let base_item = match client.nested {
        Some(nested) => format!("{nested}: {{ {}: {url} }}", client.base_url[0]),
        None => format!("{}: {url}", client.base_url[0]),
    };
    let key_item = format!("{}: {key_text}", client.api_key[0]);
    let options = call.child_by_field_name("arguments");
    let object = match options.map(|o| (o, items(o).first().copied())) {
        // `new OpenAI` or `new OpenAI()`: the options object is new.
        None | Some((_, None)) => {
            let object = format!("{{ {base_item}, {key_item} }}");
            let edit = match options {
                Some(list) => append(list, std::slice::from_ref(&object), plan.src, false),
                None => {
                    let constructor = call.child_by_field_name("constructor").unwrap_or(call);
                    vec![Edit::insert(constructor.end_byte(), format!("({object})"))]
                }
            };
            plan.record_inserts(
                edit,
                line,
                vec![(ChangeKind::BaseUrl, base_item), (ChangeKind::ApiKey, key_item)],
            );
            return;
        }
        Some((_, Some(first))) if first.kind() == "object" => first,
        Some(_) => {
            plan.skip(
                line,
                "the client's options are not an object literal; set its base URL and API key by hand",
            );
            return;
        }
    };
    let top = fields(object, plan.src);
    // The object holding the base URL, and the base URL's item in it.
    let (holder, base) = match client.nested {
        None => (Some(object), client.base_url.iter().find_map(|k| top.get(*k).copied())),
        Some(nested) => match top.get(nested) {
            None => (None, None),
            Some((_, Some(inner))) if inner.kind() == "object" => {
                let inner_fields = fields(*inner, plan.src);
                (Some(*inner), client.base_url.iter().find_map(|k| inner_fields.get(*k).copied()))
            }
            Some(_) => {
                plan.skip(
                    line,
                    format!("the client's `{nested}` is not an object literal; set its base URL by hand"),
                );
                return;
            }
        },
    };
    if base.and_then(|(_, v)| v).and_then(|v| string_value(v, plan.src))
        == Some(plan.options.base_url.as_str())
    {
        return;
    }
    let mut new_top = Vec::new();
    match (base, holder) {
        (Some((_, Some(value))), _) => plan.replace(
            value,
            quote(&plan.options.base_url, Some(&plan.src[value.byte_range()])),
            ChangeKind::BaseUrl,
        ),
        (Some((item, None)), _) => {
            plan.replace(item, format!("{}: {url}", client.base_url[0]), ChangeKind::BaseUrl)
        }
        (None, Some(holder)) if holder != object => {
            let item = format!("{}: {url}", client.base_url[0]);
            plan.append(holder, vec![(ChangeKind::BaseUrl, item)], line, true);
        }
        (None, _) => new_top.push((ChangeKind::BaseUrl, base_item)),
    }
    match client.api_key.iter().find_map(|k| top.get(*k).copied()) {
        Some((_, Some(value))) if plan.src[value.byte_range()] == key_text => {}
        Some((_, Some(value))) => plan.replace(value, key_text, ChangeKind::ApiKey),
        Some((item, None)) => plan.replace(item, key_item, ChangeKind::ApiKey),
        None => new_top.push((ChangeKind::ApiKey, key_item)),
    }
    plan.append(object, new_top, line, true);
}
