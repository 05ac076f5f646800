//! Run with: cargo bench --bench snapshot
//!
//! The live-tree snapshot (`mark1 tree`, `NodeHandle::tree`) reads atomics and walks the
//! slots' children lists; nothing is messaged. Baseline in the same run: the same walk
//! summing one counter instead of building snapshot nodes, so the ratio of the two is
//! the price of the serializable tree.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mark1_supervisors::ActorStats;

/// A node-shaped tree: `pools` pools of `workers` workers under one supervisor.
fn tree(pools: usize, workers: usize) -> Arc<ActorStats> {
    let root = ActorStats::new("node");
    let agents = root.child("node/agents");
    for p in 0..pools {
        let pool = agents.child(format!("node/agents/pool:default/a{p}"));
        for w in 0..workers {
            let worker = pool.child(format!("node/agents/pool:default/a{p}/worker-{w}"));
            worker.on_sent();
            worker.on_handled(Duration::from_micros(3));
        }
    }
    root
}

fn walk_sum(stats: &ActorStats) -> u64 {
    stats.messages_handled() + stats.children().iter().map(|c| walk_sum(c)).sum::<u64>()
}

fn snapshot(c: &mut Criterion) {
    let mut group = c.benchmark_group("tree");
    for (pools, workers) in [(10, 10), (100, 100)] {
        let root = tree(pools, workers);
        let nodes = 2 + pools * (workers + 1);
        group.bench_with_input(BenchmarkId::new("snapshot", nodes), &root, |b, root| {
            b.iter(|| black_box(root.snapshot()))
        });
        group.bench_with_input(BenchmarkId::new("baseline_walk", nodes), &root, |b, root| {
            b.iter(|| black_box(walk_sum(root)))
        });
    }
    group.finish();
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
