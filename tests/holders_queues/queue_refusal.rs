//! Issue 23 items 2, 3 and 7 for the queues (SEMANTICS, Queue: "A refused item comes
//! back", "Producers can end the stream"): every append refused by a closed queue or a
//! queue whose consumer is gone gives its value back untouched; a producer-side close
//! (explicit, or the last producer handle dropped) ends the iteration once everything
//! appended before it was yielded, and wakes waiting consumers at once. Expected
//! sequences are worked out from the rules, on both runtimes (threads for the sync queue),
//! with hostile refused values whose `Drop` re-enters the queue or panics.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use futures::StreamExt;
use machinery::helpers as hp;
use tokio::time::{Instant, sleep};

use crate::common::{block_on_paused, multi_thread, with_watchdog};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Far longer than any test runs: a consumer woken only by its own timeout would trip
/// the watchdog.
const AN_HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------- hostile values

/// A value whose `Drop` re-enters the queue it was refused by (appends a plain value,
/// which must come back too, and closes again) and then panics.
struct Hostile {
    handle: hp::QueueHandle<Item>,
    drops: Arc<AtomicUsize>,
    reentry_refused: Arc<AtomicUsize>,
}

/// What the async queues in these tests carry.
enum Item {
    Plain(u32),
    /// Held for its `Drop` only.
    #[allow(dead_code)]
    Hostile(Hostile),
}

impl Item {
    fn plain(&self) -> Option<u32> {
        match self {
            Item::Plain(n) => Some(*n),
            Item::Hostile(_) => None,
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if let Err(back) = self.handle.append(Item::Plain(77)) {
            assert_eq!(back.into_inner().plain(), Some(77));
            self.reentry_refused.fetch_add(1, SeqCst);
        }
        let _ = self.handle.close();
        panic!("hostile drop");
    }
}

fn hostile(h: &hp::QueueHandle<Item>, drops: &Arc<AtomicUsize>, re: &Arc<AtomicUsize>) -> Item {
    Item::Hostile(Hostile {
        handle: h.clone(),
        drops: drops.clone(),
        reentry_refused: re.clone(),
    })
}

/// Drops `v` as a careful caller does with a value whose `Drop` may panic.
fn drop_caught<V>(v: V) -> bool {
    catch_unwind(AssertUnwindSafe(move || drop(v))).is_err()
}

// ---------------------------------------------------------------- async: refusal

#[tokio::test(start_paused = true)]
async fn every_async_entry_point_gives_the_item_back_once_the_consumer_is_gone() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::queue::<String>(&ctx).build();
    let h = q.handle();
    drop(q);
    let back = h.append("a".to_string()).unwrap_err();
    assert!(back.is_consumer_gone() && !back.is_closed());
    assert_eq!(back.to_string(), "the queue's consumer is gone");
    assert_eq!(format!("{back:?}"), "AppendError { why: ConsumerGone, .. }");
    assert_eq!(back.get_ref(), "a");
    assert_eq!(back.into_inner(), "a");
    assert_eq!(
        h.append_front("b".to_string()).unwrap_err().into_inner(),
        "b"
    );
    let ran = Arc::new(AtomicUsize::new(0));
    let (r1, r2) = (ran.clone(), ran.clone());
    let f = h
        .append_instruction(move || {
            r1.fetch_add(1, SeqCst);
        })
        .unwrap_err()
        .into_inner();
    let g = h
        .append_instruction_front(move || {
            r2.fetch_add(10, SeqCst);
        })
        .unwrap_err()
        .into_inner();
    assert_eq!(ran.load(SeqCst), 0, "refused instructions are not run");
    f();
    g();
    assert_eq!(ran.load(SeqCst), 11, "they came back runnable");
    // A boxed error works with `?` and `Box<dyn Error>`.
    let e: Box<dyn std::error::Error + Send + Sync> = Box::new(h.append("c".into()).unwrap_err());
    assert_eq!(e.to_string(), "the queue's consumer is gone");
}

