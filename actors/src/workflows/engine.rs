//! The `engine` actor: stores definitions, starts runs, and resumes the runs that dead
//! node starts left unfinished. Store reads and commits run in spawned futures that
//! answer the caller, so the mailbox never waits on I/O.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mark1_supervisors::{spawn_instrumented, ActorStats, Addr, ChildSpec, Restart, StartCtx, SupervisorMsg};
use parking_lot::{Mutex, RwLock};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{json, Value};
use uuid::Uuid;

use super::run::{Loaded, RunActor, RunArgs, RunMsg};
use super::{run_child_id, RunChange, RunDirectory, ViewReply, WorkflowError};
use crate::agents::AgentCatalog;
use crate::domain::workflow::{
    planned_definition, JournalEntry, JournalKind, ParentStep, RunId, RunProgress, RunRecord, RunState,
    StepDef, Templates, WorkflowDef, WorkflowRecord, PLANNED_VERSION,
};
use crate::domain::EventKind;
use crate::models::ModelRouter;
use crate::orchestrator::OrchestratorMsg;
use crate::ports::{Clock, EventSink, NodeStart, Store, StoreError, Write};
use crate::store_writer::{Ack, Retry, StoreWriterMsg};

/// Runs claimed per store call; a full batch asks for the next at once.
const CLAIM_BATCH: usize = 256;

/// What every run of the node shares.
pub struct RunEnv {
    pub store: Arc<dyn Store>,
    pub writer: Addr<StoreWriterMsg>,
    pub orchestrator: Arc<dyn Fn() -> Option<Addr<OrchestratorMsg>> + Send + Sync>,
    pub engine: Arc<dyn Fn() -> Option<Addr<EngineMsg>> + Send + Sync>,
    pub events: Arc<dyn EventSink>,
    pub clock: Arc<dyn Clock>,
    pub catalog: Arc<AgentCatalog>,
    /// Where plan steps ask for their plans.
    pub models: ModelRouter,
    pub templates: Templates,
    pub directory: Arc<RunDirectory>,
    /// The `workflows` supervisor: runs are its dynamic children.
    pub supervisor: ActorRef<SupervisorMsg>,
    /// Definitions by (namespace, name, version): a stored version never changes.
    definitions: RwLock<HashMap<(String, String, u32), Arc<WorkflowDef>>>,
}

