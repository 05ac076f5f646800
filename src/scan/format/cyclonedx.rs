//! CycloneDX 1.6: an AI bill of materials. Models become `machine-learning-model`
//! components, agents, tools and MCP servers `application` components, packages in use
//! `library` components with a purl; each agent depends on its model and tools.
//!
//! Tools are `application` too, not `library`: a tool is a capability of the scanned
//! code offered to a model, not a package anyone links against, and a `library` would
//! read to dependency scanners as third-party code to match against advisories.

mod purl;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::time::SystemTime;

use serde_json::{json, Value};

use super::enum_name;
use crate::scan::report::{AgentFinding, GuardrailKind, Package, PackageStatus, RepositoryAnalysis};

pub(super) fn bom(analysis: &RepositoryAnalysis) -> Value {
    let mut bom = Bom::default();
    bom.models(analysis);
    bom.tools(analysis);
    bom.agents(analysis);
    bom.mcp_servers(analysis);
    bom.packages(analysis);
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid::Uuid::now_v7()),
        "version": 1,
        "metadata": {
            "timestamp": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            "tools": { "components": [{
                "type": "application",
                "name": analysis.tool.name,
                "version": analysis.tool.version,
            }]},
            "component": {
                "type": "application",
                "bom-ref": bom.claim("root"),
                "name": root_name(&analysis.root),
            },
        },
        "components": bom.components,
        "dependencies": bom.dependencies,
    })
}

/// The BOM as it is assembled: components, their refs, and what agents depend on.
#[derive(Default)]
struct Bom {
    components: Vec<Value>,
    dependencies: Vec<Value>,
    /// Every bom-ref given out: they must be unique within a BOM.
    refs: HashSet<String>,
    /// The first model component of each model name, for agents, which name no provider.
    model_refs: BTreeMap<String, String>,
    /// The first tool component of each tool name.
    tool_refs: BTreeMap<String, String>,
}

impl Bom {
    /// A unique bom-ref: the wanted one, or it with a `#n` suffix when already taken.
    fn claim(&mut self, wanted: &str) -> String {
        let mut candidate = wanted.to_string();
        let mut n = 1;
        while !self.refs.insert(candidate.clone()) {
            n += 1;
            candidate = format!("{wanted}#{n}");
        }
        candidate
    }

    fn models(&mut self, analysis: &RepositoryAnalysis) {
        for ((provider, name), uses) in models(analysis) {
            let bom_ref = self.claim(&format!("model:{}/{name}", provider.as_deref().unwrap_or("unknown")));
            self.model_refs.entry(name.clone()).or_insert_with(|| bom_ref.clone());
            let mut component = json!({
                "type": "machine-learning-model",
                "bom-ref": bom_ref,
                "name": name,
                "properties": properties(&[
                    ("mark1:provider", provider.clone()),
                    ("mark1:model_source", join(&uses.sources)),
                    ("mark1:locations", join(&uses.locations)),
                ]),
            });
            // The provider serves the model (azure_openai, bedrock, ollama…): it groups
            // the model like a namespace but is not always its publisher.
            if let Some(provider) = provider {
                component["group"] = provider.into();
            }
            self.components.push(component);
        }
    }

    fn tools(&mut self, analysis: &RepositoryAnalysis) {
        for t in &analysis.tools {
            let bom_ref = self.claim(&format!("tool:{}:{}", t.file, t.name));
            self.tool_refs.entry(t.name.clone()).or_insert_with(|| bom_ref.clone());
            let component = json!({
                "type": "application",
                "bom-ref": bom_ref,
                "name": t.name,
                "properties": properties(&[
                    ("mark1:kind", Some("tool".into())),
                    ("mark1:framework", Some(t.framework.clone())),
                    ("mark1:function", t.function.clone()),
                    ("mark1:file", Some(t.file.clone())),
                    ("mark1:line", Some(t.line.to_string())),
                ]),
            });
            self.components.push(described(t.description.as_ref(), component));
        }
    }

