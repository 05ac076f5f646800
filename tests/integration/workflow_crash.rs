//! Workflow crash test (issue 5, DESIGN §5 and §12): a child process runs a node that
//! starts 200 durable runs whose agents log each execution; a step that is to be caught
//! in flight holds at a barrier that never opens. Once the execution log and the store's
//! journals show every held step (and `for_each` item) running, every step meant to end
//! before the crash ended, and every approval waiting, the test kills the child with
//! SIGKILL, starts a new node on the same database with agents that no longer hold, and
//! approves the waiting approvals (half at once, half once everything else is done).
//!
//! It checks that every run succeeds with the right output; that the journal records
//! each step's and each item's start and completion exactly once; that a step completed
//! before the crash never ran again; that a step caught in flight ran again as the same
//! task with the same idempotency key (`run:<run>:<step>[<item>]:<attempt>`, attempt 1
//! both times); and that an approval waiting at the crash still waited after the restart
//! until someone decided it.
//!
//! The runs mix four workflows:
//! - `chain`: a quick step, a held step, then a quick step;
//! - `fan`: a quick step, a `for_each` of six items (the first quick, the others held),
//!   then a quick step that joins the items' outputs;
//! - `gate`: a quick step, an approval (with a long timeout), then a quick step;
//! - `nest`: a quick step, a sub-workflow (`inner`) whose only step holds, then a quick step.
//!
//! The child is this test binary run again with `--exact workflow_crash::child_node
//! --ignored`, so the node in it is built by the same library code a user embeds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mark1::config::ConfigLoader;
use mark1::workflows::{
    JournalEntry, JournalKind, RunChange, RunId, RunQuery, RunRecord, RunState, StartRun, StepState,
    WorkflowDef,
};
use mark1::{Agent, AgentError, AgentSpec, Config, Node, NodeBuilder, NodeHandle, TaskContext, TaskState};
use mark1_actors::ports::Store;
use serde_json::{json, Value};

use crate::store::backends::{for_each_backend, Fresh};
use crate::support::{agents_ready, start_run, stop, ExecutionLog};

const CHAINS: usize = 100;
const FANS: usize = 40;
const GATES: usize = 30;
const NESTS: usize = 30;
const RUNS: usize = CHAINS + FANS + GATES + NESTS;
/// Runs in all: the sub-runs of `nest` too.
const ALL_RUNS: usize = RUNS + NESTS;
/// Items of a fan's `for_each`: the first answers at once, the others hold.
const FAN_ITEMS: usize = 6;
/// Tasks held at the crash: one per chain and per nest (in its sub-run), all items but
/// the first per fan. More than the orchestrator claims per store call.
const HELD: usize = CHAINS + (FAN_ITEMS - 1) * FANS + NESTS;
/// Executions logged before the crash: every run's first step, every fan's first item,
/// and the held ones.
const LOGGED_BEFORE: usize = RUNS + FANS + HELD;
/// The node's name in both processes: a node takes over its own earlier start's work at
/// once (another node's only when its lease lapses).
const NODE: &str = "wf-crashed";

/// Logs the execution, then answers its input, or (when `hold` is set, unless the input
/// says `"hold": false`) holds until the process dies.
struct Worker {
    log: Arc<ExecutionLog>,
    hold: bool,
}

impl Agent for Worker {
    async fn handle(&self, ctx: TaskContext, input: Value) -> Result<Value, AgentError> {
        self.log.record(&ctx);
        if self.hold && input.get("hold") != Some(&json!(false)) {
            std::future::pending::<()>().await;
        }
        Ok(input)
    }
}

fn node_config(dir: &Path, url: &str) -> Config {
    ConfigLoader::new()
        .no_file()
        .env(Vec::<(String, String)>::new())
        .set("node.name", NODE)
        .set("node.data_dir", dir.to_str().unwrap())
        .set("store.url", url)
        .load()
        .expect("workflow crash test config loads")
}

