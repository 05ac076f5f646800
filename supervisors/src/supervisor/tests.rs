//! Supervisor tests with toy actors: which children restart, why, how often, and when
//! the supervisor gives up. Conditions are polled, never slept for.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, ActorStatus, SupervisionEvent};

use super::*;
use crate::instrumented::{spawn_instrumented, Addr};
use crate::stats::{Restarts, Status};

pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

enum ToyMsg {
    Panic,
    Fail,
    Stop(Option<String>),
    Ping(ractor::RpcReplyPort<()>),
}

struct Toy;

#[derive(Clone, Default)]
struct Counters {
    starts: Arc<AtomicUsize>,
    /// Starts that must still fail (pre_start returns an error while this is above zero).
    failures: Arc<AtomicUsize>,
}

impl Actor for Toy {
    type Msg = ToyMsg;
    type State = ();
    type Arguments = Counters;

    async fn pre_start(&self, _: ActorRef<ToyMsg>, c: Counters) -> Result<(), ActorProcessingErr> {
        if c.failures.fetch_update(SeqCst, SeqCst, |f| f.checked_sub(1)).is_ok() {
            return Err("toy refuses to start".into());
        }
        c.starts.fetch_add(1, SeqCst);
        Ok(())
    }

    async fn handle(&self, me: ActorRef<ToyMsg>, msg: ToyMsg, _: &mut ()) -> Result<(), ActorProcessingErr> {
        match msg {
            ToyMsg::Panic => panic!("toy panics"),
            ToyMsg::Fail => return Err("toy fails".into()),
            ToyMsg::Stop(reason) => me.stop(reason),
            ToyMsg::Ping(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

fn toy(id: &str, counters: &Counters) -> ChildSpec {
    let c = counters.clone();
    ChildSpec::actor(id, move || (Toy, c.clone())).shutdown(Duration::from_secs(2))
}

struct Harness {
    sup: Addr<SupervisorMsg>,
    stats: Arc<ActorStats>,
}

fn args(
    name: &str,
    strategy: Strategy,
    children: Vec<ChildSpec>,
) -> (SupervisorArgs, Arc<Mutex<Vec<SupervisorEvent>>>) {
    let stats = ActorStats::new(name);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let mut args = SupervisorArgs::new(stats);
    args.strategy = strategy;
    args.children = children;
    args.backoff = Backoff::IMMEDIATE;
    args.intensity = Intensity { max_restarts: 50, window: Duration::from_secs(5) };
    args.observer = Some(Arc::new(move |e| sink.lock().push(e)));
    (args, events)
}

async fn start(name: &str, args: SupervisorArgs) -> Harness {
    let stats = args.stats.clone();
    let (sup, _) =
        spawn_instrumented(Some(name.to_string()), Supervisor, args, stats.clone(), None).await.unwrap();
    Harness { sup, stats }
}

async fn children(sup: &Addr<SupervisorMsg>) -> Vec<(String, Option<ActorCell>)> {
    sup.call(SupervisorMsg::Children, Some(Duration::from_secs(5))).await.unwrap().unwrap()
}

async fn ids(sup: &Addr<SupervisorMsg>) -> Vec<Option<ActorId>> {
    children(sup).await.into_iter().map(|(_, c)| c.map(|c| c.get_id())).collect()
}

async fn cell(sup: &Addr<SupervisorMsg>, id: &str) -> ActorCell {
    children(sup).await.into_iter().find(|(i, _)| i == id).and_then(|(_, c)| c).expect("child is running")
}

/// Polls until child `i` runs under a different id than `before`.
async fn wait_replaced(
    sup: &Addr<SupervisorMsg>,
    i: usize,
    before: &[Option<ActorId>],
) -> Vec<Option<ActorId>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = ids(sup).await;
        if now[i].is_some() && now[i] != before[i] {
            return now;
        }
        assert!(Instant::now() < deadline, "child {i} was not restarted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn shutdown(h: Harness) {
    let cells: Vec<ActorCell> = children(&h.sup).await.into_iter().filter_map(|(_, c)| c).collect();
    h.sup.actor().stop_and_wait(None, Some(Duration::from_secs(10))).await.unwrap();
    for c in cells {
        assert_eq!(c.get_status(), ActorStatus::Stopped, "children stop with their supervisor");
    }
    for child in h.stats.children() {
        assert_eq!(child.status(), Status::Stopped, "{} stopped", child.name());
    }
}

fn counters(n: usize) -> Vec<Counters> {
    (0..n).map(|_| Counters::default()).collect()
}

fn starts(c: &[Counters]) -> Vec<usize> {
    c.iter().map(|c| c.starts.load(SeqCst)).collect()
}

async fn strategy_case(
    name: &str,
    strategy: Strategy,
) -> (Vec<Option<ActorId>>, Vec<Option<ActorId>>, Vec<usize>) {
    let c = counters(3);
    let specs = vec![toy("a", &c[0]), toy("b", &c[1]), toy("c", &c[2])];
    let (args, _) = args(name, strategy, specs);
    let h = start(name, args).await;
    let before = ids(&h.sup).await;
    cell(&h.sup, "b").await.send_message(ToyMsg::Panic).unwrap();
    let after = wait_replaced(&h.sup, 1, &before).await;
    // A round trip through the mailbox: stale events from stopped siblings are handled
    // before it (supervision events have priority), so no late extra restart hides.
    let after2 = ids(&h.sup).await;
    assert_eq!(after, after2);
    let b = h.stats.children()[1].restarts();
    assert_eq!(b, Restarts { failed: 1, ..Restarts::default() });
    assert_eq!(h.stats.children()[0].restarts().total(), 0, "only the failed child counts a restart");
    let s = starts(&c);
    shutdown(h).await;
    (before, after, s)
}

#[tokio::test]
async fn one_for_one_restarts_only_the_failed_child() {
    let (before, after, starts) = strategy_case("t-ofo", Strategy::OneForOne).await;
    assert_eq!(before[0], after[0]);
    assert_eq!(before[2], after[2]);
    assert_eq!(starts, vec![1, 2, 1]);
}

#[tokio::test]
async fn one_for_all_restarts_every_child() {
    let (before, after, starts) = strategy_case("t-ofa", Strategy::OneForAll).await;
    assert!(before.iter().zip(&after).all(|(b, a)| a.is_some() && a != b));
    assert_eq!(starts, vec![2, 2, 2]);
}

#[tokio::test]
async fn rest_for_one_restarts_the_failed_child_and_later_ones() {
    let (before, after, starts) = strategy_case("t-rfo", Strategy::RestForOne).await;
    assert_eq!(before[0], after[0]);
    assert_ne!(before[2], after[2]);
    assert_eq!(starts, vec![1, 2, 2]);
}

#[tokio::test]
async fn restart_policies_and_causes() {
    let c = counters(5);
    let specs = vec![
        toy("perm", &c[0]),
        toy("trans-normal", &c[1]).restart(Restart::Transient),
        toy("trans-abnormal", &c[2]).restart(Restart::Transient),
        toy("temp", &c[3]).restart(Restart::Temporary),
        toy("killed", &c[4]),
    ];
    let (args, events) = args("t-policies", Strategy::OneForOne, specs);
    let h = start("t-policies", args).await;
    let stats = h.stats.clone();
    let slot = |name: &str| stats.children().into_iter().find(|s| s.name() == name);

    cell(&h.sup, "perm").await.send_message(ToyMsg::Stop(None)).unwrap();
    cell(&h.sup, "trans-normal").await.send_message(ToyMsg::Stop(Some("normal".into()))).unwrap();
    cell(&h.sup, "trans-abnormal").await.send_message(ToyMsg::Stop(Some("boom".into()))).unwrap();
    cell(&h.sup, "temp").await.send_message(ToyMsg::Fail).unwrap();
    cell(&h.sup, "killed").await.kill();

    eventually("restarts", || starts(&c) == vec![2, 1, 2, 1, 2]).await;
    eventually("temporary removed", || slot("t-policies/temp").is_none()).await;
    let kids = children(&h.sup).await;
    let running: Vec<(&str, bool)> = kids.iter().map(|(id, c)| (id.as_str(), c.is_some())).collect();
    assert_eq!(
        running,
        vec![("perm", true), ("trans-normal", false), ("trans-abnormal", true), ("killed", true)]
    );
    assert_eq!(slot("t-policies/perm").unwrap().restarts(), Restarts { stopped: 1, ..Default::default() });
    assert_eq!(slot("t-policies/trans-normal").unwrap().restarts().total(), 0);
    assert_eq!(slot("t-policies/trans-normal").unwrap().status(), Status::Stopped);
    assert_eq!(
        slot("t-policies/trans-abnormal").unwrap().restarts(),
        Restarts { stopped: 1, ..Default::default() }
    );
    assert_eq!(slot("t-policies/killed").unwrap().restarts(), Restarts { killed: 1, ..Default::default() });
    let exited: Vec<String> = events
        .lock()
        .iter()
        .filter_map(|e| match e {
            SupervisorEvent::ChildExited { child, .. } => Some(child.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(exited.len(), 2);
    assert!(
        exited.contains(&"t-policies/temp".to_string())
            && exited.contains(&"t-policies/trans-normal".to_string())
    );
    shutdown(h).await;
}

#[tokio::test]
async fn failed_restart_counts_as_start_failed_and_retries_with_backoff() {
    let c = counters(1);
    let (mut args, events) = args("t-startfail", Strategy::OneForOne, vec![toy("a", &c[0])]);
    args.backoff = Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(20),
        multiplier: 2.0,
        jitter: false,
    };
    let h = start("t-startfail", args).await;
    c[0].failures.store(2, SeqCst);
    cell(&h.sup, "a").await.send_message(ToyMsg::Panic).unwrap();
    eventually("restarted after two failed starts", || c[0].starts.load(SeqCst) == 2).await;
    let a = h.stats.children()[0].clone();
    eventually("running", || a.status() == Status::Running).await;
    assert_eq!(a.restarts(), Restarts { failed: 1, start_failed: 2, ..Default::default() });
    let causes: Vec<RestartCause> = events
        .lock()
        .iter()
        .filter_map(|e| match e {
            SupervisorEvent::ChildRestarted { cause, .. } => Some(*cause),
            _ => None,
        })
        .collect();
    assert_eq!(causes, vec![RestartCause::Failed, RestartCause::StartFailed, RestartCause::StartFailed]);
    shutdown(h).await;
}

#[tokio::test]
async fn backoff_delays_the_restart() {
    let c = counters(2);
    let (mut args, _) = args("t-backoff", Strategy::OneForOne, vec![toy("slow", &c[0]), toy("fast", &c[1])]);
    let delay = Duration::from_millis(300);
    args.backoff = Backoff { initial: delay, max: delay, multiplier: 1.0, jitter: false };
    let h = start("t-backoff", args).await;
    let failed_at = Instant::now();
    cell(&h.sup, "slow").await.send_message(ToyMsg::Panic).unwrap();
    let slot = h.stats.children()[0].clone();
    eventually("restarting", || slot.status() == Status::Restarting).await;
    eventually("restarted", || c[0].starts.load(SeqCst) == 2).await;
    // A lower bound only: timers never fire early, however loaded the machine is.
    assert!(failed_at.elapsed() >= delay);
    assert!(children(&h.sup).await[0].1.is_some());
    shutdown(h).await;
}

/// Spawns the supervisor under a toy parent that records its supervision events.
struct Parent;

impl Actor for Parent {
    type Msg = ();
    type State = Arc<Mutex<Vec<String>>>;
    type Arguments = Arc<Mutex<Vec<String>>>;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        log: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(log)
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        log: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(_, err) = event {
            log.lock().push(err.to_string());
        }
        Ok(())
    }
}

async fn escalation_case(name: &str, keep_failing_starts: bool) {
    let c = counters(2);
    let (mut args, events) = args(name, Strategy::OneForOne, vec![toy("a", &c[0]), toy("b", &c[1])]);
    args.intensity = Intensity { max_restarts: 3, window: Duration::from_secs(5) };
    args.backoff = Backoff {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(2),
        multiplier: 2.0,
        jitter: false,
    };
    let stats = args.stats.clone();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (parent, _) = Actor::spawn(None, Parent, log.clone()).await.unwrap();
    let (sup, _) =
        spawn_instrumented(Some(name.into()), Supervisor, args, stats.clone(), Some(parent.get_cell()))
            .await
            .unwrap();
    let b = cell(&sup, "b").await;
    if keep_failing_starts {
        c[0].failures.store(usize::MAX, SeqCst);
        cell(&sup, "a").await.send_message(ToyMsg::Panic).unwrap();
    } else {
        // Three restarts are allowed; the fourth failure escalates.
        for k in 0..4 {
            cell(&sup, "a").await.send_message(ToyMsg::Panic).unwrap();
            if k < 3 {
                // The restart runs inside the supervisor's handler, so once the new
                // incarnation has started, a `Children` call sees it.
                eventually("a restarted", || c[0].starts.load(SeqCst) == k + 2).await;
            }
        }
    }
    eventually("parent sees the failure", || !log.lock().is_empty()).await;
    let reason = log.lock()[0].clone();
    assert!(
        reason.contains(&format!("supervisor '{name}': 4 restarts in 5s exceeded intensity 3/5s")),
        "{reason}"
    );
    assert!(events.lock().iter().any(|e| matches!(e, SupervisorEvent::Escalated { .. })));
    assert_eq!(stats.status(), Status::Failed);
    assert_eq!(b.get_status(), ActorStatus::Stopped, "children are stopped on escalation");
    let a = stats.children()[0].restarts();
    assert_eq!(a.total(), 3, "three restarts allowed, the fourth escalates: {a:?}");
    parent.stop_and_wait(None, Some(Duration::from_secs(5))).await.unwrap();
}

#[tokio::test]
async fn intensity_exceeded_fails_the_supervisor_upward() {
    escalation_case("t-escalate", false).await;
}

#[tokio::test]
async fn a_child_that_never_restarts_escalates() {
    escalation_case("t-escalate-start", true).await;
}

#[tokio::test]
async fn a_static_child_that_cannot_start_fails_the_supervisor_start() {
    let c = counters(2);
    c[1].failures.store(1, SeqCst);
    let (args, _) = args("t-static-fail", Strategy::OneForOne, vec![toy("a", &c[0]), toy("b", &c[1])]);
    let stats = args.stats.clone();
    let err = spawn_instrumented(Some("t-static-fail".into()), Supervisor, args, stats.clone(), None)
        .await
        .err()
        .expect("start fails");
    assert!(err.to_string().contains("child 'b' failed to start"), "{err}");
    assert_eq!(stats.children()[0].status(), Status::Stopped, "a was stopped again");
}

#[tokio::test]
async fn dynamic_children_start_stop_and_limit() {
    let c = counters(3);
    let (mut args, _) = args("t-dynamic", Strategy::OneForOne, vec![]);
    args.max_children = Some(2);
    let h = start("t-dynamic", args).await;
    let start_child = |spec: ChildSpec| {
        let sup = h.sup.clone();
        async move { sup.call(|r| SupervisorMsg::StartChild(spec, r), None).await.unwrap().unwrap() }
    };
    let a = start_child(toy("a", &c[0])).await.unwrap();
    assert_eq!(start_child(toy("a", &c[0])).await.unwrap_err(), SupervisorError::DuplicateChild("a".into()));
    c[1].failures.store(1, SeqCst);
    assert!(matches!(start_child(toy("b", &c[1])).await, Err(SupervisorError::StartFailed { .. })));
    start_child(toy("b", &c[1])).await.unwrap();
    assert_eq!(start_child(toy("c", &c[2])).await.unwrap_err(), SupervisorError::Full(2));
    assert_eq!(h.stats.children().len(), 2);

    let stop = |id: &str| {
        let (sup, id) = (h.sup.clone(), id.to_string());
        async move { sup.call(|r| SupervisorMsg::StopChild(id, r), None).await.unwrap().unwrap() }
    };
    stop("a").await.unwrap();
    assert_eq!(a.get_status(), ActorStatus::Stopped);
    assert_eq!(stop("a").await.unwrap_err(), SupervisorError::NoSuchChild("a".into()));
    assert_eq!(children(&h.sup).await.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), vec!["b"]);
    assert_eq!(h.stats.children().len(), 1, "stopped child's stats detached");
    assert_eq!(c[0].starts.load(SeqCst), 1, "a stopped on request is not restarted");
    start_child(toy("c", &c[2])).await.unwrap();
    shutdown(h).await;
}

#[tokio::test]
async fn snapshot_shows_names_restarts_and_messages() {
    let c = counters(1);
    let (args, _) = args("t-snap", Strategy::OneForOne, vec![toy("a", &c[0])]);
    let h = start("t-snap", args).await;
    let registered = ractor::registry::where_is("t-snap/a").expect("child registered under the supervisor");
    let a: ActorRef<ToyMsg> = registered.into();
    for _ in 0..3 {
        ractor::call_t!(a, ToyMsg::Ping, 5_000).unwrap();
    }
    a.kill();
    eventually("restarted", || c[0].starts.load(SeqCst) == 2).await;
    let a: ActorRef<ToyMsg> = cell(&h.sup, "a").await.into();
    ractor::call_t!(a, ToyMsg::Ping, 5_000).unwrap();
    let snap = h.stats.snapshot();
    assert_eq!(snap.name, "t-snap");
    let child = snap.find("t-snap/a").expect("child in the tree");
    assert_eq!(child.restarts, Restarts { killed: 1, ..Default::default() });
    assert_eq!(child.status, Status::Running);
    assert_eq!(child.actor_id, a.get_id().pid());
    assert_eq!(child.messages_handled, 4, "counts survive restarts");
    assert!(snap.messages_handled >= 1, "the supervisor's own messages are counted");
    shutdown(h).await;
}