impl RunEnv {
    /// The definition of `name` in `namespace`: that version, or the latest.
    pub async fn definition(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Arc<WorkflowDef>, WorkflowError> {
        if let Some(v) = version {
            if let Some(def) = self.definitions.read().get(&(namespace.into(), name.into(), v)) {
                return Ok(def.clone());
            }
        }
        let record = self.store.workflow(namespace, name, version).await?.ok_or_else(|| {
            WorkflowError::UnknownWorkflow { namespace: namespace.into(), name: name.into(), version }
        })?;
        let def = Arc::new(record.def);
        self.definitions.write().insert((namespace.into(), name.into(), record.version), def.clone());
        Ok(def)
    }

    /// A run's record and its progress, rebuilt from the journal (which holds the
    /// definition of a planned run; other runs' are stored).
    pub async fn load(&self, id: RunId) -> Result<(RunRecord, RunProgress), WorkflowError> {
        let record = self.store.run(id).await?.ok_or(WorkflowError::UnknownRun(id))?;
        let journal = self.store.journal(id).await?;
        let def = match planned_definition(&journal) {
            Some(def) => def,
            None => {
                (*self.definition(&record.namespace, &record.workflow, Some(record.version)).await?).clone()
            }
        };
        let progress = RunProgress::replay(id, def, record.input.clone(), &journal);
        Ok((record, progress))
    }

    /// Checks steps to add to a run whose definition is now `def`.
    pub async fn check_added_steps(
        &self,
        namespace: &str,
        def: &WorkflowDef,
        steps: &[StepDef],
    ) -> Result<(), WorkflowError> {
        let mut merged = def.clone();
        merged.steps.extend(steps.iter().cloned());
        super::check::definition(self, namespace, &merged).await
    }

    /// Starts the actor of an unfinished run under the `workflows` supervisor, handing
    /// it what `loaded` holds (a restart reads the store instead). When the actor does
    /// not start, the replies `loaded` carried come back with the error.
    async fn spawn_run(
        self: &Arc<Self>,
        id: RunId,
        loaded: Loaded,
    ) -> Result<(), (WorkflowError, Vec<ViewReply>)> {
        let env = self.clone();
        let handed = Arc::new(Mutex::new(Some(loaded)));
        let slot = handed.clone();
        let spec = ChildSpec::new(run_child_id(id), move |ctx: StartCtx| {
            let args = RunArgs { id, env: env.clone(), loaded: slot.lock().take(), stats: ctx.stats.clone() };
            async move {
                let (addr, _) =
                    spawn_instrumented(ctx.name, RunActor, args, ctx.stats, Some(ctx.supervisor)).await?;
                Ok(addr.actor().get_cell())
            }
        })
        .restart(Restart::Transient);
        let error = match self.supervisor.call(|reply| SupervisorMsg::StartChild(spec, reply), None).await {
            Ok(CallResult::Success(Ok(_))) => return Ok(()),
            Ok(CallResult::Success(Err(e))) => {
                WorkflowError::Unavailable(format!("run {id} did not start: {e}"))
            }
            _ => WorkflowError::Unavailable("the workflows supervisor is not running".into()),
        };
        let replies = handed.lock().take().map(|l| l.replies).unwrap_or_default();
        Err((error, replies))
    }

    /// Starts the actor of a run the store holds.
    /// Starts the actor of a claimed run. The run is read again after the claim: it may
    /// have been revived and finished meanwhile (a change to it right after a restart), and
    /// then there is nothing to resume; the claim's copy of the record is never used.
    async fn resume_run(self: &Arc<Self>, claimed: RunRecord) -> Result<(), WorkflowError> {
        let id = claimed.id;
        let (record, progress) = self.load(id).await?;
        if record.state.is_final() || self.directory.get(id).is_some() {
            return Ok(());
        }
        let loaded = Loaded { record, progress, pending: Vec::new(), replies: Vec::new(), fresh: false };
        self.spawn_run(id, loaded).await.map_err(|(e, _)| e)
    }

    /// Sends writes and waits for their commit.
    async fn commit(&self, writes: Vec<Write>, retry: Retry) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ack: Ack = Box::new(move |result| {
            let _ = tx.send(result);
        });
        if self.writer.cast(StoreWriterMsg::Write { writes, ack: Some(ack), retry }).is_err() {
            return Err(StoreError::Unavailable("the store writer is not running".into()));
        }
        rx.await.unwrap_or_else(|_| Err(StoreError::Unavailable("the store writer stopped".into())))
    }
}

/// A request to start a run.
#[derive(Clone, Debug, PartialEq)]
pub struct StartRun {
    pub namespace: String,
    pub workflow: String,
    /// The latest version when unset.
    pub version: Option<u32>,
    pub input: Value,
    pub idempotency_key: Option<String>,
    pub submitter: Option<String>,
    pub durable: bool,
    pub parent: Option<ParentStep>,
}

pub enum EngineMsg {
    /// Validates and stores a definition as a new version.
    CreateWorkflow {
        namespace: String,
        def: Box<WorkflowDef>,
        reply: RpcReplyPort<Result<WorkflowRecord, WorkflowError>>,
    },
    /// Starts a run and answers with its record once it is journaled (committed, when durable).
    StartRun(Box<StartRun>, RpcReplyPort<Result<RunRecord, WorkflowError>>),
    /// Starts the sub-run of a plan step: as `StartRun`, with the plan (already checked by
    /// the planner) as its definition instead of a stored one.
    StartPlanned {
        request: Box<StartRun>,
        def: Arc<WorkflowDef>,
        reply: RpcReplyPort<Result<RunRecord, WorkflowError>>,
    },
    /// Applies a change to a stored run that has no actor (a failed run whose step is
    /// retried) and gives it one again.
    Revive {
        id: RunId,
        change: RunChange,
        by: String,
        reply: ViewReply,
    },
    // Internal messages.
    Claim,
    Claimed(Result<Vec<RunRecord>, StoreError>),
    RenewLease,
}

