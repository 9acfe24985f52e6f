//! Async queue (`hp::queue`): an unbounded queue whose iteration ends with its context.
//!
//! A [`Queue`] yields what producers append until its context is done or its breaker is
//! set. Producers on any task or thread append through a cloneable [`QueueHandle`];
//! `append_front(item)` puts an item at the very front, and `append_instruction` queues
//! a callable that the consumer runs when it reaches it (nothing is yielded for it).
//!
//! # Example
//! ```
//! use futures::StreamExt;
//! use machinery::helpers as hp;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let ctx = hp::Ctx::beginning("app");
//! let mut queue = hp::queue::<u32>(&ctx).name("numbers").build();
//! let producer = queue.handle();
//! tokio::spawn(async move {
//!     producer.append(1).unwrap(); // `Err(AppendError(1))` only once the queue is closed or gone
//!     producer.append(2).unwrap();
//!     producer.append_front(0).unwrap(); // priority: at the very front
//! });
//! let mut seen = Vec::new();
//! let mut all = queue.get_all();
//! while let Some(n) = all.next().await {
//!     seen.push(n);
//!     if seen.len() == 3 {
//!         ctx.cancel(); // ends the iteration before the next item
//!     }
//! }
//! assert_eq!(seen, [0, 1, 2]);
//! # }
//! ```
//!
//! # Iteration
//! Before each item the breaker and the context are checked. Without
//! `empty_on_finished`, a set breaker or a finished context ends the iteration and what
//! is left stays for [`Queue::remaining`]. With it, neither ends the iteration while
//! anything is queued: what is left (instructions included), and what is appended
//! during the drain, is yielded first; the iteration ends once the queue is empty.
//! A new iteration ([`Queue::get_all`]) clears the breaker and continues where the last one
//! stopped, so an iteration stopped early can be restarted without losing anything.
//! [`GetAll`] is one iteration and stays ended (a fused stream); [`Queue::iterations`]
//! gives [`Iterations`], a stream that runs iterations back to back (the seed's `async for`
//! written again after each end), which its name says is not fused.
//!
//! # Ending from the producer side
//! Besides the context and the breaker, producers can end the stream: [`Queue::close`],
//! [`QueueHandle::close`] or [`LimitedQueue::close`] closes the queue, and with
//! [`close_when_handles_dropped`](QueueOptions::close_when_handles_dropped) dropping the
//! last [`QueueHandle`] does. The iteration then ends once it has yielded everything
//! appended before the close (a waiting consumer is woken at once); what is appended
//! after the close comes back to its caller as [`AppendError`]. A finished context or a set
//! breaker still ends the iteration first, as it would have (with `empty_on_finished`
//! after what is left); [`Queue::remaining`] still gives what is queued.
//!
//! ```
//! use futures::StreamExt;
//! use machinery::helpers as hp;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let ctx = hp::Ctx::beginning("app");
//! let mut queue = hp::queue::<u32>(&ctx).close_when_handles_dropped(true).build();
//! let tx = queue.handle();
//! for start in [0, 10] {
//!     let producer = tx.clone(); // cloned from one we hold: no early close
//!     tokio::spawn(async move {
//!         for n in start..start + 3 {
//!             producer.append(n).unwrap();
//!         }
//!     }); // the handle drops here; the last one to drop closes the queue
//! }
//! drop(tx);
//! let mut seen: Vec<u32> = queue.get_all().collect().await; // no end marker needed
//! seen.sort_unstable();
//! assert_eq!(seen, [0, 1, 2, 10, 11, 12]);
//! assert!(queue.is_closed());
//! // After the close an append comes back to its caller.
//! assert_eq!(queue.append(5).unwrap_err().into_inner(), 5);
//! # }
//! ```
//!
//! # Cost
//! When items are waiting the consumer takes them all under one lock into a private batch
//! and yields from it without a scheduler round trip per item (the Python original yields
//! to the event loop before every item). It still spends tokio's cooperative budget, one
//! unit per four entries (an instruction uses up its unit), so a consumer with thousands
//! of ready items yields to other tasks at least every 512 entries.
//! Producers take one uncontended lock per append.
//!
//! # Typing
//! The seed's `item_ensurer` / `EnsureItemGetter` exist to type a Python queue; a
//! `Queue<T>` is generic, so they are not needed: it yields `T` with no per-item check.

pub(crate) mod append_error;
pub(crate) mod drop_later;
mod handle;
mod shared;
mod stream;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

pub use append_error::AppendError;
pub use handle::{LimitedQueue, QueueHandle};
use shared::{End, Entry, Shared};
pub use stream::{GetAll, Iterations, Remaining};