/// `quick` answers at once; `held` holds in the child, and answers after the restart.
fn agents(builder: NodeBuilder, log: &Arc<ExecutionLog>, hold: bool) -> NodeBuilder {
    // Room for every held task, and for the fans' first items beside them.
    let held = AgentSpec::native("held")
        .pool_size(HELD + FANS, HELD + FANS)
        .queue_limit(4 * HELD)
        .timeout(Duration::from_secs(600));
    builder
        .agent(held, Worker { log: log.clone(), hold })
        .agent(AgentSpec::native("quick").pool_size(4, 4), Worker { log: log.clone(), hold: false })
}

fn definitions() -> Vec<WorkflowDef> {
    let defs = [
        json!({"name": "chain", "steps": [
            {"id": "first", "agent": "quick", "input": {"n": "{{ input.n }}"}},
            {"id": "held", "agent": "held", "depends_on": ["first"], "input": {"n": "{{ steps.first.output.n }}"}},
            {"id": "last", "agent": "quick", "depends_on": ["held"], "input": {"n": "{{ steps.held.output.n }}"}},
        ], "output": "{{ steps.last.output.n }}"}),
        json!({"name": "fan", "steps": [
            {"id": "first", "agent": "quick", "input": {"n": "{{ input.n }}"}},
            {"id": "each", "agent": "held", "depends_on": ["first"], "for_each": "input.items", "concurrency": FAN_ITEMS,
             "input": {"n": "{{ item.n }}", "hold": "{{ item.hold }}"}},
            {"id": "last", "agent": "quick", "depends_on": ["each"],
             "input": {"ns": "{{ steps.each.output | map(attribute='n') | list }}"}},
        ], "output": "{{ steps.last.output.ns }}"}),
        json!({"name": "gate", "steps": [
            {"id": "first", "agent": "quick", "input": {"n": "{{ input.n }}"}},
            {"id": "approve", "depends_on": ["first"], "approval": {"timeout": "1h", "default": "reject"}},
            {"id": "last", "agent": "quick", "depends_on": ["approve"],
             "input": {"comment": "{{ steps.approve.output.comment }}"}},
        ], "output": "{{ steps.last.output.comment }}"}),
        json!({"name": "inner", "steps": [{"id": "held", "agent": "held", "input": {"n": "{{ input.n }}"}}],
               "output": "{{ steps.held.output.n }}"}),
        json!({"name": "nest", "steps": [
            {"id": "first", "agent": "quick", "input": {"n": "{{ input.n }}"}},
            {"id": "sub", "workflow": {"name": "inner"}, "depends_on": ["first"], "input": {"n": "{{ input.n }}"}},
            {"id": "last", "agent": "quick", "depends_on": ["sub"], "input": {"n": "{{ steps.sub.output }}"}},
        ], "output": "{{ steps.last.output.n }}"}),
    ];
    defs.into_iter().map(|d| serde_json::from_value(d).expect("a definition")).collect()
}

/// The workflow of top-level run `i`, and its input.
fn plan(i: usize) -> (&'static str, Value) {
    let n = i as u64;
    if i < CHAINS {
        ("chain", json!({"n": n}))
    } else if i < CHAINS + FANS {
        let items: Vec<Value> = (0..FAN_ITEMS).map(|k| json!({"n": k, "hold": k > 0})).collect();
        ("fan", json!({"n": n, "items": items}))
    } else if i < CHAINS + FANS + GATES {
        ("gate", json!({"n": n}))
    } else {
        ("nest", json!({"n": n}))
    }
}

/// What run `record` should give once done (`gate`: the approver's comment).
fn expected_output(record: &RunRecord) -> Value {
    let n = record.input["n"].clone();
    match record.workflow.as_str() {
        "fan" => json!((0..FAN_ITEMS).collect::<Vec<_>>()),
        "gate" => json!(format!("approved {}", record.id)),
        _ => n,
    }
}

/// The node in the child process. Does nothing unless run by `crash_and_resume`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the workflow crash test runs it in a child process"]
async fn child_node() {
    let (Ok(dir), Ok(url)) = (std::env::var("MARK1_WF_CRASH_DIR"), std::env::var("MARK1_WF_CRASH_URL"))
    else {
        return;
    };
    let dir = PathBuf::from(dir);
    let log = ExecutionLog::open(&dir.join("executions.log"));
    let builder = agents(Node::builder().config(node_config(&dir, &url)), &log, true);
    let handle = builder.build().await.unwrap().start().await.unwrap();
    agents_ready(&handle, 2).await;
    for def in definitions() {
        handle.create_workflow("default", def).await.unwrap();
    }
    for i in 0..RUNS {
        let (workflow, input) = plan(i);
        handle.start_run(start(workflow, input)).await.unwrap();
    }
    // Held here until the test kills the process.
    std::future::pending::<()>().await;
}