#[tokio::test(start_paused = true)]
async fn every_async_entry_point_gives_the_item_back_once_the_queue_is_closed() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let h = q.handle();
    q.append(1).unwrap();
    assert!(!q.is_closed() && !h.is_closed());
    assert!(q.close(), "this call closed it");
    assert!(!h.close() && !q.close(), "closed already");
    assert!(q.is_closed() && h.is_closed());
    for back in [
        q.append(2).unwrap_err(),
        q.append_front(3).unwrap_err(),
        h.append(4).unwrap_err(),
        h.append_front(5).unwrap_err(),
    ] {
        assert!(back.is_closed() && !back.is_consumer_gone());
        assert_eq!(back.to_string(), "the queue is closed");
    }
    assert!(q.append_instruction(|| ()).unwrap_err().is_closed());
    assert!(q.append_instruction_front(|| ()).unwrap_err().is_closed());
    assert!(h.append_instruction(|| ()).unwrap_err().is_closed());
    assert!(h.append_instruction_front(|| ()).unwrap_err().is_closed());
    // A hook's view refuses too, and hands the item back to the hook.
    let from_hook = Arc::new(Mutex::new(Vec::new()));
    let f = from_hook.clone();
    q.process_after_yielded(move |view| {
        assert!(view.is_closed());
        let a = view.append(8).unwrap_err();
        let b = view.append_front(9).unwrap_err();
        assert!(!view.close());
        f.lock().unwrap().extend([a.into_inner(), b.into_inner()]);
    });
    let seen: Vec<u32> = q.get_all().collect().await;
    assert_eq!(seen, [1], "only what came before the close");
    assert_eq!(*from_hook.lock().unwrap(), [8, 9]);
    assert_eq!(q.len(), 0);
}

// ---------------------------------------------------------------- async: close

/// Front 0, then 1, the instruction, 2 (appended in the order 1, instr, 2, then 0 with
/// priority), close, 3 refused: the iteration yields 0, 1, 2 with the instruction run
/// between 1 and 2, then ends; so does every later iteration.
#[tokio::test(start_paused = true)]
async fn close_ends_the_iteration_after_everything_appended_before_it() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let h = q.handle();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    h.append(1).unwrap();
    h.append_instruction(move || l.lock().unwrap().push(100))
        .unwrap();
    h.append(2).unwrap();
    h.append_front(0).unwrap();
    h.close();
    assert_eq!(h.append(3).unwrap_err().into_inner(), 3);
    assert_eq!(q.len(), 4, "the close keeps what was queued");
    let mut all = q.get_all();
    while let Some(n) = all.next().await {
        log.lock().unwrap().push(n);
    }
    drop(all);
    assert_eq!(*log.lock().unwrap(), [0, 1, 100, 2]);
    assert!(
        q.get_all().next().await.is_none(),
        "a new iteration ends at once"
    );
    let mut its = q.iterations();
    assert!(its.next().await.is_none());
    assert!(
        its.next().await.is_none(),
        "Iterations restarts and ends again"
    );
    assert_eq!(q.remaining().count(), 0);
    assert!(!q.ctx().done(), "closing does not touch the context");
}

#[tokio::test(start_paused = true)]
async fn a_close_wakes_a_waiting_consumer_at_once() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let h = q.handle();
    let start = Instant::now();
    tokio::spawn(async move {
        sleep(secs(2)).await;
        h.append(1).unwrap();
        sleep(secs(3)).await;
        h.close();
    });
    let mut got = Vec::new();
    let mut all = q.get_all();
    while let Some(n) = all.next().await {
        got.push((n, start.elapsed()));
    }
    assert_eq!(got, [(1, secs(2))]);
    assert_eq!(
        start.elapsed(),
        secs(5),
        "woken by the close at 5, not later"
    );
}

/// Two handles, dropped at 1 s and at 3 s after appending: the second drop closes the
/// queue and the waiting consumer ends at 3 s exactly.
#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_closes_and_wakes_the_consumer_at_once() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx)
        .close_when_handles_dropped(true)
        .build();
    let start = Instant::now();
    for (n, at) in [(10, 1), (30, 3)] {
        let h = q.handle();
        tokio::spawn(async move {
            sleep(secs(at)).await;
            h.append(n).unwrap();
        });
    }
    let mut got = Vec::new();
    let mut all = q.get_all();
    while let Some(n) = all.next().await {
        got.push((n, start.elapsed()));
    }
    drop(all);
    assert_eq!(got, [(10, secs(1)), (30, secs(3))]);
    assert_eq!(start.elapsed(), secs(3));
    assert!(q.is_closed());
    assert!(q.append(1).unwrap_err().is_closed());
    let late = q.handle();
    assert!(
        late.append(2).unwrap_err().is_closed(),
        "a later handle too"
    );
}