use super::callbacks::run_caught;
use super::protocols::CallbackHandle;
use super::{Ctx, CtxGuard, Event};
use crate::sync::{Arc, lock};
use drop_later::drop_all;

/// How many entries one unit of tokio's cooperative budget pays for. Tokio gives a task
/// 128 units per poll, so a consumer of ready entries yields to the scheduler every
/// 128 × this many entries (512): other tasks still run while thousands are ready, and
/// the consumer pays the budget's thread-local access and the scheduler round trip
/// (a driver poll, a syscall) a quarter as often as with one unit per entry.
const ENTRIES_PER_BUDGET_UNIT: u32 = 4;

type Hook<T> = Box<dyn FnMut(&LimitedQueue<'_, T>) + Send + 'static>;

/// Starts building an async queue bound to `ctx` (the seed's `hp.queue(ctx=...)`).
///
/// Finish with [`QueueOptions::build`].
pub fn queue<T>(ctx: &Ctx) -> QueueOptions<T> {
    QueueOptions {
        ctx: ctx.clone(),
        empty_on_finished: false,
        close_when_handles_dropped: false,
        name: Cow::Borrowed(""),
        _t: std::marker::PhantomData,
    }
}

/// Options for [`queue`]: `empty_on_finished`, `name` and `close_when_handles_dropped`.
pub struct QueueOptions<T> {
    ctx: Ctx,
    empty_on_finished: bool,
    close_when_handles_dropped: bool,
    name: Cow<'static, str>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for QueueOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueOptions")
            .field("empty_on_finished", &self.empty_on_finished)
            .field(
                "close_when_handles_dropped",
                &self.close_when_handles_dropped,
            )
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> QueueOptions<T> {
    /// Close the queue when its last [`QueueHandle`] is dropped (default: off), as a
    /// tokio channel closes when its last `Sender` is dropped: the iteration then ends
    /// once it has yielded what was appended, and later appends (through the `Queue`
    /// itself, or a handle made afterwards) come back as [`AppendError`].
    ///
    /// The close happens when the count of live handles drops to zero, so a queue whose
    /// first handle was never made stays open, and a producer that finishes before the
    /// next handle is made closes it: make every handle first (or clone them from one
    /// you hold and drop it last). The `Queue` itself and a [`LimitedQueue`] view are not
    /// producer handles.
    pub fn close_when_handles_dropped(mut self, yes: bool) -> Self {
        self.close_when_handles_dropped = yes;
        self
    }

    /// When the context finishes or the breaker is set, first yield what is left, and
    /// what is appended meanwhile, ending only once the queue is empty (default: end at
    /// once and leave it for [`Queue::remaining`]).
    pub fn empty_on_finished(mut self, yes: bool) -> Self {
        self.empty_on_finished = yes;
        self
    }

    /// Names the queue's child context (default `queue`).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Creates the queue with a child context of the given one.
    pub fn build(self) -> Queue<T> {
        let name = if self.name.is_empty() {
            Cow::Borrowed("queue")
        } else {
            self.name
        };
        let guard = self.ctx.child(name).drop_guard();
        let shared = Arc::new(Shared::new(self.close_when_handles_dropped));
        let weak = Arc::downgrade(&shared);
        let ctx_cb = guard.ctx().add_done_callback(move |_| {
            if let Some(s) = weak.upgrade() {
                s.wake();
            }
        });
        Queue {
            shared,
            batch: VecDeque::new(),
            hooks: Vec::new(),
            hooks_due: false,
            coop_credit: 0,
            iterating: false,
            breaker_cb: None,
            empty_on_finished: self.empty_on_finished,
            ctx_cb,
            ctx: guard,
        }
    }
}

/// An async queue (the seed's `Queue`). See the [module docs](self).
///
/// The `Queue` is the consumer; producers append through [`Queue::handle`]s (or through
/// the queue itself).
///
/// # Drop
/// Cancels the queue's child context and drops what is still queued (instructions are
/// dropped unrun) and its hooks: one by one, outside every lock, each panic in a `Drop`
/// caught and reported through `tracing`, and iteratively (an item may hold another
/// queue, and so on, at any depth). Later appends through handles come back as
/// [`AppendError`] ([`AppendError::is_consumer_gone`]).
pub struct Queue<T: 'static> {
    shared: Arc<Shared<T>>,
    /// Entries taken from `shared` under one lock, yielded without locking.
    batch: VecDeque<Entry<T>>,
    hooks: Vec<Hook<T>>,
    /// An item was yielded; hooks run when the next one is asked for.
    hooks_due: bool,
    /// Entries still paid for by the last cooperative budget unit spent.
    coop_credit: u32,
    /// The [`Iterations`] stream's iteration is running (it restarts after it ended).
    iterating: bool,
    breaker_cb: Option<CallbackHandle>,
    empty_on_finished: bool,
    ctx_cb: CallbackHandle,
    ctx: CtxGuard,
}

impl<T: Send + 'static> Queue<T> {
    /// A cloneable producer handle.
    pub fn handle(&self) -> QueueHandle<T> {
        QueueHandle::new(self.shared.clone())
    }

    /// The queue's own context, a child of the one it was built with.
    pub fn ctx(&self) -> &Ctx {
        self.ctx.ctx()
    }

    /// Adds `item` at the back (the seed's `append(item)`).
    ///
    /// Accepted also after the context is done: it then waits for
    /// [`remaining`](Self::remaining) or an `empty_on_finished` iteration.
    ///
    /// # Errors
    /// Gives `item` back in an [`AppendError`] once the queue is [closed](Self::close) (the
    /// consumer exists as long as you can call this, so that is the only refusal).
    ///
    /// ```
    /// use machinery::helpers as hp;
    ///
    /// let ctx = hp::Ctx::beginning("app");
    /// let queue = hp::queue::<String>(&ctx).build();
    /// queue.append("first".to_string()).unwrap();
    /// queue.close();
    /// let refused = queue.append("second".to_string()).unwrap_err();
    /// assert!(refused.is_closed());
    /// assert_eq!(refused.into_inner(), "second"); // the caller has it back
    /// ```
    pub fn append(&self, item: T) -> Result<(), AppendError<T>> {
        self.shared.push(item, Entry::Item, End::Back)
    }

    /// Adds `item` at the very front, before everything queued (the seed's
    /// `append(item, priority=True)`): appending 1, then 2 and 3 with this, drains 3, 2,
    /// 1.
    ///
    /// # Errors
    /// Gives `item` back in an [`AppendError`] once the queue is closed, as
    /// [`append`](Self::append).
    pub fn append_front(&self, item: T) -> Result<(), AppendError<T>> {
        self.shared.push(item, Entry::Item, End::Front)
    }

    /// Adds a callable at the back, run when the consumer reaches it; nothing is yielded
    /// for it. A panic in it is caught and reported through `tracing`.
    ///
    /// # Errors
    /// Gives `f` back unrun in an [`AppendError`] once the queue is closed.
    pub fn append_instruction<F>(&self, f: F) -> Result<(), AppendError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared
            .push(f, |f| Entry::Instruction(Box::new(f)), End::Back)
    }

    /// [`append_instruction`](Self::append_instruction) at the very front (the seed's
    /// `append_instruction(f, priority=True)`).
    ///
    /// # Errors
    /// Gives `f` back unrun in an [`AppendError`] once the queue is closed.
    pub fn append_instruction_front<F>(&self, f: F) -> Result<(), AppendError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared
            .push(f, |f| Entry::Instruction(Box::new(f)), End::Front)
    }

    /// Closes the queue from the producer side (see the
    /// [module docs](self#ending-from-the-producer-side)): later appends come back as
    /// [`AppendError`]; an iteration ends once it has taken everything appended before (a
    /// waiting one is woken at once), and so does every later iteration. Returns `true`
    /// when this call closed it, `false` when it was closed already. Closing does not
    /// touch the context or the breaker.
    pub fn close(&self) -> bool {
        self.shared.close()
    }

    /// Whether the queue was closed by a producer.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// The breaker: setting it ends the current iteration (with `empty_on_finished`,
    /// once nothing is queued); a new iteration clears it.
    pub fn breaker(&self) -> &Event {
        &self.shared.breaker
    }

    /// How many entries are queued, instructions included.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// Whether nothing (no item, no instruction) is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers `hook`, called after each yielded item once the consumer asks for the
    /// next one (never before it has seen the item), with a [`LimitedQueue`] view.
    /// Hooks run in registration order; a panicking hook is caught and reported.
    pub fn process_after_yielded(
        &mut self,
        hook: impl FnMut(&LimitedQueue<'_, T>) + Send + 'static,
    ) {
        self.hooks.push(Box::new(hook));
    }

    /// A new iteration: clears the breaker, then yields items as they come until the
    /// context is done or the breaker is set.
    ///
    /// # Cancel safety
    /// Cancel safe: an item is removed only when it is returned; dropping the stream
    /// (or a `next()` future) keeps every other entry for the next iteration.
    pub fn get_all(&mut self) -> GetAll<'_, T> {
        self.start_iteration();
        self.iterating = false;
        GetAll::new(self)
    }

    /// Iterations back to back as one `Stream` (the seed's `async for item in queue`
    /// written again after each end): after `None`, polling again starts a new iteration.
    /// See [`Iterations`]; for one iteration that stays ended use
    /// [`get_all`](Self::get_all).
    pub fn iterations(&mut self) -> Iterations<'_, T> {
        Iterations::new(self)
    }

    /// Drains what is queued now without waiting, running the instructions it meets and
    /// yielding only items.
    pub fn remaining(&mut self) -> Remaining<'_, T> {
        Remaining::new(self)
    }

    fn start_iteration(&mut self) {
        let breaker = &self.shared.breaker;
        if let Some(h) = self.breaker_cb.take() {
            breaker.remove_done_callback(h);
        }
        self.hooks_due = false;
        breaker.clear();
        let weak = Arc::downgrade(&self.shared);
        self.breaker_cb = Some(breaker.add_done_callback(Box::new(move || {
            if let Some(s) = weak.upgrade() {
                s.wake();
            }
        })));
    }

    /// Takes the next entry in logical order without waiting.
    ///
    /// With `iterating`, nothing is taken from the shared deque once the iteration must
    /// stop (checked under its lock): an entry appended after the breaker was set or the
    /// context finished, by a thread that did one and then the other, is never yielded.
    fn take(&mut self, iterating: bool) -> Option<Entry<T>> {
        if self.batch.is_empty() {
            self.refill(iterating)?; // takes priority entries too, already in order
        } else if self.shared.has_ahead() {
            self.merge_ahead(iterating)?;
        }
        let entry = self.batch.pop_front()?;
        // Relaxed: `len()` reads a snapshot; only this consumer writes it.
        self.shared.batch_len.store(self.batch.len(), Relaxed);
        Some(entry)
    }

    /// Whether the breaker is set or the context is done.
    fn stopping(&self) -> bool {
        self.shared.breaker.is_set() || self.ctx.ctx().done()
    }

    /// Whether an iteration must stop before taking anything more: it is stopping and
    /// does not drain first (with `empty_on_finished` it ends only once nothing is
    /// queued).
    fn must_stop(&self) -> bool {
        !self.empty_on_finished && self.stopping()
    }

    /// Swaps the shared deque (all of it) into the empty batch; `None` when `iterating`
    /// and the iteration must stop.
    fn refill(&mut self, iterating: bool) -> Option<()> {
        let mut st = lock(&self.shared.state);
        // Under the lock: an append that followed a breaker set or a cancel in its
        // thread is seen only together with that set or cancel.
        if iterating && self.must_stop() {
            return None;
        }
        std::mem::swap(&mut st.deque, &mut self.batch);
        st.ahead = 0;
        self.shared.ahead_flag.store(false, Relaxed);
        self.shared.batch_len.store(self.batch.len(), Relaxed);
        Some(())
    }

    /// Moves priority entries pushed since the last refill in front of the batch; `None`
    /// when `iterating` and the iteration must stop.
    fn merge_ahead(&mut self, iterating: bool) -> Option<()> {
        let mut st = lock(&self.shared.state);
        if iterating && self.must_stop() {
            return None;
        }
        let n = std::mem::take(&mut st.ahead);
        self.shared.ahead_flag.store(false, Relaxed);
        for e in st.deque.drain(..n).rev() {
            self.batch.push_front(e);
        }
        self.shared.batch_len.store(self.batch.len(), Relaxed);
        Some(())
    }

    /// [`take`](Self::take), paid from tokio's cooperative budget: one budget unit buys
    /// [`ENTRIES_PER_BUDGET_UNIT`] entries. Pending (with a wake-up scheduled) when the
    /// task's budget is used up; nothing is taken or spent when nothing is queued.
    fn take_on_budget(&mut self, cx: &mut Context<'_>) -> Poll<Option<Entry<T>>> {
        if self.coop_credit > 0 {
            let entry = self.take(true);
            if entry.is_some() {
                self.coop_credit -= 1;
            }
            return Poll::Ready(entry);
        }
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let entry = self.take(true);
        if entry.is_some() {
            coop.made_progress();
            self.coop_credit = ENTRIES_PER_BUDGET_UNIT - 1;
        } // else: dropping `coop` gives the unit back
        Poll::Ready(entry)
    }

    /// Registers the waker unless something is ready now or the queue is closed and
    /// empty.
    fn register(&mut self, cx: &mut Context<'_>) -> Wait {
        let mut st = lock(&self.shared.state);
        // Checked under the lock: the ctx and breaker callbacks take this lock after
        // their state changed, so either we see the change or they see our waker.
        if !st.deque.is_empty() || self.shared.breaker.is_set() || self.ctx.ctx().done() {
            return Wait::LookAgain;
        }
        // The batch is empty (the caller took nothing), the deque too, and appends stop
        // at the close under this lock: everything appended before it was taken.
        if st.closed {
            return Wait::Closed;
        }
        let old = match &mut st.waker {
            Some(w) if w.will_wake(cx.waker()) => None,
            slot => slot.replace(cx.waker().clone()),
        };
        drop(st);
        drop(old); // outside the lock: the last reference to a task may free its output
        Wait::Registered
    }

    fn run_hooks(&mut self) {
        let view = LimitedQueue {
            shared: &self.shared,
        };
        for hook in &mut self.hooks {
            run_caught("queue process_after_yielded hook", || hook(&view));
        }
    }

    /// One step of an iteration: the next item, `None` when it ends, or pending.
    ///
    /// The common case (no hook due, breaker and ctx checked clear, an item at the front
    /// of the batch, no priority entry waiting, budget already paid) is handled inline
    /// with the same checks in the same order; everything else goes the general way.
    #[inline]
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if !self.hooks_due
            && self.coop_credit > 0
            && !self.shared.breaker.is_set()
            && !self.ctx.ctx().done()
            && matches!(self.batch.front(), Some(Entry::Item(_)))
            && !self.shared.has_ahead()
            && let Some(Entry::Item(v)) = self.batch.pop_front()
        {
            self.coop_credit -= 1;
            // Relaxed: `len()` reads a snapshot; only this consumer writes it.
            self.shared.batch_len.store(self.batch.len(), Relaxed);
            self.hooks_due = !self.hooks.is_empty();
            return Poll::Ready(Some(v));
        }
        self.poll_item_slow(cx)
    }

    /// [`poll_item`](Self::poll_item) in general: hooks, instructions, refills, priority
    /// merges, budget, ending and waiting.
    #[inline(never)]
    fn poll_item_slow(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        loop {
            if std::mem::take(&mut self.hooks_due) {
                self.run_hooks();
            }
            let stopping = self.stopping();
            if stopping && !self.empty_on_finished {
                return Poll::Ready(None);
            }
            let entry = std::task::ready!(self.take_on_budget(cx));
            match entry {
                Some(Entry::Item(v)) => {
                    self.hooks_due = !self.hooks.is_empty();
                    return Poll::Ready(Some(v));
                }
                Some(Entry::Instruction(f)) => {
                    // User code of any size: it uses up the rest of its budget unit.
                    self.coop_credit = 0;
                    run_caught("queue instruction", f);
                }
                None if stopping => return Poll::Ready(None),
                None => match self.register(cx) {
                    Wait::LookAgain => {}
                    Wait::Registered => return Poll::Pending,
                    Wait::Closed => return Poll::Ready(None),
                },
            }
        }
    }
}

