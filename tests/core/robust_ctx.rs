//! Issue 22, items 1, 2, 3 and 6: waker identity, a guard on a finished child, panic
//! payloads that panic when dropped, and registration order after a nested finish.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, RawWaker, RawWakerVTable, Waker};

use futures_util::{Stream, StreamExt};
use machinery::helpers as hp;

use crate::common::{self, Boom};

// --- A waker pool whose slots are reused ---------------------------------------------
//
// A slot waker's data pointer is its slot's address; the slot says which task occupies
// it. Cloning one gives a waker of its own (a fresh heap record for that task): a legal
// waker whose clone lives elsewhere. Dropping the slot waker frees the slot, so the next
// task's waker made in that slot has the same data pointer and vtable as the first one.

/// Which task occupies a slot: its wake counter.
struct Slot(Mutex<Option<Arc<AtomicUsize>>>);

static SLOTS: [Slot; 1] = [Slot(Mutex::new(None))];

fn occupant(data: *const ()) -> Arc<AtomicUsize> {
    // SAFETY: slot wakers point at an element of `SLOTS`, which is 'static.
    let slot = unsafe { &*(data as *const Slot) };
    slot.0
        .lock()
        .unwrap()
        .clone()
        .expect("a slot waker's slot is occupied")
}

fn into_clone(task: Arc<AtomicUsize>) -> RawWaker {
    RawWaker::new(Box::into_raw(Box::new(task)) as *const (), &CLONE_VTABLE)
}

static SLOT_VTABLE: RawWakerVTable = RawWakerVTable::new(
    |data| into_clone(occupant(data)),
    |data| {
        occupant(data).fetch_add(1, SeqCst);
        // SAFETY: as in `occupant`; waking by value consumes (frees) the slot.
        unsafe { &*(data as *const Slot) }.0.lock().unwrap().take();
    },
    |data| {
        occupant(data).fetch_add(1, SeqCst);
    },
    |data| {
        // SAFETY: as in `occupant`.
        unsafe { &*(data as *const Slot) }.0.lock().unwrap().take();
    },
);

fn record(data: *const ()) -> &'static Arc<AtomicUsize> {
    // SAFETY: a clone's data is a leaked-until-dropped `Box<Arc<AtomicUsize>>`.
    unsafe { &*(data as *const Arc<AtomicUsize>) }
}

static CLONE_VTABLE: RawWakerVTable = RawWakerVTable::new(
    |data| into_clone(record(data).clone()),
    |data| {
        // SAFETY: made by `into_clone`; waking by value frees it.
        let task = unsafe { Box::from_raw(data as *mut Arc<AtomicUsize>) };
        task.fetch_add(1, SeqCst);
    },
    |data| {
        record(data).fetch_add(1, SeqCst);
    },
    |data| {
        // SAFETY: made by `into_clone`.
        drop(unsafe { Box::from_raw(data as *mut Arc<AtomicUsize>) });
    },
);

/// Serialises the tests that use the one slot.
static POOL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A waker for a new task in slot 0, and that task's wake counter.
fn slot_waker() -> (Waker, Arc<AtomicUsize>) {
    let task = Arc::new(AtomicUsize::new(0));
    let mut slot = SLOTS[0].0.lock().unwrap();
    assert!(slot.is_none(), "slot 0 is free");
    *slot = Some(task.clone());
    drop(slot);
    // SAFETY: the vtable's functions uphold RawWaker's contract for `SLOTS[0]`.
    let waker = unsafe {
        Waker::from_raw(RawWaker::new(
            &SLOTS[0] as *const Slot as *const (),
            &SLOT_VTABLE,
        ))
    };
    (waker, task)
}

/// Polls `poll` with task 1's waker in slot 0, drops that waker (freeing the slot), polls
/// with task 2's waker in the same slot, then `trigger`s: task 2 must be woken.
async fn second_task_in_a_reused_slot_is_woken(
    mut poll: impl FnMut(&mut Context<'_>) -> bool,
    trigger: impl FnOnce(),
) {
    let _pool = POOL.lock().await;
    let (w1, task1) = slot_waker();
    assert!(!poll(&mut Context::from_waker(&w1)), "pending for task 1");
    drop(w1);
    let (w2, task2) = slot_waker();
    assert_eq!(w2.data(), &SLOTS[0] as *const Slot as *const ());
    assert!(!poll(&mut Context::from_waker(&w2)), "pending for task 2");
    trigger();
    // Let the runtime deliver what the trigger started (a task, a generator's body).
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        task2.load(SeqCst) >= 1,
        "task 2, the one waiting now, was woken"
    );
    assert_eq!(task1.load(SeqCst), 0, "task 1 stopped waiting long ago");
    drop(w2);
}

