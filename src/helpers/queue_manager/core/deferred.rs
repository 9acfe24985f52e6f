//! Work that runs after the state's lock is released: user values to drop, tasks to
//! cancel, futures to spawn, task callbacks to register, the consumer to wake; and the
//! two ways in from outside ([`Schedule`]: a stream woke, a task finished).
//!
//! # Invariants
//! 1. No user code runs under the state's lock, and no user value is dropped under it:
//!    what leaves the table goes into a [`Deferred`], run after unlocking, each piece
//!    under `catch_unwind`, so a panicking `Drop` cannot stop the rest (cancelling,
//!    waking, registering).
//! 2. Deferred work is a work list, never recursion: taking a finished task's outcome or
//!    installing a spawned task may leave more work, which is queued on that list.
//! 3. A user value is dropped last, after the tasks are cancelled and the consumer
//!    woken.
//! 4. The common step (one that only produced a value) leaves nothing to do, and
//!    running its empty `Deferred` costs a test and nothing else.

use super::*;

/// Work to do after the lock is released (invariant 4).
pub(crate) struct Deferred<V, C> {
    work: Vec<Work<V, C>>,
    pub(super) waker: Option<Waker>,
}

/// One piece of deferred work.
enum Work<V, C> {
    /// A user value to drop.
    Trash(Box<dyn Send>),
    /// A task to cancel.
    Cancel(AnyTask),
    /// The future of the task source at `(key, number)`, to spawn.
    Spawn(usize, u64, FeedFuture<V, C>),
    /// The task of the source at `(key, number)`, to watch.
    Register(usize, u64, AnyTask),
}

impl<V, C> Default for Deferred<V, C> {
    fn default() -> Self {
        Deferred {
            work: Vec::new(),
            waker: None,
        }
    }
}

impl<V, C> Deferred<V, C> {
    pub(super) fn is_empty(&self) -> bool {
        self.work.capacity() == 0 && self.waker.is_none()
    }

    pub(super) fn trash(&mut self, value: impl Send + 'static) {
        self.work.push(Work::Trash(Box::new(value)));
    }

    pub(super) fn cancel(&mut self, task: AnyTask) {
        self.work.push(Work::Cancel(task));
    }

    pub(super) fn spawn(&mut self, key: usize, number: u64, fut: FeedFuture<V, C>) {
        self.work.push(Work::Spawn(key, number, fut));
    }

    pub(super) fn register(&mut self, key: usize, number: u64, task: AnyTask) {
        self.work.push(Work::Register(key, number, task));
    }
}

/// Runs `f`, ignoring a panic (user code in deferred work: the rest must still run).
pub(super) fn caught(f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        let error = Error::from_panic(payload);
        tracing::error!(%error, "queue manager: user code panicked in deferred work");
    }
}

impl<V: Send + 'static, C: Send + Sync + 'static> Shared<V, C> {
    #[inline]
    pub(super) fn run(&self, d: Deferred<V, C>) {
        if d.is_empty() {
            // The common case: a step that only produced a value. Nothing was ever put
            // in `d`, so forgetting it frees nothing and skips an out-of-line drop.
            std::mem::forget(d);
            return;
        }
        self.run_deferred(d);
    }

    /// Runs deferred work as a work list (invariant 5): taking a finished task's
    /// outcome or installing a spawned task may leave more work, which is queued here,
    /// not run recursively. Every piece runs under `catch_unwind` (invariant 4).
    #[inline(never)]
    pub(super) fn run_deferred(&self, d: Deferred<V, C>) {
        let mut work = vec![d];
        while let Some(d) = work.pop() {
            let Deferred {
                work: pieces,
                waker,
            } = d;
            let mut trash = Vec::new();
            for piece in pieces {
                match piece {
                    Work::Cancel(t) => caught(move || {
                        t.cancel();
                    }),
                    Work::Spawn(key, number, fut) => work.push(self.spawned(key, number, fut)),
                    Work::Register(key, number, task) => {
                        if task.done() {
                            work.push(self.task_finished(key, number));
                            continue;
                        }
                        let target = self.this.clone();
                        caught(move || {
                            task.add_done_callback(Box::new(move || {
                                if let Some(t) = target.upgrade() {
                                    t.task_done(key, number);
                                }
                            }));
                        });
                    }
                    // Dropped last, after the tasks are cancelled and the consumer woken.
                    Work::Trash(t) => trash.push(t),
                }
            }
            if let Some(w) = waker {
                caught(move || w.wake());
            }
            for t in trash {
                caught(move || drop(t));
            }
        }
    }

    /// Spawns the future of the task source at `(key, number)` and installs the task.
    pub(super) fn spawned(&self, key: usize, number: u64, fut: FeedFuture<V, C>) -> Deferred<V, C> {
        let handle = self.runtime.clone().or_else(|| Handle::try_current().ok());
        let task = match handle {
            Some(h) => {
                catch_unwind(AssertUnwindSafe(|| future::spawn(&h, fut))).map_err(sources::panicked)
            }
            None => {
                caught(move || drop(fut));
                Err(future::no_runtime())
            }
        };
        let mut d = Deferred::default();
        {
            let mut st = self.lock();
            st.install(key, number, task, &mut d);
            d.waker = st.consumer.take();
            self.tell();
        }
        d
    }

    /// Takes a finished task's outcome (user code, no lock) and extends it.
    pub(super) fn task_finished(&self, key: usize, number: u64) -> Deferred<V, C> {
        let Some(mut p) = self.lock().take_task(key, number) else {
            return Deferred::default();
        };
        let out = sources::task::take(&mut p);
        let mut d = Deferred::default();
        d.trash(p);
        {
            let mut st = self.lock();
            if let Some(s) = st.remove(key, number, &mut d) {
                st.called(out, s.chain.clone(), s.context.clone(), &mut d);
                d.trash(s);
            }
            d.waker = st.consumer.take();
            self.tell();
        }
        d
    }
}

impl<V: Send + 'static, C: Send + Sync + 'static> Schedule for Shared<V, C> {
    fn stream_woke(&self, key: usize, number: u64) {
        let waker = {
            let mut st = self.lock();
            let Some(s) = st.sources.get_mut(key) else {
                return;
            };
            if s.number != number {
                return;
            }
            match s.turn {
                Turn::Waiting => {
                    s.turn = Turn::Woken;
                    st.woken.push_back((key, number));
                    self.tell();
                }
                Turn::Busy => {
                    s.turn = Turn::Notified;
                    return;
                }
                _ => return,
            }
            st.consumer.take()
        };
        if let Some(w) = waker {
            caught(move || w.wake());
        }
    }

    fn task_done(&self, key: usize, number: u64) {
        let d = self.task_finished(key, number);
        self.run(d);
    }
}