/// What [`Queue::register`] found.
enum Wait {
    /// Something changed: take again.
    LookAgain,
    /// The waker is registered: pending.
    Registered,
    /// Closed by a producer and empty: the iteration ends.
    Closed,
}

// The queue never pins its items: it only moves them in and out of deques.
impl<T: 'static> Unpin for Queue<T> {}

impl<T: 'static> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("ctx", &self.ctx.name())
            .field("len", &self.shared.len())
            .field("empty_on_finished", &self.empty_on_finished)
            .field("closed", &self.shared.is_closed())
            .finish_non_exhaustive()
    }
}

impl<T: 'static> Drop for Queue<T> {
    fn drop(&mut self) {
        if let Some(h) = self.breaker_cb.take() {
            self.shared.breaker.remove_done_callback(h);
        }
        self.ctx.ctx().remove_done_callback(self.ctx_cb);
        let (left, waker) = {
            let mut st = lock(&self.shared.state);
            st.consumer_gone = true;
            st.ahead = 0;
            (std::mem::take(&mut st.deque), st.waker.take())
        };
        // Outside the lock, one by one, each panic caught, iteratively (an entry's Drop
        // may append to this closed queue or drop another queue).
        drop(waker);
        let batch = std::mem::take(&mut self.batch);
        drop_all(batch.into_iter().chain(left), "queue entry drop");
        drop_all(std::mem::take(&mut self.hooks), "queue hook drop");
    }
}