pub struct EngineArgs {
    pub node: String,
    pub env: Arc<RunEnv>,
    pub lease_ttl: Duration,
    pub stats: Arc<ActorStats>,
}

impl EngineArgs {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: String,
        store: Arc<dyn Store>,
        writer: Addr<StoreWriterMsg>,
        orchestrator: Arc<dyn Fn() -> Option<Addr<OrchestratorMsg>> + Send + Sync>,
        engine: Arc<dyn Fn() -> Option<Addr<EngineMsg>> + Send + Sync>,
        events: Arc<dyn EventSink>,
        clock: Arc<dyn Clock>,
        catalog: Arc<AgentCatalog>,
        models: ModelRouter,
        directory: Arc<RunDirectory>,
        supervisor: ActorRef<SupervisorMsg>,
        lease_ttl: Duration,
        stats: Arc<ActorStats>,
    ) -> Self {
        let env = RunEnv {
            store,
            writer,
            orchestrator,
            engine,
            events,
            clock,
            catalog,
            models,
            templates: Templates::new(),
            directory,
            supervisor,
            definitions: RwLock::default(),
        };
        EngineArgs { node, env: Arc::new(env), lease_ttl, stats }
    }
}

pub struct Engine;

pub struct EngineState {
    env: Arc<RunEnv>,
    myself: Addr<EngineMsg>,
    start: NodeStart,
    lease_ttl: Duration,
    claiming: bool,
}

impl Actor for Engine {
    type Msg = EngineMsg;
    type State = EngineState;
    type Arguments = EngineArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<EngineMsg>,
        args: EngineArgs,
    ) -> Result<EngineState, ActorProcessingErr> {
        let now = args.env.clock.now();
        let start = NodeStart {
            id: Uuid::now_v7(),
            node: args.node.clone(),
            started_at: now,
            lease_until: now + args.lease_ttl,
        };
        args.env
            .store
            .open_lease(&start)
            .await
            .map_err(|e| format!("node '{}': the workflow engine cannot open its lease ({e})", args.node))?;
        let myself = Addr::new(myself, args.stats);
        myself.cast(EngineMsg::Claim)?;
        myself.send_interval(args.lease_ttl / 3, || EngineMsg::RenewLease);
        Ok(EngineState { env: args.env, myself, start, lease_ttl: args.lease_ttl, claiming: false })
    }

    async fn post_stop(
        &self,
        _: ActorRef<EngineMsg>,
        state: &mut EngineState,
    ) -> Result<(), ActorProcessingErr> {
        // The runs go on under the supervisor; a new engine claims them with its own lease.
        if let Err(error) = state.env.store.close_lease(state.start.id).await {
            tracing::warn!(%error, "could not close the workflow engine's lease");
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<EngineMsg>,
        msg: EngineMsg,
        state: &mut EngineState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EngineMsg::CreateWorkflow { namespace, def, reply } => {
                let env = state.env.clone();
                tokio::spawn(async move {
                    let _ = reply.send(create_workflow(&env, namespace, *def).await);
                });
            }
            EngineMsg::StartRun(request, reply) => {
                let (env, owner) = (state.env.clone(), state.start.id);
                tokio::spawn(async move {
                    let _ = reply.send(start_run(&env, owner, *request, None).await);
                });
            }
            EngineMsg::StartPlanned { request, def, reply } => {
                let (env, owner) = (state.env.clone(), state.start.id);
                tokio::spawn(async move {
                    let _ = reply.send(start_run(&env, owner, *request, Some(def)).await);
                });
            }
            EngineMsg::Revive { id, change, by, reply } => {
                let (env, owner) = (state.env.clone(), state.start.id);
                tokio::spawn(async move { revive(&env, owner, id, change, by, reply).await });
            }
            EngineMsg::RenewLease => {
                let until = state.env.clock.now() + state.lease_ttl;
                let (store, id) = (state.env.store.clone(), state.start.id);
                tokio::spawn(async move {
                    if let Err(error) = store.renew_lease(id, until).await {
                        tracing::warn!(%error, "could not renew the workflow engine's lease");
                    }
                });
                state.claim();
            }
            EngineMsg::Claim => state.claim(),
            EngineMsg::Claimed(result) => {
                state.claiming = false;
                match result {
                    Ok(records) => {
                        let full = records.len() == CLAIM_BATCH;
                        if !records.is_empty() {
                            tracing::info!(
                                runs = records.len(),
                                "resuming runs left unfinished by an earlier start"
                            );
                        }
                        let env = state.env.clone();
                        tokio::spawn(async move {
                            for record in records {
                                let id = record.id;
                                if env.directory.get(id).is_some() {
                                    continue; // live here already (the engine restarted)
                                }
                                if let Err(error) = env.resume_run(record).await {
                                    tracing::error!(run = %id, %error, "could not resume a run");
                                }
                            }
                        });
                        if full {
                            state.claim();
                        }
                    }
                    Err(error) => tracing::warn!(%error, "could not claim unfinished runs; will try again"),
                }
            }
        }
        Ok(())
    }
}

