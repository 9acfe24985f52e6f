//! An ordered registry of done callbacks with O(log n) removal by handle.
//!
//! Shared by every type that takes done callbacks (futures, tasks, events, contexts).
//! Entries keep registration order; removal leaves a tombstone that is compacted away
//! once tombstones outnumber live entries, so add/remove churn holds memory flat.
//!
//! A list can keep its first `N` entries inline (`CallbackList<F, N>`): a task usually
//! has one or two callbacks (its holder's, a reporter), and an allocation per task for
//! them cost as much as the rest of a task holder's bookkeeping. Contexts keep `N = 0`
//! (the size of a `Vec`), since a context node's size is its memory per live child.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use smallvec::SmallVec;

/// Identifies one callback registration; pass it to `remove_done_callback`.
///
/// The seed's `FutureCallback` is "hashable": this handle is the hashable part. A handle
/// made with [`CallbackHandle::new`] can be given as the `index` of a registration, so a
/// caller can choose the key it later removes by.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct CallbackHandle(u64);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Default for CallbackHandle {
    fn default() -> Self {
        CallbackHandle::new()
    }
}

impl CallbackHandle {
    /// A fresh handle, distinct from every other.
    pub fn new() -> Self {
        // Relaxed: only uniqueness matters, no other memory is published through it.
        CallbackHandle(NEXT_ID.fetch_add(1, Relaxed))
    }
}

struct Entry<F> {
    seq: u64,
    key: CallbackHandle,
    /// `None` once removed (a tombstone keeps `seq` so the list stays sorted).
    f: Option<F>,
}

/// Callbacks in registration order; the first `N` without an allocation.
pub(crate) struct CallbackList<F, const N: usize = 0> {
    entries: SmallVec<[Entry<F>; N]>,
    live: usize,
}

impl<F, const N: usize> Default for CallbackList<F, N> {
    fn default() -> Self {
        CallbackList {
            entries: SmallVec::new(),
            live: 0,
        }
    }
}

impl<F, const N: usize> CallbackList<F, N> {
    /// Adds `f` under `key` (or a fresh handle) and returns the key.
    pub(crate) fn push(&mut self, key: Option<CallbackHandle>, f: F) -> CallbackHandle {
        let seq = CallbackHandle::new();
        let key = key.unwrap_or(seq);
        self.entries.push(Entry {
            seq: seq.0,
            key,
            f: Some(f),
        });
        self.live += 1;
        key
    }

    fn position(&self, key: CallbackHandle) -> Option<usize> {
        // Fresh keys equal their sequence number, and sequence numbers grow in
        // registration order, so a binary search finds them; keys chosen by the caller
        // (an `index`) are looked up by a scan.
        let live = |e: &Entry<F>| e.key == key && e.f.is_some();
        if let Ok(i) = self.entries.binary_search_by_key(&key.0, |e| e.seq)
            && live(&self.entries[i])
        {
            return Some(i);
        }
        self.entries.iter().position(live)
    }

    /// Removes the first registration under `key` and hands it back, so that the caller
    /// drops it after unlocking (dropping a callback runs the `Drop` of what it captured:
    /// user code, which may re-enter the crate and take the same lock).
    pub(crate) fn remove(&mut self, key: CallbackHandle) -> Option<F> {
        let i = self.position(key)?;
        let f = self.entries[i].f.take();
        self.live -= 1;
        if self.live == 0 {
            self.entries = SmallVec::new();
        } else if self.entries.len() > 8 && self.live * 2 < self.entries.len() {
            // Only tombstones go: nothing of the user's is dropped here.
            self.entries.retain(|e| e.f.is_some());
        }
        f
    }

    /// Whether a registration under `key` is here.
    pub(crate) fn contains(&self, key: CallbackHandle) -> bool {
        self.position(key).is_some()
    }

    /// Number of live registrations.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Takes the callback out if it is the only entry (no tombstone either): the common
    /// case of a task's one holder hook or one awaiter, without an iterator over the list.
    pub(crate) fn take_single(&mut self) -> Option<F> {
        if self.live != 1 || self.entries.len() != 1 {
            return None;
        }
        self.live = 0;
        self.entries.pop()?.f
    }

    /// Moves every registration of `other` behind this list's, keeping their handles.
    pub(crate) fn append<const M: usize>(&mut self, mut other: CallbackList<F, M>) {
        self.live += other.live;
        other.live = 0;
        // Handles stay removable: `position` falls back to a scan when the sequence
        // numbers are out of order.
        self.entries.extend(
            std::mem::take(&mut other.entries)
                .into_iter()
                .filter(|e| e.f.is_some()),
        );
    }

    /// Takes every callback out, in registration order.
    pub(crate) fn take(&mut self) -> impl Iterator<Item = F> + use<F, N> {
        self.live = 0;
        std::mem::take(&mut self.entries)
            .into_iter()
            .filter_map(|e| e.f)
    }
}

