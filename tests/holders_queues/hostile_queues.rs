//! Hostile tests for the async queue (`hp::queue`), the sync queue (`hp::sync_queue`)
//! and the ticker (`hp::tick`), by class: a user `Drop` that re-enters the crate, panics
//! in user code, chains of 100 000 links on a 2 MiB stack, several consumers, every route
//! by which an item becomes available waking a waiting consumer at once, cancellation at
//! every await point, and both runtimes.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use machinery::helpers as hp;
use tokio::time::{Instant, sleep};

use crate::common;
use common::{WATCHDOG, in_child_process, multi_thread, with_watchdog};

const CHAIN: usize = 100_000;
const HOUR: Duration = Duration::from_secs(3600);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Counts its drops; panics in `Drop` when `panics`.
struct Tracked {
    drops: Arc<AtomicUsize>,
    panics: bool,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.panics {
            panic!("item drop boom");
        }
    }
}

fn tracked(drops: &Arc<AtomicUsize>, panics: bool) -> Tracked {
    Tracked {
        drops: drops.clone(),
        panics,
    }
}

// ---------------------------------------------------------------- user Drop re-enters

/// An item whose `Drop` uses a handle of the queue it is in.
struct ReEnter {
    handle: hp::QueueHandle<ReEnter>,
    refused: Arc<AtomicUsize>,
}

impl Drop for ReEnter {
    fn drop(&mut self) {
        let _ = self.handle.len();
        let _ = self.handle.breaker().is_set();
        if self.handle.append_instruction(|| {}).is_err() {
            self.refused.fetch_add(1, SeqCst);
        }
    }
}

#[test]
fn dropping_a_queue_whose_items_reenter_it_neither_deadlocks_nor_accepts_more() {
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let q = hp::queue::<ReEnter>(&ctx).build();
        let refused = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            q.append(ReEnter {
                handle: q.handle(),
                refused: refused.clone(),
            })
            .unwrap();
        }
        let h = q.handle();
        drop(q);
        assert_eq!(
            refused.load(SeqCst),
            3,
            "appends to a dropped queue are refused"
        );
        assert!(h.is_empty());
    });
}

/// An item whose `Drop` cancels the context it captured (the queue's own).
struct CancelsOnDrop(hp::Ctx);

impl Drop for CancelsOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[tokio::test(start_paused = true)]
async fn an_item_dropped_by_the_user_may_cancel_the_queue_ctx_and_the_consumer_ends() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<CancelsOnDrop>(&ctx).build();
    let qctx = q.ctx().clone();
    q.append(CancelsOnDrop(qctx.clone())).unwrap();
    q.append(CancelsOnDrop(qctx.clone())).unwrap();
    let mut all = q.get_all();
    let first = all.next().await;
    drop(first); // cancels the queue's ctx
    assert!(all.next().await.is_none());
    drop(all);
    drop(q); // drops the other item (cancelling again) outside every lock
    assert!(qctx.cancelled());
}

#[test]
fn an_instruction_capturing_the_queue_ctx_is_dropped_unrun_with_the_queue() {
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let q = hp::queue::<u32>(&ctx).build();
        let guard = q.ctx().child("inner").drop_guard();
        let inner = guard.ctx().clone();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        q.append_instruction(move || {
            r.fetch_add(1, SeqCst);
            drop(guard);
        })
        .unwrap();
        drop(q);
        assert_eq!(ran.load(SeqCst), 0);
        assert!(inner.cancelled(), "the captured guard was dropped");
    });
}

#[test]
fn a_sync_queue_item_whose_drop_uses_another_handle_does_not_deadlock() {
    struct UsesQueue(hp::SyncQueue<u32>);
    impl Drop for UsesQueue {
        fn drop(&mut self) {
            self.0.append(1).unwrap();
            let _ = self.0.len();
        }
    }
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let other = hp::sync_queue::<u32>(&ctx).build();
        let q = hp::sync_queue::<UsesQueue>(&ctx).build();
        q.append(UsesQueue(other.clone())).unwrap();
        q.append(UsesQueue(other.clone())).unwrap();
        drop(q.remaining().next()); // dropped by the user
        drop(q); // the last one dropped with the queue
        assert_eq!(other.len(), 2);
    });
}

