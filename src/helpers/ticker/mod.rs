//! The ticker (`hp::tick`): a stream that yields on a fixed grid, accounting for the
//! time the loop body takes.
//!
//! `hp::tick(every, &ctx)` returns a [`TickerBuilder`]; [`TickerBuilder::build`] gives a
//! [`Ticker`], a [`Stream`] of `(iteration, time_till_next)`. The iteration counts from 1;
//! the first tick is immediate; ticks fall on the grid `start + k·every`.
//!
//! # Schedule
//! - A tick is yielded when its grid point is reached, or, if the consumer was busy then,
//!   as soon as it asks for the next tick. Missed grid points are never replayed.
//! - The next tick is the first grid point at least `min_wait` after the moment this tick
//!   was yielded (`min_wait` on, the default: 100 ms), or the first grid point strictly
//!   after it (`min_wait(None)`: the seed's `min_wait=False`). `time_till_next` is the time
//!   from now to that tick.
//! - Timer jitter is not lateness: a tick yielded less than a tenth of
//!   `min(every, min_wait)` after its grid point counts `min_wait` from its grid point,
//!   so `tick(100 ms)` with the default `min_wait` ticks 10 times a second in real time
//!   although the timer fires a millisecond or so late. **Differs from the original**,
//!   which counts from the late instant and skips a grid point after every millisecond
//!   of lateness.
//! - **The default `min_wait` of 100 ms makes a ticker faster than 10 Hz skip periods**:
//!   with `every` 50 ms each tick is followed by the first grid point 100 ms later, so it
//!   ticks every 100 ms. Pass `min_wait(None)` or a smaller `min_wait` for fast tickers.
//!   Setting such a period (nonzero, below `min_wait`: in [`tick`], `change_after` or
//!   `change_once`) emits one `tracing` WARN event (target `machinery::ticker`), once
//!   per setting, never per tick.
//! - One scheduled instant never gives two ticks (the Python original, with `min_wait=0`,
//!   woke early and ticked twice; here the next tick is computed from the grid, never from
//!   a rounded sleep).
//! - `every` zero ticks `min_wait` apart (back to back when `min_wait` is zero, yielding to
//!   the runtime between ticks, so it never starves other tasks); `every` zero with
//!   `min_wait` off is rejected by [`TickerBuilder::build`] with
//!   [`TickerError::ZeroEveryWithoutMinWait`].
//!
//! # Changing the schedule
//! [`Ticker::change_after`] and [`Ticker::change_once`] (or the same methods of a
//! [`TickerControl`], usable while a combinator owns the stream): the next tick is at the
//! last tick's grid point + `d`. With `change_after` the grid continues from there with
//! period `d` (the seed's `change_after(d, set_new_every=True)`); with `change_once` that
//! one tick is a one-off and the ticker then returns to its original grid
//! (`set_new_every=False`).
//!
//! # Stopping
//! The stream ends when its context is done (at once, also while waiting or paused), right
//! after the `max_iterations`-th tick, or as soon as the next tick would fall at or after
//! `max_time` after the first tick (**differs from the original**, which slept until that
//! tick would have been due).
//!
//! # Pausing
//! [`Ticker::pauser`] is an `Arc<Semaphore>` (one permit by default, or the one given to
//! [`TickerBuilder::pauser`]). While it has no permits no tick is yielded; when a permit
//! becomes available one tick is yielded at once and the grid resumes. The ticker never
//! keeps a permit, also while nobody polls it: while paused, a small task (spawned on
//! the current tokio runtime) waits in the semaphore's queue, gives a granted permit back
//! at once and wakes the ticker.
//!
//! # Drop
//! Dropping the ticker releases its timer, aborts its pause watch (if it is paused) and
//! cancels its child context (named by
//! [`TickerBuilder::name`], `"ticker"` by default).
//!
//! # Cancel safety
//! [`Ticker`] is a stream: `ticker.next()` in a `select!` branch that loses consumes no
//! tick.
//!
//! # Example
//! The seed's example: a ten-second ticker and an eight-second loop body.
//! ```
//! use futures_util::StreamExt;
//! use machinery::helpers as hp;
//! use std::time::Duration;
//! use tokio::time::{Instant, sleep};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let ctx = hp::Ctx::beginning("app");
//! let start = Instant::now();
//! let mut ticker = hp::tick(Duration::from_secs(10), &ctx).build().unwrap();
//! let mut timing = Vec::new();
//! while let Some((iteration, till_next)) = ticker.next().await {
//!     timing.push(start.elapsed().as_secs());
//!     assert_eq!(iteration as usize, timing.len());
//!     assert_eq!(till_next, Duration::from_secs(10));
//!     sleep(Duration::from_secs(8)).await;
//!     if timing.len() >= 5 {
//!         break;
//!     }
//! }
//! assert_eq!(timing, [0, 10, 20, 30, 40]);
//! # }
//! ```

