//! Model usage through the `Store` port, on every backend and on the in-memory store:
//! records written once, totals per namespace since a time (budgets after a restart),
//! grouped reports and pruning.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mark1_actors::domain::model::UsageRecord;
use mark1_actors::domain::workflow::RunId;
use mark1_actors::domain::{TaskId, TaskState};
use mark1_actors::ports::{MemoryStore, Store, UsageGroup, UsageQuery, UsageRow, UsageTotal, Write};
use uuid::Uuid;

use super::backends::{for_each_backend, Fresh};
use super::{put, task};

/// A whole number of milliseconds, as a record keeps its time.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_000)
}

fn ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A call in `namespace` at `at`, outside any agent, task or run.
fn call(namespace: &str, at: SystemTime, prompt: u32, completion: u32, cost: f64) -> UsageRecord {
    UsageRecord {
        id: Uuid::now_v7(),
        at_ms: ms(at),
        namespace: namespace.into(),
        task: None,
        run: None,
        agent: None,
        provider: "p1".into(),
        model: "small".into(),
        prompt_tokens: prompt,
        completion_tokens: completion,
        cost,
        latency_ms: 120,
        first_token_ms: Some(15),
    }
}

fn record(usage: &UsageRecord) -> Write {
    Write::PutUsage(Box::new(usage.clone()))
}

fn row(key: Option<&str>, calls: u64, prompt_tokens: u64, completion_tokens: u64, cost: f64) -> UsageRow {
    UsageRow { key: key.map(str::to_string), calls, prompt_tokens, completion_tokens, cost }
}

fn total(namespace: &str, tokens: u64, cost: f64) -> UsageTotal {
    UsageTotal { namespace: namespace.into(), tokens, cost }
}

fn by(group_by: UsageGroup) -> UsageQuery {
    UsageQuery { group_by, ..UsageQuery::default() }
}

async fn written_once_suite(store: &dyn Store) {
    let a = call("default", t0(), 10, 5, 0.5);
    let b = call("default", t0(), 1, 1, 0.25);
    let mut a_again = a.clone();
    a_again.cost = 100.0;
    a_again.prompt_tokens = 1000;
    store.write_batch(&[record(&a)]).await.unwrap();
    // The same id later, and twice within one batch: the first record stays.
    store.write_batch(&[record(&a_again), record(&b), record(&b)]).await.unwrap();
    // A background batch retried whole, with other writes: nothing in it is refused.
    let t = task("default", TaskState::Succeeded, t0());
    store.write_batch(&[record(&a), record(&b), put(&t)]).await.unwrap();
    assert_eq!(store.task(t.id).await.unwrap().map(|t| t.id), Some(t.id), "the batch was applied");
    let report = store.usage_report(&by(UsageGroup::Namespace)).await.unwrap();
    assert_eq!(report, vec![row(Some("default"), 2, 11, 6, 0.75)], "each call is counted once");
    assert_eq!(store.usage_totals(UNIX_EPOCH).await.unwrap(), vec![total("default", 17, 0.75)]);
}

#[tokio::test]
async fn usage_is_recorded_once_per_id() {
    written_once_suite(&MemoryStore::new()).await;
    for_each_backend(|Fresh { store, .. }| async move { written_once_suite(store.as_ref()).await }).await;
}

async fn totals_suite(store: &dyn Store) {
    let since = t0();
    let records = [
        call("team-b", since - Duration::from_millis(1), 1000, 1000, 9.0),
        call("team-b", since, 10, 20, 0.5),
        call("team-a", since + Duration::from_secs(1), 1, 2, 0.25),
        call("team-b", since + Duration::from_secs(3600), 5, 5, 1.0),
        call("team-a", since - Duration::from_secs(3600), 7, 7, 7.0),
    ];
    store.write_batch(&records.iter().map(record).collect::<Vec<_>>()).await.unwrap();
    assert_eq!(
        store.usage_totals(since).await.unwrap(),
        vec![total("team-a", 3, 0.25), total("team-b", 40, 1.5)],
        "records at or after `since`, by namespace"
    );
    assert_eq!(
        store.usage_totals(since - Duration::from_millis(1)).await.unwrap(),
        vec![total("team-a", 3, 0.25), total("team-b", 2040, 10.5)]
    );
    assert_eq!(store.usage_totals(since + Duration::from_secs(7200)).await.unwrap(), vec![]);
}

