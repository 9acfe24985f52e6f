//! What the streamer yields: [`QueueManagerResult`], and the names it carries
//! ([`QueueInput`], [`SourceId`], [`Sources`]).

use std::fmt;
use std::sync::Arc;

use super::feed::Feed;
use crate::helpers::error::Failure;

/// The kind of a source (the seed's `QueueInput`, one variant per seed value).
///
/// `Debug` and `Display` print the seed's spelling, e.g. `SYNC_ITERATOR`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueInput {
    /// A zero-argument function (`add_sync_function`, [`Feed::Function`](super::Feed::Function)).
    SyncFunction,
    /// A lazy iterator marked as a generator (`add_sync_generator`, [`Feed::Generator`](super::Feed::Generator)).
    SyncGenerator,
    /// Any other iterator or iterable (`add_sync_iterator`, [`Feed::Iterator`](super::Feed::Iterator)).
    SyncIterator,
    /// A single value (`add_value`).
    Value,
    /// A future, run as a spawned task (`add_coroutine`, [`Feed::Future`](super::Feed::Future)).
    Coroutine,
    /// A task spawned elsewhere (`add_task`, [`Feed::Task`](super::Feed::Task)).
    Task,
    /// A stream (the seed's async generator: `add_async_generator`, [`Feed::Stream`](super::Feed::Stream)).
    AsyncGenerator,
}

impl QueueInput {
    /// The seed's name of this kind, e.g. `"SYNC_FUNCTION"`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueInput::SyncFunction => "SYNC_FUNCTION",
            QueueInput::SyncGenerator => "SYNC_GENERATOR",
            QueueInput::SyncIterator => "SYNC_ITERATOR",
            QueueInput::Value => "VALUE",
            QueueInput::Coroutine => "COROUTINE",
            QueueInput::Task => "TASK",
            QueueInput::AsyncGenerator => "ASYNC_GENERATOR",
        }
    }
}

impl fmt::Debug for QueueInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for QueueInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity of one source of one queue manager.
///
/// Unique per source within its manager (numbered from 1 in the order sources are
/// registered); `Debug` shows the kind and the number, e.g. `SYNC_ITERATOR#3`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(
    /// The kind in the top [`KIND_BITS`] bits, the number below: one word, so a chain
    /// of one link copies as whole words, and ordering is by kind, then number.
    u64,
);

/// The bits of a [`SourceId`] that hold its kind.
const KIND_BITS: u32 = 3;
const NUMBER_MASK: u64 = u64::MAX >> KIND_BITS;
// `SourceId::kind` decodes the kinds in declaration order.
const _: () =
    assert!(QueueInput::AsyncGenerator as u64 == 6 && QueueInput::SyncFunction as u64 == 0);

impl SourceId {
    pub(crate) fn new(kind: QueueInput, number: u64) -> Self {
        assert!(
            number <= NUMBER_MASK,
            "queue manager: source numbers ran out"
        );
        SourceId(((kind as u64) << (64 - KIND_BITS)) | number)
    }
    /// The kind of the source.
    pub fn kind(self) -> QueueInput {
        match self.0 >> (64 - KIND_BITS) {
            0 => QueueInput::SyncFunction,
            1 => QueueInput::SyncGenerator,
            2 => QueueInput::SyncIterator,
            3 => QueueInput::Value,
            4 => QueueInput::Coroutine,
            5 => QueueInput::Task,
            _ => QueueInput::AsyncGenerator,
        }
    }
    /// Its number within its manager (1 for the first source registered).
    pub fn number(self) -> u64 {
        self.0 & NUMBER_MASK
    }
}

impl fmt::Debug for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.kind(), self.number())
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// How many links of a chain are kept on each side of an elided middle: the sources
/// nearest the one that was added, and the sources nearest the producer.
pub const CHAIN_KEEP: usize = 16;

#[derive(Clone)]
struct Chain {
    /// Kept ids, the added source first: the first [`CHAIN_KEEP`] links, then the last
    /// ones (at most `2 * CHAIN_KEEP` in all).
    ids: Vec<SourceId>,
    /// How many links between the two kept ends were dropped.
    elided: u64,
}

