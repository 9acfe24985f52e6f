//! Loom model checks of the queues' concurrent cores: appends racing an iteration,
//! priority appends racing a consumer mid-batch, the breaker and the context racing
//! appends, hooks and instructions, the queue dropped while a producer appends, and the
//! sync queue's blocking consumer racing producers and cancellation.
//!
//! Run: `RUSTFLAGS="--cfg machinery_loom" CARGO_TARGET_DIR=target/loom
//! LOOM_MAX_PREEMPTIONS=3 cargo test --release --test loom_queue -- --nocapture`
//! (`.ci/run` does). Loom cannot run tokio, so the consumer's futures are driven by
//! `loom::future::block_on`, which parks the modelled thread until the queue's waker is
//! woken: a lost wake-up would show as a deadlock in some interleaving. Each model prints
//! how many interleavings it explored.
#![cfg(machinery_loom)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use futures::StreamExt;
use loom::future::block_on;
use loom::thread;
use machinery::helpers as hp;

use crate::loom_model;
use loom_model::model;

/// Takes `n` items from one iteration, waiting for each.
fn take_n(q: &mut hp::Queue<u32>, n: usize) -> Vec<u32> {
    block_on(async {
        let mut all = q.get_all();
        let mut got = Vec::new();
        while got.len() < n {
            got.push(all.next().await.expect("iteration ended early"));
        }
        got
    })
}

#[test]
fn loom_append_races_iteration_nothing_lost_or_duplicated() {
    // A producer appends 1, then 2 with priority, while the consumer waits for two items.
    // Both arrive exactly once; 2 comes first only if it was queued before 1 was taken.
    model("append races iteration", || {
        let ctx = hp::Ctx::beginning("r");
        let mut q = hp::queue::<u32>(&ctx).build();
        let h = q.handle();
        let t = thread::spawn(move || {
            assert!(h.append(1).is_ok());
            assert!(h.append_front(2).is_ok());
        });
        let got = take_n(&mut q, 2);
        t.join().unwrap();
        assert!(got == [1, 2] || got == [2, 1], "{got:?}");
        assert_eq!(q.remaining().count(), 0);
        assert_eq!(q.len(), 0);
    });
}

#[test]
fn loom_priority_append_races_a_consumer_mid_batch() {
    // The consumer holds [1, 2] in its batch when a producer pushes 0 with priority: 0
    // is yielded before whatever is still queued when it arrives; 1 stays before 2.
    model("priority append mid batch", || {
        let ctx = hp::Ctx::beginning("r");
        let mut q = hp::queue::<u32>(&ctx).build();
        let _ = q.append(1);
        let _ = q.append(2);
        let h = q.handle();
        let t = thread::spawn(move || {
            let _ = h.append_front(0);
        });
        let got = take_n(&mut q, 3);
        t.join().unwrap();
        assert!(
            got == [0, 1, 2] || got == [1, 0, 2] || got == [1, 2, 0],
            "{got:?}"
        );
        assert_eq!(q.len(), 0);
    });
}

#[test]
fn loom_breaker_races_appends_items_stay_for_remaining() {
    // A producer appends 1, sets the breaker, appends 2. The iteration ends; it never
    // yields 2 (queued after the breaker); what it did not yield is in `remaining`, in
    // order, each exactly once.
    model("breaker races appends", || {
        let ctx = hp::Ctx::beginning("r");
        let mut q = hp::queue::<u32>(&ctx).build();
        let h = q.handle();
        let all = q.get_all(); // the iteration starts (and clears the breaker) first
        let t = thread::spawn(move || {
            let _ = h.append(1);
            h.breaker().set();
            let _ = h.append(2);
        });
        let mut got: Vec<u32> = block_on(all.collect());
        t.join().unwrap();
        assert!(got.is_empty() || got == [1], "{got:?}");
        got.extend(q.remaining());
        assert_eq!(got, [1, 2]);
    });
}

#[test]
fn loom_breaker_with_empty_on_finished_drains_before_ending() {
    // With `empty_on_finished` a producer appends 1, sets the breaker and appends 2: the
    // iteration ends only once it finds the queue empty with the breaker set, so 1 is
    // always yielded; 2 is yielded or left, never lost.
    model("breaker with empty_on_finished drains", || {
        let ctx = hp::Ctx::beginning("r");
        let mut q = hp::queue::<u32>(&ctx).empty_on_finished(true).build();
        let h = q.handle();
        // The iteration starts (clearing the breaker) before the producer runs.
        let all = q.get_all();
        let t = thread::spawn(move || {
            let _ = h.append(1);
            h.breaker().set();
            let _ = h.append(2);
        });
        let got: Vec<u32> = block_on(all.collect());
        t.join().unwrap();
        assert!(got == [1] || got == [1, 2], "{got:?}");
        let mut all = got;
        all.extend(q.remaining());
        assert_eq!(all, [1, 2]);
    });
}

