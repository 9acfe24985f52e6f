//! Stress on the multi-thread runtime: a task holder under churn (tasks adding tasks,
//! plain, scoped and limited work) while its context is cancelled at a seeded random
//! moment. Asserts every task added is finished when `finish` returns, every done
//! callback ran exactly once, nothing is left pending; a real-time watchdog fails the
//! test instead of hanging it.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use machinery::helpers as hp;

use crate::common;
use common::{Rng, WATCHDOG};

#[derive(Default)]
struct Tally {
    tasks: Mutex<Vec<hp::AnyTask>>,
    callbacks: AtomicUsize,
}

impl Tally {
    fn keep<T: Send + Sync + 'static>(self: &Arc<Self>, task: hp::Task<T>) {
        let t = self.clone();
        task.add_done_callback(move |_| {
            t.callbacks.fetch_add(1, SeqCst);
        });
        self.tasks.lock().unwrap().push(task.erased());
    }
}

/// One piece of churn: sleeps a little, sometimes adds more work through the handle.
fn add_work(h: &hp::TaskHolderHandle, tally: &Arc<Tally>, seed: u64, depth: u32) {
    let mut rng = Rng(seed | 1);
    let pause = Duration::from_micros(rng.below(500));
    let (h2, t2) = (h.clone(), tally.clone());
    let spawn_more = depth < 3 && rng.below(3) == 0;
    match rng.below(3) {
        0 | 1 => tally.keep(h.spawn_silent(async move {
            tokio::time::sleep(pause).await;
            if spawn_more {
                add_work(&h2, &t2, seed.wrapping_mul(31), depth + 1);
            }
        })),
        _ => tally.keep(
            h.spawn_scoped_silent("work", move |ctx: hp::Ctx| async move {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = ctx.wait() => {}
                }
                if spawn_more {
                    add_work(&h2, &t2, seed.wrapping_mul(17), depth + 1);
                }
            }),
        ),
    }
}

async fn one_round(seed: u64, limit: Option<usize>) -> (usize, bool) {
    let root = hp::Ctx::beginning("stress");
    let mut builder = hp::TaskHolder::builder(&root);
    if let Some(n) = limit {
        builder = builder.limit(n);
    }
    let ts = builder.build();
    let h = ts.handle();
    let tally = Arc::new(Tally::default());
    let mut rng = Rng(seed);
    let cancel_after = Duration::from_micros(rng.below(150_000));
    let hctx = ts.ctx().clone();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(cancel_after).await;
        hctx.cancel() // false when the holder had already finished
    });
    let adders: Vec<_> = (0..8u64)
        .map(|a| {
            let (h, t) = (h.clone(), tally.clone());
            tokio::spawn(async move {
                for i in 0..250u64 {
                    add_work(&h, &t, seed ^ (a << 32) ^ i, 0);
                    if i % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for a in adders {
        a.await.unwrap();
    }
    ts.finish().await;
    let cancelled = canceller.await.unwrap();
    // Work added from inside tasks after `finish` returned is cancelled at once; let
    // those callbacks land before counting.
    let tasks = std::mem::take(&mut *tally.tasks.lock().unwrap());
    for t in &tasks {
        t.wait().await;
    }
    let tasks: Vec<_> = tasks
        .into_iter()
        .chain(std::mem::take(&mut *tally.tasks.lock().unwrap()))
        .collect();
    for t in &tasks {
        t.wait().await;
        assert!(t.done());
    }
    assert_eq!(h.pending(), 0);
    // A task is seen done as soon as its outcome is set; its callbacks run right after,
    // on the thread that finished it. Give them a (bounded) moment to land.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while tally.callbacks.load(SeqCst) < tasks.len() && std::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        tally.callbacks.load(SeqCst),
        tasks.len(),
        "each callback once"
    );
    (tasks.len(), cancelled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holder_churn_with_its_context_cancelled_at_a_random_moment() {
    let start = std::time::Instant::now();
    let run = async {
        let mut total = 0;
        let mut cancelled_rounds = 0;
        for seed in 1..=20u64 {
            let limit = (seed % 3 == 0).then_some(4);
            let (n, cancelled) = one_round(seed * 0x9e37_79b9, limit).await;
            total += n;
            cancelled_rounds += usize::from(cancelled);
        }
        (total, cancelled_rounds)
    };
    let (total, cancelled_rounds) = tokio::time::timeout(WATCHDOG, run)
        .await
        .expect("watchdog: the holder stress hung");
    assert!(total >= 20 * 2_000);
    eprintln!(
        "stress_holder: 20 rounds, {total} tasks, {cancelled_rounds} cut short by the \
         cancel, in {:?}",
        start.elapsed()
    );
}
