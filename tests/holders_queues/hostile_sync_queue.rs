//! Hostile tests for the sync queue's (`hp::sync_queue`) lock-per-item path on its
//! `parking_lot` lock and condition variable: 100 000 items through four producers and
//! several consumers that mix blocking iterations, `get` with a timeout that keeps
//! running out, and consumers that stop early; the context finishing mid-burst; item
//! `Drop`s that re-enter the queue (append, read, cancel its context) from a consumer's
//! thread; a consumer that panics while handling an item; every sleeping consumer woken
//! at once by a finished context.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use machinery::helpers as hp;

use crate::common;
use common::{Rng, WATCHDOG, with_watchdog};

const ITEMS: u64 = 100_000;
const PRODUCERS: u64 = 4;
const HOUR: Duration = Duration::from_secs(3600);

/// An item: (producer, number).
type Item = (u64, u64);

/// How a consumer of [`pool`] takes its items.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// One iteration until the end.
    Iterate,
    /// `get(HOUR)` until `Finished`.
    GetBlocking,
    /// `get` with a timeout of 0–2 µs, retried on `Timeout`: the deadline path, hit
    /// over and over while items keep coming.
    GetTimeout,
    /// Short iterations (1–16 items) it stops and restarts: a consumer that stops with
    /// the queue still full must strand nothing.
    StopAndRestart,
}