fn start(workflow: &str, input: Value) -> StartRun {
    start_run(workflow, input, "crash-test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_runs_killed_mid_step_resume_and_record_each_completion_once() {
    for_each_backend(crash_and_resume).await;
}

/// Polls `check` every 50 ms (each check reads hundreds of rows) until it holds.
async fn poll<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many runs did not succeed, and the first few with their state and journal, for a
/// failure message.
async fn unfinished(store: &Arc<dyn Store>) -> String {
    let all = journals(store).await;
    let unfinished: Vec<_> = all.values().filter(|(run, _)| run.state != RunState::Succeeded).collect();
    let mut out = format!("{} of {}", unfinished.len(), all.len());
    for (run, journal) in unfinished.into_iter().take(5) {
        let entries: Vec<String> = journal
            .iter()
            .map(|e| format!("{}:{}:{}", e.kind.as_str(), e.step.as_deref().unwrap_or("-"), e.data))
            .collect();
        out.push_str(&format!("\n{} {} {:?} {:?} {entries:?}", run.id, run.workflow, run.state, run.error));
    }
    out
}

/// One unit of work: a step of a run, or one item of a `for_each` step.
type Unit = (RunId, String, Option<usize>);

/// Every run and its journal.
async fn journals(store: &Arc<dyn Store>) -> BTreeMap<RunId, (RunRecord, Vec<JournalEntry>)> {
    let runs = store.list_runs(&RunQuery { limit: 10 * ALL_RUNS, ..Default::default() }).await.unwrap();
    let mut all = BTreeMap::new();
    for run in runs {
        let journal = store.journal(run.id).await.unwrap();
        all.insert(run.id, (run, journal));
    }
    all
}

fn unit(entry: &JournalEntry) -> Unit {
    let item = entry.data.get("index").and_then(Value::as_u64).map(|n| n as usize);
    (entry.run, entry.step.clone().unwrap_or_default(), item)
}

/// The units whose journal entries are of `kinds`, each as often as it has one.
fn units_of(
    journals: &BTreeMap<RunId, (RunRecord, Vec<JournalEntry>)>,
    kinds: &[JournalKind],
) -> HashMap<Unit, usize> {
    let mut found = HashMap::new();
    for (_, journal) in journals.values() {
        for entry in journal.iter().filter(|e| kinds.contains(&e.kind)) {
            *found.entry(unit(entry)).or_default() += 1;
        }
    }
    found
}

/// Whether the child got as far as the test wants before it kills it: every run
/// started, the held units running, what comes before them done, approvals waiting.
fn crash_point_reached(journals: &BTreeMap<RunId, (RunRecord, Vec<JournalEntry>)>) -> bool {
    let top: Vec<_> = journals.values().filter(|(r, _)| r.parent.is_none()).collect();
    let subs = journals.len() - top.len();
    if top.len() < RUNS || subs < NESTS {
        return false;
    }
    let running = units_of(journals, &[JournalKind::StepRunning, JournalKind::ItemRunning]);
    let done = units_of(journals, &[JournalKind::StepSucceeded, JournalKind::ItemSucceeded]);
    let waiting = units_of(journals, &[JournalKind::StepWaitingApproval]);
    journals.values().all(|(run, _)| {
        let id = run.id;
        let has = |set: &HashMap<Unit, usize>, step: &str, item: Option<usize>| {
            set.contains_key(&(id, step.to_string(), item))
        };
        match run.workflow.as_str() {
            "chain" => has(&done, "first", None) && has(&running, "held", None),
            "fan" => {
                has(&done, "first", None)
                    && has(&done, "each", Some(0))
                    && (1..FAN_ITEMS).all(|k| has(&running, "each", Some(k)))
            }
            "gate" => has(&done, "first", None) && has(&waiting, "approve", None),
            "nest" => has(&done, "first", None) && has(&running, "sub", None),
            "inner" => has(&running, "held", None),
            other => panic!("unexpected workflow {other}"),
        }
    })
}

/// One line of the execution log: the task, and its key's run, step, item and attempt.
struct Execution {
    task: String,
    key: String,
    unit: Unit,
    attempt: u32,
}

/// Parses `<task id> run:<run>:<step>[<item>]:<attempt>`.
fn execution(line: &str) -> Execution {
    let (task, key) = line.split_once(' ').expect("a task id and a key");
    let parts: Vec<&str> = key.split(':').collect();
    assert_eq!((parts.len(), parts[0]), (4, "run"), "a step task's key: {key}");
    let run: RunId = parts[1].parse().unwrap_or_else(|_| panic!("a run id in {key}"));
    let (step, item) = match parts[2].split_once('[') {
        Some((step, rest)) => (step, Some(rest.trim_end_matches(']').parse().expect("an item index"))),
        None => (parts[2], None),
    };
    let attempt = parts[3].parse().expect("an attempt number");
    assert_eq!(key, mark1::workflows::step_task_key(run, step, item, attempt), "the key's own shape");
    Execution { task: task.to_string(), key: key.to_string(), unit: (run, step.to_string(), item), attempt }
}

/// The log's complete lines. The parent polls the log while the child appends to it, so a
/// read can see a line half copied; until its newline is there it is not an execution.
fn executions(path: &Path) -> Vec<Execution> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    complete.lines().map(execution).collect()
}