// ---------------------------------------------------------------- panics in user code

#[test]
fn panicking_item_drops_when_a_queue_is_dropped_are_caught_and_the_rest_dropped() {
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let drops = Arc::new(AtomicUsize::new(0));
        let q = hp::queue::<Tracked>(&ctx).build();
        let qctx = q.ctx().clone();
        for i in 0..6 {
            q.append(tracked(&drops, i % 2 == 0)).unwrap();
        }
        drop(q); // two panics in a row would abort if not caught one by one
        assert_eq!(drops.load(SeqCst), 6);
        assert!(qctx.cancelled());
    });
}

#[tokio::test(start_paused = true)]
async fn panicking_drops_of_items_in_a_consumer_batch_are_caught_too() {
    let ctx = hp::Ctx::beginning("t");
    let drops = Arc::new(AtomicUsize::new(0));
    let mut q = hp::queue::<Tracked>(&ctx).build();
    for _ in 0..4 {
        q.append(tracked(&drops, true)).unwrap();
    }
    let first = q.get_all().next().await.unwrap(); // the rest sit in the batch
    std::mem::forget(first);
    drop(q);
    assert_eq!(drops.load(SeqCst), 3);
}

#[test]
fn an_item_refused_by_a_dropped_queue_comes_back_and_its_panicking_drop_is_the_callers() {
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let drops = Arc::new(AtomicUsize::new(0));
        let q = hp::queue::<Tracked>(&ctx).build();
        let h = q.handle();
        drop(q);
        let a = h.append(tracked(&drops, true)).unwrap_err();
        let b = h.append_front(tracked(&drops, true)).unwrap_err();
        assert_eq!(
            drops.load(SeqCst),
            0,
            "the queue ran no Drop: both came back"
        );
        for back in [a, b] {
            let item = back.into_inner();
            assert!(
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(item))).is_err()
            );
        }
        assert_eq!(drops.load(SeqCst), 2);
    });
}

#[test]
fn panicking_item_drops_when_a_sync_queue_is_dropped_are_caught_and_the_rest_dropped() {
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let drops = Arc::new(AtomicUsize::new(0));
        let q = hp::sync_queue::<Tracked>(&ctx).build();
        let qctx = q.ctx().clone();
        for i in 0..6 {
            q.append(tracked(&drops, i % 2 == 0)).unwrap();
        }
        drop(q);
        assert_eq!(drops.load(SeqCst), 6);
        assert!(qctx.cancelled());
    });
}

#[tokio::test(start_paused = true)]
async fn a_panicking_instruction_or_hook_leaves_the_queue_consistent_and_waking() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let h = q.handle();
    q.process_after_yielded(|_| panic!("hook boom"));
    q.append_instruction(|| panic!("instruction boom")).unwrap();
    q.append(1).unwrap();
    q.append_instruction_front(|| panic!("front instruction boom"))
        .unwrap();
    tokio::spawn(async move {
        sleep(secs(1)).await;
        h.append_instruction(|| panic!("late instruction boom"))
            .unwrap();
        sleep(secs(1)).await;
        h.append(2).unwrap();
    });
    let start = Instant::now();
    let mut all = q.get_all();
    assert_eq!(all.next().await, Some(1));
    assert_eq!(all.next().await, Some(2)); // woken by the append after the panics
    assert_eq!(start.elapsed(), secs(2));
    drop(all);
    assert_eq!(q.len(), 0);
    assert_eq!(q.remaining().count(), 0);
}

