//! Typed join, `len`/`try_join_next`, tokio's cooperative budget, backpressure with
//! `reserve`, and waiting tasks in `tree()` (issue 24 items 1, 2 and 5). Written from the
//! issue's rules; `join_set_coop` is ported from tokio's tests/task_join_set.rs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use futures::FutureExt;
use machinery::helpers as hp;
use tokio::time::{Instant, sleep};

use crate::common::{self, multi_thread};

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn typed_join_next_gives_outputs_in_completion_order_with_ids_and_names() {
    // a: 3 s -> 30; b: 1 s -> 0; c: 2 s -> panics; d: cancelled at 0.5 s.
    let ctx = hp::Ctx::beginning("app");
    let js = hp::join_holder::<u32>(&ctx);
    let a = js.spawn_scoped("a", |_| async {
        sleep(s(3)).await;
        30
    });
    let b = js.spawn_silent(async {
        sleep(s(1)).await;
        0
    });
    let c = js.spawn_silent(async {
        sleep(s(2)).await;
        panic!("c panics")
    });
    let d = js.spawn(std::future::pending());
    sleep(Duration::from_millis(500)).await;
    d.cancel();
    let start = Instant::now();
    let mut seen = Vec::new();
    while let Some((id, out)) = js.join_next_with_id().await {
        let out = match out {
            Ok(v) => format!("ok {v}"),
            Err(f) if f.is_cancelled() => "cancelled".to_owned(),
            Err(f) => format!("failed {}", f.error().unwrap().type_name()),
        };
        seen.push((id, out, start.elapsed().as_millis()));
    }
    assert_eq!(
        seen,
        [
            (d.id(), "cancelled".to_owned(), 0),
            (b.id(), "ok 0".to_owned(), 500),
            (c.id(), "failed Panicked".to_owned(), 1500),
            (a.id(), "ok 30".to_owned(), 2500),
        ]
    );
    assert!(js.is_empty() && js.join_next().await.is_none());
    // The name is reachable through the finished task.
    let e = js.spawn_scoped("e", |_| async { 5 });
    let t = js.join_next_task().await.unwrap();
    assert_eq!((t.id(), t.name().as_deref()), (e.id(), Some("e")));
    assert_eq!(t.try_join().unwrap().unwrap(), 5);
}

#[tokio::test(start_paused = true)]
async fn len_counts_held_and_unjoined_and_try_join_next_never_waits() {
    let ctx = hp::Ctx::beginning("app");
    let js = hp::join_holder::<u64>(&ctx);
    assert_eq!((js.len(), js.try_join_next().is_none()), (0, true));
    for n in 1..=3 {
        js.spawn(async move {
            sleep(s(n)).await;
            n
        });
    }
    assert_eq!((js.len(), js.pending()), (3, 3));
    assert!(
        js.try_join_next().is_none(),
        "nothing finished: no wait, no value"
    );
    sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        (js.len(), js.pending()),
        (3, 1),
        "two finished, not yet joined"
    );
    assert_eq!(js.try_join_next_with_id().map(|(_, o)| o.unwrap()), Some(1));
    assert_eq!(js.try_join_next().map(Result::unwrap), Some(2));
    assert!(js.try_join_next().is_none());
    assert_eq!(js.len(), 1);
    assert_eq!(js.join_next().await.map(Result::unwrap), Some(3));
    assert_eq!(js.len(), 0);
    // The untyped holder counts the same way.
    let ts = hp::TaskHolder::builder(&ctx).joinable().build();
    ts.spawn(async { 1u8 });
    ts.spawn(async { "two" });
    tokio::task::yield_now().await;
    assert_eq!((ts.len(), ts.pending()), (2, 0));
    assert!(ts.try_join_next().is_some() && ts.try_join_next().is_some());
    assert!(ts.is_empty());
}

/// Ported from tokio's tests/task_join_set.rs `join_set_coop`: draining 1 000 finished
/// tasks runs out of the cooperative budget at least once.
#[tokio::test(flavor = "current_thread")]
async fn join_set_coop() {
    const TASK_NUM: u32 = 1000;
    static SEM: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);
    let ctx = hp::Ctx::beginning("app");
    let set = hp::join_holder::<()>(&ctx);
    for _ in 0..TASK_NUM {
        set.spawn(async {
            SEM.add_permits(1);
        });
    }
    let _ = SEM.acquire_many(TASK_NUM).await.unwrap();
    let mut count = 0;
    let mut coop_count = 0;
    loop {
        match set.join_next().now_or_never() {
            Some(Some(Ok(()))) => {}
            Some(Some(Err(err))) => panic!("failed: {err}"),
            None => {
                coop_count += 1;
                tokio::task::yield_now().await;
                continue;
            }
            Some(None) => break,
        }
        count += 1;
    }
    assert!(coop_count >= 1);
    assert_eq!(count, TASK_NUM);
}