#[test]
fn loom_new_iteration_after_breaker_continues_where_it_stopped() {
    // The breaker is set from another thread while the consumer waits; a new iteration
    // clears it and yields what was appended, once.
    model("iteration restart after breaker", || {
        let ctx = hp::Ctx::beginning("r");
        let mut q = hp::queue::<u32>(&ctx).build();
        let h = q.handle();
        let all = q.get_all();
        let t = thread::spawn(move || {
            h.breaker().set();
            let _ = h.append(7);
        });
        let first: Vec<u32> = block_on(all.collect());
        t.join().unwrap();
        // 7 was appended after the breaker was set: this iteration never yields it.
        assert!(first.is_empty(), "{first:?}");
        assert_eq!(take_n(&mut q, 1), [7]);
        assert_eq!(q.len(), 0);
    });
}

#[test]
fn loom_ctx_cancel_races_appends_with_empty_on_finished() {
    // A producer appends 1, cancels the queue's context, appends 2 (still accepted). The
    // iteration ends; together with `remaining` it gives 1, 2 in order, once each.
    model("ctx cancel races appends", || {
        let ctx = hp::Ctx::beginning("r");
        let mut q = hp::queue::<u32>(&ctx).empty_on_finished(true).build();
        let h = q.handle();
        let qctx = q.ctx().clone();
        let t = thread::spawn(move || {
            let _ = h.append(1);
            qctx.cancel();
            let _ = h.append(2);
        });
        let mut got: Vec<u32> = block_on(q.get_all().collect());
        t.join().unwrap();
        got.extend(q.remaining());
        assert_eq!(got, [1, 2]);
    });
}

#[test]
fn loom_ctx_cancel_races_appends_item_after_cancel_is_not_yielded() {
    // Without `empty_on_finished`: a producer appends 1, cancels the context, appends 2.
    // The iteration never yields 2; `remaining` has the rest, in order, once each.
    model("ctx cancel races appends, no empty_on_finished", || {
        let ctx = hp::Ctx::beginning("r");
        let mut q = hp::queue::<u32>(&ctx).build();
        let h = q.handle();
        let qctx = q.ctx().clone();
        let t = thread::spawn(move || {
            let _ = h.append(1);
            qctx.cancel();
            let _ = h.append_front(2);
        });
        let mut got: Vec<u32> = block_on(q.get_all().collect());
        t.join().unwrap();
        assert!(got.is_empty() || got == [1], "{got:?}");
        got.extend(q.remaining());
        assert!(got == [1, 2] || got == [2, 1], "{got:?}");
    });
}

#[test]
fn loom_instruction_runs_once_before_the_item_behind_it() {
    // A producer queues an instruction then an item; the consumer sees the item only after
    // the instruction ran, and it runs exactly once.
    model("instruction before item", || {
        let ctx = hp::Ctx::beginning("r");
        let mut q = hp::queue::<u32>(&ctx).build();
        let h = q.handle();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let t = thread::spawn(move || {
            let _ = h.append_instruction(move || {
                r.fetch_add(1, SeqCst);
            });
            let _ = h.append(5);
        });
        let got = take_n(&mut q, 1);
        assert_eq!(ran.load(SeqCst), 1);
        t.join().unwrap();
        assert_eq!(got, [5]);
        assert_eq!(ran.load(SeqCst), 1);
    });
}

#[test]
fn loom_every_route_wakes_a_consumer_waiting_on_an_empty_queue() {
    // The model of hostile_queues' every_route_... tests: one iteration started, then
    // another thread uses one route once while the consumer checks, registers its waker
    // and parks. Every route ends the wait (a lost wake-up is a loom deadlock) with what
    // it promised: the item (the instruction having run once), or the end.
    for route in 0..6 {
        model(
            &format!("route {route} wakes a waiting consumer"),
            move || {
                let ctx = hp::Ctx::beginning("r");
                let mut q = hp::queue::<u32>(&ctx)
                    .empty_on_finished(route % 2 == 0)
                    .build();
                let (h, qctx) = (q.handle(), q.ctx().clone());
                let ran = Arc::new(AtomicUsize::new(0));
                let r = ran.clone();
                // The iteration starts (clearing the breaker) before the route can be used.
                let mut all = q.get_all();
                let t = thread::spawn(move || {
                    let h2 = h.clone();
                    let instr = move || {
                        r.fetch_add(1, SeqCst);
                        let _ = h2.append(9);
                    };
                    match route {
                        0 => drop(h.append(9)),
                        1 => drop(h.append_front(9)),
                        2 => drop(h.append_instruction(instr)),
                        3 => drop(h.append_instruction_front(instr)),
                        4 => drop(qctx.cancel()),
                        _ => h.breaker().set(),
                    }
                });
                let got = block_on(all.next());
                t.join().unwrap();
                let want = if route < 4 { Some(9) } else { None };
                assert_eq!(got, want, "route {route}");
                assert_eq!(ran.load(SeqCst), usize::from(route == 2 || route == 3));
            },
        );
    }
}

