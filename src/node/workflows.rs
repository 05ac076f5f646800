//! Workflows and runs on a running node: definitions are stored through the engine,
//! runs are started by it, and a live run is asked through its own actor. Reads of
//! stored definitions and finished runs go straight to the store.

use std::time::Duration;

use mark1_actors::domain::workflow::{
    planned_definition, validate, Problem, RunId, RunProgress, RunRecord, WorkflowDef, WorkflowRecord,
};
use mark1_actors::ports::RunQuery;
use mark1_actors::workflows::{known_names, EngineMsg, RunChange, RunMsg, RunView, StartRun, WorkflowError};
use mark1_supervisors::Addr;
use ractor::rpc::CallResult;
use ractor::RpcReplyPort;

use super::{NodeError, NodeHandle};

/// Calls `actor` (named `what` in errors), waiting at most `timeout`.
async fn call<M: ractor::Message, R: Send + 'static>(
    actor: Option<Addr<M>>,
    what: &str,
    build: impl FnOnce(RpcReplyPort<R>) -> M,
    timeout: Duration,
) -> Result<R, NodeError> {
    let actor = actor.ok_or_else(|| NodeError::Unavailable(format!("{what} is not running")))?;
    match actor.call(build, Some(timeout)).await {
        Ok(CallResult::Success(reply)) => Ok(reply),
        Ok(CallResult::Timeout) => {
            Err(NodeError::Timeout(format!("{what} did not answer within {timeout:?}")))
        }
        Ok(CallResult::SenderError) | Err(_) => Err(NodeError::Unavailable(format!("{what} stopped"))),
    }
}

impl NodeHandle {
    fn engine(&self) -> Option<Addr<EngineMsg>> {
        self.tree_internals().workflow_engine()
    }

    /// Validates a definition and stores it as a new version (the next one, unless the
    /// definition names its own).
    pub async fn create_workflow(
        &self,
        namespace: &str,
        def: WorkflowDef,
    ) -> Result<WorkflowRecord, NodeError> {
        let (namespace, def) = (namespace.to_string(), Box::new(def));
        let timeout = self.config().server.call_timeout;
        Ok(call(
            self.engine(),
            "the workflow engine",
            |reply| EngineMsg::CreateWorkflow { namespace, def, reply },
            timeout,
        )
        .await??)
    }

    /// Every problem of `def` against the agents and the stored workflows of `namespace`,
    /// as [`create_workflow`](Self::create_workflow) would find them; empty when it may be
    /// stored. Nothing is written.
    pub async fn validate_workflow(
        &self,
        namespace: &str,
        def: &WorkflowDef,
    ) -> Result<Vec<Problem>, NodeError> {
        let catalog = &self.tree_internals().catalog;
        let known =
            known_names(catalog, self.store().as_ref(), namespace).await.map_err(WorkflowError::from)?;
        Ok(validate(def, &known))
    }

    /// A stored definition: that version, or the latest.
    pub async fn workflow(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<WorkflowRecord, NodeError> {
        self.store().workflow(namespace, name, version).await.map_err(WorkflowError::from)?.ok_or_else(|| {
            WorkflowError::UnknownWorkflow { namespace: namespace.into(), name: name.into(), version }.into()
        })
    }

    /// Every stored version of every workflow of `namespace` (of all when `None`).
    pub async fn workflows(&self, namespace: Option<&str>) -> Result<Vec<WorkflowRecord>, NodeError> {
        Ok(self.store().workflows(namespace).await.map_err(WorkflowError::from)?)
    }

    /// Starts a run; returns once it is journaled (committed, when durable).
    pub async fn start_run(&self, request: StartRun) -> Result<RunRecord, NodeError> {
        let request = Box::new(request);
        let timeout = self.config().server.call_timeout;
        Ok(call(self.engine(), "the workflow engine", |reply| EngineMsg::StartRun(request, reply), timeout)
            .await??)
    }

    /// A run with every step's state: from its actor while it is live, else from the store.
    pub async fn get_run(&self, id: RunId) -> Result<RunView, NodeError> {
        if let Some(run) = self.tree_internals().runs.get(id) {
            let timeout = self.config().server.call_timeout;
            if let Ok(view) = call(Some(run), "the run", RunMsg::Get, timeout).await {
                return Ok(view?);
            }
            // It ended meanwhile: the store has it.
        }
        self.stored_run(id).await
    }

    async fn stored_run(&self, id: RunId) -> Result<RunView, NodeError> {
        if let Some(view) = self.tree_internals().runs.finished(id) {
            return Ok(view);
        }
        let store = self.store();
        let record =
            store.run(id).await.map_err(WorkflowError::from)?.ok_or(WorkflowError::UnknownRun(id))?;
        let journal = store.journal(id).await.map_err(WorkflowError::from)?;
        // A plan step's sub-run carries its definition in its journal; others' is stored.
        let def = match planned_definition(&journal) {
            Some(def) => def,
            None => self.workflow(&record.namespace, &record.workflow, Some(record.version)).await?.def,
        };
        let progress = RunProgress::replay(id, def, record.input.clone(), &journal);
        Ok(RunView { record, steps: progress.into_steps() })
    }

    /// Waits up to `wait` for a run to end; returns it as it is then.
    pub async fn wait_run(&self, id: RunId, wait: Duration) -> Result<RunView, NodeError> {
        if let Some(run) = self.tree_internals().runs.get(id) {
            let timeout = wait + self.config().server.call_timeout;
            let answer =
                call(Some(run), "the run", |reply| RunMsg::Wait { wait: Some(wait), reply }, timeout).await;
            if let Ok(view) = answer {
                return Ok(view?);
            }
        }
        self.stored_run(id).await
    }

    /// Runs matching `query`, newest first.
    pub async fn runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, NodeError> {
        Ok(self.store().list_runs(query).await.map_err(WorkflowError::from)?)
    }

    /// Changes a run (cancel, retry or skip a step, add steps, decide an approval);
    /// returns the run once the change is journaled. A failed run whose step is retried
    /// runs again.
    pub async fn change_run(&self, id: RunId, change: RunChange, by: &str) -> Result<RunView, NodeError> {
        let by = by.to_string();
        let timeout = self.config().server.call_timeout;
        if let Some(run) = self.tree_internals().runs.get(id) {
            let answer = call(
                Some(run),
                "the run",
                |reply| RunMsg::Change { change: change.clone(), by: by.clone(), reply },
                timeout,
            )
            .await;
            match answer {
                Ok(view) => return Ok(view?),
                // The run ended between the lookup and the call: revive it below.
                Err(NodeError::Unavailable(_)) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(call(
            self.engine(),
            "the workflow engine",
            |reply| EngineMsg::Revive { id, change, by, reply },
            timeout,
        )
        .await??)
    }
}
