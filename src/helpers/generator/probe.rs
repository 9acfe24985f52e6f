//! Telling a queue manager's stream source that it is a generator, and stopping it as
//! [`stop_async_generator`](super::stop_async_generator) does through that stream.
//!
//! The queue manager holds its stream sources erased (`Pin<Box<dyn Stream>>`, behind a
//! `map` into its feed type), so it cannot call `athrow` / `aclose` on a generator it
//! was given. Instead it polls a source inside a *scope* ([`poll_as_source`]): an
//! [`AsyncGenerator`](super::AsyncGenerator) (or [`TryGenerator`](super::TryGenerator))
//! polled as a stream at the scope's own nesting depth (directly, or behind adapters
//! that are not generators, such as `map`) says so by counting itself in the scope.
//! Generators its body drives are one level deeper and do not count.
//!
//! A scope may carry a stop: a generator that meets it enters its stop (throw the
//! failure in, close it if it yields again, as `stop_async_generator` does), returns
//! `Pending` while its cleanup awaits and `Ready(None)` once stopped, and leaves how the
//! stop ended in the scope. Once a generator has started its stop it finishes it on
//! later polls whatever the scope says.

use std::cell::{Cell, RefCell};
use std::mem::ManuallyDrop;

use super::trampoline::Nesting;
use crate::helpers::error::Failure;

/// What a scope saw while a stream source was polled in it.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    /// Generators polled as streams at the scope's depth.
    pub(crate) generators: u32,
    /// How a generator's stop ended, when one ended in this poll (the last one).
    pub(crate) stopped: Option<Result<(), Failure>>,
}

struct Scope {
    depth: u32,
    stop: Option<Failure>,
    probe: Probe,
}

thread_local! {
    /// Whether any scope is open on this thread (a cheap test for generators polled
    /// anywhere else).
    static OPEN: Cell<u32> = const { Cell::new(0) };
    /// The innermost scope open on this thread. No drop glue (`ManuallyDrop`), so it is
    /// never destroyed (a source polled at thread exit still finds it); the outermost
    /// scope puts `None` back when it closes.
    static SCOPE: ManuallyDrop<RefCell<Option<Scope>>> =
        const { ManuallyDrop::new(RefCell::new(None)) };
}

/// Restores the enclosing scope, also when the poll unwinds.
struct Restore(Option<Scope>);

impl Drop for Restore {
    fn drop(&mut self) {
        let outer = self.0.take();
        let _mine = SCOPE.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
        OPEN.with(|o| o.set(o.get() - 1));
    }
}

/// Runs `poll` (one poll of a stream source) in a scope, with a stop to throw in or not.
pub(crate) fn poll_as_source<R>(stop: Option<Failure>, poll: impl FnOnce() -> R) -> (R, Probe) {
    let scope = Scope {
        depth: Nesting::depth(),
        stop,
        probe: Probe::default(),
    };
    OPEN.with(|o| o.set(o.get() + 1));
    let restore = Restore(SCOPE.with(|s| s.borrow_mut().replace(scope)));
    let r = poll();
    let probe = SCOPE.with(|s| {
        s.borrow_mut()
            .as_mut()
            .map(|s| std::mem::take(&mut s.probe))
    });
    drop(restore);
    (r, probe.unwrap_or_default())
}

/// A generator is polled as a stream: counts it in the scope at its depth; returns the
/// stop to throw in, if the scope carries one.
pub(super) fn announce() -> Option<Failure> {
    if OPEN.with(Cell::get) == 0 {
        return None;
    }
    let depth = Nesting::depth();
    SCOPE.with(|s| match s.borrow_mut().as_mut() {
        Some(scope) if scope.depth == depth => {
            scope.probe.generators += 1;
            scope.stop.clone()
        }
        _ => None,
    })
}

/// A generator's stop ended: leaves how in the scope at its depth.
pub(super) fn stopped(outcome: Result<(), Failure>) {
    if OPEN.with(Cell::get) == 0 {
        return;
    }
    let depth = Nesting::depth();
    SCOPE.with(|s| {
        if let Some(scope) = s.borrow_mut().as_mut()
            && scope.depth == depth
        {
            scope.probe.stopped = Some(outcome);
        }
    });
}
