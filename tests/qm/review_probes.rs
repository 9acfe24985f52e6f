//! Hostile review probes: every value handed in is processed or comes back, exactly once.
#![allow(dead_code)]
//! Expected results are worked out from SEMANTICS.md, docs/PORTING.md and the rustdoc.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use machinery::helpers::{self as hp, Feed, QueueManagerResult as R};

use crate::common::{block_on_paused, in_child_process, multi_thread, with_watchdog};

/// A value that counts its drops.
struct Tracked {
    id: usize,
    drops: Arc<AtomicUsize>,
}

impl Tracked {
    fn new(id: usize, drops: &Arc<AtomicUsize>) -> Self {
        Tracked {
            id,
            drops: drops.clone(),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

/// A value whose `Drop` panics.
struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("PanicOnDrop");
        }
    }
}

/// A panic payload that panics when dropped.
struct BombPayload;
impl Drop for BombPayload {
    fn drop(&mut self) {
        panic!("payload bomb");
    }
}

/// A `Drop` that panics with a payload that panics when dropped.
struct PanicBombOnDrop;
impl Drop for PanicBombOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            std::panic::panic_any(BombPayload);
        }
    }
}

fn quiet_panics() {
    // The probes provoke panics on purpose; keep the output readable.
    std::panic::set_hook(Box::new(|_| {}));
}

// ---------------------------------------------------------------------------------------
// Task holder: refused work is visible
// ---------------------------------------------------------------------------------------

/// SEMANTICS "Refused work is visible": a fallible form gives the work itself back; its
/// payload is not dropped behind the caller's back.
#[test]
fn th_try_spawn_refused_comes_back_undropped() {
    block_on_paused(async {
        let drops = Arc::new(AtomicUsize::new(0));
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        ctx.cancel();
        let mut back = Vec::new();
        for i in 0..100 {
            let t = Tracked::new(i, &drops);
            match ts.try_spawn(async move {
                let t = t;
                t.id
            }) {
                Ok(_) => panic!("a closed holder took work"),
                Err(r) => back.push(r.into_inner()),
            }
        }
        assert_eq!(
            drops.load(SeqCst),
            0,
            "refused work dropped behind the caller's back"
        );
        let mut sum = 0;
        for f in back {
            sum += f.await;
        }
        assert_eq!(sum, (0..100).sum::<usize>());
        assert_eq!(drops.load(SeqCst), 100);
    });
}

/// The same for a finished holder (holder finished, handle still there) and for the
/// scoped form and try_add_task.
#[test]
fn th_try_forms_after_finish_come_back() {
    block_on_paused(async {
        let drops = Arc::new(AtomicUsize::new(0));
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let h = ts.handle();
        ts.finish().await;
        let t = Tracked::new(1, &drops);
        let r = h
            .try_spawn(async move {
                let t = t;
                t.id
            })
            .expect_err("refused after finish");
        let t2 = Tracked::new(2, &drops);
        let r2 = h
            .try_spawn_scoped("s", move |_c| async move {
                let t2 = t2;
                t2.id
            })
            .expect_err("scoped refused after finish");
        let task = hp::Task::spawn(async { 5usize });
        let r3 = h
            .try_add_task(task)
            .expect_err("add_task refused after finish");
        assert_eq!(drops.load(SeqCst), 0);
        assert_eq!(r.into_inner().await, 1);
        assert_eq!((r2.into_inner())(ctx.clone()).await, 2);
        assert_eq!(r3.into_inner().await.unwrap(), 5);
        assert_eq!(drops.load(SeqCst), 2);
    });
}

/// SEMANTICS: the infallible form's task "is already finished as cancelled when the call
/// returns (its done callbacks ran)"; a joinable holder hands it out from join_next.
/// Robustness: a panic in a `Drop` of user code is caught and the helper carries on.
#[test]
fn th_spawn_closed_work_drop_panics() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let js = hp::join_holder::<u32>(&ctx);
        ctx.cancel();
        let bomb = PanicOnDrop;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            js.spawn(async move {
                let _b = &bomb;
                1
            })
        }));
        let task = r.expect("spawn let a panic of the work's Drop escape");
        assert!(task.done() && task.cancelled());
        assert_eq!(js.len(), 1);
        assert!(js.join_next().await.unwrap().unwrap_err().is_cancelled());
        assert!(js.join_next().await.is_none());
    });
}

/// As above, with a Drop whose panic payload panics when dropped (in a child process:
/// an abort fails the probe instead of the suite).
#[test]
fn th_spawn_closed_work_drop_payload_bomb() {
    in_child_process(
        module_path!(),
        "th_spawn_closed_work_drop_payload_bomb",
        || {
            quiet_panics();
            block_on_paused(async {
                let ctx = hp::Ctx::beginning("app");
                let js = hp::join_holder::<u32>(&ctx);
                ctx.cancel();
                let bomb = PanicBombOnDrop;
                let task = js.spawn(async move {
                    let _b = &bomb;
                    1
                });
                assert!(task.done() && task.cancelled());
                assert!(js.join_next().await.unwrap().unwrap_err().is_cancelled());
            });
        },
    );
}

/// A refused work's Drop calls back into the holder (spawns again): no deadlock, and
/// both refused tasks come out of join_next cancelled.
#[test]
fn th_spawn_closed_work_drop_reenters() {
    with_watchdog(|| {
        block_on_paused(async {
            struct Reenter(
                hp::JoinHolderHandle<u32>,
                Arc<AtomicUsize>,
                Arc<Mutex<Vec<String>>>,
            );
            impl Drop for Reenter {
                fn drop(&mut self) {
                    self.1.fetch_add(1, SeqCst);
                    let d = self.1.clone();
                    let t = self.0.spawn(async move {
                        let _ = &d;
                        2
                    });
                    self.2.lock().unwrap().push(format!(
                        "inner spawn returned: done={} cancelled={}",
                        t.done(),
                        t.cancelled()
                    ));
                }
            }
            let ctx = hp::Ctx::beginning("app");
            let js = hp::join_holder::<u32>(&ctx);
            ctx.cancel();
            let drops = Arc::new(AtomicUsize::new(0));
            let notes = Arc::new(Mutex::new(Vec::new()));
            let r = Reenter(js.handle(), drops.clone(), notes.clone());
            let task = js.spawn(async move {
                let _r = &r;
                1
            });
            assert!(task.done() && task.cancelled());
            assert_eq!(drops.load(SeqCst), 1, "the refused work was dropped once");
            assert_eq!(
                *notes.lock().unwrap(),
                ["inner spawn returned: done=true cancelled=true"],
                "SEMANTICS: the task a refused spawn returns is finished as cancelled when the call returns"
            );
            let mut n = 0;
            while let Some(o) = js.join_next().await {
                assert!(o.unwrap_err().is_cancelled());
                n += 1;
            }
            assert_eq!(n, 2, "both refused tasks come out of join_next");
        });
    });
}

