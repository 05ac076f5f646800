//! Workflows (DESIGN §5, §13.7): definitions as data, their templates, and what the
//! store keeps about runs.

pub mod definition;
pub mod plan;
pub mod progress;
pub mod run;
pub mod source;
pub mod template;
pub mod validate;

pub use definition::{
    ApprovalDef, Decision, OnError, PlanDef, StepDef, StepKind, StepRetry, WorkflowDef, WorkflowRef,
    DEFAULT_PLAN_STEPS,
};
pub use plan::{planned_definition, Plan, PLANNED_VERSION};
pub use progress::{ChangeError, ItemProgress, RunProgress, SkipReason, StepProgress, UnitOutcome};
pub use run::{
    step_task_key, JournalEntry, JournalKind, ParentStep, RunId, RunRecord, RunState, StepState,
    WorkflowRecord,
};
pub use source::{check, parse, parse_value, Diagnostic, ParsedDefinition, Position, Positions};
pub use template::{TemplateError, Templates, Usage};
pub use validate::{valid_step_id, validate, validate_input, KnownNames, Problem, MAX_STEPS};