/// The chain of sources behind a result: the producing source first, then its parent,
/// and so on back to the source that was added to the feeder.
///
/// Cheap to clone (a copy for the chain of an added source, else one reference count);
/// build a `Vec` with [`Sources::to_vec`] or compare with a slice of
/// `(QueueInput, SourceId)` pairs.
///
/// # Bounded length (differs from the original)
/// A source that produces the next source for ever (a paginator, a poller that
/// reschedules itself) makes one link per hop. The original keeps every link, so such a
/// chain grows without bound. Here a chain keeps at most `2 * CHAIN_KEEP` links: the
/// [`CHAIN_KEEP`] sources nearest the added one and the [`CHAIN_KEEP`] nearest the
/// producer; the links in between are dropped and counted ([`elided`](Self::elided)).
/// The producer ([`producer`](Self::producer)) and the added source
/// ([`added`](Self::added)) are always kept, [`depth`](Self::depth) is the full length.
/// A chain is a flat vector, so dropping, comparing or printing one never recurses.
///
/// ```
/// use futures::StreamExt;
/// use machinery::helpers::{self as hp, Feed, QueueManagerResult as R, CHAIN_KEEP};
///
/// fn hop(n: u32) -> Feed<u32> {
///     if n == 0 { Feed::Value(0) } else { Feed::function(move || hop(n - 1)) }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = hp::Ctx::beginning("app");
/// let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
/// feeder.add_value(hop(100));
/// let Some(R::Success { sources, .. }) = streamer.next().await else { panic!() };
/// assert_eq!(sources.depth(), 101); // the VALUE, then 100 functions
/// assert_eq!(sources.len(), 2 * CHAIN_KEEP);
/// assert_eq!(sources.elided(), 101 - 2 * CHAIN_KEEP as u64);
/// assert_eq!(sources.added().kind(), hp::QueueInput::Value);
/// # }
/// ```
#[derive(Clone)]
pub struct Sources(Repr);

/// A chain of one link (an added source's own results, the common case) is held inline,
/// so cloning it per result costs no atomic reference count; longer chains are shared.
#[derive(Clone)]
enum Repr {
    One(SourceId),
    Chain(Arc<Chain>),
}

impl Sources {
    pub(crate) fn root(id: SourceId) -> Self {
        Sources(Repr::One(id))
    }

    pub(crate) fn child(&self, id: SourceId) -> Self {
        let ids = self.slice();
        let mut chain = Chain {
            ids: Vec::with_capacity((ids.len() + 1).min(2 * CHAIN_KEEP)),
            elided: self.elided(),
        };
        chain.ids.extend_from_slice(ids);
        if chain.ids.len() == 2 * CHAIN_KEEP {
            chain.ids.remove(CHAIN_KEEP);
            chain.elided += 1;
        }
        chain.ids.push(id);
        Sources(Repr::Chain(Arc::new(chain)))
    }

    /// The kept ids, the added source first.
    fn slice(&self) -> &[SourceId] {
        match &self.0 {
            Repr::One(id) => std::slice::from_ref(id),
            Repr::Chain(c) => &c.ids,
        }
    }

    /// The source that produced the result.
    pub fn producer(&self) -> SourceId {
        *self.slice().last().expect("a chain holds its producer")
    }

    /// The source that was added to the feeder (the last of the chain).
    pub fn added(&self) -> SourceId {
        self.slice()[0]
    }

    /// The kept ids, producer first (see [`elided`](Self::elided)).
    pub fn ids(&self) -> impl Iterator<Item = SourceId> + '_ {
        self.slice().iter().rev().copied()
    }

    /// The kept `(kind, id)` pairs, producer first (the seed's `sources`).
    pub fn iter(&self) -> impl Iterator<Item = (QueueInput, SourceId)> + '_ {
        self.ids().map(|id| (id.kind(), id))
    }

    /// The pairs as a vector.
    pub fn to_vec(&self) -> Vec<(QueueInput, SourceId)> {
        self.iter().collect()
    }

    /// The kinds, producer first.
    pub fn kinds(&self) -> Vec<QueueInput> {
        self.ids().map(SourceId::kind).collect()
    }

    /// How many links the chain keeps (at least 1, at most `2 * CHAIN_KEEP`).
    pub fn len(&self) -> usize {
        self.slice().len()
    }

    /// How many links were dropped from the middle of a long chain (0 for a chain of
    /// at most `2 * CHAIN_KEEP` sources).
    pub fn elided(&self) -> u64 {
        match &self.0 {
            Repr::One(_) => 0,
            Repr::Chain(c) => c.elided,
        }
    }

    /// The full length of the chain, elided links included.
    pub fn depth(&self) -> u64 {
        self.len() as u64 + self.elided()
    }

    /// Always `false`: a chain holds at least its producer.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Prints the ids producer first, each once with its kind: `[TASK#3, COROUTINE#2]`; a
