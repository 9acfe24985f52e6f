//! The context tree's nodes: state word, own outcome, children, callbacks.
//!
//! # Invariants
//! 1. `state`'s DONE bit goes from clear to set once. A node is DONE when its own outcome
//!    or an ancestor's is set; its own outcome is stored with DONE in one store (or after
//!    DONE, when an ancestor's came first), an ancestor's before DONE is stored here.
//! 2. The own outcome is set at most once, under `inner`'s lock: an own-outcome bit of
//!    `state` (OWN_CANCELLED, or OWN_ERROR after the error was put in `own_err`). Every
//!    store to `state` happens under `inner`'s lock, or in `Drop` with `&mut self`.
//!    (Bits, not a `OnceLock<Failure>`: the common own outcome, cancelled, then costs a
//!    plain store instead of a `Once` with two read-modify-writes.)
//! 3. Whoever stores DONE takes the callbacks and the waiters' wakers under the same
//!    lock, so every callback is taken (and run), and every waker woken, by exactly one
//!    thread; no waker is registered once DONE is stored. A DONE node holds callbacks only while it is
//!    *firing* (the taken ones have not all started): a callback added then is stored,
//!    and the one running the taken callbacks takes it before the last of them starts
//!    (under the lock, where the firing ends once none was added), so it runs after them
//!    (CTX 3); one added by the last of them, or later, runs at once.
//! 4. A node is in its parent's `children` under key `slot` from its creation until its
//!    `Drop`, finished or not (CTX 13: the tree shows every child that still exists).
//!    Keys are only freed by the child itself, so a key is never reused under it.
//! 5. A live child holds an `Arc` of its parent; a parent holds only `Weak`s of children.
//! 6. A waiter's key in `wakers` is its own from registration until it removes it or the
//!    finish takes the whole slab (DONE): keys are freed only by their waiter, so a
//!    waiter's key never names another waiter's waker.
//!
//! # Lock order
//! No code path holds two node locks at once: finishing takes a node's callbacks under
//! its lock and releases it, then takes strong handles of its children, a chunk at a
//! time under its lock again, and visits each child of a chunk after releasing it.
//! No lock is held while user code runs: callbacks run after every lock is released,
//! through [`run_or_defer`] (so a finish started from inside a callback is queued, not
//! recursed into), and a removed callback is dropped after unlocking.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::task::Waker;

use slab::Slab;
use tokio::runtime::Handle;

use super::super::callbacks::{CallbackList, run_added, run_caught, run_or_defer};
use super::super::completion::drop_removed;
use super::super::debug::{CONTEXTS, Live};
use super::super::error::{Error, Failure};
use super::super::protocols::CallbackHandle;
use super::Ctx;
use super::log::Logger;
use super::slots::Slots;
use crate::sync::{Arc, AtomicBool, AtomicU8, Mutex, Weak, lock};

const PENDING: u8 = 0;
const DONE: u8 = 1;
/// The own outcome is `Failure::Cancelled`.
const OWN_CANCELLED: u8 = 2;
/// The own outcome is the error in `own_err`.
const OWN_ERROR: u8 = 4;
const OWN: u8 = OWN_CANCELLED | OWN_ERROR;
/// `slot` of a node that is not in any parent's `children`.
const UNREGISTERED: u32 = u32::MAX;

/// A callback that gets the context and how it finished.
pub(crate) type CtxCallback = Box<dyn FnOnce(&Ctx, &Failure) + Send + 'static>;

/// What few nodes carry; boxed so that a plain child stays small.
#[derive(Default)]
pub(crate) struct Extras {
    pub(crate) prefix: Option<Cow<'static, str>>,
    pub(crate) logger: Option<Arc<dyn Logger>>,
    pub(crate) runtime: Option<Handle>,
}

pub(crate) struct Node {
    state: AtomicU8,
    /// A task holder's task behind this context waits for a `limit` slot (shown by
    /// `tree()`; beside `state` so it costs no space).
    waiting: AtomicBool,
    /// The own error, when the own outcome is one (set before OWN_ERROR is published).
    own_err: OnceLock<Error>,
    inner: Mutex<Inner>,
    pub(crate) parent: Option<Arc<Node>>,
    /// The key in the parent's `children` (a `u32`, so that `seq` fits in the node's
    /// padding: 4 billion live children of one parent would need hundreds of GB).
    slot: u32,
    /// The creation number among its parent's children (0 for a root): `tree()` and
    /// `snapshot()` list children in creation order, whatever slot keys get reused.
    pub(crate) seq: u64,
    pub(crate) name: Cow<'static, str>,
    pub(crate) extras: Option<Box<Extras>>,
    _live: Live<CONTEXTS>,
}