fn pending<F: Future>(fut: Pin<&mut F>, cx: &mut Context<'_>) -> bool {
    fut.poll(cx).is_ready()
}

fn next_ready<S: Stream + Unpin>(s: &mut S, cx: &mut Context<'_>) -> bool {
    s.poll_next_unpin(cx).is_ready()
}

#[tokio::test]
async fn ctx_wait_wakes_the_second_task_polling_with_a_reused_waker_slot() {
    let ctx = hp::Ctx::beginning("app");
    let mut wait = Box::pin(ctx.wait());
    second_task_in_a_reused_slot_is_woken(
        |cx| pending(wait.as_mut(), cx),
        || {
            ctx.cancel();
        },
    )
    .await;
}

#[tokio::test]
async fn fut_wait_wakes_the_second_task_polling_with_a_reused_waker_slot() {
    let fut = hp::Fut::<u8>::new();
    let mut wait = Box::pin(fut.wait());
    second_task_in_a_reused_slot_is_woken(
        |cx| pending(wait.as_mut(), cx),
        || {
            fut.set_result(7);
        },
    )
    .await;
}

#[tokio::test]
async fn event_wait_wakes_the_second_task_polling_with_a_reused_waker_slot() {
    let ev = hp::Event::new();
    let mut wait = Box::pin(ev.wait());
    second_task_in_a_reused_slot_is_woken(|cx| pending(wait.as_mut(), cx), || ev.set()).await;
}

#[tokio::test]
async fn task_wait_wakes_the_second_task_polling_with_a_reused_waker_slot() {
    let go = hp::Event::new();
    let task = hp::Task::spawn({
        let go = go.clone();
        async move { go.wait().await }
    });
    let mut wait = Box::pin(task.wait());
    second_task_in_a_reused_slot_is_woken(|cx| pending(wait.as_mut(), cx), || go.set()).await;
}

#[tokio::test]
async fn queue_consumer_wakes_the_second_task_polling_with_a_reused_waker_slot() {
    let ctx = hp::Ctx::beginning("app");
    let mut queue = hp::queue::<u8>(&ctx).build();
    let handle = queue.handle();
    let mut items = queue.get_all();
    second_task_in_a_reused_slot_is_woken(
        |cx| next_ready(&mut items, cx),
        || {
            handle.append(1).unwrap();
        },
    )
    .await;
}

#[tokio::test]
async fn queue_manager_consumer_wakes_the_second_task_polling_with_a_reused_waker_slot() {
    let ctx = hp::Ctx::beginning("app");
    let (mut streamer, feeder) = hp::queue_manager::<i32, String>(&ctx);
    second_task_in_a_reused_slot_is_woken(
        |cx| next_ready(&mut streamer, cx),
        || {
            feeder.add_value(1);
        },
    )
    .await;
}

#[tokio::test]
async fn generator_consumer_wakes_the_second_task_polling_with_a_reused_waker_slot() {
    let go = hp::Event::new();
    let mut generator = hp::AsyncGenerator::new({
        let go = go.clone();
        move |co: hp::Co<u8>| async move {
            go.wait().await;
            co.yield_(1).await?;
            Ok::<(), hp::Failure>(())
        }
    });
    second_task_in_a_reused_slot_is_woken(|cx| next_ready(&mut generator, cx), || go.set()).await;
}

#[tokio::test]
async fn wait_for_first_wakes_the_second_task_polling_with_a_reused_waker_slot() {
    let ev = hp::Event::new();
    let waits: [&dyn hp::WaitByCallback; 1] = [&ev];
    let mut wait = Box::pin(hp::wait_for_first(&waits));
    second_task_in_a_reused_slot_is_woken(|cx| pending(wait.as_mut(), cx), || ev.set()).await;
}

// --- CTX 5: a guard leaves a done child's outcome alone ----------------------------------