/// Four producers append `ITEMS` items `(producer, n)` in all; a consumer of each
/// `style` takes them. When `cancel_at` is given the context is cancelled once that many
/// items were taken (mid-burst), else after the producers are done. Returns what the
/// consumers took, each consumer's list in its own order, and the queue.
fn pool(
    styles: &[Style],
    empty_on_finished: bool,
    timeout: Duration,
    cancel_at: Option<usize>,
) -> (Vec<Vec<Item>>, hp::SyncQueue<Item>) {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<Item>(&ctx)
        .empty_on_finished(empty_on_finished)
        .timeout(timeout)
        .build();
    let taken = Arc::new(AtomicUsize::new(0));
    let consumers: Vec<_> = styles
        .iter()
        .enumerate()
        .map(|(c, &style)| {
            let (q, taken) = (q.clone(), taken.clone());
            thread::spawn(move || {
                let mut seen = Vec::new();
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ c as u64);
                let took = |v: Item, seen: &mut Vec<Item>| {
                    seen.push(v);
                    taken.fetch_add(1, SeqCst);
                };
                match style {
                    Style::Iterate => q.get_all().for_each(|v| took(v, &mut seen)),
                    Style::GetBlocking => {
                        while let Ok(v) = q.get(HOUR) {
                            took(v, &mut seen);
                        }
                    }
                    Style::GetTimeout => loop {
                        let wait = Duration::from_micros(rng.below(3));
                        match q.get(wait) {
                            Ok(v) => took(v, &mut seen),
                            Err(hp::SyncGetError::Timeout) => continue,
                            Err(hp::SyncGetError::Finished) => break,
                            Err(e) => panic!("{e}"),
                        }
                    },
                    Style::StopAndRestart => loop {
                        let n = 1 + rng.below(16) as usize;
                        let mut it = q.get_all();
                        let before = seen.len();
                        it.by_ref().take(n).for_each(|v| took(v, &mut seen));
                        // Fewer than asked: the iteration ended (the ctx is done).
                        if seen.len() - before < n {
                            break;
                        }
                    },
                }
                seen
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let q = q.clone();
            thread::spawn(move || {
                for n in (p..ITEMS).step_by(PRODUCERS as usize) {
                    q.append((p, n)).unwrap();
                }
            })
        })
        .collect();
    if let Some(at) = cancel_at {
        while taken.load(SeqCst) < at && !producers.iter().all(|p| p.is_finished()) {
            thread::yield_now();
        }
        q.ctx().cancel();
    }
    producers.into_iter().for_each(|p| p.join().unwrap());
    q.ctx().cancel();
    let seen = consumers.into_iter().map(|c| c.join().unwrap()).collect();
    (seen, q)
}

/// Each consumer saw each producer's items in the order they were appended; with what
/// is `left`, every item was seen exactly once.
fn assert_all_once(seen: &[Vec<Item>], left: Vec<Item>) {
    for mine in seen {
        for p in 0..PRODUCERS {
            let of_p: Vec<u64> = mine.iter().filter(|x| x.0 == p).map(|x| x.1).collect();
            assert!(of_p.is_sorted(), "producer {p}'s items out of order");
        }
    }
    let mut all: Vec<Item> = seen.iter().flatten().copied().chain(left).collect();
    all.sort_unstable_by_key(|x| x.1);
    let want: Vec<Item> = (0..ITEMS).map(|n| (n % PRODUCERS, n)).collect();
    assert_eq!(all.len(), want.len(), "lost or duplicated items");
    assert_eq!(all, want);
}

const ALL_STYLES: [Style; 4] = [
    Style::Iterate,
    Style::GetBlocking,
    Style::GetTimeout,
    Style::StopAndRestart,
];

#[test]
fn four_producers_and_four_kinds_of_consumer_share_100_000_items_exactly_once() {
    with_watchdog(|| {
        for timeout in [Duration::ZERO, Duration::from_micros(50), HOUR] {
            let (seen, q) = pool(&ALL_STYLES, true, timeout, None);
            // Cancelled after the producers were done: the consumers drained it all.
            assert!(q.is_empty(), "timeout {timeout:?}");
            assert_all_once(&seen, Vec::new());
        }
    });
}

#[test]
fn the_ctx_finishing_mid_burst_drops_nothing_the_rest_stays_for_remaining() {
    with_watchdog(|| {
        for (round, at) in [0, 1, 1_000, 30_000, 90_000].into_iter().enumerate() {
            // Without `empty_on_finished`: what the consumers did not take stays.
            let (seen, q) = pool(&ALL_STYLES, false, Duration::ZERO, Some(at));
            let left: Vec<_> = q.remaining().collect();
            assert_all_once(&seen, left);
            // With it: the consumers take what is queued until they find it empty;
            // what producers append after that also stays.
            let styles = &ALL_STYLES[round % 4..];
            let (seen, q) = pool(styles, true, Duration::from_micros(50), Some(at));
            let left: Vec<_> = q.remaining().collect();
            assert_all_once(&seen, left);
        }
    });
}

#[test]
fn a_lone_consumer_with_a_timeout_that_keeps_running_out_gets_100_000_items_in_order() {
    with_watchdog(|| {
        let (seen, q) = pool(&[Style::GetTimeout], false, Duration::ZERO, None);
        let left: Vec<_> = q.remaining().collect();
        assert_all_once(&seen, left);
    });
}

/// An item whose `Drop` (run on the consumer's thread, after the queue gave it out)
/// re-enters the queue: reads it, and appends the next item while `left > 0`.
struct Chain {
    q: hp::SyncQueue<Chain>,
    left: usize,
    drops: Arc<AtomicUsize>,
}

impl Drop for Chain {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        let _ = self.q.len();
        let _ = self.q.is_empty();
        if self.left > 0 {
            self.q
                .append(Chain {
                    q: self.q.clone(),
                    left: self.left - 1,
                    drops: self.drops.clone(),
                })
                .unwrap();
        }
    }
}

#[test]
fn item_drops_that_append_to_their_own_queue_100_000_times_with_two_consumers() {
    // Two consumers drop what they take; each drop appends the next item, so the chain
    // moves from one consumer to the other through the queue, 100 000 links long.
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let q = hp::sync_queue::<Chain>(&ctx).timeout(HOUR).build();
        let drops = Arc::new(AtomicUsize::new(0));
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || q.get_all().map(drop).count())
            })
            .collect();
        q.append(Chain {
            q: q.clone(),
            left: ITEMS as usize,
            drops: drops.clone(),
        })
        .unwrap();
        while drops.load(SeqCst) <= ITEMS as usize {
            thread::yield_now();
        }
        ctx.cancel();
        let taken: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
        assert_eq!(taken, ITEMS as usize + 1);
        assert_eq!(drops.load(SeqCst), ITEMS as usize + 1);
        assert!(q.is_empty());
    });
}