/// What the lock guards: children and callbacks, boxed on first use. Most nodes (a
/// leaf without callbacks) never need them, and a node's size is its memory per live
/// child (32 B less per node than with both inline).
#[derive(Default)]
struct Inner {
    rest: Option<Box<Rest>>,
}

#[derive(Default)]
struct Rest {
    children: Slots<Weak<Node>>,
    /// The `seq` the next child gets.
    next_seq: u64,
    /// The first callback inline: a node given one callback allocates once.
    callbacks: Callbacks,
    /// The pending waiters' wakers (invariant 6), taken with the callbacks by the finish
    /// and woken after them.
    wakers: Wakers,
    /// DONE, and the callbacks taken by the finish have not all started yet (they may be
    /// queued behind other finishing work): a callback added now joins `callbacks` and
    /// runs after them, not at once (CTX 3: registration order holds across queueing).
    /// Cleared just before the last one starts, when nothing was added meanwhile.
    firing: bool,
    /// The outcome this node inherited (CTX 1: the nearest ancestor's own), noted by the
    /// fan-out that made it DONE, with the [`LATE_OWN`] epoch it was noted in: a node
    /// deep in a chain resolves its outcome here instead of walking to the root (a
    /// 100 000-deep chain of waiters would otherwise resolve in quadratic time). Noted
    /// on nodes with children, every [`NOTE_EVERY`]-th level below the fan-out's start.
    inherited: Option<(u64, Failure)>,
}

/// Bumped whenever a node that is already DONE through an ancestor gets its own outcome
/// (CTX 1: it and its descendants now report that one): every noted
/// [`Rest::inherited`] of an earlier epoch is stale, and readers walk the ancestors
/// again. Such late outcomes are rare; one bump per late outcome.
static LATE_OWN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many ancestors [`Node::outcome`] checks by their atomic state alone before it
/// also looks for a noted inherited outcome (most trees are shallow: no lock taken).
const SHORT_WALK: usize = 16;

/// A fan-out notes the inherited outcome on every `NOTE_EVERY`-th level below the node
/// it started from (nodes with children only): a walk past [`SHORT_WALK`] meets a note
/// within this many more ancestors, and a deep chain pays a note on one level in 16.
const NOTE_EVERY: u32 = 16;

type Callbacks = CallbackList<Registered, 1>;

/// A registered callback.
pub(crate) struct Registered(CtxCallback);

impl Registered {
    /// Runs it (after every lock is released), catching a panic.
    #[inline]
    fn run(self, ctx: &Ctx, failure: &Failure) {
        run_caught("context done callback", move || (self.0)(ctx, failure));
    }
}

/// The wakers of the [`CtxWait`](super::CtxWait)s pending on a node, held as they are
/// (a waiter allocates nothing of its own) and apart from the callbacks: a waiter needs
/// no handle from the global counter (a read-modify-write on a line every thread
/// registering anywhere shares) and no place in the callbacks' order, and its entry is
/// 24 bytes instead of 40. Removal by key is O(1).
type Wakers = Slab<Waker>;

/// What a finish takes from a node under its lock: the callbacks and the wakers.
#[derive(Default)]
struct Taken {
    callbacks: Callbacks,
    wakers: Wakers,
}

impl Taken {
    fn is_empty(&self) -> bool {
        self.callbacks.len() == 0 && self.wakers.is_empty()
    }
}

impl Inner {
    fn rest(&mut self) -> &mut Rest {
        self.rest.get_or_insert_with(Default::default)
    }

    /// Notes the outcome a node inherits from the fan-out that made it DONE (see
    /// [`Rest::inherited`]). Only a node with children needs it: a resolution consults
    /// the notes of ancestors 16 or more levels up, which all have children; and only
    /// every [`NOTE_EVERY`]-th level gets one. An `Arc`
    /// count at most: the fan-out's first node holds the error too, so this clone is
    /// never the last one, dropped under a lock.
    #[cold]
    #[inline(never)]
    fn note_inherited(&mut self, epoch: u64, failure: &Failure) {
        self.rest().inherited = Some((epoch, failure.clone()));
    }