#[test]
fn a_panicking_instruction_met_by_remaining_is_caught() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    q.append(1).unwrap();
    q.append_instruction(|| panic!("boom")).unwrap();
    q.append(2).unwrap();
    assert_eq!(q.remaining().collect::<Vec<_>>(), [1, 2]);
}

// ---------------------------------------------------------------- chains of 100 000

fn instruction_chain(h: hp::QueueHandle<u32>, left: usize, ran: Arc<AtomicUsize>) {
    ran.fetch_add(1, SeqCst);
    if left == 0 {
        h.append(7).unwrap();
    } else {
        let h2 = h.clone();
        h.append_instruction(move || instruction_chain(h2, left - 1, ran))
            .unwrap();
    }
}

#[test]
fn an_instruction_that_appends_an_instruction_100_000_times_runs_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "an_instruction_that_appends_an_instruction_100_000_times_runs_on_a_small_stack",
        || {
            let rt = common::current_thread();
            rt.block_on(async {
                let ctx = hp::Ctx::beginning("t");
                let mut q = hp::queue::<u32>(&ctx).build();
                let ran = Arc::new(AtomicUsize::new(0));
                let (h, r) = (q.handle(), ran.clone());
                q.append_instruction(move || instruction_chain(h, CHAIN, r))
                    .unwrap();
                assert_eq!(q.get_all().next().await, Some(7));
                assert_eq!(ran.load(SeqCst), CHAIN + 1);
            });
        },
    );
}

/// An item holding the last handle of the next queue, which holds the next item, ...
struct QueueLink(#[allow(dead_code)] Option<hp::Queue<QueueLink>>);

#[test]
fn a_chain_of_100_000_queues_each_holding_the_next_drops_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "a_chain_of_100_000_queues_each_holding_the_next_drops_on_a_small_stack",
        || {
            let ctx = hp::Ctx::beginning("t");
            let mut link = QueueLink(None);
            for _ in 0..CHAIN {
                let q = hp::queue::<QueueLink>(&ctx).build();
                q.append(link).unwrap();
                link = QueueLink(Some(q));
            }
            drop(link);
            assert_eq!(ctx.child_count(), 0, "every queue's child ctx is gone");
        },
    );
}

/// Same with sync queues.
struct SyncLink(#[allow(dead_code)] Option<hp::SyncQueue<SyncLink>>);

#[test]
fn a_chain_of_100_000_sync_queues_each_holding_the_next_drops_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "a_chain_of_100_000_sync_queues_each_holding_the_next_drops_on_a_small_stack",
        || {
            let ctx = hp::Ctx::beginning("t");
            let mut link = SyncLink(None);
            for _ in 0..CHAIN {
                let q = hp::sync_queue::<SyncLink>(&ctx).build();
                q.append(link).unwrap();
                link = SyncLink(Some(q));
            }
            drop(link);
            assert_eq!(ctx.child_count(), 0);
        },
    );
}

thread_local! {
    /// AppendError `Reappends` given back to their `Drop`, dropped by the test's loop (as a
    /// user keeps a chain's drop iterative): the queue itself runs none of them.
    static GIVEN_BACK: std::cell::RefCell<Vec<Reappends>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An item whose `Drop` appends the next such item to a queue that refuses it (dropped),
/// which gives it back; the `Drop` stashes it, the test drops it, whose `Drop` appends
/// the next, ... `left` times.
struct Reappends {
    handle: hp::QueueHandle<Reappends>,
    left: usize,
    drops: Arc<AtomicUsize>,
}

impl Drop for Reappends {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.left > 0 {
            let next = Reappends {
                handle: self.handle.clone(),
                left: self.left - 1,
                drops: self.drops.clone(),
            };
            let back = self.handle.append(next).unwrap_err().into_inner();
            GIVEN_BACK.with(|g| g.borrow_mut().push(back));
        }
    }
}