impl EngineState {
    fn claim(&mut self) {
        if self.claiming {
            return;
        }
        self.claiming = true;
        let (store, start, now, me) =
            (self.env.store.clone(), self.start.clone(), self.env.clock.now(), self.myself.clone());
        tokio::spawn(async move {
            let result = store.claim_orphan_runs(&start, now, CLAIM_BATCH).await;
            let _ = me.cast(EngineMsg::Claimed(result));
        });
    }
}

async fn create_workflow(
    env: &RunEnv,
    namespace: String,
    mut def: WorkflowDef,
) -> Result<WorkflowRecord, WorkflowError> {
    super::check::definition(env, &namespace, &def).await?;
    let latest = env.store.workflow(&namespace, &def.name, None).await?;
    let version = match (def.version, &latest) {
        (Some(v), _) => v,
        (None, Some(latest)) => latest.version + 1,
        (None, None) => 1,
    };
    def.version = Some(version);
    if let Some(existing) = env.store.workflow(&namespace, &def.name, Some(version)).await? {
        return if existing.def == def {
            Ok(existing)
        } else {
            Err(WorkflowError::VersionExists { name: def.name, version })
        };
    }
    let record =
        WorkflowRecord { namespace, name: def.name.clone(), version, def, created_at: env.clock.now() };
    match env.commit(vec![Write::PutWorkflow(Box::new(record.clone()))], Retry::No).await {
        Ok(()) => Ok(record),
        // Another caller stored this version between the read and the write.
        Err(StoreError::Rejected(_)) => Err(WorkflowError::VersionExists { name: record.name, version }),
        Err(e) => Err(e.into()),
    }
}