/// A spawn onto a closed holder from inside a done callback (the holder's context is
/// done through its parent): the returned task must be finished as cancelled when
/// spawn returns (SEMANTICS "Refused work is visible").
#[test]
fn th_spawn_refused_inside_done_callback() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let js = hp::join_holder::<u32>(&ctx);
        let h = js.handle();
        let notes = Arc::new(Mutex::new(Vec::new()));
        let n2 = notes.clone();
        let keep = Arc::new(Mutex::new(None));
        let k2 = keep.clone();
        ctx.add_on_done(move |_, _| {
            let t = h.spawn(async { 1 });
            n2.lock()
                .unwrap()
                .push(format!("done={} cancelled={}", t.done(), t.cancelled()));
            *k2.lock().unwrap() = Some(t);
        });
        ctx.cancel();
        let t = keep.lock().unwrap().take().unwrap();
        // CTX 3's weaker guarantee: done before the outermost finishing call returned.
        assert!(
            t.done() && t.cancelled(),
            "not even finished after cancel() returned"
        );
        assert!(js.join_next().await.unwrap().unwrap_err().is_cancelled());
        assert!(js.join_next().await.is_none());
        // The refusal rule's guarantee: finished when spawn returned.
        assert_eq!(*notes.lock().unwrap(), ["done=true cancelled=true"]);
    });
}

fn refused_drop_chain(n: usize) -> Duration {
    block_on_paused(async move {
        struct Link(usize, hp::TaskHolderHandle, Arc<AtomicUsize>);
        impl Drop for Link {
            fn drop(&mut self) {
                self.2.fetch_add(1, SeqCst);
                if self.0 > 0 {
                    let next = Link(self.0 - 1, self.1.clone(), self.2.clone());
                    let _t = self.1.spawn(async move {
                        let _n = &next;
                    });
                }
            }
        }
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        ctx.cancel();
        let drops = Arc::new(AtomicUsize::new(0));
        let first = Link(n, ts.handle(), drops.clone());
        let start = std::time::Instant::now();
        let t = ts.spawn(async move {
            let _f = &first;
        });
        let took = start.elapsed();
        assert!(t.cancelled());
        assert_eq!(drops.load(SeqCst), n + 1);
        eprintln!("refused drop chain of {n}: {took:?}");
        took
    })
}

/// Robustness: "No recursion grows with a length the user controls ... Drops ... are
/// iterative." A refused work whose Drop spawns the next refused work, 100 000 links,
/// on a 2 MiB stack.
#[test]
fn th_refused_drop_chain_100k() {
    in_child_process(module_path!(), "th_refused_drop_chain_100k", || {
        refused_drop_chain(100_000);
    });
}

/// The same chain at 20 000 and 80 000 links: time per link should not grow with length.
#[test]
fn th_refused_drop_chain_scaling() {
    in_child_process(module_path!(), "th_refused_drop_chain_scaling", || {
        let a = refused_drop_chain(20_000);
        let b = refused_drop_chain(80_000);
        assert!(
            b < a * 12,
            "4x the links took {:.1}x the time ({a:?} vs {b:?}): not linear",
            b.as_secs_f64() / a.as_secs_f64()
        );
    });
}

/// JoinHolder: refused work counts in len() and comes out of join_next / try_join_next.
#[test]
fn th_join_refused_len_and_join() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let js = hp::join_holder::<u32>(&ctx);
        js.spawn(async { 1 });
        tokio::task::yield_now().await;
        ctx.cancel();
        for i in 0..3 {
            let t = js.spawn(async move { 10 + i });
            assert!(t.done() && t.cancelled());
        }
        assert_eq!(js.len(), 4, "1 finished not joined + 3 refused");
        let mut ok = 0;
        let mut cancelled = 0;
        while let Some(o) = js.try_join_next() {
            match o {
                Ok(1) => ok += 1,
                Err(f) if f.is_cancelled() => cancelled += 1,
                other => panic!("unexpected {:?}", other.is_ok()),
            }
        }
        assert_eq!((ok, cancelled), (1, 3));
        assert!(js.join_next().await.is_none());
        assert_eq!(js.len(), 0);
    });
}

/// join_next is cancel safe: dropped at its await point again and again, no output is
/// lost or given twice.
#[test]
fn th_join_next_cancelled_at_await() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let js = hp::join_holder::<usize>(&ctx);
        let mut rng = crate::common::Rng(7);
        for i in 0..200 {
            let ms = rng.below(50);
            js.spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                i
            });
        }
        let mut seen = BTreeSet::new();
        let mut timeouts = 0;
        loop {
            match tokio::time::timeout(Duration::from_micros(300), js.join_next()).await {
                Ok(Some(o)) => assert!(seen.insert(o.unwrap()), "an output came twice"),
                Ok(None) => break,
                Err(_) => timeouts += 1,
            }
        }
        assert!(timeouts > 0);
        assert_eq!(seen.len(), 200);
    });
}

/// Several joiners on the multi-thread runtime: each output exactly once.
#[test]
fn th_join_next_several_consumers_mt() {
    multi_thread(async {
        let ctx = hp::Ctx::beginning("app");
        let js = hp::join_holder::<usize>(&ctx);
        let n = 2000;
        let mut joiners = Vec::new();
        for _ in 0..3 {
            let h = js.handle();
            joiners.push(tokio::spawn(async move {
                let mut got = Vec::new();
                // Every task is spawned before the joiners can see an empty holder.
                while let Some(o) = h.join_next().await {
                    got.push(o.unwrap());
                }
                got
            }));
        }
        for i in 0..n {
            js.spawn(async move {
                tokio::task::yield_now().await;
                i
            });
        }
        let _ = &joiners;
        let mut all = Vec::new();
        for j in joiners {
            all.extend(j.await.unwrap());
        }
        // Joiners may have ended early (holder empty before all spawns): join the rest.
        while let Some(o) = js.join_next().await {
            all.push(o.unwrap());
        }
        all.sort();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    });
}

/// reserve() is cancel safe: a waiter dropped after its slot was freed gives the slot
/// back (slot docs: "dropping the future gives up its place ... a slot it had taken goes
/// back").
#[test]
fn th_reserve_cancelled_after_wake() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let js = hp::TaskHolder::builder(&ctx)
            .limit(1)
            .build_joinable::<u32>();
        let slot = js.reserve().await;
        {
            let mut waiter = Box::pin(js.reserve());
            assert!(futures::poll!(waiter.as_mut()).is_pending());
            drop(slot); // frees the slot: the waiter may be handed it
            // dropped without being polled again
        }
        let got = tokio::time::timeout(Duration::from_secs(1), js.reserve()).await;
        let slot = got.expect("the slot was lost with a cancelled reserve()");
        slot.spawn(async { 3 });
        assert_eq!(js.join_next().await.unwrap().unwrap(), 3);
    });
}