#[test]
fn loom_hook_appends_race_a_producer() {
    // A process_after_yielded hook appends 10 once while a producer appends 1: no
    // deadlock, and 0, 1, 10 are each yielded once.
    model("hook appends race producer", || {
        let ctx = hp::Ctx::beginning("r");
        let mut q = hp::queue::<u32>(&ctx).build();
        let mut fired = false;
        q.process_after_yielded(move |view| {
            if !fired {
                fired = true;
                let _ = view.append(10);
            }
        });
        let _ = q.append(0);
        let h = q.handle();
        let t = thread::spawn(move || {
            let _ = h.append(1);
        });
        let mut got = take_n(&mut q, 3);
        t.join().unwrap();
        assert_eq!(got[0], 0);
        got.sort_unstable();
        assert_eq!(got, [0, 1, 10]);
    });
}

/// An item that counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn loom_queue_dropped_while_a_producer_appends_drops_each_item_once() {
    // The queue is dropped while a handle appends: the append is refused (and the item
    // comes back to the thread) or accepted (and the item dropped with the queue). Never leaked, never
    // dropped twice; the queue's context ends cancelled.
    model("queue drop races append", || {
        let ctx = hp::Ctx::beginning("r");
        let q = hp::queue::<Counted>(&ctx).build();
        let qctx = q.ctx().clone();
        let h = q.handle();
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let t = thread::spawn(move || h.append(Counted(d)));
        drop(q);
        drop(t.join().unwrap()); // a refused item comes back here
        assert_eq!(drops.load(SeqCst), 1);
        assert!(qctx.cancelled());
    });
}

#[test]
fn loom_sync_queue_producer_and_cancel_race_a_blocked_consumer() {
    // A producer thread appends 1 and 2, then cancels the context. The blocked consumer
    // wakes (never sleeps through the cancel); with `remaining` everything arrives once,
    // in order.
    model("sync queue producer and cancel", || {
        let ctx = hp::Ctx::beginning("r");
        let q = hp::sync_queue::<u32>(&ctx).build();
        let (q2, c2) = (q.clone(), q.ctx().clone());
        let t = thread::spawn(move || {
            let _ = q2.append(1);
            let _ = q2.append(2);
            c2.cancel();
        });
        let mut got: Vec<u32> = q.get_all().collect();
        t.join().unwrap();
        got.extend(q.remaining());
        assert_eq!(got, [1, 2]);
    });
}

#[test]
fn loom_sync_queue_stopped_iteration_leaves_the_rest_in_order() {
    // The consumer takes one item of three and stops while a producer appends: the
    // items it did not take stay queued, in order, before the new one.
    model("sync queue stop", || {
        let ctx = hp::Ctx::beginning("r");
        let q = hp::sync_queue::<u32>(&ctx).build();
        for n in 1..=3 {
            let _ = q.append(n);
        }
        let q2 = q.clone();
        let t = thread::spawn(move || q2.append(4));
        let first = q.get_all().next();
        t.join().unwrap().unwrap();
        assert_eq!(first, Some(1));
        assert_eq!(q.len(), 3);
        assert_eq!(q.remaining().collect::<Vec<_>>(), [2, 3, 4]);
    });
}

#[test]
fn loom_sync_queue_a_stopping_consumer_never_strands_a_sleeping_one() {
    // Timeout zero: a sleeping consumer wakes only when notified. Consumer B waits for
    // two items while A takes one of three and stops: B gets the other two without any
    // further append, in whatever interleaving (a lost wake-up is a loom deadlock).
    model("sync queue stop wakes a sleeper", || {
        let ctx = hp::Ctx::beginning("r");
        let q = hp::sync_queue::<u32>(&ctx)
            .timeout(std::time::Duration::ZERO)
            .build();
        let q2 = q.clone();
        let b = thread::spawn(move || q2.get_all().take(2).collect::<Vec<_>>());
        for n in 1..=3 {
            let _ = q.append(n);
        }
        let a = q.get_all().next();
        let mut got = b.join().unwrap();
        got.extend(a);
        got.extend(q.remaining());
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3]);
    });
}

