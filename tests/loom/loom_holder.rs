//! Loom model checks of the task holder's bookkeeping: when `finish` may close the holder.
//!
//! Run: `RUSTFLAGS="--cfg machinery_loom" CARGO_TARGET_DIR=target/loom
//! LOOM_MAX_PREEMPTIONS=3 cargo test --release --test loom_holder`.
//! The tasks here have no runtime: `Task::model_pending` makes one and `model_finish`
//! finishes it on a loom thread, through the same code the runtime's poll runs;
//! `TaskHolder::model_try_finish` is the check `finish` makes each time it wakes.
#![cfg(machinery_loom)]

use std::sync::{Arc, Mutex};

use loom::thread;
use machinery::helpers as hp;

use crate::loom_model;
use loom_model::model;

#[test]
fn loom_finish_never_closes_before_a_done_callback_added_its_work() {
    // Race: a held task finishes on one thread and its done callback adds another task,
    // while `finish` checks on another thread. `finish` must not close the holder between
    // the task's release and its callback: the added task is held, never rejected.
    model("finish races a done callback adding work", || {
        let ctx = hp::Ctx::beginning("r");
        let ts = hp::task_holder(&ctx);
        let first = hp::Task::<()>::model_pending();
        ts.add_task(first.clone());
        let added = Arc::new(Mutex::new(None));
        let (h, a) = (ts.handle(), added.clone());
        first.add_done_callback(move |_| {
            let more = hp::Task::<()>::model_pending();
            *a.lock().unwrap() = Some(h.add_task(more));
        });
        let t = thread::spawn(move || first.model_finish(Ok(())));
        let closed = ts.model_try_finish();
        t.join().unwrap();
        assert!(!closed, "closed while work was still to be added");
        let more = added.lock().unwrap().take().expect("the callback ran");
        assert!(ts.contains(&more), "the added task is held");
        assert!(!ts.model_try_finish(), "the added task is pending");
        more.model_finish(Ok(()));
        assert_eq!(ts.pending(), 0);
        assert!(ts.model_try_finish());
    });
}

#[test]
fn loom_a_task_finishing_while_it_is_added_is_released_and_settled_once() {
    // Race: `add_task` registers its hooks while the task finishes on another thread.
    // Whichever comes first, the task is released once and settled once: nothing is
    // pending afterwards and the holder can finish.
    model("add_task races the task finishing", || {
        let ctx = hp::Ctx::beginning("r");
        let ts = hp::task_holder(&ctx);
        let task = hp::Task::<u8>::model_pending();
        let t2 = task.clone();
        let t = thread::spawn(move || t2.model_finish(Ok(3)));
        ts.add_task(task.clone());
        t.join().unwrap();
        assert_eq!(ts.pending(), 0);
        assert!(!ts.contains(&task));
        assert!(ts.model_try_finish());
        assert_eq!(task.try_join().unwrap().unwrap(), 3);
    });
}
