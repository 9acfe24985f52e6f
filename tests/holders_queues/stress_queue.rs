//! Stress on the multi-thread runtime: many producers on one queue while the consumer
//! keeps restarting its iteration (dropping it mid-way, or ended by a breaker a producer
//! sets) and instructions and priority items are mixed in; the sync queue with producer
//! and consumer threads. Asserts nothing is lost or duplicated and each producer's
//! back-appended items keep their order; a real-time watchdog fails instead of hanging.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use futures::StreamExt;
use machinery::helpers as hp;

use crate::common;
use common::{Rng, WATCHDOG};

/// (producer, sequence number, appended with priority)
type Item = (u32, u32, bool);

/// Checks that `got` holds every item exactly once and that each producer's
/// back-appended items arrived in the order they were appended.
fn check_complete(got: &[Item], producers: u32, per: u32) {
    let mut seen = HashSet::new();
    for it in got {
        assert!(seen.insert((it.0, it.1)), "duplicate {it:?}");
    }
    assert_eq!(seen.len(), (producers * per) as usize, "items lost");
    for p in 0..producers {
        let back: Vec<u32> = got
            .iter()
            .filter(|it| it.0 == p && !it.2)
            .map(|it| it.1)
            .collect();
        assert!(
            back.windows(2).all(|w| w[0] < w[1]),
            "producer {p} reordered"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_producers_one_consumer_restarting_iterations_lose_nothing() {
    const PRODUCERS: u32 = 16;
    const PER: u32 = 20_000;
    let ctx = hp::Ctx::beginning("stress");
    let mut q = hp::queue::<Item>(&ctx).build();
    let instructions = Arc::new(AtomicUsize::new(0));
    let start = std::time::Instant::now();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let h = q.handle();
            let ran = instructions.clone();
            tokio::spawn(async move {
                let mut rng = Rng(u64::from(p) + 7);
                for n in 0..PER {
                    let priority = rng.below(50) == 0;
                    let item = (p, n, priority);
                    assert!(
                        if priority {
                            h.append_front(item)
                        } else {
                            h.append(item)
                        }
                        .is_ok()
                    );
                    match rng.below(1_000) {
                        0 => h.breaker().set(),
                        1 => {
                            let ran = ran.clone();
                            h.append_instruction(move || {
                                ran.fetch_add(1, SeqCst);
                            })
                            .unwrap();
                        }
                        2..=20 => tokio::task::yield_now().await,
                        _ => {}
                    }
                }
            })
        })
        .collect();
    let total = (PRODUCERS * PER) as usize;
    let consume = async {
        let mut got: Vec<Item> = Vec::with_capacity(total);
        let mut rng = Rng(99);
        let mut restarts = 0u32;
        while got.len() < total {
            // One iteration: take up to a random number of items, then drop it (or it
            // ends by itself when a producer sets the breaker).
            let budget = 1 + rng.below(2_000) as usize;
            let mut all = q.get_all();
            let mut taken = 0;
            while taken < budget && got.len() < total {
                match all.next().await {
                    Some(it) => {
                        got.push(it);
                        taken += 1;
                    }
                    None => break, // the breaker: restart
                }
            }
            restarts += 1;
        }
        (got, restarts)
    };
    let (got, restarts) = tokio::time::timeout(WATCHDOG, consume)
        .await
        .expect("watchdog: the consumer hung");
    for p in producers {
        p.await.unwrap();
    }
    check_complete(&got, PRODUCERS, PER);
    // Instructions queued behind the last item may still be waiting: drain them.
    assert_eq!(q.remaining().count(), 0);
    assert!(instructions.load(SeqCst) > 0);
    eprintln!(
        "stress_queue: {total} items, {restarts} iterations, {} instructions in {:?}",
        instructions.load(SeqCst),
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn producers_racing_a_context_cancel_lose_nothing_across_remaining() {
    // The queue's context is cancelled while producers append: what the iteration did
    // not yield is in `remaining`, each item exactly once.
    const PRODUCERS: u32 = 8;
    const PER: u32 = 10_000;
    for seed in 0..5u64 {
        let ctx = hp::Ctx::beginning("stress");
        let mut q = hp::queue::<Item>(&ctx).build();
        let qctx = q.ctx().clone();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let h = q.handle();
                tokio::spawn(async move {
                    for n in 0..PER {
                        h.append((p, n, false)).unwrap();
                        if n % 97 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        let canceller = tokio::spawn(async move {
            let mut rng = Rng(seed + 1);
            for _ in 0..rng.below(200) {
                tokio::task::yield_now().await;
            }
            qctx.cancel();
        });
        let mut got: Vec<Item> = tokio::time::timeout(WATCHDOG, q.get_all().collect())
            .await
            .expect("watchdog: the iteration did not end");
        canceller.await.unwrap();
        for p in producers {
            p.await.unwrap();
        }
        got.extend(q.remaining());
        check_complete(&got, PRODUCERS, PER);
    }
}

#[test]
fn sync_queue_many_producer_threads_two_consumer_threads_lose_nothing() {
    const PRODUCERS: u32 = 8;
    const PER: u32 = 20_000;
    let ctx = hp::Ctx::beginning("stress");
    let q = hp::sync_queue::<Item>(&ctx).build();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let runner = std::thread::spawn(move || {
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    (0..PER).for_each(|n| {
                        q.append((p, n, false)).unwrap();
                    })
                })
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|c| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut rng = Rng(c + 3);
                    // Iterations stopped after a random number of items, then restarted.
                    while !q.ctx().done() {
                        let n = 1 + rng.below(5_000) as usize;
                        got.extend(q.get_all().take(n));
                    }
                    got
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        while !q.is_empty() {
            std::thread::yield_now();
        }
        q.ctx().cancel();
        let mut got: Vec<Item> = Vec::new();
        for c in consumers {
            got.extend(c.join().unwrap());
        }
        got.extend(q.remaining());
        done_tx.send(got).unwrap();
    });
    let got = done_rx
        .recv_timeout(WATCHDOG)
        .expect("watchdog: the sync queue stress hung");
    runner.join().unwrap();
    let mut seen = HashSet::new();
    for it in &got {
        assert!(seen.insert((it.0, it.1)), "duplicate {it:?}");
    }
    assert_eq!(seen.len(), (PRODUCERS * PER) as usize, "items lost");
}