/// An item whose `Drop` cancels the queue's own context.
struct CancelsQueue(hp::Ctx);

impl Drop for CancelsQueue {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[test]
fn an_item_drop_cancelling_the_queue_ctx_wakes_the_sleeping_consumers_at_once() {
    // Three consumers sleep with a one-hour timeout; a fourth takes the one item and
    // drops it, which cancels the queue's context: the sleepers must end at once.
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let q = hp::sync_queue::<CancelsQueue>(&ctx).timeout(HOUR).build();
        let (tx, rx) = mpsc::channel();
        let sleepers: Vec<_> = (0..3)
            .map(|c| {
                let (q, tx) = (q.clone(), tx.clone());
                thread::spawn(move || {
                    let n = if c == 0 {
                        q.get(HOUR).map(drop).ok().map_or(0, |()| 1)
                    } else {
                        q.get_all().map(drop).count()
                    };
                    tx.send(n).unwrap();
                })
            })
            .collect();
        // Let them fall asleep (not needed for correctness: any order must end).
        thread::sleep(Duration::from_millis(20));
        q.append(CancelsQueue(q.ctx().clone())).unwrap();
        let n: usize = (0..3)
            .map(|_| rx.recv_timeout(WATCHDOG).expect("every sleeper ended"))
            .sum();
        assert_eq!(n, 1, "exactly one consumer took the item");
        sleepers.into_iter().for_each(|s| s.join().unwrap());
        assert!(q.ctx().cancelled());
    });
}

#[test]
fn a_consumer_that_panics_while_handling_an_item_leaves_the_queue_working() {
    // No lock is held while a consumer handles its item: its panic poisons nothing, and
    // the next consumer (one-hour timeout) gets the rest in order.
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let q = hp::sync_queue::<u32>(&ctx)
            .timeout(HOUR)
            .empty_on_finished(true)
            .build();
        let panicker = {
            let q = q.clone();
            thread::spawn(move || {
                for n in &q {
                    assert_ne!(n, 0, "handler boom");
                }
            })
        };
        q.append(0).unwrap();
        assert!(panicker.join().is_err());
        let worker = {
            let q = q.clone();
            thread::spawn(move || q.get_all().collect::<Vec<_>>())
        };
        (1..=1000).for_each(|n| {
            q.append(n).unwrap();
        });
        ctx.cancel();
        assert_eq!(worker.join().unwrap(), (1..=1000).collect::<Vec<_>>());
        assert!(q.is_empty());
        assert_eq!(q.get(HOUR), Err(hp::SyncGetError::Finished));
    });
}

#[test]
fn a_finished_ctx_wakes_every_sleeping_iteration_and_get_at_once() {
    with_watchdog(|| {
        for empty_on_finished in [false, true] {
            let ctx = hp::Ctx::beginning("t");
            let q = hp::sync_queue::<u32>(&ctx)
                .timeout(HOUR)
                .empty_on_finished(empty_on_finished)
                .build();
            let (tx, rx) = mpsc::channel();
            let sleepers: Vec<_> = (0..4)
                .map(|c| {
                    let (q, tx) = (q.clone(), tx.clone());
                    thread::spawn(move || {
                        let ended = if c % 2 == 0 {
                            q.get_all().next().is_none()
                        } else {
                            q.get(HOUR) == Err(hp::SyncGetError::Finished)
                        };
                        tx.send(ended).unwrap();
                    })
                })
                .collect();
            thread::sleep(Duration::from_millis(20));
            let started = std::time::Instant::now();
            ctx.cancel();
            for _ in 0..4 {
                assert!(rx.recv_timeout(WATCHDOG).expect("woken at once"));
            }
            assert!(started.elapsed() < WATCHDOG);
            sleepers.into_iter().for_each(|s| s.join().unwrap());
        }
    });
}