    fn has_children(&self) -> bool {
        self.rest.as_ref().is_some_and(|r| !r.children.is_empty())
    }

    /// Strong handles of the children that can still be reached (one being dropped
    /// cannot: its own `Drop` finishes it).
    fn upgrade_children(&self) -> Vec<Arc<Node>> {
        self.rest
            .as_deref()
            .map(|r| r.children.iter().filter_map(|(_, w)| w.upgrade()).collect())
            .unwrap_or_default()
    }

    /// The callbacks and the wakers, for the finish.
    fn take_all(&mut self) -> Taken {
        self.rest
            .as_mut()
            .map(|r| Taken {
                callbacks: std::mem::take(&mut r.callbacks),
                wakers: std::mem::take(&mut r.wakers),
            })
            .unwrap_or_default()
    }

    /// [`take_all`](Self::take_all) for the finish: when there are callbacks, the node is
    /// firing until [`Node::take_late`] finds none left.
    fn take_for_firing(&mut self) -> Taken {
        let taken = self.take_all();
        if taken.callbacks.len() > 0 {
            self.rest().firing = true;
        }
        taken
    }

    fn firing(&self) -> bool {
        self.rest.as_ref().is_some_and(|r| r.firing)
    }
}

impl Node {
    pub(crate) fn root(name: Cow<'static, str>, extras: Option<Box<Extras>>) -> Arc<Node> {
        Arc::new(Node {
            state: AtomicU8::new(PENDING),
            waiting: AtomicBool::new(false),
            own_err: OnceLock::new(),
            inner: Mutex::new(Inner::default()),
            parent: None,
            slot: UNREGISTERED,
            seq: 0,
            name,
            extras,
            _live: Live::new(),
        })
    }

    /// A child of `parent`, registered with it (created DONE if `parent` is done: it is
    /// still listed by the parent's `tree()` while it exists, CTX 13).
    pub(crate) fn child(
        parent: &Arc<Node>,
        name: Cow<'static, str>,
        extras: Option<Box<Extras>>,
    ) -> Arc<Node> {
        let mut g = lock(&parent.inner);
        // Read under the parent's lock: DONE is stored under it (invariant 2), so a
        // child is either created DONE or registered before the parent's finish visits
        // its children.
        let state = if parent.done() { DONE } else { PENDING };
        let rest = g.rest();
        let seq = rest.next_seq;
        rest.next_seq += 1;
        // 4 billion live children of one parent would take over 400 GB of nodes.
        let slot = u32::try_from(rest.children.vacant_key())
            .ok()
            .filter(|&k| k != UNREGISTERED)
            .expect("fewer than 2^32 - 1 live children of one context");
        // `Arc::new` and one `downgrade` (one read-modify-write of the weak count), not
        // `Arc::new_cyclic`, whose `Weak` clone and strong-count publication are two.
        let node = Arc::new(Node {
            state: AtomicU8::new(state),
            waiting: AtomicBool::new(false),
            own_err: OnceLock::new(),
            inner: Mutex::new(Inner::default()),
            parent: Some(parent.clone()),
            slot,
            seq,
            name,
            extras,
            _live: Live::new(),
        });
        let key = rest.children.insert(Arc::downgrade(&node));
        debug_assert_eq!(key, slot as usize);
        drop(g);
        node
    }

    /// Acquire: pairs with the Release store in `take_for_done`, so whoever sees DONE
    /// also sees the outcome written before it.
    pub(crate) fn done(&self) -> bool {
        self.state.load(Acquire) & DONE != 0
    }

    /// Marks the work behind this context as waiting for its turn (or not).
    pub(crate) fn set_waiting(&self, waiting: bool) {
        // Relaxed: a display hint only, read by `tree()`; nothing else depends on it.
        self.waiting.store(waiting, Relaxed);
    }

    /// Whether the work behind this context waits for its turn.
    pub(crate) fn waiting(&self) -> bool {
        self.waiting.load(Relaxed)
    }

    /// This node's own outcome, if it has one.
    pub(crate) fn own(&self) -> Option<Failure> {
        // Acquire: pairs with the Release store of the own bit, after `own_err` was set.
        let state = self.state.load(Acquire);
        if state & OWN_CANCELLED != 0 {
            Some(Failure::Cancelled)
        } else if state & OWN_ERROR != 0 {
            self.own_err.get().cloned().map(Failure::Error)
        } else {
            None
        }
    }

