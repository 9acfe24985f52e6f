//! The sync queue (`hp::sync_queue`) on std threads: order, the end with the ctx (at once,
//! not after `timeout`), nothing lost at the instant the ctx finishes, re-entrancy and
//! concurrent producers and consumers. Order and completeness only, never time.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use machinery::helpers as hp;

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
        q.append(i);
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
    q.append(1);
    assert_eq!(got_rx.recv_timeout(WATCHDOG).unwrap(), Some(1));
    ctx.cancel();
    assert_eq!(end_rx.recv_timeout(WATCHDOG).expect("woken at once"), None);
}

#[test]
fn a_zero_timeout_sleeps_until_woken_by_an_append_or_the_ctx() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<u32>(&ctx).timeout(Duration::ZERO).build();
    let rx = consume(&q);
    q.append(5);
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
        q.append(i);
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
        q.append(i);
    }
    ctx.cancel();
    q.append(3); // accepted after the end too
    assert_eq!(q.get_all().collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert!(q.is_empty());
}

#[test]
fn breaking_out_and_restarting_continues_where_it_stopped() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<u32>(&ctx).build();
    for i in 0..6 {
        q.append(i);
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
fn len_counts_items_a_running_iteration_has_taken_but_not_yielded() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<u32>(&ctx).build();
    for i in 0..4 {
        q.append(i);
    }
    let mut it = q.get_all();
    assert_eq!(it.next(), Some(0));
    assert_eq!(q.len(), 3);
    q.append(4);
    assert_eq!(q.len(), 4);
    drop(it);
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
            thread::spawn(move || (0..EACH).for_each(|i| q.append((p, i))))
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
                thread::spawn(move || (0..EACH).for_each(|i| q.append(p * EACH + i)))
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