async fn crash_and_resume(Fresh { store, options, backend }: Fresh) {
    let name = backend.as_str();
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("executions.log");
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "workflow_crash::child_node", "--ignored", "--nocapture", "--test-threads=1"])
        .env("MARK1_WF_CRASH_DIR", dir.path())
        .env("MARK1_WF_CRASH_URL", &options.url)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // The barrier: every held unit logged its execution, and the journals show it running.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{name}: the child node exited early: {status}");
        }
        assert!(Instant::now() < deadline, "{name}: the runs never reached the crash point");
        if executions(&log_path).len() >= LOGGED_BEFORE && crash_point_reached(&journals(&store).await) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    let killed_at = SystemTime::now();
    let crash_time = began.elapsed();

    let before = journals(&store).await;
    let logged_before = executions(&log_path);
    assert_eq!(logged_before.len(), LOGGED_BEFORE, "{name}: nothing ran past the barrier");
    let done_before = units_of(&before, &[JournalKind::StepSucceeded, JournalKind::ItemSucceeded]);
    let running = units_of(&before, &[JournalKind::StepRunning, JournalKind::ItemRunning]);
    // Held: a chain's and an inner run's `held`, a fan's items 1 and 2; and a nest's `sub`.
    // (A fan's `each` runs as its items.)
    let in_flight: HashSet<Unit> = running
        .keys()
        .filter(|unit| !done_before.contains_key(*unit))
        .filter(|(_, step, item)| !(step == "each" && item.is_none()))
        .cloned()
        .collect();
    assert_eq!(in_flight.len(), HELD + NESTS, "{name}: the units in flight at the crash");
    let gates: Vec<RunId> =
        before.values().filter(|(r, _)| r.workflow == "gate").map(|(r, _)| r.id).collect();
    assert_eq!(gates.len(), GATES);
    for id in &gates {
        assert_eq!(before[id].0.state, RunState::WaitingApproval, "{name}: a gate run waits at the crash");
    }
    // Half the gates are decided as soon as the node is up, most likely before their runs
    // are resumed; the others once every other run is done.
    let (at_once, later) = gates.split_at(GATES / 2);

    // The restart: same database, same node name, agents that answer at once.
    let log = ExecutionLog::open(&log_path);
    let handle = agents(Node::builder().config(node_config(dir.path(), &options.url)), &log, false)
        .build()
        .await
        .unwrap()
        .start()
        .await
        .unwrap();
    let approve = |id: RunId| {
        let comment = format!("approved {id}");
        let decide = RunChange::Decide { step: "approve".into(), approved: true, comment };
        handle.change_run(id, decide, "tester")
    };
    for &id in at_once {
        approve(id).await.expect("a waiting approval is decided right after the restart");
    }
    let succeeded = || async {
        let query = RunQuery { state: Some(RunState::Succeeded), limit: 10 * ALL_RUNS, ..Default::default() };
        store.list_runs(&query).await.map(|runs| runs.len()).unwrap_or(0)
    };
    let resumed = Instant::now() + Duration::from_secs(60);
    while succeeded().await < ALL_RUNS - later.len() {
        if Instant::now() > resumed {
            panic!("{name}: runs did not succeed after the restart: {}", unfinished(&store).await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resumed_time = began.elapsed();

    // The other approvals still wait, with nothing decided, until someone decides them.
    for &id in later {
        let view = handle.get_run(id).await.unwrap();
        assert_eq!(view.record.state, RunState::WaitingApproval, "{name}: {view:?}");
        let approve = view.steps.iter().find(|s| s.id == "approve").unwrap();
        assert_eq!(approve.state, StepState::WaitingApproval, "{name}: {view:?}");
        assert!(approve.decide_at.is_some(), "{name}: the approval's timeout survives the crash");
        let journal = store.journal(id).await.unwrap();
        assert!(journal.iter().all(|e| e.kind != JournalKind::StepDecided), "{name}: {journal:?}");
    }
    for &id in later {
        approve(id).await.expect("a waiting approval is decided");
    }
    poll(Duration::from_secs(30), "every run succeeded", || async { succeeded().await == ALL_RUNS }).await;
    check_outputs(&handle, name).await;
    stop(handle).await;

    let after = journals(&store).await;
    check_journals(&after, killed_at, name);
    check_executions(&store, &log_path, &done_before, &in_flight, &after, name).await;
    eprintln!(
        "{name}: crash point after {crash_time:?}, resumed runs done after {resumed_time:?}, all in {:?}",
        began.elapsed()
    );
}

async fn check_outputs(handle: &NodeHandle, name: &str) {
    let runs = handle.runs(&RunQuery { limit: 10 * ALL_RUNS, ..Default::default() }).await.unwrap();
    assert_eq!(runs.len(), ALL_RUNS);
    for run in runs {
        let view = handle.wait_run(run.id, Duration::from_secs(5)).await.unwrap();
        assert_eq!(view.record.state, RunState::Succeeded, "{name}: {view:?}");
        assert_eq!(view.record.output, Some(expected_output(&view.record)), "{name}: {view:?}");
        assert_eq!(view.record.owner, None, "{name}: a finished run has no owner");
        assert!(view.steps.iter().all(|s| s.state == StepState::Succeeded), "{name}: {view:?}");
    }
}

/// Each step and item: started once (attempt 1), completed once; a gate decided after
/// the restart, by the tester.
fn check_journals(
    journals: &BTreeMap<RunId, (RunRecord, Vec<JournalEntry>)>,
    killed_at: SystemTime,
    name: &str,
) {
    let started = units_of(journals, &[JournalKind::StepRunning, JournalKind::ItemRunning]);
    let completed = units_of(journals, &[JournalKind::StepSucceeded, JournalKind::ItemSucceeded]);
    for (run, journal) in journals.values() {
        let id = run.id;
        let kinds: Vec<JournalKind> = journal.iter().map(|e| e.kind).collect();
        let count = |kind| kinds.iter().filter(|k| **k == kind).count();
        assert_eq!(count(JournalKind::RunStarted), 1, "{name}: {kinds:?}");
        assert_eq!(count(JournalKind::RunSucceeded), 1, "{name}: {kinds:?}");
        assert_eq!(kinds.last(), Some(&JournalKind::RunSucceeded), "{name}: {kinds:?}");
        for bad in [
            JournalKind::StepRetrying,
            JournalKind::StepFailed,
            JournalKind::ItemFailed,
            JournalKind::RunFailed,
        ] {
            assert_eq!(count(bad), 0, "{name}: run {id} journaled {bad:?}: {journal:?}");
        }
        let seqs: Vec<u64> = journal.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=journal.len() as u64).collect::<Vec<_>>(), "{name}: seqs without gaps");
        assert!(journal.iter().all(|e| e.attempt.is_none_or(|a| a == 1)), "{name}: {journal:?}");

        let steps: &[&str] = match run.workflow.as_str() {
            "inner" => &["held"],
            "chain" => &["first", "held", "last"],
            "fan" => &["first", "each", "last"],
            "gate" => &["first", "approve", "last"],
            _ => &["first", "sub", "last"],
        };
        for step in steps {
            let unit = (id, step.to_string(), None);
            assert_eq!(completed.get(&unit), Some(&1), "{name}: one completion of {step} in {journal:?}");
            let starts = if *step == "approve" { None } else { Some(&1) };
            assert_eq!(started.get(&unit), starts, "{name}: {step} started once in {journal:?}");
        }
        if run.workflow == "fan" {
            for item in 0..FAN_ITEMS {
                let unit = (id, "each".to_string(), Some(item));
                assert_eq!(completed.get(&unit), Some(&1), "{name}: one completion of item {item}");
                assert_eq!(started.get(&unit), Some(&1), "{name}: item {item} started once");
            }
        }
        if run.workflow == "gate" {
            assert_eq!(count(JournalKind::StepWaitingApproval), 1, "{name}: {kinds:?}");
            let decided: Vec<_> = journal.iter().filter(|e| e.kind == JournalKind::StepDecided).collect();
            assert_eq!(decided.len(), 1, "{name}: {kinds:?}");
            assert_eq!(
                decided[0].data["by"],
                json!("tester"),
                "{name}: decided by the tester, not a timeout"
            );
            assert!(decided[0].recorded_at >= killed_at, "{name}: decided after the restart");
        }
    }
}