#[tokio::test]
async fn usage_totals_count_records_since_a_time_per_namespace() {
    totals_suite(&MemoryStore::new()).await;
    for_each_backend(|Fresh { store, .. }| async move { totals_suite(store.as_ref()).await }).await;
}

async fn report_suite(store: &dyn Store) {
    let at = |s| t0() + Duration::from_secs(s);
    let (t1, t2, r1) = (TaskId::new(), TaskId::new(), RunId::new());
    let with = |mut u: UsageRecord, agent: Option<&str>, task: Option<TaskId>, run: Option<RunId>| {
        (u.agent, u.task, u.run) = (agent.map(str::to_string), task, run);
        u
    };
    let model = |mut u: UsageRecord, model: &str| {
        u.model = model.into();
        u
    };
    let mut r4 = with(model(call("team-b", at(4), 1, 1, 1.0), "big"), Some("reader"), Some(t2), None);
    r4.provider = "p2".into();
    let records = [
        with(model(call("team-a", at(1), 100, 50, 2.0), "big"), Some("writer"), Some(t1), None),
        with(call("team-a", at(2), 10, 5, 0.5), Some("writer"), Some(t1), None),
        with(call("team-a", at(3), 20, 10, 0.25), None, None, Some(r1)),
        r4,
        call("team-a", at(5), 1000, 0, 0.25),
        with(model(call("team-c", at(6), 5, 5, 0.5), "tiny"), Some("critic"), None, Some(r1)),
        with(model(call("team-c", at(7), 10, 10, 0.5), "tiny"), Some("critic"), None, Some(r1)),
    ];
    store.write_batch(&records.iter().map(record).collect::<Vec<_>>()).await.unwrap();
    let (t1, t2, r1) = (t1.to_string(), t2.to_string(), r1.to_string());

    // Cost, then tokens, highest first: team-c and team-b cost the same, team-c used more.
    assert_eq!(
        store.usage_report(&by(UsageGroup::Namespace)).await.unwrap(),
        vec![
            row(Some("team-a"), 4, 1130, 65, 3.0),
            row(Some("team-c"), 2, 15, 15, 1.0),
            row(Some("team-b"), 1, 1, 1, 1.0),
        ]
    );
    assert_eq!(
        store.usage_report(&by(UsageGroup::Agent)).await.unwrap(),
        vec![
            row(Some("writer"), 2, 110, 55, 2.5),
            row(Some("critic"), 2, 15, 15, 1.0),
            row(Some("reader"), 1, 1, 1, 1.0),
            row(None, 2, 1020, 10, 0.5),
        ],
        "calls outside any agent in one row without a key"
    );
    assert_eq!(
        store.usage_report(&by(UsageGroup::Task)).await.unwrap(),
        vec![row(Some(&t1), 2, 110, 55, 2.5), row(None, 4, 1035, 25, 1.5), row(Some(&t2), 1, 1, 1, 1.0)]
    );
    assert_eq!(
        store.usage_report(&by(UsageGroup::Run)).await.unwrap(),
        vec![row(None, 4, 1111, 56, 3.75), row(Some(&r1), 3, 35, 25, 1.25)]
    );
    assert_eq!(
        store.usage_report(&by(UsageGroup::Model)).await.unwrap(),
        vec![
            row(Some("big"), 2, 101, 51, 3.0),
            row(Some("small"), 3, 1030, 15, 1.0),
            row(Some("tiny"), 2, 15, 15, 1.0),
        ]
    );
    assert_eq!(
        store.usage_report(&by(UsageGroup::Provider)).await.unwrap(),
        vec![row(Some("p1"), 6, 1145, 80, 4.0), row(Some("p2"), 1, 1, 1, 1.0)]
    );

    // Filters: a namespace; a time range, from `since` up to before `until`.
    let team_a = UsageQuery { namespace: Some("team-a".into()), ..by(UsageGroup::Agent) };
    assert_eq!(
        store.usage_report(&team_a).await.unwrap(),
        vec![row(Some("writer"), 2, 110, 55, 2.5), row(None, 2, 1020, 10, 0.5)]
    );
    let team_b = UsageQuery { namespace: Some("team-b".into()), ..by(UsageGroup::Model) };
    assert_eq!(store.usage_report(&team_b).await.unwrap(), vec![row(Some("big"), 1, 1, 1, 1.0)]);
    let nobody = UsageQuery { namespace: Some("team-z".into()), ..by(UsageGroup::Namespace) };
    assert_eq!(store.usage_report(&nobody).await.unwrap(), vec![]);
    let window = UsageQuery { since: Some(at(2)), until: Some(at(4)), ..by(UsageGroup::Namespace) };
    assert_eq!(store.usage_report(&window).await.unwrap(), vec![row(Some("team-a"), 2, 30, 15, 0.75)]);
    let late = UsageQuery {
        namespace: Some("team-c".into()),
        since: Some(at(7)),
        until: None,
        group_by: UsageGroup::Agent,
    };
    assert_eq!(store.usage_report(&late).await.unwrap(), vec![row(Some("critic"), 1, 10, 10, 0.5)]);
}

