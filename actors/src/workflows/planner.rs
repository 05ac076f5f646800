//! The planner of plan steps (docs/workflows.md, "Plans"): asks a model, through the
//! router and billed to the run's namespace, to break a step's goal into steps over the
//! agents of that namespace, and checks the answer with the validator of definitions.
//! An answer that fails the checks is shown its problems once, for a repair.
//!
//! It runs as a task outside the run's mailbox and reports back as
//! [`RunMsg::Planned`](super::run::RunMsg::Planned); the run journals the plan before
//! any of it runs.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::check::{agent_names, agents_in};
use super::run::{RunMsg, UnitKey};
use super::RunEnv;
use crate::domain::workflow::plan::{allowed, answer_schema, read_answer};
use crate::domain::workflow::{Plan, PlanDef, Problem, RunId};
use crate::domain::AgentSpec;
use crate::models::{CallContext, ModelRouter};
use crate::ports::model::{ChatMessage, ChatRequest, ChatResponse, ModelError, ResponseFormat, Role};
use mark1_supervisors::Addr;

mod prompt;

/// Why a plan step got no plan. Its text is the step's error.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "no agent of namespace '{0}' may be used by this plan: register agents there, or widen the \
         step's plan.agents and plan.capabilities"
    )]
    NothingToUse(String),
    #[error(
        "no chat model to plan with: the router lists none (GET /v1/models); configure a provider, or \
         name one in the step's plan.model"
    )]
    NoModel,
    #[error("the model could not be asked for a plan: {0}")]
    Model(#[from] ModelError),
    #[error("the model's plan cannot run, even after it was shown the problems: {}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("; ")
}

/// One request for a plan: what the step asks for, rendered for its attempt.
pub(super) struct Ask {
    pub namespace: String,
    pub run: RunId,
    /// The name the plan's definition will have (it is checked under it).
    pub name: String,
    pub goal: String,
    /// The sub-run's input, which the planned steps read as `input`.
    pub input: Value,
    pub def: PlanDef,
    /// Bounds the whole conversation (the plan and its repair): the step's `timeout`.
    pub timeout: Option<Duration>,
}

impl Ask {
    /// Plans in a task of its own, which reports to `run` unless aborted first.
    pub fn spawn(self, env: Arc<RunEnv>, run: Addr<RunMsg>, unit: UnitKey) -> AbortHandle {
        tokio::spawn(async move {
            let result = self.plan(&env).await;
            let _ = run.cast(RunMsg::Planned { unit, result });
        })
        .abort_handle()
    }

    async fn plan(self, env: &RunEnv) -> Result<Plan, PlanError> {
        let agents = agents_in(&env.catalog, &self.namespace);
        let allowed = allowed(&agent_names(&agents), &self.def);
        let offered: Vec<&AgentSpec> = agents
            .iter()
            .map(|a| &**a)
            .filter(|a| {
                let named = allowed.agents.as_ref().is_some_and(|n| n.contains(&a.name));
                let by_capability = allowed.capabilities.as_ref();
                named || a.capabilities.iter().any(|c| by_capability.is_some_and(|n| n.contains(c)))
            })
            .collect();
        if offered.is_empty() {
            return Err(PlanError::NothingToUse(self.namespace));
        }
        let model = match &self.def.model {
            Some(model) => model.clone(),
            None => first_chat_model(&env.models).await?,
        };
        let max_steps = self.def.max_steps();
        let messages = prompt::messages(&self.goal, &self.input, &offered, &allowed, max_steps);
        let mut request = ChatRequest::new(model, messages);
        request.format = Some(ResponseFormat::JsonSchema(answer_schema(max_steps, &allowed)));
        let context = CallContext {
            namespace: self.namespace.clone(),
            run: Some(self.run),
            deadline: self.timeout.map(|t| Instant::now() + t),
            ..CallContext::default()
        };
        let accept = |answer: ChatResponse| {
            let text = answer.message.content;
            match read_answer(&text, &self.name, max_steps, &allowed) {
                Ok(steps) => {
                    let model = format!("{}/{}", answer.provider, answer.model);
                    Ok(Plan { goal: self.goal.clone(), model, steps })
                }
                Err(problems) => Err((text, problems)),
            }
        };
        let (answer, problems) = match accept(env.models.chat(request.clone(), context.clone()).await?) {
            Ok(plan) => return Ok(plan),
            Err(refused) => refused,
        };
        request.messages.push(ChatMessage::new(Role::Assistant, answer));
        request.messages.push(ChatMessage::new(Role::User, prompt::repair(&problems)));
        accept(env.models.chat(request, context).await?).map_err(|(_, problems)| PlanError::Invalid(problems))
    }
}

/// The model a plan step without `plan.model` asks: the first chat model the router
/// lists, by its bare id, so the router may still choose among the providers serving it.
async fn first_chat_model(router: &ModelRouter) -> Result<String, PlanError> {
    let models = router.models().await?;
    models.into_iter().find(|m| m.info.capabilities.chat).map(|m| m.info.id).ok_or(PlanError::NoModel)
}