    /// The outcome this node reports: its own, else the nearest ancestor's own. Past
    /// [`SHORT_WALK`] ancestors, a noted inherited outcome of the current epoch ends the
    /// walk (amortised O(1) however deep the node).
    pub(crate) fn outcome(&self) -> Option<Failure> {
        if !self.done() {
            return None;
        }
        let mut node = self;
        let mut steps = 0;
        let mut epoch = None;
        loop {
            if let Some(f) = node.own() {
                return Some(f);
            }
            if steps >= SHORT_WALK {
                // Acquire: pairs with the bump's Release, made after the late own bit.
                let epoch = *epoch.get_or_insert_with(|| LATE_OWN.load(Acquire));
                if let Some(f) = node.inherited(epoch) {
                    return Some(f);
                }
            }
            node = node.parent.as_deref()?;
            steps += 1;
        }
    }

    /// The inherited outcome the fan-out noted on this node, if noted in `epoch`.
    fn inherited(&self, epoch: u64) -> Option<Failure> {
        let g = lock(&self.inner);
        match g.rest.as_deref().and_then(|r| r.inherited.as_ref()) {
            Some((noted, f)) if *noted == epoch => Some(f.clone()),
            _ => None,
        }
    }

    /// Sets this node's own outcome. Runs the callbacks of this node and of every
    /// descendant that became done through it, after every lock is released.
    pub(crate) fn finish(self: &Arc<Node>, failure: Failure) -> bool {
        self.finish_unless(failure, OWN)
    }

    /// [`Node::finish`] unless this node is done in any way, through an ancestor too
    /// (a guard's drop: a done context keeps its outcome, CTX 5).
    pub(crate) fn finish_if_pending(self: &Arc<Node>, failure: Failure) -> bool {
        self.finish_unless(failure, DONE | OWN)
    }

    /// Sets the own outcome unless one of the `refuse` bits is set (checked under the
    /// lock, where every store to `state` is made).
    fn finish_unless(self: &Arc<Node>, failure: Failure, refuse: u8) -> bool {
        let taken = {
            let mut g = lock(&self.inner);
            // Every store to `state` is made under this lock (invariant 2).
            let state = self.state.load(Acquire);
            if state & refuse != 0 {
                return false;
            }
            let own = match &failure {
                Failure::Cancelled => OWN_CANCELLED,
                Failure::Error(e) => {
                    // Empty: the own outcome was never set (checked above, under the lock).
                    let _ = self.own_err.set(e.clone());
                    OWN_ERROR
                }
            };
            if !g.has_children() {
                // A leaf (the common case: a guard dropped): no descendants to visit,
                // so skip the batch and its allocations.
                // Release: pairs with the Acquire in `done` and `own`.
                self.state.store(state | own | DONE, Release);
                if state & DONE != 0 {
                    LATE_OWN.fetch_add(1, Release);
                    return true;
                }
                let taken = g.take_for_firing();
                // No children, no callbacks (the wakers are taken): nothing left but an
                // inherited-outcome note, freed after unlocking with the rest.
                let freed = if taken.callbacks.len() == 0 {
                    g.rest.take()
                } else {
                    None
                };
                drop(g);
                drop(freed);
                if !taken.is_empty() {
                    run_one(self.clone(), taken, failure);
                }
                return true;
            }
            match Self::take_for_done(self, &mut g, own) {
                Some(callbacks) => callbacks,
                // Already done through an ancestor: the own outcome changes what this
                // node and its descendants report (their noted inherited outcomes are
                // stale), but callbacks already ran.
                None => {
                    LATE_OWN.fetch_add(1, Release);
                    return true;
                }
            }
        };
        run_done(propagate(self.clone(), taken, &failure), failure);
        true
    }

    /// Under `g` (this node's lock): stores DONE with the `own` outcome bits (if any)
    /// and, unless it was DONE already, takes its callbacks. Its children stay
    /// registered (CTX 13); [`propagate`] visits them after this lock is released.
    fn take_for_done(node: &Node, g: &mut Inner, own: u8) -> Option<Taken> {
        let state = node.state.load(Acquire);
        // Release: pairs with the Acquire in `done` and `own`.
        node.state.store(state | own | DONE, Release);
        if state & DONE != 0 {
            return None;
        }
        Some(g.take_for_firing())
    }