mod schedule;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream};
use futures_util::task::AtomicWaker;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use super::ctx::{Ctx, CtxGuard};
use crate::sync::{Arc, AtomicBool, Mutex, lock};
use schedule::{Change, Schedule};
use std::sync::atomic::Ordering::SeqCst;

/// Why a ticker could not be built or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TickerError {
    /// `every` zero with `min_wait` off would mean infinitely many ticks per instant.
    #[error(
        "a ticker with `every` zero needs a `min_wait` (with `min_wait` off it would never wait)"
    )]
    ZeroEveryWithoutMinWait,
}

/// Starts building a ticker that yields every `every`, stopping when `ctx` is done.
///
/// **Floor:** ticks come at least `min_wait` apart, 100 ms by default (the seed's 0.1 s):
/// `tick(50 ms)` ticks every 100 ms unless you set
/// [`min_wait`](TickerBuilder::min_wait) lower or to `None`. A period below `min_wait`
/// is accepted, and [`build`](TickerBuilder::build) emits one `tracing` WARN event
/// saying so (target `machinery::ticker`, fields `ticker`, `every`, `min_wait`).
///
/// See the [module docs](self) for the schedule.
pub fn tick(every: Duration, ctx: &Ctx) -> TickerBuilder {
    TickerBuilder {
        every,
        ctx: ctx.clone(),
        max_iterations: None,
        max_time: None,
        min_wait: Some(Duration::from_millis(100)),
        name: Cow::Borrowed("ticker"),
        pauser: None,
        start: None,
    }
}

/// Options of a ticker (the seed's keyword arguments). Made by [`tick`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct TickerBuilder {
    every: Duration,
    ctx: Ctx,
    max_iterations: Option<u64>,
    max_time: Option<Duration>,
    min_wait: Option<Duration>,
    name: Cow<'static, str>,
    pauser: Option<Arc<Semaphore>>,
    start: Option<Instant>,
}