#[tokio::test]
async fn usage_reports_group_filter_and_order_by_cost() {
    report_suite(&MemoryStore::new()).await;
    for_each_backend(|Fresh { store, .. }| async move { report_suite(store.as_ref()).await }).await;
}

async fn prune_suite(store: &dyn Store) {
    let cutoff = t0();
    let old: Vec<UsageRecord> =
        (1..=3).map(|i| call("default", cutoff - Duration::from_secs(i), 1, 1, 1.0)).collect();
    let at_cutoff = call("default", cutoff, 10, 0, 0.5);
    let new = call("other", cutoff + Duration::from_secs(1), 100, 0, 0.25);
    let mut writes: Vec<Write> = old.iter().chain([&at_cutoff, &new]).map(record).collect();
    writes.push(put(&task("default", TaskState::Running, cutoff - Duration::from_secs(60))));
    store.write_batch(&writes).await.unwrap();

    assert_eq!(store.prune(cutoff, 2).await.unwrap(), 2, "at most `limit` usage records");
    assert_eq!(store.prune(cutoff, 2).await.unwrap(), 1);
    assert_eq!(store.prune(cutoff, 2).await.unwrap(), 0);
    assert_eq!(
        store.usage_totals(UNIX_EPOCH).await.unwrap(),
        vec![total("default", 10, 0.5), total("other", 100, 0.25)],
        "records older than the cutoff are gone, the rest stay"
    );
    // A pruned id is a new record if it comes again (the retry window is far shorter
    // than retention).
    store.write_batch(&[record(&new)]).await.unwrap();
    assert_eq!(store.usage_report(&by(UsageGroup::Namespace)).await.unwrap().len(), 2);
}

#[tokio::test]
async fn prune_deletes_old_usage_records_in_batches() {
    prune_suite(&MemoryStore::new()).await;
    for_each_backend(|Fresh { store, .. }| async move { prune_suite(store.as_ref()).await }).await;
}

#[test]
fn usage_groups_parse_from_query_strings() {
    for group in UsageGroup::ALL {
        assert_eq!(group.as_str().parse::<UsageGroup>(), Ok(group));
        assert_eq!(serde_json::to_value(group).unwrap(), serde_json::json!(group.as_str()));
    }
    let error = "cost".parse::<UsageGroup>().unwrap_err().to_string();
    assert!(
        error.contains("'cost'") && error.contains("namespace, agent, task, run, provider, model"),
        "{error}"
    );
    assert_eq!(UsageQuery::default().group_by, UsageGroup::Namespace);
}