#[test]
fn a_drop_that_reappends_to_a_dropped_queue_100_000_times_runs_on_a_small_stack() {
    in_child_process(
        module_path!(),
        "a_drop_that_reappends_to_a_dropped_queue_100_000_times_runs_on_a_small_stack",
        || {
            let ctx = hp::Ctx::beginning("t");
            let q = hp::queue::<Reappends>(&ctx).build();
            let drops = Arc::new(AtomicUsize::new(0));
            q.append(Reappends {
                handle: q.handle(),
                left: CHAIN,
                drops: drops.clone(),
            })
            .unwrap();
            drop(q);
            while let Some(next) = GIVEN_BACK.with(|g| g.borrow_mut().pop()) {
                drop(next);
            }
            assert_eq!(drops.load(SeqCst), CHAIN + 1);
        },
    );
}

// ---------------------------------------------------------------- several consumers

#[test]
fn four_sync_consumers_and_four_producers_lose_and_duplicate_nothing() {
    const EACH: u64 = 25_000;
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let q = hp::sync_queue::<(u64, u64)>(&ctx)
            .empty_on_finished(true)
            .build();
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || {
                    (0..EACH).for_each(|i| {
                        q.append((p, i)).unwrap();
                    })
                })
            })
            .collect();
        let consumers: Vec<_> = (0..4)
            .map(|c| {
                let q = q.clone();
                thread::spawn(move || {
                    let mut seen = Vec::new();
                    if c % 2 == 0 {
                        seen.extend(q.get_all());
                    } else {
                        while let Ok(v) = q.get(HOUR) {
                            seen.push(v);
                        }
                    }
                    seen
                })
            })
            .collect();
        producers.into_iter().for_each(|t| t.join().unwrap());
        q.ctx().cancel(); // empty_on_finished: the consumers drain, then end
        let mut all = Vec::new();
        for c in consumers {
            let seen = c.join().unwrap();
            // Each consumer sees each producer's items in order.
            for p in 0..4 {
                let mine: Vec<u64> = seen.iter().filter(|x| x.0 == p).map(|x| x.1).collect();
                assert!(mine.is_sorted());
            }
            all.extend(seen);
        }
        all.sort_unstable();
        let want: Vec<(u64, u64)> = (0..4)
            .flat_map(|p| (0..EACH).map(move |i| (p, i)))
            .collect();
        assert_eq!(all, want);
    });
}

#[test]
fn three_sleeping_sync_consumers_are_each_woken_by_three_appends() {
    // Each consumer takes one item and then waits at a barrier with the others: all
    // three must have been woken (a single wake would leave two asleep for an hour).
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let q = hp::sync_queue::<u32>(&ctx).timeout(HOUR).build();
        let barrier = Arc::new(Barrier::new(3));
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let (q, barrier) = (q.clone(), barrier.clone());
                thread::spawn(move || {
                    let got = q.get_all().next();
                    barrier.wait();
                    got
                })
            })
            .collect();
        (0..3).for_each(|n| {
            q.append(n).unwrap();
        });
        let mut got: Vec<u32> = consumers
            .into_iter()
            .map(|c| c.join().unwrap().unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2]);
    });
}

// ------------------------------------------------- every wake path wakes the consumer

/// How an item (or the end) becomes available to a waiting async consumer.
#[derive(Clone, Copy, Debug)]
enum Route {
    Append,
    AppendFront,
    Instruction,
    InstructionFront,
    CtxStop,
    Breaker,
}

const ROUTES: [Route; 6] = [
    Route::Append,
    Route::AppendFront,
    Route::Instruction,
    Route::InstructionFront,
    Route::CtxStop,
    Route::Breaker,
];

