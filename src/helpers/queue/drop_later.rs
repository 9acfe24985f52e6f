//! Dropping queued user values: one by one, outside every lock, each panic caught, and
//! iteratively when one value's `Drop` leads to dropping more.
//!
//! A queued item may hold anything: a handle to another queue holding more items, or a
//! `Drop` that appends to a queue that no longer accepts (which then drops what it was
//! given). Dropped naively, a chain of such values recurses once per link and overflows
//! the stack at some length the user controls. Here, the first drop on a thread runs a
//! loop; a drop requested while that loop runs (from inside a user `Drop`) is queued on
//! the thread and taken by the same loop, so the stack depth stays bounded whatever the
//! chain's length.
//!
//! That holds at thread exit too, when a thread-local destructor drops such a chain:
//! the thread's list has no drop glue (`ManuallyDrop`, and it owns memory only while a
//! loop runs), so it is never destroyed and stays reachable to the thread's very end.

use std::any::Any;
use std::cell::RefCell;
use std::mem::ManuallyDrop;

use crate::helpers::callbacks::run_caught;

/// Values waiting to be dropped by the loop running on this thread (`None`: no loop runs).
type Later = RefCell<Option<Vec<Box<dyn Any>>>>;

thread_local! {
    /// Never destroyed (no drop glue), so a drop from another thread-local's destructor
    /// still finds it; the loop sets it back to `None` (nothing owned) when it ends.
    static LATER: ManuallyDrop<Later> = const { ManuallyDrop::new(RefCell::new(None)) };
}

/// Drops every value of `values`, outside every lock (the caller holds none), each in
/// its own `catch_unwind` (a panic is reported through `tracing` as `what`).
pub(crate) fn drop_all<T: 'static>(values: impl IntoIterator<Item = T>, what: &str) {
    let mut values = values.into_iter().peekable();
    if values.peek().is_none() {
        return;
    }
    let queued = LATER.with(|l| {
        let mut l = l.borrow_mut();
        match l.as_mut() {
            Some(later) => {
                later.extend(values.by_ref().map(|v| Box::new(v) as Box<dyn Any>));
                true
            }
            None => {
                *l = Some(Vec::new());
                false
            }
        }
    });
    if !queued {
        for v in values {
            run_caught(what, move || drop(v));
            drain(what);
        }
        LATER.with(|l| *l.borrow_mut() = None);
    }
}

/// Drops what user `Drop`s queued on this thread, until nothing is left.
fn drain(what: &str) {
    loop {
        let next = LATER.with(|l| l.borrow_mut().as_mut().and_then(Vec::pop));
        match next {
            Some(v) => {
                run_caught(what, move || drop(v));
            }
            None => return,
        }
    }
}