#[tokio::test(start_paused = true)]
async fn without_the_option_or_before_a_first_handle_nothing_closes_on_its_own() {
    let ctx = hp::Ctx::beginning("t");
    let plain = hp::queue::<u32>(&ctx).build();
    drop(plain.handle());
    assert!(!plain.is_closed(), "off by default");
    let mut opted = hp::queue::<u32>(&ctx)
        .close_when_handles_dropped(true)
        .build();
    assert!(!opted.is_closed(), "no handle was ever made");
    opted.append(1).unwrap();
    let (a, b) = (opted.handle(), opted.handle());
    drop(a);
    assert!(!opted.is_closed(), "one handle is still alive");
    let c = b.clone();
    drop(b);
    assert!(!opted.is_closed());
    c.append(2).unwrap();
    drop(c);
    assert!(opted.is_closed());
    let seen: Vec<u32> = opted.get_all().collect().await;
    assert_eq!(seen, [1, 2]);
}

/// Without `empty_on_finished`, the breaker and the ctx still end the iteration before
/// the rest (kept for `remaining`); with it, the queue is drained and the iteration ends
/// once it is empty, since the close refuses what comes meanwhile.
#[tokio::test(start_paused = true)]
async fn the_breaker_and_the_ctx_combine_with_a_close_as_before() {
    let ctx = hp::Ctx::beginning("t");
    // Breaker, without empty_on_finished: 1, then the breaker; 2 and 3 stay.
    let mut q = hp::queue::<u32>(&ctx).build();
    let h = q.handle();
    (1..=3).for_each(|n| q.append(n).unwrap());
    q.close();
    let mut got = Vec::new();
    let mut all = q.get_all();
    while let Some(n) = all.next().await {
        got.push(n);
        h.breaker().set();
    }
    drop(all);
    assert_eq!(got, [1]);
    assert_eq!(q.remaining().collect::<Vec<_>>(), [2, 3]);
    // Breaker, with empty_on_finished: everything, then the end.
    let mut q = hp::queue::<u32>(&ctx).empty_on_finished(true).build();
    let h = q.handle();
    (1..=3).for_each(|n| q.append(n).unwrap());
    q.close();
    let mut got = Vec::new();
    let mut all = q.get_all();
    while let Some(n) = all.next().await {
        got.push(n);
        h.breaker().set();
        assert!(h.append(9).is_err(), "refused during the drain");
    }
    assert_eq!(got, [1, 2, 3]);
    // Ctx, without empty_on_finished: ends at once, all stays for remaining.
    let child = ctx.child("c");
    let mut q = hp::queue::<u32>(&child).build();
    (1..=3).for_each(|n| q.append(n).unwrap());
    q.close();
    child.cancel();
    assert!(q.get_all().next().await.is_none());
    assert_eq!(q.remaining().collect::<Vec<_>>(), [1, 2, 3]);
    // Ctx, with empty_on_finished: everything, then the end.
    let child = ctx.child("d");
    let mut q = hp::queue::<u32>(&child).empty_on_finished(true).build();
    (1..=3).for_each(|n| q.append(n).unwrap());
    q.close();
    child.cancel();
    assert_eq!(q.get_all().collect::<Vec<_>>().await, [1, 2, 3]);
}

/// Four producer threads append 1 000 items each through their own handle and drop it.
/// Even rounds: the last drop closes the queue, and the consumer gets the 4 000 items
/// exactly once, each producer's in its order, then the end (no marker, no ctx). Odd
/// rounds: the first producer done closes it explicitly; what the others append after
/// that comes back to them, and nothing is lost: yielded + left + refused = 4 000.
#[test]
fn the_last_handle_drop_ends_a_consumer_fed_by_threads_on_the_multi_thread_runtime() {
    for round in 0..10 {
        let explicit = round % 2 == 1;
        let (got, left, refused) = multi_thread(async move {
            let ctx = hp::Ctx::beginning("t");
            let mut q = hp::queue::<(u32, u32)>(&ctx)
                .close_when_handles_dropped(!explicit)
                .build();
            // Every handle exists before the first producer can drop its own: the count
            // reaching zero closes the queue (so a handle made after that is refused).
            let handles: Vec<_> = (0..4).map(|_| q.handle()).collect();
            let producers: Vec<_> = (0..4)
                .zip(handles)
                .map(|(p, h)| {
                    thread::spawn(move || {
                        let mut refused = 0;
                        for n in 0..1_000 {
                            if let Err(back) = h.append((p, n)) {
                                assert_eq!(back.into_inner(), (p, n));
                                refused += 1;
                            }
                        }
                        if explicit {
                            h.close();
                        }
                        refused
                    })
                })
                .collect();
            let got: Vec<(u32, u32)> = q.get_all().collect().await;
            let refused: usize = producers.into_iter().map(|p| p.join().unwrap()).sum();
            (got, q.remaining().count(), refused)
        });
        assert_eq!(left, 0, "the iteration ended only once the queue was empty");
        if !explicit {
            assert_eq!((got.len(), refused), (4_000, 0));
        }
        assert_eq!(got.len() + refused, 4_000);
        for p in 0..4 {
            let mine: Vec<u32> = got.iter().filter(|(q, _)| *q == p).map(|x| x.1).collect();
            assert!(
                mine.iter().enumerate().all(|(i, n)| i as u32 == *n),
                "in order, from 0"
            );
        }
    }
}

