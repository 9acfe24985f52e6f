//! The sync queue (`hp::sync_queue`) on std threads: order, the end with the ctx (at once,
//! not after `timeout`), nothing lost at the instant the ctx finishes, re-entrancy and
//! concurrent producers and consumers. Order and completeness only, never time.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use machinery::helpers as hp;

use crate::common;
use common::with_watchdog;

/// Generous watchdog for a thread's result, so a bug fails instead of hanging.
const WATCHDOG: Duration = Duration::from_secs(20);

fn consume<T: Send + 'static>(q: &hp::SyncQueue<T>) -> mpsc::Receiver<Vec<T>> {
    let (tx, rx) = mpsc::channel();
    let q = q.clone();
    thread::spawn(move || {
        let seen: Vec<T> = q.get_all().collect();
        let _ = tx.send(seen);
    });
    rx
}

#[test]
fn yields_appended_items_in_order_until_the_ctx_is_done() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<u32>(&ctx).build();
    let rx = consume(&q);
    for i in 0..1000 {
        q.append(i).unwrap();
    }
    while !q.is_empty() {
        thread::yield_now();
    }
    ctx.cancel();
    let seen = rx.recv_timeout(WATCHDOG).expect("consumer ended");
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
}

#[test]
fn a_finished_ctx_wakes_a_blocked_iterator_at_once_not_after_the_timeout() {
    let ctx = hp::Ctx::beginning("t");
    // With a one-hour timeout only the done callback can end the wait in time.
    let q = hp::sync_queue::<u32>(&ctx)
        .timeout(Duration::from_secs(3600))
        .build();
    let (got_tx, got_rx) = mpsc::channel();
    let (end_tx, end_rx) = mpsc::channel();
    let qc = q.clone();
    thread::spawn(move || {
        let mut it = qc.get_all();
        got_tx.send(it.next()).unwrap();
        end_tx.send(it.next()).unwrap(); // blocks until the ctx is done
    });
    q.append(1).unwrap();
    assert_eq!(got_rx.recv_timeout(WATCHDOG).unwrap(), Some(1));
    ctx.cancel();
    assert_eq!(end_rx.recv_timeout(WATCHDOG).expect("woken at once"), None);
}

#[test]
fn a_zero_timeout_sleeps_until_woken_by_an_append_or_the_ctx() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<u32>(&ctx).timeout(Duration::ZERO).build();
    let rx = consume(&q);
    q.append(5).unwrap();
    while !q.is_empty() {
        thread::yield_now();
    }
    ctx.cancel();
    assert_eq!(rx.recv_timeout(WATCHDOG).unwrap(), [5]);
}

#[test]
fn what_is_left_when_the_ctx_finishes_stays_for_remaining() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<u32>(&ctx).build();
    for i in 0..5 {
        q.append(i).unwrap();
    }
    let mut seen = Vec::new();
    for n in &q {
        seen.push(n);
        if n == 1 {
            ctx.cancel();
        }
    }
    assert_eq!(seen, [0, 1]);
    assert_eq!(q.len(), 3);
    assert_eq!(q.remaining().collect::<Vec<_>>(), [2, 3, 4]);
    assert!(q.is_empty());
    assert_eq!(q.remaining().next(), None, "remaining never waits");
}

#[test]
fn empty_on_finished_first_yields_what_is_left() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<u32>(&ctx).empty_on_finished(true).build();
    for i in 0..3 {
        q.append(i).unwrap();
    }
    ctx.cancel();
    q.append(3).unwrap(); // accepted after the end too
    assert_eq!(q.get_all().collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert!(q.is_empty());
}

#[test]
fn breaking_out_and_restarting_continues_where_it_stopped() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<u32>(&ctx).build();
    for i in 0..6 {
        q.append(i).unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        for n in &q {
            seen.push(n);
            if n % 2 == 1 {
                break;
            }
        }
    }
    assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
}

#[test]
fn len_counts_what_is_queued_while_an_iteration_runs() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<u32>(&ctx).build();
    for i in 0..4 {
        q.append(i).unwrap();
    }
    {
        let mut it = q.get_all();
        assert_eq!(it.next(), Some(0));
        assert_eq!(q.len(), 3);
        q.append(4).unwrap();
        assert_eq!(q.len(), 4);
    }
    assert_eq!(q.remaining().collect::<Vec<_>>(), [1, 2, 3, 4]);
}

