//! The async queue (`hp::queue`): order, priority, instructions, breaker, hooks, the end
//! of iteration with the ctx, re-entrancy, the cooperative budget, concurrent producers,
//! and a property test against a `VecDeque` model.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use machinery::helpers as hp;
use tokio::time::Instant;

fn log() -> Arc<Mutex<Vec<String>>> {
    Arc::new(Mutex::new(Vec::new()))
}

fn push(log: &Arc<Mutex<Vec<String>>>, s: impl Into<String>) {
    log.lock().unwrap().push(s.into());
}

#[test]
fn handles_are_send_and_sync_where_they_should_be() {
    fn is_send<T: Send>() {}
    fn is_send_sync<T: Send + Sync>() {}
    is_send::<hp::Queue<String>>();
    is_send_sync::<hp::QueueHandle<String>>();
    is_send::<hp::GetAll<'static, String>>();
    is_send_sync::<hp::SyncQueue<String>>();
}

#[tokio::test(start_paused = true)]
async fn priority_append_puts_items_at_the_very_front() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    q.append(1).unwrap();
    q.append_front(2).unwrap();
    q.append_front(3).unwrap();
    assert_eq!(q.remaining().collect::<Vec<_>>(), [3, 2, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_priority_item_appended_mid_iteration_comes_next() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let h = q.handle();
    for i in 1..=3 {
        q.append(i).unwrap();
    }
    let mut all = q.get_all();
    assert_eq!(all.next().await, Some(1));
    h.append(10).unwrap();
    h.append_front(0).unwrap();
    h.append_front(-1i32 as u32).unwrap();
    let mut rest = Vec::new();
    for _ in 0..5 {
        rest.push(all.next().await.unwrap());
    }
    assert_eq!(rest, [u32::MAX, 0, 2, 3, 10]);
}

#[tokio::test(start_paused = true)]
async fn len_and_is_empty_count_instructions_too() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    assert!(q.is_empty());
    q.append_instruction(|| {}).unwrap();
    assert_eq!((q.len(), q.is_empty()), (1, false));
    q.append(1).unwrap();
    q.append(2).unwrap();
    let h = q.handle();
    assert_eq!(h.len(), 3);
    let mut all = q.get_all();
    assert_eq!(all.next().await, Some(1));
    assert_eq!(h.len(), 1);
    drop(all);
    assert_eq!(q.remaining().collect::<Vec<_>>(), [2]);
    assert!(q.is_empty() && h.is_empty());
}

#[tokio::test(start_paused = true)]
async fn instructions_run_when_reached_and_yield_nothing() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<&'static str>(&ctx).build();
    let seen = log();
    q.append("a").unwrap();
    let s = seen.clone();
    q.append_instruction(move || push(&s, "instruction"))
        .unwrap();
    q.append("b").unwrap();
    let s = seen.clone();
    q.append_instruction_front(move || push(&s, "urgent"))
        .unwrap();
    let mut all = q.get_all();
    for _ in 0..2 {
        let item = all.next().await.unwrap();
        push(&seen, item);
    }
    assert_eq!(*seen.lock().unwrap(), ["urgent", "a", "instruction", "b"]);
}

#[tokio::test(start_paused = true)]
async fn remaining_never_waits_and_runs_the_instructions_it_meets() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let ran = Arc::new(AtomicUsize::new(0));
    q.append(1).unwrap();
    let r = ran.clone();
    q.append_instruction(move || {
        r.fetch_add(1, SeqCst);
    })
    .unwrap();
    q.append(2).unwrap();
    assert_eq!(q.remaining().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(ran.load(SeqCst), 1);
    assert_eq!(q.remaining().next(), None); // empty: returns at once
}

#[tokio::test(start_paused = true)]
async fn iteration_ends_when_the_ctx_is_done_and_leaves_the_rest_for_remaining() {
    //  0s: 1, 2 queued   1s: 3 queued   5s: ctx cancelled, then 4 queued
    let root = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&root).build();
    let h = q.handle();
    let qctx = q.ctx().clone();
    h.append(1).unwrap();
    h.append(2).unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        h.append(3).unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        qctx.cancel();
        h.append(4).unwrap();
    });
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut all = q.get_all();
    while let Some(n) = all.next().await {
        seen.push((n, start.elapsed().as_secs()));
    }
    assert_eq!(seen, [(1, 0), (2, 0), (3, 1)]);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    drop(all);
    tokio::task::yield_now().await;
    assert_eq!(q.remaining().collect::<Vec<_>>(), [4]);
}