/// Finishing work deferred by a finishing call made from inside other finishing work.
type Job = Box<dyn FnOnce()>;

struct Trampoline {
    /// Whether this thread is running finishing work (an outermost call is on the stack).
    active: Cell<bool>,
    /// Work queued by nested finishing calls, run in order by the outermost one.
    queue: RefCell<VecDeque<Job>>,
    /// Work that waits until `queue` is empty (see [`defer_last`]).
    last: RefCell<VecDeque<Job>>,
    /// How many callbacks added to finished things run nested right now (see
    /// [`run_added`]).
    nested: Cell<u32>,
    /// Give the queues' memory back each time they run empty (the thread-exit fallback,
    /// which nothing frees at the end).
    free_when_idle: bool,
}

impl Trampoline {
    const fn new(free_when_idle: bool) -> Self {
        Trampoline {
            active: Cell::new(false),
            queue: RefCell::new(VecDeque::new()),
            last: RefCell::new(VecDeque::new()),
            nested: Cell::new(0),
            free_when_idle,
        }
    }
}

// A `const` initialiser: no lazy-init check on each access (every finish with callbacks
// takes this path). Loom's macro takes only the plain form.
#[cfg(not(machinery_loom))]
std::thread_local! {
    static TRAMPOLINE: Trampoline = const { Trampoline::new(false) };
}

#[cfg(machinery_loom)]
loom::thread_local! {
    static TRAMPOLINE: Trampoline = Trampoline::new(false);
}

// The trampoline of a thread whose `TRAMPOLINE` is gone: its thread-local destructors
// are running, and one of them (a user's, registered before ours) finishes or drops a
// chain. A value with no drop glue (`ManuallyDrop`) is never destroyed, so this one is
// reachable to the very end of the thread; it owns memory only while its loop runs (it
// frees its queues whenever they run empty), so nothing is left behind when the thread
// is gone. Not the first choice: giving its queues back after every loop costs an
// allocation per loop that queues anything.
std::thread_local! {
    static FALLBACK: std::mem::ManuallyDrop<Trampoline> =
        const { std::mem::ManuallyDrop::new(Trampoline::new(true)) };
}

/// Runs `f` on this thread's trampoline: `TRAMPOLINE`, or [`FALLBACK`] once that is gone.
#[inline]
fn with_trampoline<R>(f: impl FnOnce(&Trampoline) -> R) -> R {
    let mut f = Some(f);
    match TRAMPOLINE.try_with(|t| f.take().map(|f| f(t))) {
        Ok(Some(r)) => r,
        _ => FALLBACK.with(|t| f.take().expect("not called yet")(t)),
    }
}

/// Runs `work` (the callbacks of something that just finished, or the drop of callbacks
/// that never ran) now, unless this thread is already running such work: then `work` is
/// queued and run by the outermost call, after what it is running, before it returns.
///
/// This is what keeps finishing chains flat (CTX rule 3): future i's callback completing
/// future i+1, context i's callback cancelling context i+1, a callback dropping the last
/// handle of something whose callbacks capture the next... each link queues its work
/// instead of recursing, so 100 000 links run in constant stack. The state change of a
/// nested finish happens at once (its `done()` is true when it returns); only the
/// callbacks it triggers wait for the outermost loop. A panic in `work` is caught and
/// reported, and the loop carries on with the rest of the queue.
///
/// This holds at thread exit too: a thread-local destructor that finishes a chain after
/// this thread's trampoline was destroyed runs it on a fallback that is never destroyed.
pub(crate) fn run_or_defer(work: impl FnOnce() + 'static) {
    match enter() {
        Enter::Nested => defer(Box::new(work)),
        outer => {
            run_caught("finishing work", work);
            drop(outer); // the outermost call drains what `work` queued
        }
    }
}

/// Where a finishing call stands on this thread (see [`run_or_defer`]).
pub(crate) enum Enter {
    /// The outermost call: run the work inline; dropping this runs what it queued.
    Outermost(Drain),
    /// Inside finishing work: queue the work with [`defer`].
    Nested,
}

/// Held by the outermost finishing call; its drop runs the queued work in order.
pub(crate) struct Drain(());

/// Marks this thread as running finishing work unless it already is.
///
/// For callers that can run their work inline by reference when outermost and only
/// need to own (box) it when nested, as a completion's callbacks that read the outcome.
pub(crate) fn enter() -> Enter {
    if with_trampoline(|t| t.active.replace(true)) {
        Enter::Nested
    } else {
        Enter::Outermost(Drain(()))
    }
}