#[test]
fn the_queue_has_a_named_child_ctx_cancelled_with_the_last_handle() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<u32>(&ctx).name("lines").build();
    assert_eq!(q.ctx().name(), "t-->lines");
    let d = hp::sync_queue::<u32>(&ctx).build();
    assert_eq!(d.ctx().name(), "t-->sync_queue");
    let child = q.ctx().clone();
    let q2 = q.clone();
    drop(q);
    assert!(!child.done());
    drop(q2);
    assert!(child.cancelled());
    assert!(!ctx.done());
}

#[test]
fn concurrent_producer_threads_lose_and_duplicate_nothing() {
    const PRODUCERS: u64 = 4;
    const EACH: u64 = 25_000;
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<(u64, u64)>(&ctx).build();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = q.clone();
            thread::spawn(move || {
                (0..EACH).for_each(|i| {
                    q.append((p, i)).unwrap();
                })
            })
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    let qc = q.clone();
    thread::spawn(move || {
        let mut next = [0u64; PRODUCERS as usize];
        for (p, i) in qc.get_all().take((PRODUCERS * EACH) as usize) {
            assert_eq!(i, next[p as usize], "producer {p} out of order");
            next[p as usize] += 1;
        }
        let _ = tx.send(next);
    });
    let next = rx.recv_timeout(WATCHDOG).expect("consumer finished");
    assert_eq!(next, [EACH; PRODUCERS as usize]);
    producers.into_iter().for_each(|t| t.join().unwrap());
    assert!(q.is_empty());
}

#[test]
fn items_racing_the_ctx_finishing_are_never_dropped() {
    for round in 0..20 {
        const EACH: u32 = 5_000;
        let ctx = hp::Ctx::beginning("t");
        let q = hp::sync_queue::<u32>(&ctx).build();
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || {
                    (0..EACH).for_each(|i| {
                        q.append(p * EACH + i).unwrap();
                    })
                })
            })
            .collect();
        let rx1 = consume(&q);
        let rx2 = consume(&q);
        // Cancel somewhere in the middle of the stream of appends.
        while q.len() < (round * 100) as usize && !producers.iter().all(|t| t.is_finished()) {
            thread::yield_now();
        }
        ctx.cancel();
        let mut all = rx1.recv_timeout(WATCHDOG).expect("consumer 1 ended");
        all.extend(rx2.recv_timeout(WATCHDOG).expect("consumer 2 ended"));
        producers.into_iter().for_each(|t| t.join().unwrap());
        all.extend(q.remaining());
        all.sort_unstable();
        assert_eq!(all, (0..2 * EACH).collect::<Vec<_>>(), "round {round}");
    }
}

/// Two workers iterate one queue; every job waits at a two-party barrier, so the jobs
/// can only be handled in pairs, one by each worker. A worker that held a second job
/// while the other waited idle would leave the other at the barrier forever (the
/// watchdog fails the test). Returns what each worker handled.
fn two_workers_share(q: &hp::SyncQueue<u32>, append: impl FnOnce()) -> [Vec<u32>; 2] {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (q, barrier) = (q.clone(), barrier.clone());
            thread::spawn(move || {
                let mut mine = Vec::new();
                for job in &q {
                    mine.push(job);
                    barrier.wait(); // "handling" the job takes as long as the other's
                }
                mine
            })
        })
        .collect();
    append();
    while !q.is_empty() {
        thread::yield_now();
    }
    // Both workers are at or past the last barrier: the last pair is being handled.
    let mut out = workers.into_iter().map(|w| {
        q.ctx().cancel();
        w.join().unwrap()
    });
    [out.next().unwrap(), out.next().unwrap()]
}

fn assert_shared_evenly(got: [Vec<u32>; 2], jobs: u32) {
    for mine in &got {
        assert_eq!(mine.len(), jobs as usize / 2, "{got:?}");
        assert!(
            mine.is_sorted(),
            "each worker takes jobs in queue order: {got:?}"
        );
    }
    let mut all: Vec<u32> = got.concat();
    all.sort_unstable();
    assert_eq!(all, (0..jobs).collect::<Vec<_>>());
}

#[test]
fn two_workers_share_a_burst_appended_while_they_wait() {
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let q = hp::sync_queue::<u32>(&ctx).build();
        let got = two_workers_share(&q, || {
            (0..20).for_each(|j| {
                q.append(j).unwrap();
            })
        });
        assert_shared_evenly(got, 20);
    });
}

#[test]
fn two_workers_share_a_burst_queued_before_they_start() {
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let q = hp::sync_queue::<u32>(&ctx).timeout(Duration::ZERO).build();
        (0..20).for_each(|j| {
            q.append(j).unwrap();
        });
        let got = two_workers_share(&q, || {});
        assert_shared_evenly(got, 20);
    });
}

