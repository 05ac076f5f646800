//! Definitions and run inputs checked against what the node knows: its agents (from the
//! catalog) and the workflows stored in the namespace.

use serde_json::Value;

use super::{RunEnv, WorkflowError};
use crate::domain::workflow::validate::{validate, validate_input, KnownNames};
use crate::domain::workflow::WorkflowDef;

/// Every problem of `def` in `namespace`, or `Ok`.
pub(super) async fn definition(
    env: &RunEnv,
    namespace: &str,
    def: &WorkflowDef,
) -> Result<(), WorkflowError> {
    let mut known = KnownNames::empty();
    for agent in env.catalog.all().into_iter().filter(|a| a.spec.namespace == namespace) {
        known = known.with_agent(agent.spec.name.clone(), agent.spec.capabilities.iter().cloned());
    }
    for stored in env.store.workflows(Some(namespace)).await? {
        known = known.with_workflow(stored.name, stored.version);
    }
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