/// A consumer waits on an empty queue; another task uses `route` after `delay`. Returns
/// what the consumer got (`None`: the iteration ended) and what the instruction logged.
///
/// The iteration starts before the other task is spawned: starting one clears the
/// breaker (SEMANTICS, Queue), so a breaker set before `get_all()` is rightly forgotten
/// and the consumer waits on. Spawning first let a worker thread set the breaker while
/// this thread had not yet reached `get_all()` (a loaded machine, a short `delay`), and
/// the multi-thread test hung about once in 200 runs under load, always by `Breaker`.
async fn wake_by(route: Route, delay: Duration, empty_on_finished: bool) -> (Option<u32>, usize) {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx)
        .empty_on_finished(empty_on_finished)
        .build();
    let (h, qctx) = (q.handle(), q.ctx().clone());
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let mut all = q.get_all();
    tokio::spawn(async move {
        sleep(delay).await;
        // An instruction appends the item: the consumer is woken to run it.
        let h2 = h.clone();
        let instr = move || {
            r.fetch_add(1, SeqCst);
            h2.append(9).unwrap();
        };
        match route {
            Route::Append => drop(h.append(9)),
            Route::AppendFront => drop(h.append_front(9)),
            Route::Instruction => drop(h.append_instruction(instr)),
            Route::InstructionFront => drop(h.append_instruction_front(instr)),
            Route::CtxStop => drop(qctx.cancel()),
            Route::Breaker => h.breaker().set(),
        }
    });
    let got = all.next().await;
    (got, ran.load(SeqCst))
}

fn expected(route: Route) -> (Option<u32>, usize) {
    match route {
        Route::Append | Route::AppendFront => (Some(9), 0),
        Route::Instruction | Route::InstructionFront => (Some(9), 1),
        Route::CtxStop | Route::Breaker => (None, 0),
    }
}

#[tokio::test(start_paused = true)]
async fn every_route_wakes_a_waiting_async_consumer_at_once() {
    for empty_on_finished in [false, true] {
        for route in ROUTES {
            let start = Instant::now();
            let got = wake_by(route, secs(1), empty_on_finished).await;
            assert_eq!(got, expected(route), "{route:?}");
            assert_eq!(
                start.elapsed(),
                secs(1),
                "{route:?} woke the consumer at once"
            );
        }
    }
}

#[test]
fn every_route_wakes_a_waiting_async_consumer_on_the_multi_thread_runtime() {
    multi_thread(async {
        for round in 0..20 {
            for route in ROUTES {
                let delay = Duration::from_micros(round * 50);
                let got = wake_by(route, delay, round % 2 == 0).await;
                assert_eq!(got, expected(route), "{route:?}");
            }
        }
    });
}

/// Starting an iteration clears the breaker (SEMANTICS, Queue): a breaker set before
/// `get_all()` does not end the new iteration, whose consumer waits for the next route.
/// (A test that sets the breaker from another task must start the iteration first.)
#[tokio::test(start_paused = true)]
async fn a_breaker_set_before_the_iteration_starts_is_cleared_and_the_consumer_waits() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let h = q.handle();
    h.breaker().set();
    let mut all = q.get_all();
    assert!(!h.breaker().is_set(), "the new iteration cleared it");
    assert!(
        tokio::time::timeout(secs(5), all.next()).await.is_err(),
        "the consumer waits"
    );
    h.breaker().set();
    assert_eq!(
        all.next().await,
        None,
        "a breaker set while it waits ends it"
    );
}

/// Every route against a consumer that is registering its waker right then: the other
/// task runs at once on another worker, after a few yields, or after a short spin, 1 200
/// times (seeded). A lost wake-up fails the watchdog. (Well under a second unloaded.)
#[test]
fn every_route_racing_the_consumers_registration_wakes_it_on_the_multi_thread_runtime() {
    multi_thread(async {
        let mut rng = common::Rng(0x5eed_0bad_cafe);
        for round in 0..200 {
            for route in ROUTES {
                let how = rng.below(3);
                let spins = rng.below(2_000);
                let got = race_by(route, how, spins, round % 2 == 0).await;
                assert_eq!(got, expected(route), "{route:?} round {round}");
            }
        }
    });
}