/// long chain shows its elided middle as `..N elided..`.
impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        let ids = self.slice();
        let elided = self.elided();
        for (i, id) in ids.iter().rev().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if elided > 0 && i == ids.len() - CHAIN_KEEP {
                write!(f, "..{elided} elided.., ")?;
            }
            write!(f, "{id:?}")?;
        }
        f.write_str("]")
    }
}

impl PartialEq for Sources {
    fn eq(&self, other: &Sources) -> bool {
        self.elided() == other.elided() && self.slice() == other.slice()
    }
}

impl Eq for Sources {}

impl PartialEq<[(QueueInput, SourceId)]> for Sources {
    fn eq(&self, other: &[(QueueInput, SourceId)]) -> bool {
        self.elided() == 0 && self.iter().eq(other.iter().copied())
    }
}

impl<const N: usize> PartialEq<[(QueueInput, SourceId); N]> for Sources {
    fn eq(&self, other: &[(QueueInput, SourceId); N]) -> bool {
        self == &other[..]
    }
}

impl PartialEq<Vec<(QueueInput, SourceId)>> for Sources {
    fn eq(&self, other: &Vec<(QueueInput, SourceId)>) -> bool {
        self == &other[..]
    }
}

/// One item of the streamer (the seed's `QueueManagerResult` union).
///
/// | seed class | variant |
/// |---|---|
/// | `QueueManagerSuccess(sources, value, context)` | [`Success`](Self::Success) |
/// | `QueueManagerFailure(sources, exception, context)` | [`Failure`](Self::Failure) (`error`) |
/// | `QueueManagerIterationStop(sources, exception, context)` | [`IterationStop`](Self::IterationStop) (`error`) |
/// | `QueueManagerStopped(exception)` | [`Stopped`](Self::Stopped) (`error`) |
///
/// Cancellation is carried as [`Failure::Cancelled`], never as "no error".
#[derive(Debug)]
pub enum QueueManagerResult<V, C> {
    /// A source produced a value.
    Success {
        /// The chain from the producing source back to the added one.
        sources: Sources,
        /// The value.
        value: V,
        /// The context given with the added source (shared, not copied), else the
        /// manager's empty context.
        context: ResultContext<C>,
    },
    /// A source failed: it returned [`Feed::Error`](super::Feed::Error) or
    /// [`Feed::ItemError`](super::Feed::ItemError), panicked, or was cancelled, or the
    /// manager's stop cut it short before it started.
    Failure {
        /// The chain from the failing source back to the added one.
        sources: Sources,
        /// Why.
        error: Failure,
        /// The work the stop kept from starting, handed back: a produced function not
        /// called ([`Feed::Function`](super::Feed::Function)) or a future not spawned
        /// ([`Feed::Future`](super::Feed::Future)); `None` otherwise. **Breaking** (new
        /// field).
        unread: Option<Box<Feed<V, C>>>,
        /// The context given with the added source (shared, not copied), else the
        /// manager's empty context.
        context: ResultContext<C>,
    },
    /// An iterator or stream ended: `None` when exhausted, else the error that ended it
    /// (its own failure, or the manager's stop).
    IterationStop {
        /// The chain from the ended source back to the added one.
        sources: Sources,
        /// What ended it, if it did not simply run out.
        error: Option<Failure>,
        /// What it left unread, handed back when an error or the manager's stop ended
        /// it: the iterator ([`Feed::Iterator`](super::Feed::Iterator) or
        /// [`Feed::Generator`](super::Feed::Generator)) or stream
        /// ([`Feed::Stream`](super::Feed::Stream)), positioned after the last item it
        /// gave; re-queue it or count it. `None` when it ran out, and for a generator
        /// source ([`hp::AsyncGenerator`](crate::helpers::AsyncGenerator)) the stop ends:
        /// it is stopped as `stop_async_generator` does. **Breaking** (new field).
        unread: Option<Box<Feed<V, C>>>,
        /// The context given with the added source (shared, not copied), else the
        /// manager's empty context.
        context: ResultContext<C>,
    },
    /// The manager stopped: `None` after `set_as_finished_if_out_of_sources` once nothing
    /// was left, else the context's outcome (or [`Failure::Cancelled`] when closed).
    Stopped {
        /// Why it stopped, if not naturally.
        error: Option<Failure>,
    },
}