    /// Adds a callback, or runs it at once (outside the lock) if the node is done.
    pub(crate) fn add_callback(
        self: &Arc<Node>,
        key: Option<CallbackHandle>,
        cb: CtxCallback,
    ) -> CallbackHandle {
        {
            let mut g = lock(&self.inner);
            // While the finish's callbacks have not all run, this one runs after them.
            if !self.done() || g.firing() {
                return g.rest().callbacks.push(key, Registered(cb));
            }
        }
        let outcome = self.outcome().unwrap_or(Failure::Cancelled);
        let ctx = Ctx::from_node(self.clone());
        // At once; queued only past a bounded nesting (so chains of "add to a finished
        // context" links run in constant stack).
        run_added(move || {
            run_caught("context done callback", || cb(&ctx, &outcome));
        });
        key.unwrap_or_default()
    }

    /// The callbacks added while firing (see `Rest::firing`), taken before the last known
    /// one runs; none ends the firing (and frees what the node no longer needs).
    fn take_late(&self) -> Callbacks {
        let mut g = lock(&self.inner);
        let Some(rest) = g.rest.as_deref_mut() else {
            return Callbacks::default();
        };
        let late = std::mem::take(&mut rest.callbacks);
        let mut freed = None;
        if late.len() == 0 {
            rest.firing = false;
            if rest.children.is_empty() {
                freed = g.rest.take();
            }
        }
        drop(g);
        // What the node no longer needs (an inherited-outcome note among it), unlocked.
        drop(freed);
        late
    }

    pub(crate) fn remove_callback(&self, key: CallbackHandle) -> usize {
        let removed = {
            let mut g = lock(&self.inner);
            g.rest.as_mut().and_then(|r| r.callbacks.remove(key))
        };
        // Dropped here, unlocked: the closure may hold the last handle of a child, whose
        // drop takes this node's lock to unregister.
        drop_removed(removed)
    }

    /// Registers `waker` to be woken when this node becomes done and returns its key, or
    /// hands it back when it already is (dropped by the caller, unlocked).
    pub(crate) fn add_waker(&self, waker: Waker) -> Result<usize, Waker> {
        let mut g = lock(&self.inner);
        if self.done() {
            return Err(waker);
        }
        Ok(g.rest().wakers.insert(waker))
    }

    /// Makes the waker registered under `key` wake `waker`'s task; false when the node is
    /// done (the finish took the registration and woke it). The stored waker is kept when
    /// it [`will_wake`](Waker::will_wake) the same task (compared under the lock, against
    /// the stored waker itself: issue 22 item 1); otherwise wakers are cloned and dropped
    /// with no lock held (a waker's clone and drop are user code).
    pub(crate) fn update_waker(&self, key: usize, waker: &Waker) -> bool {
        {
            let mut g = lock(&self.inner);
            if self.done() {
                return false;
            }
            match g.rest.as_mut().and_then(|r| r.wakers.get_mut(key)) {
                Some(w) if w.will_wake(waker) => return true,
                Some(_) => {}
                None => return false,
            }
        }
        let mut new = waker.clone();
        let found = {
            let mut g = lock(&self.inner);
            match g.rest.as_mut().and_then(|r| r.wakers.get_mut(key)) {
                Some(w) if !self.done() => {
                    std::mem::swap(w, &mut new);
                    true
                }
                _ => false,
            }
        };
        drop(new); // the old waker, or the unused clone
        found
    }

    /// Removes the waker registered under `key` (a wait dropped while pending); the
    /// waker is dropped after unlocking. Nothing when the finish took it.
    pub(crate) fn remove_waker(&self, key: usize) {
        let removed = {
            let mut g = lock(&self.inner);
            if self.done() {
                return;
            }
            g.rest.as_mut().and_then(|r| r.wakers.try_remove(key))
        };
        drop_removed(removed);
    }

    pub(crate) fn has_callback(&self, key: CallbackHandle) -> bool {
        let g = lock(&self.inner);
        g.rest.as_ref().is_some_and(|r| r.callbacks.contains(key))
    }

    /// The children that still exist, finished or not, in creation order.
    pub(crate) fn live_children(&self) -> Vec<Arc<Node>> {
        let mut children = lock(&self.inner).upgrade_children();
        // Sorted outside the lock; dropping the handles (maybe a last one) is the
        // caller's, unlocked too.
        children.sort_unstable_by_key(|c| c.seq);
        children
    }