impl fmt::Debug for TickerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TickerBuilder")
            .field("every", &self.every)
            .field("max_iterations", &self.max_iterations)
            .field("max_time", &self.max_time)
            .field("min_wait", &self.min_wait)
            .field("name", &self.name)
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl TickerBuilder {
    /// Anchors the grid at `start` (as `tokio::time::interval_at`): the first tick is
    /// due at `start`, the grid is `start + k·every` and `max_time` counts from `start`.
    /// By default the grid starts at the first tick: the first poll, or, when the pauser
    /// holds the first tick back, the moment it lets it through (paused from the first
    /// poll at 0 with `every` 5, a permit at 7 gives ticks at 7 and 12). A `start`
    /// already past gives the
    /// first tick at once (for the grid point `start`); missed grid points are not
    /// replayed.
    pub fn start_at(mut self, start: Instant) -> Self {
        self.start = Some(start);
        self
    }

    /// Ends the stream right after this many ticks (zero: the stream is empty).
    pub fn max_iterations(mut self, n: u64) -> Self {
        self.max_iterations = Some(n);
        self
    }

    /// Ends the stream as soon as the next tick would fall at or after this long after
    /// the first tick (zero: the stream is empty).
    pub fn max_time(mut self, max: Duration) -> Self {
        self.max_time = Some(max);
        self
    }

    /// The minimum time between a tick being yielded and the next one (default 100 ms);
    /// `None` is the seed's `min_wait=False`: always tick at the next grid point.
    ///
    /// It is a floor under the period: with `every` 50 ms and the default, ticks come
    /// every 100 ms. A nonzero period below `min_wait` (given to [`tick`],
    /// [`change_after`](Ticker::change_after) or [`change_once`](Ticker::change_once))
    /// emits one `tracing` WARN event when it is set, never one per tick. (`every` zero
    /// asks for ticks `min_wait` apart on purpose: no event.)
    ///
    /// Zero and `None` differ: a late tick (for the grid point at 10, every 5) yielded
    /// exactly at the grid point 15 is followed by the tick for 15 at once with zero, and
    /// by the tick at 20 with `None`. Neither ever ticks twice for one grid point.
    pub fn min_wait(mut self, min_wait: impl Into<Option<Duration>>) -> Self {
        self.min_wait = min_wait.into();
        self
    }

    /// Names the ticker's child context (`"ticker"` by default).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Pauses the ticks while `pauser` has no permits (by default the ticker makes its
    /// own semaphore with one permit; see [`Ticker::pauser`]).
    pub fn pauser(mut self, pauser: Arc<Semaphore>) -> Self {
        self.pauser = Some(pauser);
        self
    }

    /// Builds the ticker. Its child context exists from now on; the grid starts at the
    /// first tick (the first poll unless the pauser holds it back), or at
    /// [`start_at`](Self::start_at).
    ///
    /// # Errors
    /// [`TickerError::ZeroEveryWithoutMinWait`] for `every` zero with `min_wait` off.
    pub fn build(self) -> Result<Ticker, TickerError> {
        let schedule = Schedule::new(self.every, self.min_wait)?.starting_at(self.start);
        note_floor(&self.name, self.every, self.min_wait);
        let ctx = self.ctx.child(self.name.clone()).drop_guard();
        let shared = Arc::new(Shared {
            schedule: Mutex::new(schedule),
            passed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            pauser: self.pauser.unwrap_or_else(|| Arc::new(Semaphore::new(1))),
            name: self.name,
        });
        // The context's finish wakes the ticker through the waker every poll registers
        // anyway: a poll then checks `done()` (one load) instead of re-polling a
        // `CtxWait` (the node's lock taken and released twice a tick, ~360 instructions
        // of the ~1 850 a tick cost). The callback holds the shared part, not the
        // ticker's context, and runs (and is dropped) at the latest when the ticker's
        // guard cancels the context on drop.
        let on_done = shared.clone();
        ctx.add_done_callback(move |_| on_done.waker.wake());
        Ok(Ticker {
            control: TickerControl { shared },
            ctx,
            sleep: None,
            pause_watch: None,
            max_iterations: self.max_iterations,
            max_time: self.max_time,
            iteration: 0,
            finished: false,
            yielded_once: false,
        })
    }
}

struct Shared {
    schedule: Mutex<Schedule>,
    /// A pause watch saw a permit become available (and gave it back at once).
    passed: AtomicBool,
    /// The ticker's task, woken by `change_after` so it re-reads its due instant, and by
    /// its context's finish so that the stream ends.
    waker: AtomicWaker,
    pauser: Arc<Semaphore>,
    /// The ticker's name (its child context's segment), for the floor's event.
    name: Cow<'static, str>,
}

/// Emits the floor's event when a nonzero period below `min_wait` is set (called with no
/// lock held: a subscriber is user code).
fn note_floor(name: &str, every: Duration, min_wait: Option<Duration>) {
    if let Some(min_wait) = min_wait
        && !every.is_zero()
        && every < min_wait
    {
        tracing::warn!(
            target: "machinery::ticker",
            ticker = name,
            ?every,
            ?min_wait,
            "the ticker's period is below its min_wait: ticks come min_wait apart \
             (set `min_wait` lower, or to None, for a faster ticker)"
        );
    }
}

/// A cloneable handle that changes a ticker's schedule, usable while the ticker itself
/// is owned by a stream combinator. Made by [`Ticker::control`].
#[derive(Clone)]
pub struct TickerControl {
    shared: Arc<Shared>,
}

impl fmt::Debug for TickerControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TickerControl")
            .field("schedule", &*lock(&self.shared.schedule))
            .finish()
    }
}

impl TickerControl {
    /// Changes the period (the seed's `change_after(every, set_new_every=True)`): the
    /// next tick is at the last tick's grid point + `every`, and the grid continues from
    /// there with period `every`. Called before the first tick, it replaces the period of
    /// the grid that starts at the first tick.
    ///
    /// The `min_wait` floor (100 ms by default) still applies: `change_after(50 ms)`
    /// ticks every 100 ms unless `min_wait` was set lower, and emits one `tracing` WARN
    /// event saying so (see [`TickerBuilder::min_wait`]).
    ///
    /// # Errors
    /// [`TickerError::ZeroEveryWithoutMinWait`] for `every` zero on a ticker whose
    /// `min_wait` is off; the schedule is then unchanged.
    pub fn change_after(&self, every: Duration) -> Result<(), TickerError> {
        self.change(every, Change::Period)
    }