/// A waiter cancelled at its await point while the slot is held by a running task: the
/// task's release must wake the next (live) waiter.
#[test]
fn th_reserve_cancelled_waiter_does_not_swallow_wake() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let js = hp::TaskHolder::builder(&ctx)
            .limit(1)
            .build_joinable::<u32>();
        js.reserve().await.spawn(async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            1
        });
        let mut a = Box::pin(js.reserve());
        assert!(futures::poll!(a.as_mut()).is_pending());
        let b = js.handle();
        let b = tokio::spawn(async move { b.reserve().await.spawn(async { 2 }) });
        tokio::task::yield_now().await;
        drop(a);
        let t = tokio::time::timeout(Duration::from_secs(1), b).await;
        t.expect("second waiter never woken").unwrap();
        let mut outs = Vec::new();
        while let Some(o) = js.join_next().await {
            outs.push(o.unwrap());
        }
        outs.sort();
        assert_eq!(outs, [1, 2]);
    });
}

/// reserve() returns once the context is done; the slot's work is refused visibly (a
/// cancelled task from join_next), and its payload is dropped exactly once.
#[test]
fn th_reserve_ctx_done_refuses_visibly() {
    block_on_paused(async {
        let drops = Arc::new(AtomicUsize::new(0));
        let ctx = hp::Ctx::beginning("app");
        let js = hp::TaskHolder::builder(&ctx)
            .limit(1)
            .build_joinable::<usize>();
        js.reserve().await.spawn(std::future::pending());
        let h = js.handle();
        let c2 = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            c2.cancel();
        });
        let slot = tokio::time::timeout(Duration::from_secs(1), h.reserve())
            .await
            .expect("reserve() did not return on a done context");
        let t = Tracked::new(9, &drops);
        let task = slot.spawn(async move {
            let t = t;
            t.id
        });
        tokio::task::yield_now().await;
        assert!(task.done() && task.cancelled());
        let mut n = 0;
        while let Some(o) = js.join_next().await {
            assert!(o.unwrap_err().is_cancelled());
            n += 1;
        }
        assert_eq!(n, 2);
        assert_eq!(drops.load(SeqCst), 1);
    });
}

/// Backpressure on the multi-thread runtime: at most `limit` tasks run at once through
/// slots, every output joined once.
#[test]
fn th_reserve_limit_mt() {
    multi_thread(async {
        let ctx = hp::Ctx::beginning("app");
        let js = hp::TaskHolder::builder(&ctx)
            .limit(4)
            .build_joinable::<usize>();
        let running = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let mut producers = Vec::new();
        for p in 0..2 {
            let h = js.handle();
            let (running, max) = (running.clone(), max.clone());
            producers.push(tokio::spawn(async move {
                for i in 0..500 {
                    let (running, max) = (running.clone(), max.clone());
                    h.reserve().await.spawn(async move {
                        let now = running.fetch_add(1, SeqCst) + 1;
                        max.fetch_max(now, SeqCst);
                        tokio::task::yield_now().await;
                        running.fetch_sub(1, SeqCst);
                        p * 1000 + i
                    });
                    assert!(h.pending() <= 4, "pending {} > limit", h.pending());
                }
            }));
        }
        let mut all = Vec::new();
        for p in producers {
            p.await.unwrap();
        }
        while let Some(o) = js.join_next().await {
            all.push(o.unwrap());
        }
        assert!(max.load(SeqCst) <= 4, "max running {}", max.load(SeqCst));
        assert_eq!(all.len(), 1000);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 1000);
    });
}

/// Race of cancel vs try_spawn on the multi-thread runtime: every value exactly once
/// either accepted (then joined: output or cancelled) or given back.
#[test]
fn th_race_cancel_vs_try_spawn_mt() {
    for round in 0..20 {
        multi_thread(async move {
            let drops = Arc::new(AtomicUsize::new(0));
            let ran = Arc::new(Mutex::new(Vec::new()));
            let ctx = hp::Ctx::beginning("app");
            let js = hp::join_holder::<usize>(&ctx);
            let mut producers = Vec::new();
            for p in 0..2 {
                let h = js.handle();
                let (drops, ran) = (drops.clone(), ran.clone());
                producers.push(tokio::spawn(async move {
                    let (mut ok, mut back) = (0usize, Vec::new());
                    for i in 0..500 {
                        let t = Tracked::new(p * 1000 + i, &drops);
                        let ran = ran.clone();
                        match h.try_spawn(async move {
                            let t = t;
                            ran.lock().unwrap().push(t.id);
                            t.id
                        }) {
                            Ok(_) => ok += 1,
                            Err(r) => back.push(r.into_inner()),
                        }
                        if i % 50 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    (ok, back)
                }));
            }
            let c2 = ctx.clone();
            tokio::spawn(async move {
                for _ in 0..(round * 7) {
                    tokio::task::yield_now().await;
                }
                c2.cancel();
            });
            let mut accepted = 0;
            let mut back = Vec::new();
            for p in producers {
                let (ok, b) = p.await.unwrap();
                accepted += ok;
                back.extend(b);
            }
            ctx.cancel();
            let mut joined = 0;
            let mut outputs = 0;
            while let Some(o) = tokio::time::timeout(Duration::from_secs(10), js.join_next())
                .await
                .expect("join_next hung")
            {
                joined += 1;
                if o.is_ok() {
                    outputs += 1;
                }
            }
            assert_eq!(
                joined, accepted,
                "every accepted task comes out of join_next once"
            );
            assert_eq!(outputs, ran.lock().unwrap().len());
            assert_eq!(accepted + back.len(), 1000);
            eprintln!(
                "th_race round {round}: accepted {accepted} refused {}",
                back.len()
            );
            let n_back = back.len();
            // The accepted values were dropped by their tasks (run or cancelled), the
            // refused ones not yet.
            assert_eq!(drops.load(SeqCst), accepted, "round {round}");
            drop(back);
            assert_eq!(drops.load(SeqCst), accepted + n_back);
        });
    }
}

/// fail_fast: a held task panics with a payload that panics when dropped: caught, the
/// holder reports the failure, the process goes on.
#[test]
fn th_fail_fast_payload_bomb() {
    in_child_process(module_path!(), "th_fail_fast_payload_bomb", || {
        quiet_panics();
        block_on_paused(async {
            let ctx = hp::Ctx::beginning("app");
            let ts = hp::TaskHolder::builder(&ctx).name("g").fail_fast().build();
            let sib = ts.spawn_scoped("sib", |c| async move {
                c.wait().await;
                7
            });
            ts.spawn_silent(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                std::panic::panic_any(BombPayload);
            });
            let r = ts.try_finish().await;
            assert!(r.is_err(), "fail_fast returns the failure");
            assert_eq!(sib.await.unwrap(), 7);
        });
    });
}

// ---------------------------------------------------------------------------------------
// Queue: a refused item comes back; producers can end the stream
// ---------------------------------------------------------------------------------------