    /// How many children are registered (live or being dropped).
    pub(crate) fn child_count(&self) -> usize {
        let g = lock(&self.inner);
        g.rest.as_deref().map_or(0, |r| r.children.len())
    }
}

/// How many children [`propagate`] takes from a parent under one lock of it.
const CHUNK: usize = 64;

/// Marks every live descendant of `first` (just made DONE, its `callbacks` taken) DONE,
/// breadth first, collecting the callbacks each hands over. A descendant already DONE is
/// skipped: whoever made it DONE handles its subtree.
///
/// A parent's children are taken [`CHUNK`] at a time (strong handles made under its
/// lock, then each child locked on its own, with no other lock held), so each child's
/// memory is touched while it is still in cache, and no list of a million handles is
/// built. Between two chunks the parent is unlocked: a child created meanwhile is
/// created DONE (the parent is), and one dropped meanwhile finishes itself in its
/// `Drop`; keys are freed only by their own child (invariant 4), so the cursor over the
/// keys misses no child that existed when the parent became DONE.
fn propagate(first: Arc<Node>, taken: Taken, failure: &Failure) -> Vec<(Arc<Node>, Taken)> {
    // Every descendant made DONE here inherits `failure` (the nodes between it and
    // `first` have no own outcome, or they would be DONE and skipped).
    let epoch = LATE_OWN.load(Acquire);
    let mut out = Vec::new();
    out.push((first.clone(), taken));
    let mut parents = std::collections::VecDeque::new();
    // With each parent, its depth below `first`: a note every NOTE_EVERY levels.
    parents.push_back((first, 0u32));
    let mut chunk: Vec<Arc<Node>> = Vec::new();
    while let Some((parent, depth)) = parents.pop_front() {
        let depth = depth.wrapping_add(1); // the children's
        let mut key = 0;
        loop {
            {
                let g = lock(&parent.inner);
                let Some(rest) = g.rest.as_deref() else { break };
                let end = rest.children.key_bound();
                while key < end && chunk.len() < CHUNK {
                    // `upgrade` fails for a child being dropped: its `Drop` finishes it.
                    if let Some(child) = rest.children.get(key).and_then(Weak::upgrade) {
                        chunk.push(child);
                    }
                    key += 1;
                }
            }
            if chunk.is_empty() {
                break;
            }
            for child in chunk.drain(..) {
                let (taken, has_children) = {
                    let mut g = lock(&child.inner);
                    let has_children = g.has_children();
                    // Noted under the lock that stores DONE below (readers take it to
                    // read the note), only by the fan-out that makes the node DONE.
                    if has_children && depth % NOTE_EVERY == 0 && !child.done() {
                        g.note_inherited(epoch, failure);
                    }
                    match Node::take_for_done(&child, &mut g, 0) {
                        Some(taken) => (taken, has_children),
                        None => continue,
                    }
                };
                match (!taken.is_empty(), has_children) {
                    (false, false) => {}
                    (true, false) => out.push((child, taken)),
                    (false, true) => parents.push_back((child, depth)),
                    (true, true) => {
                        parents.push_back((child.clone(), depth));
                        out.push((child, taken));
                    }
                }
                // Otherwise `child` drops here, unlocked; if it was the last handle, its
                // `Drop` runs (and takes this parent's lock to unregister).
            }
        }
    }
    out
}

/// [`run_done`] for one node (a leaf finishing, a dropped context): no batch to allocate.
fn run_one(node: Arc<Node>, taken: Taken, failure: Failure) {
    run_or_defer(move || fire(&Ctx::from_node(node), taken, &failure));
}

/// Runs the callbacks a finish took from `ctx` (see [`run_callbacks`]), then wakes the
/// waiters: a task woken by the finish sees every callback registered before the finish
/// has run, whatever the order it registered in.
fn fire(ctx: &Ctx, taken: Taken, failure: &Failure) {
    let Taken { callbacks, wakers } = taken;
    if callbacks.len() > 0 {
        run_callbacks(ctx, callbacks, failure);
    }
    if !wakers.is_empty() {
        wake_all(wakers);
    }
}