/// Starts a run of a stored definition, or of `planned` (a plan step's sub-run), whose
/// definition then goes in the run's `run.started` entry, as no stored version holds it.
async fn start_run(
    env: &Arc<RunEnv>,
    owner: Uuid,
    request: StartRun,
    planned: Option<Arc<WorkflowDef>>,
) -> Result<RunRecord, WorkflowError> {
    if let Some(key) = &request.idempotency_key {
        if let Some(existing) = env.store.run_by_idempotency_key(&request.namespace, key).await? {
            return same_run(existing, &request);
        }
    }
    let (def, version) = match &planned {
        Some(def) => (def.clone(), PLANNED_VERSION),
        None => {
            let def = env.definition(&request.namespace, &request.workflow, request.version).await?;
            let version = def.version.unwrap_or(1);
            (def, version)
        }
    };
    super::check::input(&def, &request.input)?;
    let now = env.clock.now();
    let record = RunRecord {
        id: RunId::new(),
        namespace: request.namespace.clone(),
        workflow: request.workflow.clone(),
        version,
        state: RunState::Running,
        input: request.input.clone(),
        output: None,
        error: None,
        idempotency_key: request.idempotency_key.clone(),
        submitter: request.submitter.clone(),
        durable: request.durable,
        parent: request.parent.clone(),
        owner: Some(owner),
        created_at: now,
        updated_at: now,
    };
    let mut progress = RunProgress::new(record.id, (*def).clone(), record.input.clone());
    let mut data = json!({"input": record.input});
    if let Some(def) = &planned {
        data["definition"] = json!(def);
    }
    let started = JournalEntry {
        run: record.id,
        seq: progress.next_seq,
        step: None,
        attempt: None,
        kind: JournalKind::RunStarted,
        data,
        recorded_at: now,
    };
    progress.apply(&started);
    let event = env.events.emit(
        EventKind::RunStarted,
        record.namespace.as_str().into(),
        record.id.text(),
        json!({"workflow": record.workflow, "version": record.version}).into(),
    );
    let mut writes = vec![Write::PutRun(Box::new(record.clone())), Write::AppendJournal(Box::new(started))];
    if record.durable {
        writes.push(Write::AppendEvent(event));
        match env.commit(writes, Retry::No).await {
            Ok(()) => {}
            // The idempotency key was taken meanwhile: the first run wins.
            Err(StoreError::Rejected(reason)) => {
                if let Some(key) = &request.idempotency_key {
                    if let Some(existing) = env.store.run_by_idempotency_key(&request.namespace, key).await? {
                        return same_run(existing, &request);
                    }
                }
                return Err(WorkflowError::Unavailable(format!("the run was not stored: {reason}")));
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        let _ = env.writer.cast(StoreWriterMsg::Write { writes, ack: None, retry: Retry::UntilCommitted });
    }
    let loaded =
        Loaded { record: record.clone(), progress, pending: Vec::new(), replies: Vec::new(), fresh: true };
    env.spawn_run(record.id, loaded).await.map_err(|(e, _)| e)?;
    Ok(record)
}

/// The run an idempotency key found, if it asked for the same work.
fn same_run(existing: RunRecord, request: &StartRun) -> Result<RunRecord, WorkflowError> {
    let same = existing.workflow == request.workflow
        && request.version.is_none_or(|v| v == existing.version)
        && existing.input == request.input;
    if same {
        Ok(existing)
    } else {
        Err(WorkflowError::IdempotencyConflict { key: request.idempotency_key.clone().unwrap_or_default() })
    }
}

/// Applies `change` to a stored run without an actor and starts one to journal it and
/// go on; the reply comes once the change is journaled. A run that has an actor by now
/// gets the change as a message.
async fn revive(env: &Arc<RunEnv>, owner: Uuid, id: RunId, change: RunChange, by: String, reply: ViewReply) {
    if let Some(run) = env.directory.get(id) {
        let _ = run.cast(RunMsg::Change { change, by, reply });
        return;
    }
    let loaded = async {
        let (mut record, mut progress) = env.load(id).await?;
        let pending = change.clone().apply(&mut progress, &env.templates, &by, env.clock.now())?;
        record.owner = Some(owner);
        Ok::<_, WorkflowError>((record, progress, pending))
    };
    match loaded.await {
        Ok((record, progress, pending)) => {
            let loaded = Loaded { record, progress, pending, replies: vec![reply], fresh: false };
            if let Err((error, replies)) = env.spawn_run(id, loaded).await {
                for reply in replies {
                    match env.directory.get(id) {
                        // The engine's claim started the run first (right after a
                        // restart): the change goes to that actor instead.
                        Some(run) => {
                            drop(run.cast(RunMsg::Change { change: change.clone(), by: by.clone(), reply }))
                        }
                        None => drop(reply.send(Err(error.clone()))),
                    }
                }
            }
        }
        Err(error) => {
            let _ = reply.send(Err(error));
        }
    }
}