/// [`wake_by`] without a timer: the other task uses `route` at once (`how` 0), after
/// `spins % 4` yields (1), or after `spins` spin-loop hints (2).
async fn race_by(
    route: Route,
    how: u64,
    spins: u64,
    empty_on_finished: bool,
) -> (Option<u32>, usize) {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx)
        .empty_on_finished(empty_on_finished)
        .build();
    let (h, qctx) = (q.handle(), q.ctx().clone());
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let mut all = q.get_all(); // before the other task can set the breaker
    tokio::spawn(async move {
        match how {
            0 => {}
            1 => {
                for _ in 0..spins % 4 {
                    tokio::task::yield_now().await;
                }
            }
            _ => (0..spins).for_each(|_| std::hint::spin_loop()),
        }
        let h2 = h.clone();
        let instr = move || {
            r.fetch_add(1, SeqCst);
            h2.append(9).unwrap();
        };
        match route {
            Route::Append => drop(h.append(9)),
            Route::AppendFront => drop(h.append_front(9)),
            Route::Instruction => drop(h.append_instruction(instr)),
            Route::InstructionFront => drop(h.append_instruction_front(instr)),
            Route::CtxStop => drop(qctx.cancel()),
            Route::Breaker => h.breaker().set(),
        }
    });
    let got = all.next().await;
    (got, ran.load(SeqCst))
}

#[test]
fn every_route_wakes_a_sleeping_sync_consumer_at_once() {
    // With a one-hour `timeout`, only a notification can wake the consumer in time.
    with_watchdog(|| {
        for route in ["append", "ctx", "other stops", "get append", "get ctx"] {
            let ctx = hp::Ctx::beginning("t");
            let q = hp::sync_queue::<u32>(&ctx).timeout(HOUR).build();
            let (tx, rx) = mpsc::channel();
            let qc = q.clone();
            let getter = route.starts_with("get");
            let t = thread::spawn(move || {
                let got = if getter {
                    qc.get(HOUR).ok()
                } else {
                    qc.get_all().next()
                };
                tx.send(got).unwrap();
            });
            match route {
                "append" | "get append" => drop(q.append(3)),
                "ctx" | "get ctx" => drop(q.ctx().cancel()),
                _ => {
                    // Another consumer takes one of two and stops: the rest is for the
                    // sleeper without a further append.
                    q.append(3).unwrap();
                    q.append(3).unwrap();
                    assert_eq!(q.get_all().next(), Some(3));
                }
            }
            let got = rx.recv_timeout(WATCHDOG).expect("woken");
            let want = if route.ends_with("ctx") {
                None
            } else {
                Some(3)
            };
            assert_eq!(got, want, "{route}");
            t.join().unwrap();
        }
    });
}

// ---------------------------------------------------- cancellation at every await point

#[tokio::test(start_paused = true)]
async fn a_queue_next_cancelled_while_waiting_loses_nothing() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let h = q.handle();
    tokio::spawn(async move {
        for n in 0..10 {
            sleep(Duration::from_millis(7)).await;
            h.append(n).unwrap();
        }
    });
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let mut all = q.get_all();
        // Lose the race against a 3 ms timer most of the time, then start over.
        tokio::select! {
            v = all.next() => seen.push(v.unwrap()),
            () = sleep(Duration::from_millis(3)) => {}
        }
    }
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
}

#[test]
fn a_queue_next_cancelled_at_random_loses_nothing_on_the_multi_thread_runtime() {
    multi_thread(async {
        let ctx = hp::Ctx::beginning("t");
        let mut q = hp::queue::<u32>(&ctx).build();
        let h = q.handle();
        let producer = tokio::spawn(async move {
            for n in 0..2_000 {
                if n % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                h.append(n).unwrap();
            }
        });
        let mut seen = Vec::new();
        while seen.len() < 2_000 {
            // Poll once and drop: a cancelled `next()` at its only await point.
            if let Some(v) = q.get_all().next().now_or_never() {
                seen.push(v.unwrap());
            } else {
                tokio::task::yield_now().await;
            }
        }
        producer.await.unwrap();
        assert_eq!(seen, (0..2_000).collect::<Vec<_>>());
    });
}