#[test]
fn a_close_wakes_a_waiting_consumer_on_the_multi_thread_runtime() {
    for round in 0..50u64 {
        let got = multi_thread(async move {
            let ctx = hp::Ctx::beginning("t");
            let mut q = hp::queue::<u64>(&ctx).build();
            let h = q.handle();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_micros(round * 20)).await;
                h.append(round).unwrap();
                h.close();
                assert!(h.append(0).is_err());
            });
            q.get_all().collect::<Vec<_>>().await
        });
        assert_eq!(got, [round]);
    }
}

// ---------------------------------------------------------------- async: hostile

/// A hostile value refused by a closed queue while a consumer waits: it comes back
/// untouched (its `Drop` has not run), the caller drops it, its `Drop` re-enters the
/// queue (an append that comes back too, a second close) and panics, and the consumer
/// still gets exactly what was appended before the close, then the end.
async fn hostile_refused_value_round() -> (Vec<u32>, usize, usize) {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<Item>(&ctx).build();
    let h = q.handle();
    let drops = Arc::new(AtomicUsize::new(0));
    let re = Arc::new(AtomicUsize::new(0));
    let consumer = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut all = q.get_all();
        while let Some(item) = all.next().await {
            got.push(item.plain().expect("only plain items were accepted"));
        }
        got
    });
    tokio::task::yield_now().await;
    // In order (a front append could race the consumer on the multi-thread runtime:
    // it may have taken 1 already, which CI saw once as [1, 0]).
    h.append(Item::Plain(0)).unwrap();
    h.append(Item::Plain(1)).unwrap();
    h.close();
    let back = h.append(hostile(&h, &drops, &re)).unwrap_err();
    let front = h.append_front(hostile(&h, &drops, &re)).unwrap_err();
    assert_eq!(
        drops.load(SeqCst),
        0,
        "the queue ran no Drop of what it refused"
    );
    assert!(matches!(back.get_ref(), Item::Hostile(_)));
    assert!(drop_caught(back.into_inner()), "its panic is the caller's");
    assert!(drop_caught(front));
    let got = consumer.await.unwrap();
    (got, drops.load(SeqCst), re.load(SeqCst))
}

#[test]
fn a_hostile_refused_value_comes_back_untouched_on_both_runtimes() {
    let expected = (vec![0, 1], 2, 2);
    assert_eq!(block_on_paused(hostile_refused_value_round()), expected);
    for _ in 0..20 {
        assert_eq!(multi_thread(hostile_refused_value_round()), expected);
    }
}

/// A refused instruction capturing a hostile value: it comes back unrun; dropping it
/// runs the hostile `Drop` in the caller.
#[tokio::test(start_paused = true)]
async fn a_refused_instruction_capturing_a_hostile_value_comes_back_unrun() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::queue::<Item>(&ctx).build();
    let h = q.handle();
    let drops = Arc::new(AtomicUsize::new(0));
    let re = Arc::new(AtomicUsize::new(0));
    drop(q);
    let captured = hostile(&h, &drops, &re);
    let f = h
        .append_instruction(move || drop(captured))
        .unwrap_err()
        .into_inner();
    assert_eq!(drops.load(SeqCst), 0);
    assert!(drop_caught(f));
    assert_eq!((drops.load(SeqCst), re.load(SeqCst)), (1, 1));
}