/// Wakes every waker, in one tight loop: a panic of a (user's) waker is caught and
/// reported, and the loop goes on with the next one (one `catch_unwind` per panic, not
/// per waker).
fn wake_all(wakers: Wakers) {
    let mut wakers = wakers.into_iter();
    while run_caught("a context waiter's waker", || {
        for (_, waker) in &mut wakers {
            waker.wake();
        }
    })
    .is_some()
    {}
}

/// Runs the callbacks a finish took from `ctx`, in order, then those added to it before
/// the last of them started (queued behind them, CTX 3), until none is left.
fn run_callbacks(ctx: &Ctx, mut callbacks: Callbacks, failure: &Failure) {
    // One registration (a guard's callback, one waiter): no iterator over the list.
    if let Some(r) = callbacks.take_single() {
        let late = ctx.node.take_late();
        r.run(ctx, failure);
        if late.len() == 0 {
            return;
        }
        callbacks = late;
    }
    let mut next = callbacks.take().peekable();
    while let Some(r) = next.next() {
        if next.peek().is_none() {
            // The last one known: take what was added meanwhile (behind it), or end the
            // firing, so one added from now on runs at once.
            next = ctx.node.take_late().take().peekable();
        }
        r.run(ctx, failure);
    }
}

/// Runs the collected callbacks, in order, with no lock held; queued for the outermost
/// finishing call when this one was made from inside a callback (CTX rule 3).
fn run_done(batch: Vec<(Arc<Node>, Taken)>, failure: Failure) {
    run_or_defer(move || {
        for (node, taken) in batch {
            if taken.is_empty() {
                continue;
            }
            fire(&Ctx::from_node(node), taken, &failure);
        }
    });
}

impl Node {
    /// What dropping a node does: unregister from the parent and, unless already done,
    /// finish as cancelled. Idempotent, so `Drop` may run after an explicit call.
    fn release(&mut self) {
        if let Some(parent) = &self.parent
            && self.slot != UNREGISTERED
        {
            let mut g = lock(&parent.inner);
            if let Some(rest) = g.rest.as_deref_mut() {
                rest.children.try_remove(self.slot as usize);
                if rest.children.is_empty() && rest.children.capacity() > 64 {
                    rest.children = Slots::default(); // give a burst's memory back
                }
            }
            self.slot = UNREGISTERED;
        }
        let state = self.state.load(Acquire);
        if state & DONE != 0 {
            return;
        }
        // Nothing refers to this context any more: it finishes as cancelled so that its
        // callbacks still run exactly once. They get a stand-in context with the same
        // name, parent and outcome, since this one can no longer be handed out.
        self.state.store(state | DONE, Release);
        let taken = lock(&self.inner).take_all();
        if taken.is_empty() {
            return;
        }
        // Firing: a callback its callbacks add to it runs after them.
        let firing = Rest {
            firing: true,
            ..Rest::default()
        };
        let stand_in = Arc::new(Node {
            state: AtomicU8::new(DONE | OWN_CANCELLED),
            waiting: AtomicBool::new(false),
            own_err: OnceLock::new(),
            inner: Mutex::new(Inner {
                rest: Some(Box::new(firing)),
            }),
            parent: self.parent.clone(),
            slot: UNREGISTERED,
            seq: self.seq,
            name: std::mem::take(&mut self.name),
            extras: self.extras.take(),
            _live: Live::new(),
        });
        run_one(stand_in, taken, Failure::Cancelled);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.release();
        // Free the ancestors this node was the last holder of one by one, instead of
        // letting each `Arc<Node>` drop recurse into its parent: a chain 10 000 deep
        // would overflow the stack.
        let mut next = self.parent.take();
        while let Some(parent) = next {
            if Arc::strong_count(&parent) > 1 {
                // Not the last holder (the common case): a plain drop is one
                // read-modify-write, where `try_unwrap` would be a failed compare-exchange
                // plus the drop. Should the other holders let go meanwhile, this drop is
                // the last after all: the parent's own `Drop` runs here, one level deeper,
                // and frees its ancestors with this same loop.
                drop(parent);
                break;
            }
            next = match Arc::try_unwrap(parent) {
                Ok(mut node) => {
                    node.release();
                    node.parent.take()
                    // `node` drops here with no parent: its `Drop` does nothing more.
                }
                Err(_) => None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_node_stays_96_bytes_with_its_creation_number() {
        // The creation number sits where padding was: memory per live child unchanged.
        assert_eq!(std::mem::size_of::<super::Node>(), 96);
    }
}