/// Counts live task bodies (started, not yet dropped) and the most seen at once.
#[derive(Clone, Default)]
struct Live {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

impl Live {
    fn enter(&self) -> LiveGuard {
        let n = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(n, SeqCst);
        LiveGuard(self.now.clone())
    }
}

/// `stream.map(f).buffer_unordered(8)` as a holder: 1 M items through `limit(8)`, each
/// added after `reserve()`. Live bodies never exceed 8, `pending()` never exceeds 8 (a
/// slot comes back only after its task was released), and `len()` never exceeds 16 (8
/// held plus at most 8 finished since the last drain: documented in `len`).
async fn push_items_through_a_limit_of_8(items: u64) {
    let ctx = hp::Ctx::beginning("app");
    let js = hp::TaskHolder::builder(&ctx)
        .limit(8)
        .build_joinable::<u64>();
    let live = Live::default();
    let (mut sum, mut max_pending, mut max_len) = (0u64, 0, 0);
    for item in 0..items {
        let slot = js.reserve().await;
        let l = live.clone();
        slot.spawn(async move {
            let _g = l.enter();
            if item % 64 == 0 {
                tokio::task::yield_now().await;
            }
            item
        });
        max_pending = max_pending.max(js.pending());
        max_len = max_len.max(js.len());
        while let Some(out) = js.try_join_next() {
            sum += out.unwrap();
        }
    }
    while let Some(out) = js.join_next().await {
        sum += out.unwrap();
    }
    assert_eq!(sum, items * (items - 1) / 2, "every item once");
    assert!(live.max.load(SeqCst) <= 8, "live {}", live.max.load(SeqCst));
    assert!(max_pending <= 8, "pending {max_pending}");
    assert!(max_len <= 16, "len {max_len}");
    assert_eq!(live.now.load(SeqCst), 0);
}

#[test]
fn a_limit_of_8_carries_1m_items_with_at_most_8_live_current_thread() {
    common::current_thread().block_on(push_items_through_a_limit_of_8(1_000_000));
}

#[test]
fn a_limit_of_8_carries_items_with_at_most_8_live_multi_thread() {
    multi_thread(push_items_through_a_limit_of_8(200_000));
}

#[tokio::test(start_paused = true)]
async fn reserve_waits_for_a_slot_and_is_cancel_safe() {
    // limit 1: the first task holds the slot until 5 s; a reserve dropped while waiting
    // (timeout at 1 s) loses nothing: the next reserve gets the slot at 5 s.
    let ctx = hp::Ctx::beginning("app");
    let ts = hp::TaskHolder::builder(&ctx).limit(1).build();
    let start = Instant::now();
    ts.reserve().await.spawn(sleep(s(5)));
    assert!(
        tokio::time::timeout(s(1), ts.reserve()).await.is_err(),
        "no slot while the first task runs"
    );
    let slot = ts.reserve().await;
    assert_eq!(start.elapsed(), s(5));
    drop(slot); // unused: goes back
    let t = ts.reserve().await.spawn(async { 1 });
    assert_eq!(start.elapsed(), s(5));
    assert_eq!(t.await.unwrap(), 1);
    // Without a limit, reserve returns at once.
    let free = hp::task_holder(&ctx);
    free.reserve().await.spawn(async {}).await.unwrap();
    ts.finish().await;
}

#[tokio::test(start_paused = true)]
async fn reserve_returns_when_the_holder_is_cancelled_and_its_work_is_refused() {
    let ctx = hp::Ctx::beginning("app");
    let ts = hp::TaskHolder::builder(&ctx).limit(1).joinable().build();
    // Scoped work that ignores its context keeps its slot for ever.
    ts.spawn_scoped("stubborn", |_ctx| sleep(s(3600)));
    let c = ctx.clone();
    tokio::spawn(async move {
        sleep(s(2)).await;
        c.cancel();
    });
    let start = Instant::now();
    let slot = ts.reserve().await;
    assert_eq!(start.elapsed(), s(2));
    let refused = slot.try_spawn(async { 7 }).unwrap_err();
    assert_eq!(refused.into_inner().await, 7);
    let t = ts.reserve().await.spawn(async { 8 });
    assert!(t.done() && t.cancelled());
    drop(ts);
}

#[tokio::test(start_paused = true)]
async fn a_task_waiting_for_a_limit_slot_shows_as_waiting_in_the_tree() {
    let ctx = hp::Ctx::beginning("app");
    let ts = hp::TaskHolder::builder(&ctx).name("ts").limit(1).build();
    // Each sleeps 1 s from when it starts: a from 0, b from 1 s (when a's slot frees).
    ts.spawn_scoped("a", |_| async { sleep(s(1)).await });
    ts.spawn_scoped("b", |_| async { sleep(s(1)).await });
    let state_of = |name: &str| {
        let tree = ctx.tree();
        let line = tree
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("app-->ts-->{name} ")))
            .unwrap_or_else(|| panic!("{name} in {tree}"))
            .to_owned();
        line.rsplit_once(' ').unwrap().1.to_owned()
    };
    assert_eq!(
        (state_of("a"), state_of("b")),
        ("[pending]".into(), "[waiting]".into())
    );
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(state_of("b"), "[pending]", "b got its slot at 1 s");
    ts.finish().await;
}