/// Close vs append from several producers on the multi-thread runtime: every value
/// exactly once either yielded or given back.
#[test]
fn q_close_race_mt() {
    for round in 0..20 {
        multi_thread(async move {
            let ctx = hp::Ctx::beginning("app");
            let mut queue = hp::queue::<usize>(&ctx).build();
            let mut producers = Vec::new();
            for p in 0..2 {
                let h = queue.handle();
                producers.push(tokio::spawn(async move {
                    let mut back = Vec::new();
                    for i in 0..2000 {
                        if let Err(e) = h.append(p * 10_000 + i) {
                            assert!(e.is_closed());
                            back.push(e.into_inner());
                        }
                        if i % 100 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    back
                }));
            }
            let h = queue.handle();
            tokio::spawn(async move {
                for _ in 0..(round * 3) {
                    tokio::task::yield_now().await;
                }
                h.close();
            });
            let seen: Vec<usize> =
                tokio::time::timeout(Duration::from_secs(10), queue.get_all().collect())
                    .await
                    .expect("iteration did not end after close");
            let mut all = seen.clone();
            for p in producers {
                all.extend(p.await.unwrap());
            }
            eprintln!(
                "q_close_race round {round}: yielded {} given back {}",
                seen.len(),
                all.len() - seen.len()
            );
            all.sort();
            let expect: Vec<usize> = (0..2)
                .flat_map(|p| (0..2000).map(move |i| p * 10_000 + i))
                .collect();
            assert_eq!(all, expect, "round {round}: lost or duplicated values");
        });
    }
}

/// close_when_handles_dropped: producers each drop their handle when done; the consumer
/// gets exactly everything and ends.
#[test]
fn q_close_when_handles_dropped_mt() {
    multi_thread(async {
        let ctx = hp::Ctx::beginning("app");
        let mut queue = hp::queue::<usize>(&ctx)
            .close_when_handles_dropped(true)
            .build();
        let handles: Vec<_> = (0..4).map(|_| queue.handle()).collect();
        for (p, h) in handles.into_iter().enumerate() {
            tokio::spawn(async move {
                for i in 0..5000 {
                    h.append(p * 10_000 + i).unwrap();
                    if i % 500 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            });
        }
        let seen: Vec<usize> = queue.get_all().collect().await;
        assert_eq!(seen.len(), 20_000);
        assert!(queue.is_closed());
        assert!(queue.append(1).unwrap_err().is_closed());
    });
}

/// A consumer waiting on an empty queue is woken at once by close (both runtimes).
#[test]
fn q_close_wakes_waiting_consumer() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let mut queue = hp::queue::<u32>(&ctx).build();
        let h = queue.handle();
        let start = tokio::time::Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            h.append(1).unwrap();
            h.close();
        });
        let seen: Vec<u32> = queue.get_all().collect().await;
        assert_eq!(seen, [1]);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    });
    multi_thread(async {
        let ctx = hp::Ctx::beginning("app");
        let mut queue = hp::queue::<u32>(&ctx).build();
        let h = queue.handle();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            h.close();
        });
        let seen: Vec<u32> = queue.get_all().collect().await;
        assert!(seen.is_empty());
    });
}

/// get_all().next() dropped at its await point, then close: nothing lost, the next
/// iteration yields what was queued, then ends.
#[test]
fn q_next_cancelled_then_close() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let mut queue = hp::queue::<u32>(&ctx).build();
        {
            let mut it = queue.get_all();
            let mut n = Box::pin(it.next());
            assert!(futures::poll!(n.as_mut()).is_pending());
        }
        queue.append(1).unwrap();
        queue.append_front(0).unwrap();
        queue.close();
        let seen: Vec<u32> = queue.get_all().collect().await;
        assert_eq!(seen, [0, 1]);
        let again: Vec<u32> = queue.get_all().collect().await;
        assert!(again.is_empty(), "every later iteration ends too");
    });
}

/// Dropping the Queue drops queued items one by one; an item's Drop appends again
/// through a handle (re-entry): no deadlock, the append comes back (consumer gone), and
/// every item is dropped exactly once.
#[test]
fn q_drop_item_reenters_append() {
    with_watchdog(|| {
        block_on_paused(async {
            struct Back(hp::QueueHandle<Item>, Arc<AtomicUsize>, Arc<AtomicUsize>);
            enum Item {
                Plain(Tracked),
                Back(Back),
            }
            impl Drop for Back {
                fn drop(&mut self) {
                    let t = Tracked::new(0, &self.1);
                    match self.0.append(Item::Plain(t)) {
                        Ok(()) => {}
                        Err(e) => {
                            assert!(e.is_consumer_gone());
                            self.2.fetch_add(1, SeqCst);
                        }
                    }
                }
            }
            let drops = Arc::new(AtomicUsize::new(0));
            let refused = Arc::new(AtomicUsize::new(0));
            let ctx = hp::Ctx::beginning("app");
            let queue = hp::queue::<Item>(&ctx).build();
            for i in 0..10 {
                queue.append(Item::Plain(Tracked::new(i, &drops))).unwrap();
                queue
                    .append(Item::Back(Back(
                        queue.handle(),
                        drops.clone(),
                        refused.clone(),
                    )))
                    .unwrap();
            }
            drop(queue);
            // 10 plain items + 10 items made in Back's Drop (refused, dropped with the
            // AppendError) = 20; no append taken after the drop.
            assert_eq!(
                refused.load(SeqCst),
                10,
                "appends from Drop were not refused"
            );
            assert_eq!(drops.load(SeqCst), 20);
        });
    });
}

/// Queue drop of a 100 000-deep nest (an item holds a queue that holds an item...): the
/// docs promise an iterative drop. 2 MiB stack, child process.
#[test]
fn q_drop_nested_100k() {
    in_child_process(module_path!(), "q_drop_nested_100k", || {
        block_on_paused(async {
            struct Nest(Option<hp::Queue<Nest>>);
            let ctx = hp::Ctx::beginning("app");
            let mut q = hp::queue::<Nest>(&ctx).build();
            for _ in 0..100_000 {
                let outer = hp::queue::<Nest>(&ctx).build();
                outer.append(Nest(Some(q))).unwrap();
                q = outer;
            }
            drop(q);
        });
    });
}

/// SyncQueue: close vs append from threads; every value exactly once either yielded or
/// given back.
#[test]
fn sq_close_race_threads() {
    for round in 0..20 {
        with_watchdog(move || {
            let ctx = hp::Ctx::beginning("app");
            let queue = hp::sync_queue::<usize>(&ctx).build();
            let mut producers = Vec::new();
            for p in 0..2 {
                let h = queue.handle();
                producers.push(std::thread::spawn(move || {
                    let mut back = Vec::new();
                    for i in 0..5000 {
                        if let Err(e) = h.append(p * 10_000 + i) {
                            back.push(e.into_inner());
                        }
                        if i % 100 == 0 {
                            std::thread::sleep(Duration::from_micros(50));
                        }
                    }
                    back
                }));
            }
            let h = queue.handle();
            let closer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_micros(round as u64 * 100));
                h.close();
            });
            let q2 = queue.clone();
            let consumer = std::thread::spawn(move || q2.get_all().collect::<Vec<_>>());
            let mut all = consumer.join().unwrap();
            closer.join().unwrap();
            let yielded = all.len();
            for p in producers {
                all.extend(p.join().unwrap());
            }
            let back = all.len() - yielded;
            all.extend(queue.remaining());
            eprintln!(
                "sq_close_race round {round}: yielded {yielded} given back {back} remaining {}",
                all.len() - yielded - back
            );
            all.sort();
            let expect: Vec<usize> = (0..2)
                .flat_map(|p| (0..5000).map(move |i| p * 10_000 + i))
                .collect();
            assert_eq!(all.len(), expect.len(), "round {round}");
            assert_eq!(all, expect, "round {round}");
        });
    }
}