#[test]
fn dropping_a_guard_of_a_child_failed_through_its_parent_keeps_the_parents_error() {
    let root = hp::Ctx::beginning("app");
    let req = root.child("req").drop_guard();
    let seen = req.ctx().clone();
    assert!(root.set_exception(Boom("disk")));
    drop(req);
    assert!(!seen.cancelled(), "the guard did not make it cancelled");
    assert_eq!(seen.exception().unwrap().unwrap().to_string(), "disk");
    // Its own slot is still free: a cause of its own is still accepted (CTX 1).
    assert!(seen.set_exception(Boom("own")));
    assert_eq!(seen.exception().unwrap().unwrap().to_string(), "own");
}

#[test]
fn dropping_a_guard_of_a_child_cancelled_through_its_parent_changes_nothing() {
    let root = hp::Ctx::beginning("app");
    let req = root.child("req").drop_guard();
    let seen = req.ctx().clone();
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    seen.add_done_callback(move |_| {
        r.fetch_add(1, SeqCst);
    });
    root.cancel();
    drop(req);
    assert!(seen.cancelled());
    assert_eq!(runs.load(SeqCst), 1);
    // Done without an own outcome: an explicit cancel still fills its own slot.
    assert!(seen.set_exception(Boom("own")));
}

#[test]
fn dropping_a_guard_of_a_pending_child_cancels_it() {
    let root = hp::Ctx::beginning("app");
    let req = root.child("req").drop_guard();
    let seen = req.ctx().clone();
    drop(req);
    assert!(seen.cancelled());
    assert!(!seen.cancel(), "cancelled as its own outcome");
    assert!(!root.done());
}

// --- Panic payloads that panic when dropped ----------------------------------------------

/// A panic payload whose `Drop` panics.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        // Not while unwinding already (that would abort the test binary, as it would any
        // program): only the crate's drop of a caught payload is exercised.
        if !std::thread::panicking() {
            panic!("the payload's drop panicked");
        }
    }
}

fn bomb() -> ! {
    std::panic::panic_any(Bomb)
}

/// [`bomb`] typed as returning, for a body that must still name its return type.
fn bomb_here() {
    bomb()
}

fn counter() -> (Arc<AtomicUsize>, impl Fn() + Send + Sync + 'static) {
    let n = Arc::new(AtomicUsize::new(0));
    let m = n.clone();
    (n, move || {
        m.fetch_add(1, SeqCst);
    })
}

#[test]
fn a_ctx_callback_panicking_with_a_bomb_payload_is_caught_and_the_next_one_runs() {
    let ctx = hp::Ctx::beginning("app");
    let (n, count) = counter();
    ctx.add_done_callback(|_| bomb());
    ctx.add_done_callback(move |_| count());
    assert!(ctx.cancel(), "cancel returns");
    assert_eq!(n.load(SeqCst), 1);
}

#[test]
fn a_ctx_callback_of_a_child_panicking_with_a_bomb_payload_is_caught() {
    let root = hp::Ctx::beginning("app");
    let child = root.child("c");
    let (n, count) = counter();
    child.add_on_done(|_, _| bomb());
    root.add_done_callback(move |_| count());
    let (m, count2) = counter();
    child.add_done_callback(move |_| count2());
    assert!(root.cancel());
    assert_eq!((n.load(SeqCst), m.load(SeqCst)), (1, 1));
    // Added to a done context: runs at once, caught too.
    child.add_done_callback(|_| bomb());
}

#[test]
fn a_future_callback_panicking_with_a_bomb_payload_does_not_escape_set_result() {
    let fut = hp::Fut::<u8>::new();
    let (n, count) = counter();
    fut.add_done_callback(|_| bomb());
    fut.add_done_callback(move |_| count());
    assert!(fut.set_result(7));
    assert_eq!(n.load(SeqCst), 1);
    fut.add_done_callback(|_| bomb()); // at once, caught
}

#[test]
fn an_event_callback_panicking_with_a_bomb_payload_is_caught() {
    let ev = hp::Event::new();
    let (n, count) = counter();
    ev.add_done_callback(|| bomb());
    ev.add_done_callback(count);
    ev.set();
    assert_eq!(n.load(SeqCst), 1);
}

#[test]
fn error_from_panic_drops_a_bomb_payload_safely() {
    let payload = std::panic::catch_unwind(|| bomb()).unwrap_err();
    let err = hp::Error::from_panic(payload);
    assert_eq!(err.type_name(), "Panicked");
}