    /// Agents after models and tools: each depends on the components it names.
    fn agents(&mut self, analysis: &RepositoryAnalysis) {
        for a in &analysis.agents {
            let bom_ref = self.claim(&format!("agent:{}:{}", a.file, a.name));
            let component = json!({
                "type": "application",
                "bom-ref": bom_ref,
                "name": a.name,
                "properties": properties(&[
                    ("mark1:kind", Some("agent".into())),
                    ("mark1:framework", Some(a.framework.clone())),
                    ("mark1:file", Some(a.file.clone())),
                    ("mark1:line", Some(a.line.to_string())),
                    ("mark1:model", a.model.clone()),
                    ("mark1:tools", join(&a.tools)),
                    ("mark1:handoffs", join(&a.handoffs)),
                    ("mark1:input_guardrails", guardrails(a, GuardrailKind::Input)),
                    ("mark1:output_guardrails", guardrails(a, GuardrailKind::Output)),
                ]),
            });
            let description = a.role.as_ref().or(a.goal.as_ref()).or(a.instructions.as_ref());
            self.components.push(described(description, component));
            let depends_on: BTreeSet<&String> = a
                .model
                .iter()
                .filter_map(|m| self.model_refs.get(m))
                .chain(a.tools.iter().filter_map(|t| self.tool_refs.get(t)))
                .collect();
            if !depends_on.is_empty() {
                self.dependencies.push(json!({ "ref": bom_ref, "dependsOn": depends_on }));
            }
        }
    }

    /// MCP servers only: a client is a use of someone else's server, not a component here.
    fn mcp_servers(&mut self, analysis: &RepositoryAnalysis) {
        for m in analysis.mcp.iter().filter(|m| m.kind == "mcp_server") {
            let name = m.name.clone().unwrap_or_else(|| m.symbol.clone());
            let bom_ref = self.claim(&format!("mcp-server:{}:{name}", m.file));
            let transport = m.transport.as_deref().unwrap_or("transport not stated");
            self.components.push(json!({
                "type": "application",
                "bom-ref": bom_ref,
                "name": name,
                "description": format!("MCP server ({transport})"),
                "properties": properties(&[
                    ("mark1:kind", Some("mcp_server".into())),
                    ("mark1:language", Some(m.language.as_str().into())),
                    ("mark1:transport", m.transport.clone()),
                    ("mark1:tools", join(&m.tools)),
                    ("mark1:file", Some(m.file.clone())),
                    ("mark1:line", Some(m.line.to_string())),
                ]),
            }));
        }
    }

    /// Packages the code imports (used or shadow); unused ones are not part of what runs.
    fn packages(&mut self, analysis: &RepositoryAnalysis) {
        for p in analysis.dependencies.packages.iter().filter(|p| p.status != PackageStatus::Unused) {
            let requirement = requirement(analysis, p);
            let version = requirement.as_deref().and_then(|r| purl::exact_version(p.ecosystem, r));
            let purl = purl::purl(p.ecosystem, &p.name, version.as_deref());
            let (group, name) = purl::group_and_name(p.ecosystem, &p.name);
            let mut component = json!({
                "type": "library",
                "bom-ref": self.claim(&purl),
                "name": name,
                "purl": purl,
                "properties": properties(&[
                    ("mark1:status", Some(enum_name(p.status))),
                    ("mark1:requirement", requirement.filter(|_| version.is_none())),
                ]),
            });
            if let Some(group) = group {
                component["group"] = group.into();
            }
            if let Some(version) = version {
                component["version"] = version.into();
            }
            self.components.push(component);
        }
    }
}

/// Where one model is used, gathered over every site that names it.
#[derive(Default)]
struct ModelUse {
    sources: BTreeSet<String>,
    locations: Vec<String>,
}