/// SyncQueue with several consumers and close_when_handles_dropped: each item exactly
/// once, every consumer ends.
#[test]
fn sq_several_consumers_handles_dropped() {
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("app");
        let queue = hp::sync_queue::<usize>(&ctx)
            .close_when_handles_dropped(true)
            .build();
        let handles: Vec<_> = (0..3).map(|_| queue.handle()).collect();
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let q = queue.clone();
                std::thread::spawn(move || q.get_all().collect::<Vec<_>>())
            })
            .collect();
        let producers: Vec<_> = handles
            .into_iter()
            .enumerate()
            .map(|(p, h)| {
                std::thread::spawn(move || {
                    for i in 0..3000 {
                        h.append(p * 10_000 + i).unwrap();
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let mut all = Vec::new();
        for c in consumers {
            all.extend(c.join().unwrap());
        }
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 9000);
    });
}

/// SyncQueueHandle: every SyncQueue (consumer) handle dropped: appends come back with
/// is_consumer_gone.
#[test]
fn sq_consumer_gone_gives_back() {
    let drops = Arc::new(AtomicUsize::new(0));
    let ctx = hp::Ctx::beginning("app");
    let queue = hp::sync_queue::<Tracked>(&ctx).build();
    let h = queue.handle();
    h.append(Tracked::new(1, &drops)).unwrap();
    drop(queue);
    assert_eq!(drops.load(SeqCst), 1, "queued item dropped with the queue");
    let e = h.append(Tracked::new(2, &drops)).unwrap_err();
    assert!(e.is_consumer_gone());
    assert_eq!(drops.load(SeqCst), 1);
    assert_eq!(e.into_inner().id, 2);
    assert_eq!(drops.load(SeqCst), 2);
}

// ---------------------------------------------------------------------------------------
// Queue manager
// ---------------------------------------------------------------------------------------

fn describe<C>(r: &R<u32, C>) -> String {
    match r {
        R::Success { value, .. } => format!("ok {value}"),
        R::Failure { error, .. } => format!("fail {error}"),
        R::IterationStop { error: None, .. } => "end".into(),
        R::IterationStop { error: Some(e), .. } => format!("end {e}"),
        R::Stopped { error: None } => "stopped".into(),
        R::Stopped { error: Some(e) } => format!("stopped {e}"),
    }
}

/// SEMANTICS "Feed::Error is an error wherever it sits: wrapped (with_context ...) it
/// ends an iterator exactly as a bare one does"; ItemError goes on (also wrapped).
#[test]
fn qm_wrapped_error_ends_item_error_goes_on() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let (mut streamer, feeder) = hp::queue_manager::<u32, String>(&ctx);
        feeder.add_sync_iterator(vec![
            Feed::Value(1),
            Feed::item_error(hp::Error::msg("bad")).with_context("c1".to_string()),
            Feed::Value(2),
            Feed::error(hp::Error::msg("boom")).with_context("c2".to_string()),
            Feed::Value(3),
        ]);
        feeder.set_as_finished_if_out_of_sources();
        let mut seen = Vec::new();
        let mut rest = None;
        let mut ctxs = Vec::new();
        while let Some(mut r) = streamer.next().await {
            seen.push(describe(&r));
            if let R::Failure { context, .. } = &r {
                ctxs.push((**context).clone());
            }
            if let Some(u) = r.take_unread() {
                rest = Some(u);
            }
        }
        assert_eq!(
            seen,
            [
                "ok 1",
                "fail bad",
                "ok 2",
                "fail boom",
                "end boom",
                "stopped"
            ]
        );
        assert_eq!(ctxs, ["c1", "c2"]);
        let Some(Feed::Iterator(rest)) = rest else {
            panic!("the rest comes back")
        };
        let rest: Vec<_> = rest.collect();
        assert!(matches!(rest[..], [Feed::Value(3)]));
    });
}

/// Stream sources: ItemError goes on, Error ends and hands back the rest.
#[test]
fn qm_stream_item_error_and_error() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
        feeder.add_async_generator(futures::stream::iter(vec![
            Feed::Value(1),
            Feed::item_error(hp::Error::msg("bad")),
            Feed::Value(2),
            Feed::error(hp::Error::msg("boom")),
            Feed::Value(3),
        ]));
        feeder.set_as_finished_if_out_of_sources();
        let mut seen = Vec::new();
        let mut rest = None;
        while let Some(mut r) = streamer.next().await {
            seen.push(describe(&r));
            if let Some(u) = r.take_unread() {
                rest = Some(u);
            }
        }
        assert_eq!(
            seen,
            [
                "ok 1",
                "fail bad",
                "ok 2",
                "fail boom",
                "end boom",
                "stopped"
            ]
        );
        let Some(Feed::Stream(rest)) = rest else {
            panic!("the rest comes back")
        };
        let rest: Vec<_> = rest.collect().await;
        assert!(matches!(rest[..], [Feed::Value(3)]));
    });
}

/// A stop cuts an iterator short: what was delivered plus what comes back unread is
/// exactly the whole input.
#[test]
fn qm_stop_iterator_every_item_accounted() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
        feeder.add_sync_iterator((0..1000u32).map(Feed::Value));
        let mut got = Vec::new();
        let mut rest = Vec::new();
        let mut stopped = 0;
        let mut stream_ctx = Some(streamer.ctx().clone());
        while let Some(mut r) = streamer.next().await {
            if let Some(Feed::Iterator(it)) = r.take_unread() {
                for f in it {
                    let Feed::Value(v) = f else { panic!() };
                    rest.push(v);
                }
            }
            match r {
                R::Success { value, .. } => {
                    got.push(value);
                    if got.len() == 10 {
                        stream_ctx.take().unwrap().cancel();
                    }
                }
                R::Stopped { .. } => stopped += 1,
                _ => {}
            }
        }
        assert_eq!(stopped, 1);
        assert_eq!(streamer.cut_short().len(), 1);
        let mut all = got.clone();
        all.extend(rest);
        all.sort();
        assert_eq!(
            all,
            (0..1000).collect::<Vec<_>>(),
            "delivered {}",
            got.len()
        );
    });
}

/// Same for a stream source, stopped by close() on the multi-thread runtime.
#[test]
fn qm_stop_stream_every_item_accounted() {
    block_on_paused(async {
        let ctx = hp::Ctx::beginning("app");
        let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
        feeder.add_async_generator(futures::stream::iter((0..1000u32).map(Feed::Value)));
        let mut got = Vec::new();
        let mut rest = Vec::new();
        while let Some(mut r) = streamer.next().await {
            if let Some(Feed::Stream(s)) = r.take_unread() {
                for f in s.collect::<Vec<_>>().await {
                    let Feed::Value(v) = f else { panic!() };
                    rest.push(v);
                }
            }
            if let R::Success { value, .. } = r {
                got.push(value);
                if got.len() == 10 {
                    streamer.ctx().cancel();
                }
            }
        }
        let mut all = got.clone();
        all.extend(rest);
        all.sort();
        assert_eq!(
            all,
            (0..1000).collect::<Vec<_>>(),
            "delivered {}",
            got.len()
        );
    });
}

