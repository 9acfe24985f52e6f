//! merge.* workloads: `hp::queue_manager` beside `futures::stream::select_all` and
//! tokio-stream's `StreamMap`.
//!
//! Peers only for now: the queue manager (branch `qm`) has not landed; when it does, its
//! side goes here beside the peers, with the same sources.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::{self, BoxStream};

use crate::chan::on_runtime;
use crate::measure::{Report, best, ns_per};

pub const IDLE: usize = 10_000;
pub const ACTIVE_ITEMS: usize = 1_000_000;
/// StreamMap polls every stream per item: 1M items over 10k streams would take minutes,
/// so it gets fewer items; the figure is per item either way.
const STREAMMAP_ITEMS: usize = 10_000;
pub const ALL_ACTIVE: usize = 10;
pub const PER_ACTIVE: usize = 100_000;

pub fn run(r: &mut Report) {
    if !r.wants("merge.select_all") {
        return;
    }
    r.note(
        "merge.select_all: peers only; machinery's side needs the queue manager \
         (branch qm), which has not landed yet",
    );
    let v1 = "10k sources, 1 active";
    let d = best(|| on_runtime(false, select_all_one_active(ACTIVE_ITEMS)));
    r.add(
        "merge.select_all",
        "futures select_all",
        v1,
        ns_per(d, ACTIVE_ITEMS),
        "ns/item",
    );
    let d = best(|| on_runtime(false, streammap_one_active(STREAMMAP_ITEMS)));
    r.add(
        "merge.select_all",
        "tokio-stream StreamMap",
        v1,
        ns_per(d, STREAMMAP_ITEMS),
        "ns/item",
    );

    let v2 = "10 sources, all active";
    let d = best(|| on_runtime(false, select_all_all_active()));
    r.add(
        "merge.select_all",
        "futures select_all",
        v2,
        ns_per(d, ALL_ACTIVE * PER_ACTIVE),
        "ns/item",
    );
    let d = best(|| on_runtime(false, streammap_all_active()));
    r.add(
        "merge.select_all",
        "tokio-stream StreamMap",
        v2,
        ns_per(d, ALL_ACTIVE * PER_ACTIVE),
        "ns/item",
    );
}

fn idle_and_one(items: usize) -> Vec<BoxStream<'static, usize>> {
    let mut v: Vec<BoxStream<'static, usize>> =
        (0..IDLE - 1).map(|_| stream::pending().boxed()).collect();
    v.push(stream::iter(0..items).boxed());
    v
}

async fn select_all_one_active(items: usize) -> Duration {
    let start = std::time::Instant::now();
    let merged = stream::select_all(idle_and_one(items));
    let n = merged.take(items).count().await;
    assert_eq!(n, items);
    start.elapsed()
}

async fn streammap_one_active(items: usize) -> Duration {
    let start = std::time::Instant::now();
    let mut map = tokio_stream::StreamMap::new();
    for (i, s) in idle_and_one(items).into_iter().enumerate() {
        map.insert(i, s);
    }
    let n = map.take(items).count().await;
    assert_eq!(n, items);
    start.elapsed()
}

async fn select_all_all_active() -> Duration {
    let start = std::time::Instant::now();
    let merged = stream::select_all((0..ALL_ACTIVE).map(|_| stream::iter(0..PER_ACTIVE)));
    assert_eq!(merged.count().await, ALL_ACTIVE * PER_ACTIVE);
    start.elapsed()
}

async fn streammap_all_active() -> Duration {
    let start = std::time::Instant::now();
    let mut map = tokio_stream::StreamMap::new();
    for i in 0..ALL_ACTIVE {
        map.insert(i, stream::iter(0..PER_ACTIVE));
    }
    assert_eq!(map.count().await, ALL_ACTIVE * PER_ACTIVE);
    start.elapsed()
}