#[test]
fn a_nested_finish_whose_callback_panics_with_a_bomb_payload_leaves_the_chain_running() {
    // Outer's callback finishes inner (queued); inner's first callback bombs.
    let outer = hp::Fut::<u8>::new();
    let inner = hp::Fut::<u8>::new();
    let (n, count) = counter();
    inner.add_done_callback(|_| bomb());
    inner.add_done_callback(move |_| count());
    let i = inner.clone();
    outer.add_done_callback(move |_| {
        i.set_result(1);
    });
    assert!(outer.set_result(0));
    assert_eq!(n.load(SeqCst), 1);
}

#[tokio::test]
async fn a_task_panicking_with_a_bomb_payload_fails_with_panicked() {
    let task = hp::Task::spawn(async {
        bomb();
    });
    let (n, count) = counter();
    task.add_done_callback(move |_| count());
    task.wait().await;
    assert_eq!(task.exception().unwrap().unwrap().type_name(), "Panicked");
    assert_eq!(n.load(SeqCst), 1);
}

#[tokio::test]
async fn a_held_task_panicking_with_a_bomb_payload_is_reported_and_the_holder_finishes() {
    let ctx = hp::Ctx::beginning("app");
    let holder = hp::task_holder(&ctx);
    let task = holder.spawn_silent(async {
        bomb();
    });
    holder.finish().await;
    assert_eq!(task.exception().unwrap().unwrap().type_name(), "Panicked");
}

#[tokio::test]
async fn a_queue_hook_panicking_with_a_bomb_payload_is_caught() {
    let ctx = hp::Ctx::beginning("app");
    let mut queue = hp::queue::<u8>(&ctx).empty_on_finished(true).build();
    let (n, count) = counter();
    queue.process_after_yielded(move |_view| {
        count();
        bomb()
    });
    queue.append(1).unwrap();
    queue.append(2).unwrap();
    ctx.cancel();
    let got: Vec<u8> = queue.get_all().collect().await;
    assert_eq!(
        got,
        [1, 2],
        "every item, after a hook that bombed after each"
    );
    assert!(n.load(SeqCst) >= 1);
}

#[tokio::test]
async fn a_queue_manager_function_panicking_with_a_bomb_payload_is_a_failure() {
    let ctx = hp::Ctx::beginning("app");
    let (mut streamer, feeder) = hp::queue_manager::<i32, String>(&ctx);
    feeder.add_sync_function(|| -> hp::Feed<i32, String> { bomb() });
    feeder.add_value(5);
    feeder.set_as_finished_if_out_of_sources();
    let mut kinds = Vec::new();
    while let Some(r) = streamer.next().await {
        kinds.push(match r {
            hp::QueueManagerResult::Failure { error, .. } => {
                format!("fail {}", error.error().map_or("-", |e| e.type_name()))
            }
            hp::QueueManagerResult::Success { value, .. } => format!("ok {value}"),
            hp::QueueManagerResult::Stopped { .. } => "stopped".to_string(),
            hp::QueueManagerResult::IterationStop { .. } => "end".to_string(),
        });
    }
    assert_eq!(kinds, ["fail Panicked", "ok 5", "stopped"]);
}

#[tokio::test]
async fn a_generator_body_panicking_with_a_bomb_payload_fails_the_generator() {
    let mut generator = hp::AsyncGenerator::new(|co: hp::Co<u8>| async move {
        co.yield_(1).await?;
        bomb_here();
        Ok::<(), hp::Failure>(())
    });
    assert_eq!(generator.next().await, Some(1));
    assert_eq!(generator.next().await, None);
    let failure = generator.failure().expect("failed");
    assert_eq!(failure.error().unwrap().type_name(), "Panicked");
}

// --- CTX 3: registration order after a nested finish -------------------------------------

type Order = Arc<Mutex<Vec<&'static str>>>;