/// An item the consumer takes and drops closes the queue in its `Drop`: the consumer's
/// next step sees the close (nothing more was queued) and ends at once.
#[tokio::test(start_paused = true)]
async fn an_item_whose_drop_closes_the_queue_ends_the_iteration() {
    struct ClosesOnDrop(hp::QueueHandle<ClosesOnDrop>);
    impl Drop for ClosesOnDrop {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<ClosesOnDrop>(&ctx).build();
    q.append(ClosesOnDrop(q.handle())).unwrap();
    let start = Instant::now();
    let mut n = 0;
    let mut all = q.get_all();
    while let Some(item) = all.next().await {
        drop(item);
        n += 1;
    }
    assert_eq!((n, start.elapsed()), (1, Duration::ZERO));
}

// ---------------------------------------------------------------- sync queue

#[test]
fn every_sync_entry_point_gives_the_item_back() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::sync_queue::<String>(&ctx).build();
    let h = q.handle();
    q.append("kept".into()).unwrap();
    assert!(h.close() && !q.close());
    assert!(q.is_closed() && h.is_closed());
    let a = q.append("a".into()).unwrap_err();
    let b = h.append("b".into()).unwrap_err();
    assert!(a.is_closed() && b.is_closed());
    assert_eq!((a.into_inner(), b.into_inner()), ("a".into(), "b".into()));
    assert_eq!(q.get(Duration::ZERO), Ok("kept".to_string()));
    assert_eq!(q.get(Duration::ZERO), Err(hp::SyncGetError::Closed));
    assert_eq!(
        hp::SyncGetError::Closed.to_string(),
        "the queue is closed and empty"
    );
    // The consumer side gone: a producer handle gets its items back.
    let q = hp::sync_queue::<String>(&ctx).build();
    let h = q.handle();
    h.append("dropped with the queue".into()).unwrap();
    drop(q);
    let c = h.append("c".into()).unwrap_err();
    assert!(c.is_consumer_gone());
    assert_eq!(c.into_inner(), "c");
    assert!(h.is_empty(), "what was queued went with the consumer side");
}

/// Three iterating threads and one `get` (each with an hour's timeout) wait on an empty
/// queue; a producer appends 0..300 and closes: every consumer ends (each sees the end),
/// and the items are shared exactly once.
#[test]
fn a_sync_close_wakes_every_blocked_consumer_at_once_whatever_the_timeout() {
    for timeout in [AN_HOUR, Duration::ZERO] {
        let got = with_watchdog(move || {
            let ctx = hp::Ctx::beginning("t");
            let q = hp::sync_queue::<u32>(&ctx).timeout(timeout).build();
            let mut consumers: Vec<_> = (0..3)
                .map(|_| {
                    let q = q.clone();
                    thread::spawn(move || q.get_all().collect::<Vec<_>>())
                })
                .collect();
            let g = q.clone();
            consumers.push(thread::spawn(move || {
                let mut mine = Vec::new();
                loop {
                    match g.get(AN_HOUR) {
                        Ok(n) => mine.push(n),
                        Err(e) => {
                            assert_eq!(e, hp::SyncGetError::Closed);
                            return mine;
                        }
                    }
                }
            }));
            thread::sleep(Duration::from_millis(20)); // let them block
            let h = q.handle();
            for n in 0..300 {
                h.append(n).unwrap();
            }
            h.close();
            let mut all: Vec<u32> = consumers
                .into_iter()
                .flat_map(|c| c.join().unwrap())
                .collect();
            all.sort_unstable();
            all
        });
        assert_eq!(got, (0..300).collect::<Vec<_>>());
    }
}

/// With `close_when_handles_dropped`, three producer threads each append 1 000 and drop
/// their handle; the last drop wakes the two blocked consumers (hour-long and zero
/// timeout) and both end after the 3 000 items, shared exactly once.
#[test]
fn the_last_sync_handle_drop_ends_every_consumer() {
    for round in 0..5 {
        let (mut all, closed) = with_watchdog(move || {
            let ctx = hp::Ctx::beginning("t");
            let q = hp::sync_queue::<u32>(&ctx)
                .timeout(if round % 2 == 0 {
                    AN_HOUR
                } else {
                    Duration::ZERO
                })
                .close_when_handles_dropped(true)
                .build();
            let consumers: Vec<_> = (0..2)
                .map(|_| {
                    let q = q.clone();
                    thread::spawn(move || q.get_all().collect::<Vec<_>>())
                })
                .collect();
            let first = q.handle();
            let producers: Vec<_> = (0..3u32)
                .map(|p| {
                    let h = first.clone();
                    thread::spawn(move || {
                        for n in 0..1_000 {
                            h.append(p * 1_000 + n).unwrap();
                        }
                    })
                })
                .collect();
            drop(first); // the producers' clones now decide when the queue closes
            producers.into_iter().for_each(|p| p.join().unwrap());
            let all: Vec<u32> = consumers
                .into_iter()
                .flat_map(|c| c.join().unwrap())
                .collect();
            (all, q.is_closed())
        });
        all.sort_unstable();
        assert_eq!(all, (0..3_000).collect::<Vec<_>>());
        assert!(closed);
    }
}