#[tokio::test(start_paused = true)]
async fn a_done_ctx_stops_before_the_next_ready_item() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    for i in 0..5 {
        q.append(i).unwrap();
    }
    let mut seen = Vec::new();
    let mut all = q.get_all();
    while let Some(n) = all.next().await {
        seen.push(n);
        if n == 1 {
            ctx.cancel();
        }
    }
    drop(all);
    assert_eq!(seen, [0, 1]);
    assert_eq!(q.remaining().collect::<Vec<_>>(), [2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn empty_on_finished_first_yields_what_is_left_instructions_included() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).empty_on_finished(true).build();
    let ran = Arc::new(AtomicBool::new(false));
    q.append(1).unwrap();
    let r = ran.clone();
    q.append_instruction(move || r.store(true, SeqCst)).unwrap();
    q.append(2).unwrap();
    ctx.cancel();
    let seen: Vec<u32> = q.get_all().collect().await;
    assert_eq!(seen, [1, 2]);
    assert!(ran.load(SeqCst));
    assert!(q.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_queue_built_on_a_done_ctx_ends_at_once_and_keeps_its_items() {
    let ctx = hp::Ctx::beginning("t");
    ctx.cancel();
    let mut q = hp::queue::<u32>(&ctx).build();
    q.append(7).unwrap();
    assert_eq!(q.get_all().next().await, None);
    assert_eq!(q.remaining().collect::<Vec<_>>(), [7]);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_ends_an_iteration_and_a_new_one_clears_it_and_continues() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    for i in 0..6 {
        q.append(i).unwrap();
    }
    let mut first = Vec::new();
    {
        let breaker = q.breaker().clone();
        let mut all = q.get_all();
        while let Some(n) = all.next().await {
            first.push(n);
            if n == 2 {
                breaker.set();
            }
        }
    }
    assert!(q.breaker().is_set());
    assert_eq!(first, [0, 1, 2]);
    let mut second = Vec::new();
    let breaker = q.breaker().clone();
    let mut all = q.get_all();
    assert!(!breaker.is_set(), "a new iteration clears the breaker");
    while second.len() < 3 {
        second.push(all.next().await.unwrap());
    }
    assert_eq!(second, [3, 4, 5]);
}

#[tokio::test(start_paused = true)]
async fn breaking_out_of_a_loop_and_restarting_loses_nothing() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    for i in 0..6 {
        q.append(i).unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let mut all = q.get_all();
        while let Some(n) = all.next().await {
            seen.push(n);
            if n % 2 == 1 {
                break;
            }
        }
    }
    assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
}

#[tokio::test(start_paused = true)]
async fn setting_the_breaker_from_another_task_wakes_a_waiting_consumer() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let breaker = q.breaker().clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        breaker.set();
    });
    let start = Instant::now();
    assert_eq!(q.get_all().next().await, None);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_finished_ctx_wakes_a_waiting_consumer_at_once() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let c = ctx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        c.cancel();
    });
    let start = Instant::now();
    assert_eq!(q.get_all().next().await, None);
    assert_eq!(start.elapsed(), Duration::from_millis(2500));
}

#[tokio::test(start_paused = true)]
async fn hooks_run_when_the_next_item_is_asked_for_never_before() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let seen = log();
    let s = seen.clone();
    q.process_after_yielded(move |view| push(&s, format!("hook len={}", view.len())));
    q.append(1).unwrap();
    q.append(2).unwrap();
    let mut all = q.get_all();
    let a = all.next().await.unwrap();
    push(&seen, format!("got {a}"));
    let b = all.next().await.unwrap();
    push(&seen, format!("got {b}"));
    drop(all); // broke out: the hook for 2 does not run
    assert_eq!(*seen.lock().unwrap(), ["got 1", "hook len=1", "got 2"]);
}

#[tokio::test(start_paused = true)]
async fn a_hook_may_append_through_its_view_without_deadlock() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let appended = Arc::new(AtomicBool::new(false));
    let a = appended.clone();
    q.process_after_yielded(move |view| {
        if view.is_empty() && !a.swap(true, SeqCst) {
            view.append(100).unwrap();
            view.append_front(50).unwrap();
            assert_eq!(view.len(), 2);
        }
    });
    q.append(1).unwrap();
    let mut all = q.get_all();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(all.next().await.unwrap());
    }
    assert_eq!(seen, [1, 50, 100]);
    assert_eq!(all.next().now_or_never(), None, "waits: nothing queued");
}