fn push(order: &Order, what: &'static str) -> impl Fn() + Send + Sync + 'static {
    let order = order.clone();
    move || order.lock().unwrap().push(what)
}

#[test]
fn a_callback_added_after_a_nested_set_result_runs_after_the_earlier_ones() {
    let order = Order::default();
    let outer = hp::Fut::<u8>::new();
    let inner = hp::Fut::<u8>::new();
    let a = push(&order, "A");
    inner.add_done_callback(move |_| a());
    let (i, o) = (inner.clone(), order.clone());
    outer.add_done_callback(move |_| {
        assert!(i.set_result(7)); // queued: a nested finish
        let b = push(&o, "B");
        i.add_done_callback(move |out| {
            assert_eq!(*out.as_ref().unwrap(), 7);
            b()
        });
        o.lock().unwrap().push("outer done");
    });
    outer.set_result(0);
    assert_eq!(*order.lock().unwrap(), ["outer done", "A", "B"]);
}

#[test]
fn a_callback_added_from_a_running_callback_runs_after_the_rest_of_its_batch() {
    let order = Order::default();
    let fut = hp::Fut::<u8>::new();
    let (f, o) = (fut.clone(), order.clone());
    fut.add_done_callback(move |_| {
        o.lock().unwrap().push("A1");
        let c = push(&o, "C");
        f.add_done_callback(move |_| c());
    });
    let a2 = push(&order, "A2");
    fut.add_done_callback(move |_| a2());
    fut.set_result(0);
    assert_eq!(*order.lock().unwrap(), ["A1", "A2", "C"]);
    // Once the batch ran, one added runs before `add_done_callback` returns.
    let d = push(&order, "D");
    fut.add_done_callback(move |_| d());
    assert_eq!(order.lock().unwrap().last(), Some(&"D"));
}

#[test]
fn a_ctx_callback_added_after_a_nested_cancel_runs_after_the_earlier_ones() {
    let order = Order::default();
    let outer = hp::Ctx::beginning("outer");
    let inner = hp::Ctx::beginning("inner");
    let a = push(&order, "A");
    inner.add_done_callback(move |_| a());
    let (i, o) = (inner.clone(), order.clone());
    outer.add_done_callback(move |_| {
        assert!(i.cancel());
        let b = push(&o, "B");
        i.add_on_done(move |_, how| {
            assert!(how.is_cancelled());
            b()
        });
        o.lock().unwrap().push("outer done");
    });
    outer.cancel();
    assert_eq!(*order.lock().unwrap(), ["outer done", "A", "B"]);
}

#[test]
fn a_ctx_callback_added_after_a_nested_parent_cancel_runs_after_the_childs_earlier_ones() {
    let order = Order::default();
    let outer = hp::Ctx::beginning("outer");
    let parent = hp::Ctx::beginning("parent");
    let child = parent.child("child");
    let a = push(&order, "A");
    child.add_done_callback(move |_| a());
    let (p, c, o) = (parent.clone(), child.clone(), order.clone());
    outer.add_done_callback(move |_| {
        p.cancel();
        let b = push(&o, "B");
        c.add_done_callback(move |_| b());
    });
    outer.cancel();
    assert_eq!(*order.lock().unwrap(), ["A", "B"]);
}

#[test]
fn a_ctx_callback_added_from_a_running_callback_runs_after_the_rest_of_its_batch() {
    let order = Order::default();
    let ctx = hp::Ctx::beginning("app");
    let (c2, o) = (ctx.clone(), order.clone());
    ctx.add_done_callback(move |_| {
        o.lock().unwrap().push("A1");
        let c = push(&o, "C");
        c2.add_done_callback(move |_| c());
    });
    let a2 = push(&order, "A2");
    ctx.add_done_callback(move |_| a2());
    ctx.cancel();
    assert_eq!(*order.lock().unwrap(), ["A1", "A2", "C"]);
    let d = push(&order, "D");
    ctx.add_done_callback(move |_| d());
    assert_eq!(order.lock().unwrap().last(), Some(&"D"));
}

#[test]
fn an_event_callback_added_after_a_nested_set_runs_after_the_earlier_ones() {
    let order = Order::default();
    let outer = hp::Event::new();
    let inner = hp::Event::new();
    inner.add_done_callback(push(&order, "A"));
    let (i, o) = (inner.clone(), order.clone());
    outer.add_done_callback(move || {
        i.set();
        i.add_done_callback(push(&o, "B"));
        o.lock().unwrap().push("outer done");
    });
    outer.set();
    assert_eq!(*order.lock().unwrap(), ["outer done", "A", "B"]);
}

#[test]
fn an_event_cleared_and_set_again_while_its_callbacks_are_queued_keeps_their_order() {
    let order = Order::default();
    let outer = hp::Event::new();
    let inner = hp::Event::new();
    inner.add_done_callback(push(&order, "A"));
    let (i, o) = (inner.clone(), order.clone());
    outer.add_done_callback(move || {
        i.set(); // A queued
        i.add_done_callback(push(&o, "B")); // behind A
        i.clear();
        i.add_done_callback(push(&o, "C")); // waits for the next set
        i.set(); // C behind B
        i.add_done_callback(push(&o, "D"));
    });
    outer.set();
    assert_eq!(*order.lock().unwrap(), ["A", "B", "C", "D"]);
}

#[test]
fn a_callback_added_while_a_batch_is_queued_can_be_removed_before_it_runs() {
    let order = Order::default();
    let outer = hp::Fut::<u8>::new();
    let inner = hp::Fut::<u8>::new();
    inner.add_done_callback({
        let a = push(&order, "A");
        move |_| a()
    });
    let (i, o) = (inner.clone(), order.clone());
    outer.add_done_callback(move |_| {
        i.set_result(1);
        let b = push(&o, "B");
        let h = i.add_done_callback(move |_| b());
        assert!(i.has_done_callback(h));
        assert_eq!(i.remove_done_callback(h), 1);
    });
    outer.set_result(0);
    assert_eq!(*order.lock().unwrap(), ["A"]);
}

#[test]
fn registration_order_holds_when_another_thread_adds_while_the_batch_runs() {
    // The batch is running on this thread (A1 blocks until the other thread added B);
    // B still runs after A2, on the thread running the batch.
    common::with_watchdog(|| {
        let order = Order::default();
        let fut = hp::Fut::<u8>::new();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (f, o) = (fut.clone(), order.clone());
        fut.add_done_callback(move |_| {
            o.lock().unwrap().push("A1");
            let (f, o) = (f.clone(), o.clone());
            std::thread::spawn(move || {
                let b = push(&o, "B");
                f.add_done_callback(move |_| b());
                tx.send(()).unwrap();
            });
            rx.recv().unwrap();
        });
        let a2 = push(&order, "A2");
        fut.add_done_callback(move |_| a2());
        fut.set_result(0);
        assert_eq!(*order.lock().unwrap(), ["A1", "A2", "B"]);
    });
}

/// A value whose `Drop` panics with a [`Bomb`] payload (unless already unwinding).
struct DropBomb;

impl Drop for DropBomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            std::panic::panic_any(Bomb);
        }
    }
}