#[test]
fn a_sync_close_combines_with_the_ctx_and_empty_on_finished() {
    let ctx = hp::Ctx::beginning("t");
    for empty_on_finished in [false, true] {
        let child = ctx.child("c");
        let q = hp::sync_queue::<u32>(&child)
            .empty_on_finished(empty_on_finished)
            .build();
        (1..=3).for_each(|n| q.append(n).unwrap());
        q.close();
        child.cancel();
        let got: Vec<u32> = q.get_all().collect();
        let left: Vec<u32> = q.remaining().collect();
        if empty_on_finished {
            assert_eq!((got, left), (vec![1, 2, 3], vec![]));
        } else {
            assert_eq!((got, left), (vec![], vec![1, 2, 3]));
        }
        assert_eq!(q.get(Duration::ZERO), Err(hp::SyncGetError::Finished));
    }
    // Closed but the ctx goes on: the iteration yields what is queued, then ends.
    let q = hp::sync_queue::<u32>(&ctx).build();
    (1..=3).for_each(|n| q.append(n).unwrap());
    q.close();
    assert_eq!(q.get_all().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(q.get_all().next(), None, "a new iteration ends at once");
}

/// A value whose `Drop` re-enters the sync queue that refused it (appends, closes) and
/// panics: it comes back untouched; dropped by the caller, its append comes back too.
/// Meanwhile a blocked consumer gets what came before the close, then the end.
#[test]
fn a_hostile_value_refused_by_the_sync_queue_comes_back_untouched() {
    struct Hostile {
        handle: hp::SyncQueueHandle<Option<Hostile>>,
        drops: Arc<AtomicUsize>,
        reentry_refused: Arc<AtomicUsize>,
    }
    impl Drop for Hostile {
        fn drop(&mut self) {
            self.drops.fetch_add(1, SeqCst);
            if self.handle.append(None).is_err() {
                self.reentry_refused.fetch_add(1, SeqCst);
            }
            self.handle.close();
            panic!("hostile sync drop");
        }
    }
    let (got, drops, re) = with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let q = hp::sync_queue::<Option<Hostile>>(&ctx)
            .timeout(AN_HOUR)
            .build();
        let c = q.clone();
        let consumer = thread::spawn(move || c.get_all().filter(Option::is_none).count());
        let h = q.handle();
        let drops = Arc::new(AtomicUsize::new(0));
        let re = Arc::new(AtomicUsize::new(0));
        h.append(None).unwrap();
        h.close();
        for via_queue in [false, true] {
            let before = drops.load(SeqCst);
            let v = Hostile {
                handle: h.clone(),
                drops: drops.clone(),
                reentry_refused: re.clone(),
            };
            let back = if via_queue {
                q.append(Some(v))
            } else {
                h.append(Some(v))
            }
            .unwrap_err();
            assert_eq!(drops.load(SeqCst), before, "the queue ran no Drop");
            assert!(drop_caught(back));
        }
        (
            consumer.join().unwrap(),
            drops.load(SeqCst),
            re.load(SeqCst),
        )
    });
    assert_eq!((got, drops, re), (1, 2, 2));
}

/// An item a worker takes closes the queue when it is dropped: the other worker, asleep
/// with an hour's timeout, is woken by that close and ends.
#[test]
fn an_item_whose_drop_closes_the_sync_queue_wakes_the_sleeping_worker() {
    struct ClosesOnDrop(hp::SyncQueueHandle<ClosesOnDrop>);
    impl Drop for ClosesOnDrop {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let n = with_watchdog(|| {
        let ctx = hp::Ctx::beginning("t");
        let q = hp::sync_queue::<ClosesOnDrop>(&ctx)
            .timeout(AN_HOUR)
            .build();
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || q.get_all().count())
            })
            .collect();
        thread::sleep(Duration::from_millis(20));
        q.append(ClosesOnDrop(q.handle())).unwrap();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .sum::<usize>()
    });
    assert_eq!(n, 1);
}

#[test]
fn the_new_types_are_send_and_sync() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<hp::AppendError<String>>();
    is_send_sync::<hp::SyncQueueHandle<String>>();
}