/// Whether this thread is running finishing work (so work started now would be queued
/// by [`enter`]): for callers whose work queues nothing when outermost and can skip the
/// trampoline then (a holder's detached task settling).
pub(crate) fn nested() -> bool {
    with_trampoline(|t| t.active.get())
}

/// Queues `job` for the outermost finishing call (only after [`enter`] said `Nested`).
pub(crate) fn defer(job: Job) {
    with_trampoline(|t| t.queue.borrow_mut().push_back(job));
}

/// Queues `job` for the outermost finishing call, to run once everything queued there
/// (and everything that queues in turn) has run: a task counts as settled for its holder
/// only after all the work its done callbacks queued, at every level (a callback that
/// completes a future whose callback completes another...). Only after [`enter`] said
/// `Nested`.
pub(crate) fn defer_last(job: Job) {
    with_trampoline(|t| t.last.borrow_mut().push_back(job));
}

impl Drain {
    /// Runs the queued work, and what it queues, now; this stays the outermost call (so
    /// work its owner runs next is still inside finishing work, and what that work
    /// queues runs when this is dropped).
    pub(crate) fn run_queued(&self) {
        while let Some(job) = with_trampoline(|t| t.queue.borrow_mut().pop_front()) {
            run_caught("finishing work", job);
        }
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        loop {
            let next = with_trampoline(|t| {
                let mut queue = t.queue.borrow_mut();
                let next = queue.pop_front();
                if next.is_some() {
                    return next;
                }
                let mut last = t.last.borrow_mut();
                let next = last.pop_front();
                if next.is_none() {
                    t.active.set(false);
                    for q in [&mut *queue, &mut *last] {
                        if q.capacity() > 1024 || (t.free_when_idle && q.capacity() > 0) {
                            *q = VecDeque::new(); // give a long chain's memory back
                        }
                    }
                }
                next
            });
            match next {
                Some(job) => {
                    run_caught("finishing work", job);
                }
                None => return,
            }
        }
    }
}

/// How deep callbacks added to finished things may nest before they are queued.
const MAX_NESTED: u32 = 32;

/// Runs a callback just added to something already finished: at once, before the
/// `add_*` call returns (CTX rule 3), also from inside finishing work, unless that
/// would nest more than [`MAX_NESTED`] such calls: then it is queued like a nested finish
/// (a chain of callbacks each adding the next to a finished future must not grow the
/// stack with its length).
pub(crate) fn run_added(work: impl FnOnce() + 'static) {
    let nested = with_trampoline(|t| {
        if t.active.get() && t.nested.get() < MAX_NESTED {
            t.nested.set(t.nested.get() + 1);
            true
        } else {
            false
        }
    });
    if !nested {
        run_or_defer(work);
        return;
    }
    run_caught("done callback", work);
    with_trampoline(|t| t.nested.set(t.nested.get() - 1));
}

/// Runs `f`, catching a panic and reporting it through `tracing`; returns whether it panicked.
pub(crate) fn run_caught(what: &str, f: impl FnOnce()) -> Option<crate::helpers::Error> {
    // The payload is dropped under a catch of its own (`panics::catch`).
    let err = crate::helpers::panics::catch(f).err()?;
    tracing::error!(error = %err, "{what} panicked");
    Some(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_removes_by_handle() {
        keeps_order::<0>();
        keeps_order::<1>();
        keeps_order::<4>();
    }

    fn keeps_order<const N: usize>() {
        let mut l = CallbackList::<i32, N>::default();
        let a = l.push(None, 1);
        let b = l.push(None, 2);
        let idx = CallbackHandle::new();
        l.push(Some(idx), 3);
        let _d = l.push(None, 4);
        assert_eq!(l.remove(b), Some(2));
        assert_eq!(l.remove(b), None);
        assert!(l.contains(idx));
        assert_eq!(l.remove(idx), Some(3));
        assert!(!l.contains(idx));
        assert!(l.contains(a));
        assert_eq!(l.len(), 2);
        assert_eq!(l.take().collect::<Vec<_>>(), [1, 4]);
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn churn_compacts() {
        let mut l = CallbackList::<i32>::default();
        let keep = l.push(None, 0);
        for i in 0..10_000 {
            let h = l.push(None, i);
            assert_eq!(l.remove(h), Some(i));
        }
        assert!(l.entries.len() <= 17);
        assert!(l.contains(keep));
    }

    #[test]
    fn an_inline_list_is_no_bigger_than_its_entries_and_a_plain_one_is_a_vec() {
        type Cb = Box<dyn FnOnce() + Send>;
        let vec = std::mem::size_of::<Vec<Entry<Cb>>>();
        assert_eq!(std::mem::size_of::<CallbackList<Cb>>(), vec + 8);
        let entry = std::mem::size_of::<Entry<Cb>>();
        assert!(std::mem::size_of::<CallbackList<Cb, 1>>() <= entry + 16);
    }
}