    /// A one-off gap (the seed's `change_after(every, set_new_every=False)`): the next
    /// tick is at the last tick's grid point + `every`, after which the ticker returns to
    /// its original grid (every 3, `change_once(5)` at the tick at 6: ticks at 11, 12,
    /// 15). Called before the first tick, it applies to the second tick.
    ///
    /// The `min_wait` floor applies to that gap too (a gap below it emits one `tracing`
    /// WARN event, see [`TickerBuilder::min_wait`]).
    ///
    /// # Errors
    /// As [`change_after`](Self::change_after).
    pub fn change_once(&self, every: Duration) -> Result<(), TickerError> {
        self.change(every, Change::Once)
    }

    fn change(&self, every: Duration, change: Change) -> Result<(), TickerError> {
        let min_wait = {
            let mut schedule = lock(&self.shared.schedule);
            schedule.change(every, change)?;
            schedule.min_wait()
        };
        self.shared.waker.wake();
        note_floor(&self.shared.name, every, min_wait);
        Ok(())
    }

    /// The pauser: while it has no permits, no tick is yielded.
    pub fn pauser(&self) -> &Arc<Semaphore> {
        &self.shared.pauser
    }
}

/// The task that waits for a permit of a paused ticker's pauser (see `poll_pauser`);
/// aborted when dropped.
struct PauseWatch(JoinHandle<()>);

impl Drop for PauseWatch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A stream of `(iteration, time_till_next)` on a fixed grid. Made by [`tick`].
///
/// See the [module docs](self) for the schedule, stopping, pausing, cancel safety and
/// what `Drop` does.
#[must_use = "streams do nothing unless polled"]
pub struct Ticker {
    control: TickerControl,
    ctx: CtxGuard,
    sleep: Option<Pin<Box<Sleep>>>,
    pause_watch: Option<PauseWatch>,
    max_iterations: Option<u64>,
    max_time: Option<Duration>,
    iteration: u64,
    finished: bool,
    /// Set after yielding to the runtime once before a back-to-back tick.
    yielded_once: bool,
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticker")
            .field("ctx", &self.ctx.name())
            .field("iteration", &self.iteration)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// What a poll found when the next tick is due.
enum Step {
    Tick(Instant, Instant),
    Wait,
    End,
}

impl Ticker {
    /// See [`TickerControl::change_after`]. The `min_wait` floor (100 ms by default)
    /// still applies: a shorter period ticks `min_wait` apart and emits one `tracing`
    /// WARN event.
    ///
    /// # Errors
    /// [`TickerError::ZeroEveryWithoutMinWait`], as there.
    pub fn change_after(&self, every: Duration) -> Result<(), TickerError> {
        self.control.change_after(every)
    }

    /// See [`TickerControl::change_once`]. The `min_wait` floor applies to that gap too
    /// (a shorter one emits one `tracing` WARN event).
    ///
    /// # Errors
    /// [`TickerError::ZeroEveryWithoutMinWait`], as there.
    pub fn change_once(&self, every: Duration) -> Result<(), TickerError> {
        self.control.change_once(every)
    }

    /// The pauser: while it has no permits, no tick is yielded. Hold a permit of it
    /// (e.g. `ticker.pauser().acquire().await`) to pause a ticker made without one.
    pub fn pauser(&self) -> &Arc<Semaphore> {
        self.control.pauser()
    }

    /// A cloneable handle for changing the schedule while the stream is owned elsewhere.
    pub fn control(&self) -> TickerControl {
        self.control.clone()
    }

    /// The ticker's child context (named by [`TickerBuilder::name`]).
    pub fn ctx(&self) -> &Ctx {
        self.ctx.ctx()
    }

    /// How many ticks were yielded so far.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    fn end(&mut self) -> Poll<Option<(u64, Duration)>> {
        self.finished = true;
        self.sleep = None;
        self.pause_watch = None;
        Poll::Ready(None)
    }