/// SEMANTICS "Nothing new starts after the stop ... So a stop ends the stream after a
/// bounded amount of work, even when every function returns another function."
/// The stop comes from inside the 1000th call.
#[test]
fn qm_stop_endless_function_chain_inside() {
    with_watchdog(|| {
        block_on_paused(async {
            fn next(n: Arc<AtomicUsize>, stop: hp::Ctx) -> Feed<u32> {
                if n.fetch_add(1, SeqCst) == 1000 {
                    stop.cancel();
                }
                Feed::function(move || next(n, stop))
            }
            let calls = Arc::new(AtomicUsize::new(0));
            let ctx = hp::Ctx::beginning("app");
            let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            let (c, stop) = (calls.clone(), streamer.ctx().clone());
            feeder.add_sync_function(move || next(c, stop));
            feeder.add_value(5);
            let mut back = 0;
            let mut seen = Vec::new();
            while let Some(mut r) = streamer.next().await {
                if r.take_unread().is_some() {
                    back += 1;
                }
                seen.push(describe(&r));
            }
            assert_eq!(
                calls.load(SeqCst),
                1001,
                "a function was called after the stop"
            );
            assert_eq!(back, 1, "the uncalled function comes back once: {seen:?}");
            assert_eq!(streamer.cut_short().len(), 1);
        });
    });
}

/// The same stop from another task on the current-thread runtime: the consumer's
/// next() must let the stopping task run (cooperative budget) while the chain spins.
#[test]
fn qm_stop_endless_function_chain_other_task() {
    with_watchdog(|| {
        crate::common::current_thread().block_on(async {
            fn next(n: Arc<AtomicUsize>) -> Feed<u32> {
                n.fetch_add(1, SeqCst);
                Feed::function(move || next(n))
            }
            let calls = Arc::new(AtomicUsize::new(0));
            let ctx = hp::Ctx::beginning("app");
            let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            let c = calls.clone();
            feeder.add_sync_function(move || next(c));
            let stop = streamer.ctx().clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                stop.cancel();
            });
            let mut back = 0;
            while let Some(mut r) = streamer.next().await {
                if r.take_unread().is_some() {
                    back += 1;
                }
            }
            assert_eq!(back, 1);
        });
    });
}

/// Robustness: "a function that returns the next function, 1 000 000 times" works on a
/// 2 MiB stack (here 100 000 hops; dropping the result's chain is iterative).
#[test]
fn qm_function_chain_100k_small_stack() {
    in_child_process(module_path!(), "qm_function_chain_100k_small_stack", || {
        block_on_paused(async {
            fn hop(n: u32) -> Feed<u32> {
                if n == 0 {
                    Feed::Value(0)
                } else {
                    Feed::function(move || hop(n - 1))
                }
            }
            let ctx = hp::Ctx::beginning("app");
            let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
            feeder.add_value(hop(100_000));
            let Some(R::Success { sources, .. }) = streamer.next().await else {
                panic!()
            };
            assert_eq!(sources.depth(), 100_001);
            drop(sources);
            drop(streamer);
        });
    });
}