impl<V, C> QueueManagerResult<V, C> {
    /// The chain of sources, except for `Stopped`.
    pub fn sources(&self) -> Option<&Sources> {
        match self {
            Self::Success { sources, .. }
            | Self::Failure { sources, .. }
            | Self::IterationStop { sources, .. } => Some(sources),
            Self::Stopped { .. } => None,
        }
    }

    /// The context, except for `Stopped`.
    pub fn context(&self) -> Option<&C> {
        match self {
            Self::Success { context, .. }
            | Self::Failure { context, .. }
            | Self::IterationStop { context, .. } => Some(context),
            Self::Stopped { .. } => None,
        }
    }

    /// The value of a `Success`.
    pub fn value(&self) -> Option<&V> {
        match self {
            Self::Success { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The value of a `Success`, by value.
    pub fn into_value(self) -> Option<V> {
        match self {
            Self::Success { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The unread rest of an iterator or stream (or the work a stop kept from starting)
    /// that this result hands back, by value (see the `unread` fields).
    ///
    /// An iterator ended by an error hands back its rest in its `IterationStop`:
    /// ```
    /// use futures::StreamExt;
    /// use machinery::helpers::{self as hp, Feed, QueueManagerResult as R};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = hp::Ctx::beginning("app");
    /// let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
    /// feeder.add_sync_iterator([Feed::Value(1), Feed::error(hp::Error::msg("boom")), Feed::Value(2)]);
    /// feeder.set_as_finished_if_out_of_sources();
    /// let mut rest = None;
    /// while let Some(mut r) = streamer.next().await {
    ///     if let R::IterationStop { error: Some(_), .. } = r {
    ///         rest = r.take_unread();
    ///     }
    /// }
    /// let Some(Feed::Iterator(rest)) = rest else { panic!("the rest comes back") };
    /// assert!(matches!(rest.collect::<Vec<_>>()[..], [Feed::Value(2)]));
    /// # }
    /// ```
    ///
    /// A function produced after the stop is not called: its `Failure` hands it back.
    /// ```
    /// use futures::StreamExt;
    /// use machinery::helpers::{self as hp, Feed};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = hp::Ctx::beginning("app");
    /// let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&ctx);
    /// let stop = streamer.ctx().clone();
    /// // Runs inside the call: stops the manager, returns the next function.
    /// feeder.add_sync_function(move || {
    ///     stop.cancel();
    ///     Feed::function(|| 7u32)
    /// });
    /// let mut back = Vec::new();
    /// while let Some(mut r) = streamer.next().await {
    ///     back.extend(r.take_unread());
    /// }
    /// let [Feed::Function(f)] = <[_; 1]>::try_from(back).ok().unwrap() else { panic!() };
    /// assert!(matches!(f(), Feed::Value(7))); // the caller may still call it
    /// assert_eq!(streamer.cut_short().len(), 1);
    /// # }
    /// ```
    pub fn take_unread(&mut self) -> Option<Feed<V, C>> {
        match self {
            Self::Failure { unread, .. } | Self::IterationStop { unread, .. } => {
                unread.take().map(|b| *b)
            }
            _ => None,
        }
    }

    /// Whether this is `Stopped`.
    pub fn is_stopped(&self) -> bool {
        matches!(self, Self::Stopped { .. })
    }
}

/// The context of one result: a reference to the context given with its source (shared
/// by every result of that source, never copied), or the manager's empty context for
/// a source given none. Dereferences to `C`.
///
/// # Cost (**Breaking** in 0.x: results held `C` and cloned it per result)
/// A context given once (`add_x_with_context`, [`Feed::with_context`](super::Feed::with_context))
/// is stored once in an [`Arc`]; each result takes a reference count, so a `String`
/// context costs no allocation per result. A result without one gets the manager's
/// empty context: `C::default()` ([`queue_manager`](super::queue_manager): no
/// allocation for `()`, `String`, `Option<_>`...) or the seed's `make_empty_context()`
/// ([`queue_manager_with_empty_context`](super::queue_manager_with_empty_context)),
/// made when the result is handed out.
///
/// ```
/// use std::sync::Arc;
/// use futures::StreamExt;
/// use machinery::helpers::{self as hp, QueueManagerResult as R};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = hp::Ctx::beginning("app");
/// let (mut streamer, feeder) = hp::queue_manager::<u32, String>(&ctx);
/// feeder.add_sync_iterator_with_context([1, 2], "https://example.com".to_string());
/// feeder.add_value(3);
/// let mut contexts = Vec::new();
/// for _ in 0..3 {
///     let Some(R::Success { context, .. }) = streamer.next().await else { panic!() };
///     contexts.push(context);
/// }
/// // The two results of the iterator share its one context; the value has the empty one.
/// assert_eq!(contexts[1], "https://example.com".to_string());
/// assert_eq!(contexts[2], "https://example.com".to_string());
/// assert!(Arc::ptr_eq(contexts[1].shared().unwrap(), contexts[2].shared().unwrap()));
/// assert_eq!(*contexts[0], ""); // `String::default()`
/// # }
/// ```
pub struct ResultContext<C>(CtxRepr<C>);

enum CtxRepr<C> {
    Shared(Arc<C>),
    Own(C),
}

impl<C> ResultContext<C> {
    pub(crate) fn shared_from(context: Arc<C>) -> Self {
        ResultContext(CtxRepr::Shared(context))
    }

    pub(crate) fn own(context: C) -> Self {
        ResultContext(CtxRepr::Own(context))
    }

    /// The shared context given with the source, `None` for the manager's empty one.
    pub fn shared(&self) -> Option<&Arc<C>> {
        match &self.0 {
            CtxRepr::Shared(c) => Some(c),
            CtxRepr::Own(_) => None,
        }
    }

    /// Whether this is the manager's empty context (the source was given none).
    pub fn is_empty_context(&self) -> bool {
        matches!(self.0, CtxRepr::Own(_))
    }

    /// The context as an `Arc` (the shared one as it is; the empty one is wrapped).
    pub fn into_arc(self) -> Arc<C> {
        match self.0 {
            CtxRepr::Shared(c) => c,
            CtxRepr::Own(c) => Arc::new(c),
        }
    }

    /// The context by value: the empty one as it is, the shared one unwrapped when this
    /// is its last reference, else cloned.
    pub fn into_inner(self) -> C
    where
        C: Clone,
    {
        match self.0 {
            CtxRepr::Shared(c) => Arc::unwrap_or_clone(c),
            CtxRepr::Own(c) => c,
        }
    }
}

impl<C> std::ops::Deref for ResultContext<C> {
    type Target = C;
    fn deref(&self) -> &C {
        match &self.0 {
            CtxRepr::Shared(c) => c,
            CtxRepr::Own(c) => c,
        }
    }
}

impl<C> AsRef<C> for ResultContext<C> {
    fn as_ref(&self) -> &C {
        self
    }
}

impl<C: Clone> Clone for ResultContext<C> {
    /// O(1) for a shared context (a reference count); clones the empty one.
    fn clone(&self) -> Self {
        match &self.0 {
            CtxRepr::Shared(c) => ResultContext(CtxRepr::Shared(c.clone())),
            CtxRepr::Own(c) => ResultContext(CtxRepr::Own(c.clone())),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for ResultContext<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<C: fmt::Display> fmt::Display for ResultContext<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<C: PartialEq> PartialEq for ResultContext<C> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<C: Eq> Eq for ResultContext<C> {}

impl<C: PartialEq> PartialEq<C> for ResultContext<C> {
    fn eq(&self, other: &C) -> bool {
        **self == *other
    }
}