/// Models by (provider, name). An agent's model that no call names has no known provider.
fn models(analysis: &RepositoryAnalysis) -> BTreeMap<(Option<String>, String), ModelUse> {
    let mut models: BTreeMap<(Option<String>, String), ModelUse> = BTreeMap::new();
    for c in &analysis.llm_calls {
        let Some(model) = &c.model else { continue };
        let entry = models.entry((Some(c.provider.clone()), model.clone())).or_default();
        entry.sources.insert(enum_name(c.model_source));
        entry.locations.push(format!("{}:{}", c.file, c.line));
    }
    for a in &analysis.agents {
        let Some(model) = &a.model else { continue };
        let known = models.keys().find(|(_, name)| name == model).cloned();
        let entry = models.entry(known.unwrap_or((None, model.clone()))).or_default();
        entry.sources.insert("literal".into());
        entry.locations.push(format!("{}:{}", a.file, a.line));
    }
    models
}

/// Adds a description where there is one: the schema takes a string, never null.
fn described(description: Option<&String>, mut component: Value) -> Value {
    if let Some(description) = description {
        component["description"] = description.clone().into();
    }
    component
}

/// CycloneDX properties: name/value pairs, leaving out the values not known.
fn properties(pairs: &[(&str, Option<String>)]) -> Value {
    pairs
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|value| json!({ "name": name, "value": value })))
        .collect()
}

/// A list as one property value; none for an empty list.
/// The names of an agent's guardrails of one kind, joined.
fn guardrails(agent: &AgentFinding, kind: GuardrailKind) -> Option<String> {
    join(agent.guardrails.iter().filter(|g| g.kind == kind).map(|g| &g.name))
}

fn join(items: impl IntoIterator<Item = impl AsRef<str>>) -> Option<String> {
    let items: Vec<String> = items.into_iter().map(|i| i.as_ref().to_string()).collect();
    (!items.is_empty()).then(|| items.join(","))
}

/// The requirement as the first manifest declaring the package wrote it.
fn requirement(analysis: &RepositoryAnalysis, package: &Package) -> Option<String> {
    package.declared_in.iter().find_map(|path| {
        let manifest = analysis.dependencies.manifests.iter().find(|m| &m.path == path)?;
        manifest.declared.iter().find(|d| d.name == package.name)?.requirement.clone()
    })
}