#[tokio::test]
async fn generators_whose_body_drops_panic_with_bomb_payloads_are_closed_with_panicked() {
    // Closing the outer generator drops its body: the outer `DropBomb` panics (payload 1);
    // the inner generator, dropped while that unwinds, is queued for the same drain and
    // its body's `DropBomb` panics too (payload 2, dropped under a catch).
    let mut outer = hp::AsyncGenerator::new(|co: hp::Co<u8>| async move {
        let mut inner = hp::AsyncGenerator::new(|co: hp::Co<u8>| async move {
            let _bomb = DropBomb;
            co.yield_(2).await?;
            Ok::<(), hp::Failure>(())
        });
        assert_eq!(inner.next().await, Some(2));
        let _bomb = DropBomb;
        co.yield_(1).await?;
        drop(inner);
        Ok::<(), hp::Failure>(())
    });
    assert_eq!(outer.next().await, Some(1));
    let failure = outer.aclose().await.unwrap_err();
    assert_eq!(failure.error().unwrap().type_name(), "Panicked");
    assert!(outer.finished());
}

#[test]
fn an_event_callback_moved_behind_a_queued_batch_can_still_be_removed() {
    let order = Order::default();
    let outer = hp::Event::new();
    let inner = hp::Event::new();
    inner.add_done_callback(push(&order, "A"));
    let (i, o) = (inner.clone(), order.clone());
    let removed = Arc::new(AtomicUsize::new(9));
    let r = removed.clone();
    outer.add_done_callback(move || {
        i.set(); // A queued
        i.clear();
        let c = i.add_done_callback(push(&o, "C")); // waits for the next set
        i.add_done_callback(push(&o, "D"));
        i.set(); // C and D move behind A, keeping their handles
        r.store(i.remove_done_callback(c), SeqCst);
    });
    outer.set();
    assert_eq!(removed.load(SeqCst), 1);
    assert_eq!(*order.lock().unwrap(), ["A", "D"]);
}