#[tokio::test(start_paused = true)]
async fn a_hook_that_sets_the_breaker_stops_further_items() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    q.process_after_yielded(|view| view.breaker().set());
    for i in 0..3 {
        q.append(i).unwrap();
    }
    let seen: Vec<u32> = q.get_all().collect().await;
    assert_eq!(seen, [0]);
    let seen: Vec<u32> = q.get_all().collect().await;
    assert_eq!(seen, [1]);
    assert_eq!(q.remaining().collect::<Vec<_>>(), [2]);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_instruction_or_hook_is_caught_and_iteration_goes_on() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    q.process_after_yielded(|_| panic!("hook boom"));
    q.append(1).unwrap();
    q.append_instruction(|| panic!("instruction boom")).unwrap();
    q.append(2).unwrap();
    let mut all = q.get_all();
    assert_eq!(all.next().await, Some(1));
    assert_eq!(all.next().await, Some(2));
}

#[tokio::test(start_paused = true)]
async fn iterations_restart_after_one_ended_and_get_all_stays_ended() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    for i in 0..4 {
        q.append(i).unwrap();
    }
    assert_eq!(q.iterations().next().await, Some(0));
    q.breaker().set();
    assert_eq!(q.iterations().next().await, None);
    // Polling again starts a new iteration: breaker cleared, continues with 1.
    assert_eq!(q.iterations().next().await, Some(1));
    assert!(!q.breaker().is_set());
    let rest: Vec<u32> = q.iterations().take(1).collect().await;
    assert_eq!(rest, [2]);
    // One `get_all` iteration stays ended (fused).
    let h = q.handle();
    let mut all = q.get_all();
    assert_eq!(all.next().await, Some(3));
    ctx.cancel();
    h.append(4).unwrap();
    assert_eq!(all.next().await, None);
    assert!(futures::stream::FusedStream::is_terminated(&all));
    assert_eq!(all.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn a_consumer_with_many_ready_items_lets_other_tasks_run() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    for i in 0..10_000 {
        q.append(i).unwrap();
    }
    let other_ran = Arc::new(AtomicBool::new(false));
    let o = other_ran.clone();
    tokio::spawn(async move { o.store(true, SeqCst) });
    let mut seen_at = None;
    let mut n = 0;
    let mut all = q.get_all();
    while n < 10_000 {
        all.next().await.unwrap();
        n += 1;
        if seen_at.is_none() && other_ran.load(SeqCst) {
            seen_at = Some(n);
        }
    }
    let at = seen_at.expect("the other task never ran while items were ready");
    assert!(at < 1_000, "other task ran only after {at} items");
}

#[derive(Debug, PartialEq)]
struct MyType {
    id: u32,
}

#[tokio::test(start_paused = true)]
async fn a_typed_queue_yields_its_type_with_no_item_ensurer() {
    let ctx = hp::Ctx::beginning("t");
    let mut q: hp::Queue<MyType> = hp::queue(&ctx).build();
    q.append(MyType { id: 1 }).unwrap();
    let item: MyType = q.get_all().next().await.unwrap();
    assert_eq!(item, MyType { id: 1 });
}