/// Executions: what completed before the crash ran once; what was in flight ran twice
/// as the same task with the same key (attempt 1); what came after ran once; and each
/// task has one recorded completion.
async fn check_executions(
    store: &Arc<dyn Store>,
    log_path: &Path,
    done_before: &HashMap<Unit, usize>,
    in_flight: &HashSet<Unit>,
    journals: &BTreeMap<RunId, (RunRecord, Vec<JournalEntry>)>,
    name: &str,
) {
    let mut by_unit: HashMap<Unit, Vec<Execution>> = HashMap::new();
    for execution in executions(log_path) {
        assert!(
            journals.contains_key(&execution.unit.0),
            "{name}: {} is a key of a stored run",
            execution.key
        );
        assert_eq!(execution.attempt, 1, "{name}: no step needed a second attempt: {}", execution.key);
        by_unit.entry(execution.unit.clone()).or_default().push(execution);
    }
    let (mut once_before, mut twice, mut after) = (0, 0, 0);
    for (unit, runs) in &by_unit {
        if done_before.contains_key(unit) {
            assert_eq!(runs.len(), 1, "{name}: {unit:?} completed before the crash and never ran again");
            once_before += 1;
        } else if in_flight.contains(unit) {
            let [first, second] = runs.as_slice() else {
                panic!("{name}: {unit:?} was in flight and ran {} times", runs.len())
            };
            // The same task when its record reached the store before the kill (the
            // orchestrator's claim runs it again and the run finds it by key), a new one
            // with the same key when it had not: step tasks are written in the background,
            // the run's journal being what records their completion.
            assert_eq!(first.key, second.key, "{name}: a re-run keeps its idempotency key");
            twice += 1;
        } else {
            assert_eq!(runs.len(), 1, "{name}: {unit:?} started after the restart and ran once");
            after += 1;
        }
    }
    assert_eq!(once_before, RUNS + FANS, "{name}: the first steps and first items ran before the crash");
    assert_eq!(twice, HELD, "{name}: every held unit ran again");
    assert_eq!(after, RUNS, "{name}: every run's last step ran after the restart");

    // One task per unit (the key is unique), and it succeeded.
    let tasks = store.count_tasks(TaskState::Succeeded).await.unwrap();
    assert_eq!(tasks as usize, by_unit.len(), "{name}: one task per unit, no other");
    for runs in by_unit.values() {
        let key = runs[0].key.as_str();
        let record =
            store.task_by_idempotency_key("default", key).await.unwrap().expect("the task is stored");
        assert_eq!(record.state, TaskState::Succeeded, "{name}: {record:?}");
        let last = runs.last().expect("a unit ran").task.as_str();
        assert_eq!(record.id.to_string(), last, "{name}: the stored task is the one that ran last");
    }
}