    /// Polls the timer until `at`; `true` when it has passed.
    fn sleep_until(&mut self, at: Instant, cx: &mut Context<'_>) -> bool {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if sleep.deadline() != at {
            sleep.as_mut().reset(at);
        }
        sleep.as_mut().poll(cx).is_ready()
    }

    /// The instant no tick may be yielded at or after, once the first tick happened
    /// (`started`: the schedule's first tick or anchored start).
    fn deadline(&self, started: Option<Instant>) -> Option<Instant> {
        // A `max_time` too large for an instant is no limit at all.
        started?.checked_add(self.max_time?)
    }

    /// Waits for the due grid point, then for the pauser; says what to do now.
    fn step(&mut self, cx: &mut Context<'_>) -> Step {
        let mut now = Instant::now();
        let (due, last_yield, started) = {
            let s = lock(&self.control.shared.schedule);
            (s.due(now), s.last_yield(), s.started())
        };
        let deadline = self.deadline(started);
        if deadline.is_some_and(|d| due.max(now) >= d) {
            return Step::End;
        }
        if now < due {
            if !self.sleep_until(due, cx) {
                return Step::Wait;
            }
            // The timer says `due` has passed: read the clock again, so that the tick
            // is not yielded "before" its grid point.
            now = Instant::now();
        }
        if !self.poll_pauser() {
            if let Some(d) = deadline
                && self.sleep_until(d, cx)
            {
                return Step::End;
            }
            return Step::Wait;
        }
        // Nothing above waited: `now` is still the instant of this poll.
        if deadline.is_some_and(|d| now >= d) {
            return Step::End;
        }
        if last_yield.is_some_and(|t| now <= t) && !self.yielded_once {
            // Back to back (`every` zero, `min_wait` zero): let other tasks run once.
            self.yielded_once = true;
            cx.waker().wake_by_ref();
            return Step::Wait;
        }
        Step::Tick(due, now)
    }

    /// `true` when the pauser lets a tick through; never keeps a permit.
    ///
    /// While the pauser has no permits, a small task waits for one in the semaphore's
    /// queue, gives it back the moment it is granted, and wakes the ticker. Waiting in
    /// the ticker itself would leave a granted permit inside the ticker until its next
    /// poll (tokio's semaphore hands permits to queued waiters), which a consumer that is
    /// busy, or that cancelled its `next()`, might not do for a long time: whoever wanted
    /// to pause again would wait for it.
    fn poll_pauser(&mut self) -> bool {
        let shared = &self.control.shared;
        // SeqCst: pairs with the watch's store; read first so the common case (never
        // paused) costs a load, not a read-modify-write.
        let passed = shared.passed.load(SeqCst) && shared.passed.swap(false, SeqCst);
        let pauser = &shared.pauser;
        if passed || pauser.available_permits() > 0 || pauser.is_closed() {
            self.pause_watch = None;
            return true;
        }
        if self.pause_watch.as_ref().is_none_or(|w| w.0.is_finished()) {
            let shared = shared.clone();
            self.pause_watch = Some(PauseWatch(tokio::spawn(async move {
                let permit = shared.pauser.acquire().await;
                drop(permit); // given back at once: we only needed to see it free
                // SeqCst: pairs with the swap above; the wake makes the ticker look.
                shared.passed.store(true, SeqCst);
                shared.waker.wake();
            })));
        }
        false
    }
}

impl Stream for Ticker {
    type Item = (u64, Duration);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<(u64, Duration)>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        // Registered before the check: a finish after it wakes this waker (the
        // context's done callback, see `build`).
        this.control.shared.waker.register(cx.waker());
        if this.ctx.done() {
            return this.end();
        }
        if this.max_iterations.is_some_and(|m| this.iteration >= m)
            || (this.iteration == 0 && this.max_time.is_some_and(|t| t.is_zero()))
        {
            return this.end();
        }
        match this.step(cx) {
            Step::End => this.end(),
            Step::Wait => Poll::Pending,
            Step::Tick(grid, now) => {
                let till_next = lock(&this.control.shared.schedule).on_tick(grid, now);
                this.iteration += 1;
                this.yielded_once = false;
                Poll::Ready(Some((this.iteration, till_next)))
            }
        }
    }
}

/// Once the stream returned `None` it stays ended.
impl FusedStream for Ticker {
    fn is_terminated(&self) -> bool {
        self.finished
    }
}