#[tokio::test(start_paused = true)]
async fn the_queue_has_a_named_child_ctx_cancelled_when_it_is_dropped() {
    let ctx = hp::Ctx::beginning("t");
    let q = hp::queue::<u32>(&ctx).name("results").build();
    let default = hp::queue::<u32>(&ctx).build();
    assert_eq!(q.ctx().name(), "t-->results");
    assert_eq!(default.ctx().name(), "t-->queue");
    let child = q.ctx().clone();
    let h = q.handle();
    drop(q);
    assert!(child.cancelled());
    assert!(!ctx.done());
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    assert_eq!(h.append(1).unwrap_err().into_inner(), 1);
    assert!(h.append_instruction(move || r.store(true, SeqCst)).is_err());
    assert!(!ran.load(SeqCst));
    assert!(h.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_lose_and_duplicate_nothing() {
    const PRODUCERS: u64 = 4;
    const EACH: u64 = 20_000;
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<(u64, u64)>(&ctx).build();
    for p in 0..PRODUCERS {
        let h = q.handle();
        tokio::spawn(async move {
            for i in 0..EACH {
                h.append((p, i)).unwrap();
                if i % 512 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    let run = async {
        let mut next = [0u64; PRODUCERS as usize];
        let mut all = q.get_all();
        let mut total = 0;
        while total < PRODUCERS * EACH {
            let (p, i) = all.next().await.unwrap();
            assert_eq!(i, next[p as usize], "producer {p} out of order");
            next[p as usize] += 1;
            total += 1;
        }
        next
    };
    let next = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("watchdog");
    assert_eq!(next, [EACH; PRODUCERS as usize]);
    assert!(q.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_on_threads_and_a_cancel_keep_every_item_exactly_once() {
    const EACH: u32 = 20_000;
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let threads: Vec<_> = (0..2)
        .map(|p| {
            let h = q.handle();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    if i % 7 == 0 {
                        h.append_front(p * EACH + i).unwrap();
                    } else {
                        h.append(p * EACH + i).unwrap();
                    }
                }
            })
        })
        .collect();
    let c = ctx.clone();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        c.cancel();
    });
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        let mut seen = Vec::new();
        let mut all = q.get_all();
        while let Some(n) = all.next().await {
            seen.push(n);
        }
        seen
    })
    .await
    .expect("watchdog");
    canceller.await.unwrap();
    for t in threads {
        t.join().unwrap();
    }
    let mut all: Vec<u32> = seen.into_iter().chain(q.remaining()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..2 * EACH).collect::<Vec<_>>());
}

mod model {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone)]
    enum Op {
        Append(u32, bool),
        Instruction(u32, bool),
        Breaker,
        Next,
        Remaining,
    }

    #[derive(Debug, Clone, PartialEq)]
    enum M {
        Item(u32),
        Instr(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (any::<u32>(), any::<bool>()).prop_map(|(v, p)| Op::Append(v, p)),
            1 => (any::<u32>(), any::<bool>()).prop_map(|(v, p)| Op::Instruction(v, p)),
            1 => Just(Op::Breaker),
            4 => Just(Op::Next),
            1 => Just(Op::Remaining),
        ]
    }

    /// Pops the model until an item, running instructions; None when empty.
    fn model_take(m: &mut VecDeque<M>, ran: &mut Vec<u32>) -> Option<u32> {
        loop {
            match m.pop_front()? {
                M::Item(v) => return Some(v),
                M::Instr(id) => ran.push(id),
            }
        }
    }

    proptest! {
        #[test]
        fn the_queue_behaves_like_a_vecdeque_model(ops in proptest::collection::vec(op(), 0..60)) {
            let ctx = hp::Ctx::beginning("model");
            let mut q = hp::queue::<u32>(&ctx).build();
            let h = q.handle();
            let ran = Arc::new(Mutex::new(Vec::new()));
            let (mut m, mut m_ran, mut m_breaker, mut m_iterating) =
                (VecDeque::new(), Vec::new(), false, false);
            for op in ops {
                match op {
                    Op::Append(v, p) => {
                        if p { h.append_front(v) } else { h.append(v) }.unwrap();
                        if p { m.push_front(M::Item(v)) } else { m.push_back(M::Item(v)) }
                    }
                    Op::Instruction(id, p) => {
                        let r = ran.clone();
                        let f = move || r.lock().unwrap().push(id);
                        if p { h.append_instruction_front(f) } else { h.append_instruction(f) }.unwrap();
                        if p { m.push_front(M::Instr(id)) } else { m.push_back(M::Instr(id)) }
                    }
                    Op::Breaker => {
                        h.breaker().set();
                        m_breaker = true;
                    }
                    Op::Next => {
                        let got = q.iterations().next().now_or_never();
                        if !m_iterating {
                            m_iterating = true;
                            m_breaker = false;
                        }
                        let want = if m_breaker {
                            m_iterating = false;
                            Some(None)
                        } else {
                            // Pending when empty: the model keeps iterating.
                            model_take(&mut m, &mut m_ran).map(Some)
                        };
                        prop_assert_eq!(got, want);
                    }
                    Op::Remaining => {
                        let got: Vec<u32> = q.remaining().collect();
                        let mut want = Vec::new();
                        while let Some(v) = model_take(&mut m, &mut m_ran) {
                            want.push(v);
                        }
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(q.len(), m.len());
                prop_assert_eq!(&*ran.lock().unwrap(), &m_ran);
                prop_assert_eq!(q.breaker().is_set(), m_breaker);
            }
            let got: Vec<u32> = q.remaining().collect();
            let mut want = Vec::new();
            while let Some(v) = model_take(&mut m, &mut m_ran) {
                want.push(v);
            }
            prop_assert_eq!(got, want);
            prop_assert_eq!(&*ran.lock().unwrap(), &m_ran);
        }
    }
}

/// Queues 1, 2, an instruction, 3; takes one item, sets the breaker, and appends 4 (and,
/// when 2 is yielded, 5 at the front) during the rest of the iteration. Returns what the
/// iteration yielded, the log of instructions, and what was left for `remaining`.
async fn breaker_scenario(empty_on_finished: bool) -> (Vec<u32>, Vec<String>, Vec<u32>) {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx)
        .empty_on_finished(empty_on_finished)
        .build();
    let (h, l) = (q.handle(), log());
    q.append(1).unwrap();
    q.append(2).unwrap();
    let l2 = l.clone();
    q.append_instruction(move || push(&l2, "instruction"))
        .unwrap();
    q.append(3).unwrap();
    let mut seen = Vec::new();
    let mut all = q.get_all();
    while let Some(n) = all.next().await {
        seen.push(n);
        match n {
            1 => {
                h.breaker().set();
                h.append(4).unwrap();
            }
            2 => {
                h.append_front(5).unwrap();
            }
            _ => {}
        }
    }
    drop(all);
    let left = q.remaining().collect();
    let ran = l.lock().unwrap().clone();
    (seen, ran, left)
}