/// close() dropped at its await point: the manager is still stopped, the coroutine's
/// future is dropped (its value not leaked).
#[test]
fn qm_close_future_dropped() {
    block_on_paused(async {
        let drops = Arc::new(AtomicUsize::new(0));
        let ctx = hp::Ctx::beginning("app");
        let (streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
        let t = Tracked::new(1, &drops);
        feeder.add_coroutine(async move {
            let _t = t;
            std::future::pending::<()>().await;
            Feed::Value(1)
        });
        feeder.add_async_generator(hp::AsyncGenerator::new(
            |y: hp::Co<Feed<u32>, ()>| async move {
                let _ = y.yield_(Feed::Value(1)).await;
                std::future::pending::<()>().await;
            },
        ));
        tokio::task::yield_now().await;
        {
            let mut close = Box::pin(streamer.close());
            let _ = futures::poll!(close.as_mut());
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(feeder.is_stopped());
        assert_eq!(
            drops.load(SeqCst),
            1,
            "the coroutine's future was not dropped"
        );
    });
}

// ---------------------------------------------------------------------------------------
// Drain / shutdown
// ---------------------------------------------------------------------------------------

/// "Every task running under the drain when it began is in finished or cut_short."
#[test]
fn drain_lists_every_task() {
    block_on_paused(async {
        let root = hp::Ctx::beginning("svc");
        let ts = hp::TaskHolder::builder(&root).name("h").build();
        for i in 0..10 {
            let stuck = i % 2 == 1;
            ts.spawn_scoped(format!("t{i}"), move |c| async move {
                if stuck {
                    std::future::pending::<()>().await;
                }
                c.wait().await;
                tokio::time::sleep(Duration::from_millis(10 * i)).await;
            });
        }
        let plain = hp::Task::spawn_named("plain", std::future::pending::<()>());
        tokio::task::yield_now().await;
        let report = hp::Drain::new(&root)
            .holder(ts)
            .task(&plain)
            .run(Duration::from_secs(1))
            .await;
        let mut f = report.finished.clone();
        f.sort();
        let mut c = report.cut_short.clone();
        c.sort();
        assert_eq!(
            f,
            [
                "svc-->h-->t0",
                "svc-->h-->t2",
                "svc-->h-->t4",
                "svc-->h-->t6",
                "svc-->h-->t8"
            ]
        );
        assert_eq!(c.len(), 6, "cut short: {c:?}");
        assert!(c.iter().any(|n| n.contains("plain")), "{c:?}");
        assert_eq!(report.end, hp::DrainEnd::DeadlineExceeded);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(plain.done(), "a cut-short task is aborted");
    });
}

/// Dropping the run future at its await point drops what was handed over: the held
/// tasks are cancelled (their futures dropped).
#[test]
fn drain_run_future_dropped() {
    block_on_paused(async {
        let drops = Arc::new(AtomicUsize::new(0));
        let root = hp::Ctx::beginning("svc");
        let ts = hp::TaskHolder::builder(&root).name("h").build();
        let t = Tracked::new(1, &drops);
        let task = ts.spawn(async move {
            let _t = t;
            std::future::pending::<()>().await;
        });
        let t2 = Tracked::new(2, &drops);
        let seen_ctx = Arc::new(Mutex::new(None));
        let sc = seen_ctx.clone();
        let scoped = ts.spawn_scoped("stuck", move |c| async move {
            *sc.lock().unwrap() = Some(c);
            let _t = t2;
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        {
            let mut run = Box::pin(hp::Drain::new(&root).holder(ts).run(Duration::from_secs(5)));
            assert!(futures::poll!(run.as_mut()).is_pending());
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(task.done() && task.cancelled(), "plain task not cancelled");
        assert!(root.done());
        assert!(
            drops.load(SeqCst) >= 1,
            "the plain task's future was not dropped"
        );
        let c = seen_ctx
            .lock()
            .unwrap()
            .clone()
            .expect("scoped work started");
        assert!(c.done(), "the scoped task's ctx was not cancelled");
        // The holder is dropped (TaskHolder's Drop docs): a scoped task sees its context
        // cancelled and ends when its work returns; this work ignores its context, so it
        // runs on, unwaited, until the runtime drops it.
        assert!(!scoped.done());
        assert_eq!(drops.load(SeqCst), 1);
    });
}

/// Drain on the multi-thread runtime with many tasks: every one accounted.
#[test]
fn drain_mt_every_task_accounted() {
    multi_thread(async {
        let root = hp::Ctx::beginning("svc");
        let ts = hp::TaskHolder::builder(&root).name("h").build();
        for i in 0..300u64 {
            ts.spawn_scoped(format!("t{i}"), move |c| async move {
                if i % 3 == 0 {
                    std::future::pending::<()>().await;
                }
                c.wait().await;
            });
        }
        let report = hp::Drain::new(&root)
            .holder(ts)
            .run(Duration::from_millis(500))
            .await;
        let mut all: Vec<_> = report
            .finished
            .iter()
            .chain(&report.cut_short)
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        let missing: Vec<String> = (0..300)
            .map(|i| format!("svc-->h-->t{i}"))
            .filter(|n| !all.contains(n))
            .collect();
        assert_eq!(
            all.len(),
            300,
            "finished {} cut {}; missing from the report: {missing:?}; end {:?}",
            report.finished.len(),
            report.cut_short.len(),
            report.end
        );
        assert_eq!(report.cut_short.len(), 100);
    });
}

/// A drain with a queue manager: its running sources are listed as cut short.
#[test]
fn drain_with_streamer() {
    block_on_paused(async {
        let root = hp::Ctx::beginning("svc");
        let (streamer, feeder) = hp::queue_manager::<u32, ()>(&root);
        feeder.add_coroutine(async {
            std::future::pending::<()>().await;
            Feed::Value(1)
        });
        feeder.add_sync_iterator((0..10u32).map(Feed::Value));
        tokio::task::yield_now().await;
        let report = hp::Drain::new(&root)
            .streamer("qm", streamer)
            .run(Duration::from_secs(1))
            .await;
        assert!(!report.cut_short.is_empty(), "{report}");
        assert!(feeder.is_stopped());
    });
}

// ---------------------------------------------------------------------------------------
// Ctx
// ---------------------------------------------------------------------------------------

/// CTX 3: callbacks run exactly once; beginning_with_timeout finishes with
/// DeadlineExceeded (rule 11), and a callback added afterwards runs before add returns.
#[test]
fn ctx_timeout_callbacks_once() {
    block_on_paused(async {
        let root = hp::Ctx::beginning_with_timeout("job", Duration::from_secs(3));
        let child = root.child("c");
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        child.add_on_done(move |_, _| {
            n2.fetch_add(1, SeqCst);
        });
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(n.load(SeqCst), 1);
        assert!(!child.cancelled());
        let e = child.exception().unwrap().unwrap();
        assert!(e.is::<hp::DeadlineExceeded>());
        // A later own outcome does not run them again.
        assert!(child.cancel());
        assert_eq!(n.load(SeqCst), 1);
        let ran = Arc::new(AtomicBool::new(false));
        let r2 = ran.clone();
        child.add_on_done(move |_, _| r2.store(true, SeqCst));
        assert!(ran.load(SeqCst));
    });
}

/// CTX 5 / Robustness: a 100 000-deep tree: snapshot, walk and drop on a 2 MiB stack.
#[test]
fn ctx_snapshot_deep_100k() {
    in_child_process(module_path!(), "ctx_snapshot_deep_100k", || {
        let root = hp::Ctx::beginning("r");
        let mut chain = vec![root.clone()];
        for i in 0..100_000 {
            let c = chain.last().unwrap().child(format!("c{i}"));
            chain.push(c);
        }
        let snap = root.snapshot();
        assert_eq!(snap.walk().count(), 100_001);
        drop(snap);
        root.cancel();
        assert!(chain.last().unwrap().done());
        drop(chain);
    });
}

// ---------------------------------------------------------------------------------------
// Later additions
// ---------------------------------------------------------------------------------------

/// Feeder docs: once the manager stopped, "a future is not spawned (its Failure hands it
/// back)": the future comes back unpolled with its payload.
#[test]
fn qm_future_after_stop_handed_back() {
    block_on_paused(async {
        let drops = Arc::new(AtomicUsize::new(0));
        let polled = Arc::new(AtomicBool::new(false));
        let ctx = hp::Ctx::beginning("app");
        let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
        streamer.ctx().cancel();
        let t = Tracked::new(4, &drops);
        let p2 = polled.clone();
        feeder.add_coroutine(async move {
            let t = t;
            p2.store(true, SeqCst);
            Feed::Value(t.id as u32)
        });
        let mut back = Vec::new();
        let mut seen = Vec::new();
        while let Some(mut r) = streamer.next().await {
            if let Some(u) = r.take_unread() {
                back.push(u);
            }
            seen.push(describe(&r));
        }
        assert!(!polled.load(SeqCst), "the future ran after the stop");
        assert_eq!(
            drops.load(SeqCst),
            0,
            "the future was dropped, not handed back: {seen:?}"
        );
        assert_eq!(back.len(), 1, "{seen:?}");
        let Some(Feed::Future(f)) = back.pop() else {
            panic!("not a future: {seen:?}")
        };
        assert!(matches!(f.await, Feed::Value(4)));
        assert_eq!(drops.load(SeqCst), 1);
    });
}

/// finish() dropped at its await point cancels what is left (SEMANTICS Task holder:
/// "Dropping the finish future, or the holder, cancels what is left").
#[test]
fn th_finish_future_dropped() {
    block_on_paused(async {
        let drops = Arc::new(AtomicUsize::new(0));
        let ctx = hp::Ctx::beginning("app");
        let ts = hp::task_holder(&ctx);
        let t = Tracked::new(1, &drops);
        let task = ts.spawn(async move {
            let _t = t;
            std::future::pending::<()>().await;
        });
        let seen_ctx = Arc::new(Mutex::new(None));
        let sc = seen_ctx.clone();
        let scoped = ts.spawn_scoped("s", move |c| async move {
            *sc.lock().unwrap() = Some(c.clone());
            c.wait().await;
            3
        });
        tokio::task::yield_now().await;
        {
            let mut fin = Box::pin(ts.finish());
            assert!(futures::poll!(fin.as_mut()).is_pending());
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(task.done() && task.cancelled());
        assert_eq!(drops.load(SeqCst), 1);
        assert!(seen_ctx.lock().unwrap().as_ref().unwrap().done());
        assert_eq!(scoped.await.unwrap(), 3);
    });
}

/// Many reserve() waiters on the multi-thread runtime, then the context finishes: every
/// waiter returns, and every slot's work is refused visibly (cancelled, joined once).
#[test]
fn th_reserve_waiters_vs_cancel_mt() {
    multi_thread(async {
        let ctx = hp::Ctx::beginning("app");
        let js = hp::TaskHolder::builder(&ctx)
            .limit(2)
            .build_joinable::<usize>();
        let mut waiters = Vec::new();
        for i in 0..50 {
            let h = js.handle();
            waiters.push(tokio::spawn(async move {
                h.reserve().await.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    i
                });
            }));
        }
        tokio::time::sleep(Duration::from_millis(12)).await;
        ctx.cancel();
        for w in waiters {
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .expect("a reserve() waiter hung after the ctx finished")
                .unwrap();
        }
        let mut n = 0;
        while let Some(_o) = js.join_next().await {
            n += 1;
        }
        assert_eq!(n, 50, "every slot's task comes out of join_next once");
    });
}

/// Queue drop docs: queued items are dropped "one by one, outside every lock, each panic
/// in a Drop caught and reported": a panicking item does not stop the others' drops,
/// and nothing escapes `drop(queue)`.
#[test]
fn q_drop_item_panics_others_dropped() {
    enum It {
        T(Tracked),
        P(PanicOnDrop),
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let ctx = hp::Ctx::beginning("app");
    let queue = hp::queue::<It>(&ctx).build();
    for i in 0..5 {
        queue.append(It::T(Tracked::new(i, &drops))).unwrap();
        queue.append(It::P(PanicOnDrop)).unwrap();
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(queue)));
    assert!(r.is_ok(), "a Drop panic escaped drop(queue)");
    assert_eq!(drops.load(SeqCst), 5);
}

/// SyncQueue: a consumer blocked in get() with a long timeout is woken at once by close.
#[test]
fn sq_close_wakes_blocked_get() {
    with_watchdog(|| {
        let ctx = hp::Ctx::beginning("app");
        let queue = hp::sync_queue::<u32>(&ctx).build();
        let h = queue.handle();
        let q2 = queue.clone();
        let start = std::time::Instant::now();
        let consumer = std::thread::spawn(move || q2.get(Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(50));
        h.close();
        let r = consumer.join().unwrap();
        assert!(matches!(r, Err(hp::SyncGetError::Closed)), "{r:?}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "woken only after {:?}",
            start.elapsed()
        );
    });
}

/// JoinHolder Drop: "finished tasks not yet joined are dropped with the holder's last
/// handle": an output whose Drop panics must not escape the holder's drop, and the other
/// outputs are still dropped.
#[test]
fn th_unjoined_output_drop_panics() {
    block_on_paused(async {
        enum Out {
            T(Tracked),
            P(PanicOnDrop),
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let ctx = hp::Ctx::beginning("app");
        let js = hp::join_holder::<Out>(&ctx);
        for i in 0..3 {
            let d = drops.clone();
            js.spawn(async move { Out::T(Tracked::new(i, &d)) });
            js.spawn(async { Out::P(PanicOnDrop) });
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(js.len(), 6);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(js)));
        assert!(
            r.is_ok(),
            "a Drop panic of an unjoined output escaped the holder's drop"
        );
        tokio::task::yield_now().await;
        assert_eq!(drops.load(SeqCst), 3);
    });
}

/// An unjoined output whose Drop spawns into the same holder (re-entry while the holder
/// drops): no deadlock, the spawn is refused visibly.
#[test]
fn th_unjoined_output_drop_reenters() {
    with_watchdog(|| {
        block_on_paused(async {
            static OUT_DROPS: AtomicUsize = AtomicUsize::new(0);
            struct Out(Option<hp::JoinHolderHandle<Out>>, Arc<AtomicUsize>);
            impl Drop for Out {
                fn drop(&mut self) {
                    OUT_DROPS.fetch_add(1, SeqCst);
                    if let Some(h) = self.0.take() {
                        let r = h.try_spawn(async { Out(None, Arc::new(AtomicUsize::new(0))) });
                        if r.is_err() {
                            self.1.fetch_add(1, SeqCst);
                        }
                    }
                }
            }
            let refused = Arc::new(AtomicUsize::new(0));
            let ctx = hp::Ctx::beginning("app");
            let js = hp::join_holder::<Out>(&ctx);
            for _ in 0..3 {
                let (h, r) = (js.handle(), refused.clone());
                js.spawn(async move { Out(Some(h), r) });
            }
            let kept = js.handle();
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(js);
            tokio::task::yield_now().await;
            // A documented hazard (JoinHolder's Drop docs, RELIABILITY "Documented
            // hazards"): outputs holding a handle keep the joined queue alive, so nothing
            // drops them until they are joined.
            assert_eq!(OUT_DROPS.load(SeqCst), 0);
            // Joined, each output is the caller's: dropped here, its spawn refused (the
            // holder is closed) and handed back.
            let mut joined = 0;
            while let Some(out) = kept.try_join_next() {
                drop(out);
                joined += 1;
            }
            assert_eq!(joined, 3);
            assert_eq!(OUT_DROPS.load(SeqCst), 3);
            assert_eq!(
                refused.load(SeqCst),
                3,
                "spawns from the outputs' Drop were not refused"
            );
        });
    });
}

/// The multi-thread drain probe's scenario on the paused current-thread runtime.
#[test]
fn drain_ct_every_task_accounted() {
    block_on_paused(async {
        let root = hp::Ctx::beginning("svc");
        let ts = hp::TaskHolder::builder(&root).name("h").build();
        for i in 0..300u64 {
            ts.spawn_scoped(format!("t{i}"), move |c| async move {
                if i % 3 == 0 {
                    std::future::pending::<()>().await;
                }
                c.wait().await;
            });
        }
        let report = hp::Drain::new(&root)
            .holder(ts)
            .run(Duration::from_millis(500))
            .await;
        let mut all: Vec<_> = report
            .finished
            .iter()
            .chain(&report.cut_short)
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(
            all.len(),
            300,
            "finished {} cut {}",
            report.finished.len(),
            report.cut_short.len()
        );
        assert_eq!(report.cut_short.len(), 100);
    });
}

/// A fail_fast holder handed to a drain: the panicking task's failure is among the
/// report's errors.
#[test]
fn drain_fail_fast_errors_reported() {
    block_on_paused(async {
        let root = hp::Ctx::beginning("svc");
        let ts = hp::TaskHolder::builder(&root).name("h").fail_fast().build();
        ts.spawn_scoped("sib", |c| async move {
            c.wait().await;
        });
        ts.spawn_scoped_try("bad", |_c| async {
            Err::<(), _>(hp::Error::msg("disk on fire"))
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        let report = hp::Drain::new(&root)
            .holder(ts)
            .run(Duration::from_secs(1))
            .await;
        assert!(
            report
                .errors
                .iter()
                .any(|(_, e)| e.to_string().contains("disk on fire")),
            "{report}"
        );
        // "sib" finished (fail_fast cancelled it) before the drain began: not listed.
    });
}