#[tokio::test(start_paused = true)]
async fn a_ticker_next_cancelled_while_waiting_consumes_no_tick() {
    let ctx = hp::Ctx::beginning("t");
    let start = Instant::now();
    let mut ticker = hp::tick(secs(10), &ctx).build().unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        tokio::select! {
            t = ticker.next() => seen.push((start.elapsed().as_secs(), t.unwrap().0)),
            () = sleep(secs(3)) => {}
        }
    }
    assert_eq!(seen, [(0, 1), (10, 2), (20, 3), (30, 4)]);
}

#[tokio::test(start_paused = true)]
async fn a_ticker_next_cancelled_while_paused_keeps_no_permit() {
    let ctx = hp::Ctx::beginning("t");
    let pauser = Arc::new(tokio::sync::Semaphore::new(1));
    let mut ticker = hp::tick(secs(1), &ctx)
        .pauser(pauser.clone())
        .build()
        .unwrap();
    assert_eq!(ticker.next().await.map(|t| t.0), Some(1));
    let held = pauser.clone().acquire_owned().await.unwrap();
    assert!(
        tokio::time::timeout(secs(5), ticker.next()).await.is_err(),
        "paused"
    );
    let start = Instant::now();
    drop(held);
    // The ticker is not polled now; the permit still comes back to the semaphore (after
    // a scheduler turn), so someone else may pause again.
    sleep(Duration::from_millis(1)).await;
    assert_eq!(pauser.available_permits(), 1);
    let again = pauser.clone().try_acquire_owned().expect("free for others");
    drop(again);
    // A permit became available while nobody polled: one tick at once.
    assert_eq!(ticker.next().await.map(|t| t.0), Some(2));
    assert_eq!(start.elapsed(), Duration::from_millis(1));
    drop(ticker);
    assert_eq!(
        pauser.available_permits(),
        1,
        "the ticker never keeps a permit"
    );
}

// ---------------------------------------------------------------- the ticker, hostile

#[tokio::test(start_paused = true)]
async fn a_ctx_cancelled_while_the_ticker_waits_or_is_paused_ends_it_at_once() {
    for paused in [false, true] {
        let ctx = hp::Ctx::beginning("t");
        let pauser = Arc::new(tokio::sync::Semaphore::new(1));
        let mut ticker = hp::tick(secs(10), &ctx)
            .pauser(pauser.clone())
            .build()
            .unwrap();
        ticker.next().await.unwrap();
        let _held = if paused {
            Some(pauser.clone().acquire_owned().await.unwrap())
        } else {
            None
        };
        let c = ctx.clone();
        tokio::spawn(async move {
            sleep(secs(2)).await;
            c.cancel();
        });
        let start = Instant::now();
        assert_eq!(ticker.next().await, None);
        assert_eq!(start.elapsed(), secs(2), "paused: {paused}");
    }
}

#[tokio::test(start_paused = true)]
async fn two_tickers_sharing_a_pauser_both_tick_when_a_permit_comes_back() {
    let ctx = hp::Ctx::beginning("t");
    let pauser = Arc::new(tokio::sync::Semaphore::new(1));
    let held = pauser.clone().acquire_owned().await.unwrap();
    let mut a = hp::tick(secs(1), &ctx)
        .pauser(pauser.clone())
        .build()
        .unwrap();
    let mut b = hp::tick(secs(1), &ctx)
        .pauser(pauser.clone())
        .build()
        .unwrap();
    let start = Instant::now();
    tokio::spawn(async move {
        sleep(secs(3)).await;
        drop(held);
    });
    let (ta, tb) = tokio::join!(a.next(), b.next());
    assert_eq!((ta.unwrap().0, tb.unwrap().0), (1, 1));
    assert_eq!(start.elapsed(), secs(3));
    assert_eq!(pauser.available_permits(), 1);
}