#[tokio::test(start_paused = true)]
async fn with_empty_on_finished_a_set_breaker_ends_the_iteration_only_once_the_queue_is_empty() {
    // 1 | breaker set, 4 appended | 2 | 5 to the front | 5, instruction, 3, 4 | empty: end.
    let (seen, ran, left) = breaker_scenario(true).await;
    assert_eq!(seen, [1, 2, 5, 3, 4]);
    assert_eq!(ran, ["instruction"]);
    assert_eq!(left, Vec::<u32>::new());
}

#[tokio::test(start_paused = true)]
async fn without_empty_on_finished_a_set_breaker_ends_the_iteration_before_the_next_item() {
    let (seen, ran, left) = breaker_scenario(false).await;
    assert_eq!(seen, [1]);
    // `remaining` runs the instruction it meets.
    assert_eq!(ran, ["instruction"]);
    assert_eq!(left, [2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn with_empty_on_finished_a_hook_setting_the_breaker_lets_the_queue_drain() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).empty_on_finished(true).build();
    q.process_after_yielded(|view| {
        if !view.breaker().is_set() {
            view.breaker().set();
            view.append(10).unwrap();
        }
    });
    (1..=3).for_each(|n| {
        q.append(n).unwrap();
    });
    let seen: Vec<u32> = q.get_all().collect().await;
    assert_eq!(seen, [1, 2, 3, 10]);
    assert!(q.is_empty());
}

#[tokio::test(start_paused = true)]
async fn with_empty_on_finished_the_breaker_wakes_and_ends_a_consumer_waiting_on_an_empty_queue() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).empty_on_finished(true).build();
    let h = q.handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        h.append(1).unwrap();
        h.breaker().set();
    });
    let start = Instant::now();
    let seen: Vec<u32> = q.get_all().collect().await;
    assert_eq!(seen, [1]);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn with_empty_on_finished_a_ctx_finishing_mid_drain_still_yields_later_appends() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).empty_on_finished(true).build();
    let h = q.handle();
    q.append(1).unwrap();
    q.append(2).unwrap();
    let mut seen = Vec::new();
    let mut all = q.get_all();
    while let Some(n) = all.next().await {
        seen.push(n);
        if n == 1 {
            ctx.cancel();
            h.append(3).unwrap();
        }
    }
    assert_eq!(seen, [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn remaining_stays_ended_once_it_returned_none() {
    let ctx = hp::Ctx::beginning("t");
    let mut q = hp::queue::<u32>(&ctx).build();
    let h = q.handle();
    q.append(1).unwrap();
    {
        let mut left = q.remaining();
        assert_eq!(left.next(), Some(1));
        assert_eq!(left.next(), None);
        h.append(2).unwrap();
        assert_eq!(left.next(), None, "fused");
    }
    assert_eq!(q.remaining().collect::<Vec<_>>(), [2]);
}