#[test]
fn workers_with_get_share_a_burst() {
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let q = hp::sync_queue::<u32>(&ctx).build();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (q, barrier) = (q.clone(), barrier.clone());
                thread::spawn(move || {
                    let mut mine = Vec::new();
                    while let Ok(job) = q.get(Duration::from_secs(3600)) {
                        mine.push(job);
                        barrier.wait();
                    }
                    mine
                })
            })
            .collect();
        (0..20).for_each(|j| {
            q.append(j).unwrap();
        });
        while !q.is_empty() {
            thread::yield_now();
        }
        q.ctx().cancel();
        let got: Vec<Vec<u32>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        assert_shared_evenly([got[0].clone(), got[1].clone()], 20);
    });
}

#[test]
fn a_consumer_that_stops_leaves_the_rest_to_a_sleeping_one_with_a_zero_timeout() {
    // With `timeout` zero a sleeping consumer wakes only when notified: when the other
    // stops, what is still queued must reach the sleeper without another append.
    with_watchdog(|| {
        for _ in 0..50 {
            let ctx = hp::Ctx::beginning("t");
            let q = hp::sync_queue::<u32>(&ctx).timeout(Duration::ZERO).build();
            let (tx, rx) = mpsc::channel();
            let sleeper = {
                let q = q.clone();
                thread::spawn(move || {
                    for n in &q {
                        tx.send(n).unwrap();
                    }
                })
            };
            (1..=3).for_each(|n| {
                q.append(n).unwrap();
            });
            // Another consumer takes one and stops (none if the sleeper was quicker).
            let first = q.get(Duration::ZERO).ok();
            let mut got: Vec<u32> = first.into_iter().collect();
            while got.len() < 3 {
                got.push(rx.recv_timeout(WATCHDOG).expect("the sleeper was woken"));
            }
            got.sort_unstable();
            assert_eq!(got, [1, 2, 3]);
            ctx.cancel();
            sleeper.join().unwrap();
        }
    });
}

#[test]
fn get_takes_one_item_or_times_out() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<u32>(&ctx).build();
    assert_eq!(q.get(Duration::ZERO), Err(hp::SyncGetError::Timeout));
    assert_eq!(
        q.get(Duration::from_millis(1)),
        Err(hp::SyncGetError::Timeout)
    );
    q.append(1).unwrap();
    q.append(2).unwrap();
    assert_eq!(q.get(Duration::ZERO), Ok(1));
    assert_eq!(q.len(), 1);
    ctx.cancel();
    assert_eq!(q.get(Duration::ZERO), Err(hp::SyncGetError::Finished));
    assert_eq!(q.remaining().collect::<Vec<_>>(), [2], "kept for remaining");
}

#[test]
fn get_with_empty_on_finished_drains_then_reports_finished() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<u32>(&ctx).empty_on_finished(true).build();
    q.append(1).unwrap();
    ctx.cancel();
    assert_eq!(q.get(Duration::from_secs(3600)), Ok(1));
    assert_eq!(
        q.get(Duration::from_secs(3600)),
        Err(hp::SyncGetError::Finished)
    );
}

#[test]
fn a_blocked_get_is_woken_by_an_append_and_by_the_ctx_at_once() {
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let q = hp::sync_queue::<u32>(&ctx).build();
        let qc = q.clone();
        let t = thread::spawn(move || {
            let first = qc.get(Duration::from_secs(3600));
            let second = qc.get(Duration::from_secs(3600));
            (first, second)
        });
        q.append(7).unwrap();
        while !q.is_empty() {
            thread::yield_now();
        }
        ctx.cancel();
        assert_eq!(t.join().unwrap(), (Ok(7), Err(hp::SyncGetError::Finished)));
    });
}

#[test]
fn an_ended_iteration_stays_ended() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<u32>(&ctx).build();
    ctx.cancel();
    let mut it = q.get_all();
    assert_eq!(it.next(), None);
    q.append(1).unwrap();
    assert_eq!(it.next(), None, "fused");
}

#[test]
fn remaining_stays_ended_once_it_returned_none() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<u32>(&ctx).build();
    q.append(1).unwrap();
    let mut left = q.remaining();
    assert_eq!(left.next(), Some(1));
    assert_eq!(left.next(), None);
    q.append(2).unwrap();
    assert_eq!(left.next(), None, "fused");
    assert_eq!(q.remaining().collect::<Vec<_>>(), [2]);
}