#[test]
fn ticker_controls_changing_the_schedule_from_other_threads_never_hang_it() {
    multi_thread(async {
        let ctx = hp::Ctx::beginning("t");
        let ticker = hp::tick(Duration::from_millis(1), &ctx)
            .min_wait(None)
            .max_iterations(200)
            .build()
            .unwrap();
        let stop = Arc::new(Mutex::new(false));
        let changers: Vec<_> = (0..3u64)
            .map(|i| {
                let (control, stop) = (ticker.control(), stop.clone());
                thread::spawn(move || {
                    let mut n = 0u64;
                    while !*stop.lock().unwrap() {
                        let d = Duration::from_micros(200 + (n % 5) * 100 + i);
                        if n.is_multiple_of(2) {
                            control.change_after(d).unwrap();
                        } else {
                            control.change_once(d).unwrap();
                        }
                        n += 1;
                        thread::sleep(Duration::from_micros(300));
                    }
                })
            })
            .collect();
        let seen: Vec<u64> = ticker.map(|t| t.0).collect().await;
        *stop.lock().unwrap() = true;
        changers.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(seen, (1..=200).collect::<Vec<_>>());
    });
}

// ------------------------------------- a ctx callback holding the last queue or ticker

#[tokio::test(start_paused = true)]
async fn a_ctx_done_callback_may_hold_and_drop_the_last_queue_sync_queue_and_ticker() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::queue::<Tracked>(&ctx).build();
    let s = hp::sync_queue::<Tracked>(&ctx).build();
    let drops = Arc::new(AtomicUsize::new(0));
    q.append(tracked(&drops, false)).unwrap();
    s.append(tracked(&drops, false)).unwrap();
    let mut ticker = hp::tick(secs(1), &ctx).build().unwrap();
    ticker.next().await.unwrap();
    let (qctx, sctx, tctx) = (q.ctx().clone(), s.ctx().clone(), ticker.ctx().clone());
    // Each callback owns the last handle of what it captured and drops it when it runs,
    // on the very contexts those values own (a child of `ctx`, being cancelled).
    let slot = Arc::new(Mutex::new(Some((q, s, ticker))));
    let for_cb = slot.clone();
    qctx.add_done_callback(move |_| {
        drop(for_cb.lock().unwrap().take());
    });
    ctx.cancel();
    assert!(
        slot.lock().unwrap().is_none(),
        "the callback ran and dropped them"
    );
    assert_eq!(drops.load(SeqCst), 2);
    assert!(qctx.cancelled() && sctx.cancelled() && tctx.cancelled());
}

#[test]
fn removing_a_ctx_callback_that_holds_the_last_queue_sync_queue_and_ticker_drops_them() {
    with_watchdog(|| {
        let rt = common::current_thread();
        let _in_rt = rt.enter();
        let ctx = hp::Ctx::beginning("t");
        let drops = Arc::new(AtomicUsize::new(0));
        let q = hp::queue::<Tracked>(&ctx).build();
        let s = hp::sync_queue::<Tracked>(&ctx).build();
        q.append(tracked(&drops, false)).unwrap();
        s.append(tracked(&drops, false)).unwrap();
        let ticker = hp::tick(secs(1), &ctx).build().unwrap();
        let (qctx, sctx, tctx) = (q.ctx().clone(), s.ctx().clone(), ticker.ctx().clone());
        let h = ctx.add_done_callback(move |_| drop((q, s, ticker)));
        assert_eq!(ctx.remove_done_callback(h), 1);
        assert_eq!(drops.load(SeqCst), 2);
        assert!(qctx.cancelled() && sctx.cancelled() && tctx.cancelled());
    });
}