/// The scanned directory's own name (`support-bot` for `/home/me/support-bot/`).
fn root_name(root: &str) -> String {
    let trimmed = root.trim_end_matches(['/', '\\']);
    Path::new(trimmed).file_name().map_or_else(|| root.to_string(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::format::tests::sample;

    fn components<'a>(bom: &'a Value, kind: &str) -> Vec<&'a Value> {
        bom["components"].as_array().unwrap().iter().filter(|c| c["type"] == kind).collect()
    }

    fn property<'a>(component: &'a Value, name: &str) -> Option<&'a str> {
        let props = component["properties"].as_array()?;
        props.iter().find(|p| p["name"] == name).and_then(|p| p["value"].as_str())
    }

    #[test]
    fn models_are_machine_learning_components() {
        let bom = bom(&sample());
        let models = components(&bom, "machine-learning-model");
        let names: Vec<(&str, &str)> = models
            .iter()
            .map(|m| (m["group"].as_str().unwrap_or("-"), m["name"].as_str().unwrap()))
            .collect();
        assert_eq!(names, [("-", "o3-mini"), ("anthropic", "claude-3-5-sonnet"), ("openai", "gpt-4o")]);
        let gpt = models[2];
        assert_eq!(property(gpt, "mark1:provider"), Some("openai"));
        assert_eq!(property(gpt, "mark1:model_source"), Some("literal"));
        assert_eq!(property(gpt, "mark1:locations"), Some("src/app.py:12,src/app.py:40,src/agents.py:20"));
        assert_eq!(property(models[1], "mark1:model_source"), Some("dynamic"));
    }

    #[test]
    fn packages_in_use_carry_purls() {
        let bom = bom(&sample());
        let libraries: Vec<(&str, Option<&str>)> = components(&bom, "library")
            .iter()
            .map(|c| (c["purl"].as_str().unwrap(), c["version"].as_str()))
            .collect();
        assert_eq!(
            libraries,
            [
                ("pkg:pypi/openai@1.51.0", Some("1.51.0")),
                ("pkg:pypi/langgraph", None),
                ("pkg:npm/%40modelcontextprotocol/sdk@1.0.3", Some("1.0.3")),
            ]
        );
        let sdk = components(&bom, "library")[2];
        assert_eq!(
            (sdk["group"].as_str(), sdk["name"].as_str()),
            (Some("@modelcontextprotocol"), Some("sdk"))
        );
    }

    #[test]
    fn a_range_is_kept_as_a_property() {
        let mut analysis = sample();
        analysis.dependencies.manifests[0].declared[0].requirement = Some(">=1.40".into());
        let bom = bom(&analysis);
        let openai = components(&bom, "library")[0];
        assert_eq!(openai["purl"], "pkg:pypi/openai");
        assert_eq!(openai.get("version"), None);
        assert_eq!(property(openai, "mark1:requirement"), Some(">=1.40"));
    }

    #[test]
    fn refs_are_unique_and_dependencies_point_at_components() {
        let mut analysis = sample();
        analysis.tools.push(analysis.tools[0].clone());
        let bom = bom(&analysis);
        let refs: Vec<&str> =
            bom["components"].as_array().unwrap().iter().map(|c| c["bom-ref"].as_str().unwrap()).collect();
        assert_eq!(refs.iter().collect::<HashSet<_>>().len(), refs.len(), "{refs:?}");
        let known: HashSet<&str> = refs.into_iter().collect();
        let deps = bom["dependencies"].as_array().unwrap();
        assert_eq!(deps.len(), 2, "the third agent has neither model nor tools");
        for dep in deps {
            assert!(known.contains(dep["ref"].as_str().unwrap()));
            for target in dep["dependsOn"].as_array().unwrap() {
                assert!(known.contains(target.as_str().unwrap()), "{target} is no component");
            }
        }
        assert_eq!(
            deps[0]["dependsOn"],
            json!(["model:openai/gpt-4o", "tool:src/tools.py:lookup_order", "tool:src/tools.py:refund"])
        );
    }

    #[test]
    fn the_bom_names_the_scanned_directory() {
        let bom = bom(&sample());
        assert_eq!(bom["metadata"]["component"]["name"], "support-bot");
        assert!(bom["serialNumber"].as_str().unwrap().starts_with("urn:uuid:"));
        assert_eq!(root_name("."), ".");
        assert_eq!(root_name("repos/app"), "app");
        let servers: Vec<&Value> = components(&bom, "application")
            .into_iter()
            .filter(|c| property(c, "mark1:kind") == Some("mcp_server"))
            .collect();
        assert_eq!(servers.len(), 1);
        assert_eq!(property(servers[0], "mark1:tools"), Some("lookup_order"));
        let triage = components(&bom, "application").into_iter().find(|c| c["name"] == "triage").unwrap();
        assert_eq!(property(triage, "mark1:input_guardrails"), Some("no_refund_abuse"));
        assert_eq!(property(triage, "mark1:output_guardrails"), None);
    }

    #[test]
    fn the_bom_validates_against_the_official_schema() {
        let load = |text: &str| -> Value { serde_json::from_str(text).unwrap() };
        let bom_schema = load(include_str!("../../../tests/fixtures/schemas/bom-1.6.SNAPSHOT.schema.json"));
        let registry = jsonschema::Registry::new()
            .add(
                "http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json",
                load(include_str!("../../../tests/fixtures/schemas/spdx.SNAPSHOT.schema.json")),
            )
            .unwrap()
            .add(
                "http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json",
                load(include_str!("../../../tests/fixtures/schemas/jsf-0.82.SNAPSHOT.schema.json")),
            )
            .unwrap()
            .prepare()
            .unwrap();
        let validator = jsonschema::options()
            .with_registry(&registry)
            .build(&bom_schema)
            .expect("the BOM schema compiles");
        let instance = bom(&sample());
        let errors: Vec<String> =
            validator.iter_errors(&instance).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{errors:#?}");
        let mut broken = instance.clone();
        broken["components"][0]["type"] = json!("agent");
        assert!(!validator.is_valid(&broken), "the schema check can fail");
    }
}
