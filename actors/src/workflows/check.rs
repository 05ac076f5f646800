//! Definitions and run inputs checked against what the node knows: its agents (from the
//! catalog) and the workflows stored in the namespace.

use std::sync::Arc;

use serde_json::Value;

use super::{RunEnv, WorkflowError};
use crate::agents::AgentCatalog;
use crate::domain::workflow::validate::{validate, validate_input, KnownNames};
use crate::domain::workflow::WorkflowDef;
use crate::domain::AgentSpec;
use crate::ports::{Store, StoreError};

/// The agents of `namespace` in the catalog, by name.
pub(super) fn agents_in(catalog: &AgentCatalog, namespace: &str) -> Vec<Arc<AgentSpec>> {
    catalog.all().into_iter().map(|a| a.spec).filter(|spec| spec.namespace == namespace).collect()
}

/// The names of `agents` and of their capabilities; no workflow is known.
pub(super) fn agent_names(agents: &[Arc<AgentSpec>]) -> KnownNames {
    agents.iter().fold(KnownNames::empty(), |known, spec| {
        known.with_agent(spec.name.clone(), spec.capabilities.iter().cloned())
    })
}

/// What a definition of `namespace` may name: the agents of the catalog there (with
/// their capabilities) and the workflow versions the store holds there.
pub async fn known_names(
    catalog: &AgentCatalog,
    store: &dyn Store,
    namespace: &str,
) -> Result<KnownNames, StoreError> {
    let mut known = agent_names(&agents_in(catalog, namespace));
    for stored in store.workflows(Some(namespace)).await? {
        known = known.with_workflow(stored.name, stored.version);
    }
    Ok(known)
}

/// Every problem of `def` in `namespace`, or `Ok`.
pub(super) async fn definition(
    env: &RunEnv,
    namespace: &str,
    def: &WorkflowDef,
) -> Result<(), WorkflowError> {
    let known = known_names(&env.catalog, env.store.as_ref(), namespace).await?;
    let problems = validate(def, &known);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(WorkflowError::Invalid(problems))
    }
}

/// Whether `input` satisfies the definition's `input_schema`, if it has one.
pub(super) fn input(def: &WorkflowDef, input: &Value) -> Result<(), WorkflowError> {
    let Some(schema) = &def.input_schema else { return Ok(()) };
    let problems = validate_input(schema, input);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(WorkflowError::InvalidInput(problems))
    }
}