#[test]
fn loom_sync_queue_two_consumers_share_a_burst() {
    // Two consumers each wait for one item; two items are appended at once: each gets
    // one (neither holds both while the other sleeps).
    model("sync queue two consumers", || {
        let ctx = hp::Ctx::beginning("r");
        let q = hp::sync_queue::<u32>(&ctx)
            .timeout(std::time::Duration::ZERO)
            .build();
        let q2 = q.clone();
        let b = thread::spawn(move || q2.get_all().next());
        let _ = q.append(1);
        let _ = q.append(2);
        let a = q.get_all().next();
        let b = b.join().unwrap();
        let mut got: Vec<u32> = a.into_iter().chain(b).collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    });
}

#[test]
fn loom_queue_manager_values_race_a_stop() {
    // A feeder adds two values while another thread cancels the manager's context: the
    // streamer gives `Stopped` exactly once, and with `remaining` each value exactly once
    // (values added after a stop are still delivered).
    use hp::QueueManagerResult as R;
    model("queue manager values race a stop", || {
        let ctx = hp::Ctx::beginning("r");
        let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
        let mctx = streamer.ctx().clone();
        let t = thread::spawn(move || {
            feeder.add_value(hp::Feed::Value(1));
            feeder.add_value(hp::Feed::Value(2));
        });
        let c = thread::spawn(move || {
            mctx.cancel();
        });
        let mut got: Vec<R<u32, ()>> = block_on(streamer.by_ref().collect());
        t.join().unwrap();
        c.join().unwrap();
        got.extend(streamer.remaining());
        assert_eq!(got.iter().filter(|r| r.is_stopped()).count(), 1);
        let mut values: Vec<u32> = got.iter().filter_map(|r| r.value().copied()).collect();
        values.sort_unstable();
        assert_eq!(values, [1, 2]);
    });
}

#[test]
fn loom_queue_manager_iterator_races_a_stop() {
    // An iterator source is stepped by the streamer while another thread cancels: its
    // values come in order, then exactly one `IterationStop`; `Stopped` exactly once.
    use hp::QueueManagerResult as R;
    model("queue manager iterator races a stop", || {
        let ctx = hp::Ctx::beginning("r");
        let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
        feeder.add_sync_iterator([1u32, 2]);
        let mctx = streamer.ctx().clone();
        let c = thread::spawn(move || {
            mctx.cancel();
        });
        let mut got: Vec<R<u32, ()>> = block_on(streamer.by_ref().collect());
        c.join().unwrap();
        got.extend(streamer.remaining());
        assert_eq!(got.iter().filter(|r| r.is_stopped()).count(), 1);
        let values: Vec<u32> = got.iter().filter_map(|r| r.value().copied()).collect();
        assert!(
            values == [] as [u32; 0] || values == [1] || values == [1, 2],
            "{values:?}"
        );
        let stops = got
            .iter()
            .filter(|r| matches!(r, R::IterationStop { .. }))
            .count();
        assert_eq!(stops, 1);
        assert_eq!(feeder.live_sources(), 0);
    });
}

#[test]
fn loom_queue_manager_hot_iterator_races_a_feeder() {
    // The consumer steps a hot iterator (its values and steps in the consumer's own part
    // of the queue, taken without the shared lock) while a feeder thread adds a value
    // and then asks to finish: every value comes exactly once, the iterator's in order,
    // one `IterationStop`, and `Stopped { error: None }` exactly once, last.
    use hp::QueueManagerResult as R;
    model("queue manager hot iterator races a feeder", || {
        let ctx = hp::Ctx::beginning("r");
        let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
        feeder.add_sync_iterator([1u32, 2]);
        let f = feeder.clone();
        let t = thread::spawn(move || {
            f.add_value(hp::Feed::Value(10));
            f.set_as_finished_if_out_of_sources();
        });
        let got: Vec<R<u32, ()>> = block_on(streamer.by_ref().collect());
        t.join().unwrap();
        let values: Vec<u32> = got.iter().filter_map(|r| r.value().copied()).collect();
        let mine: Vec<u32> = values.iter().copied().filter(|v| *v < 10).collect();
        assert_eq!(mine, [1, 2]);
        assert_eq!(values.iter().filter(|v| **v == 10).count(), 1);
        let stops = got
            .iter()
            .filter(|r| matches!(r, R::IterationStop { .. }))
            .count();
        assert_eq!(stops, 1);
        assert_eq!(got.iter().filter(|r| r.is_stopped()).count(), 1);
        assert!(got.last().unwrap().is_stopped());
        assert_eq!(feeder.live_sources(), 0);
    });
}
