//! The context tree's nodes: state word, own outcome, children, callbacks.
//!
//! # Invariants
//! 1. `state` moves PENDING -> DONE once. A node is DONE when its own outcome or an
//!    ancestor's is set; `own` is written (or an ancestor's was) before DONE is stored.
//! 2. `own` is set at most once, under `inner`'s lock.
//! 3. A DONE node holds no callbacks and no children: whoever stores DONE takes both under
//!    the same lock, so every callback is taken (and run) by exactly one thread.
//! 4. A node is in its parent's `children` under key `slot` from its creation until its
//!    `Drop`, unless the parent finished first (the parent then took all its children).
//!    Keys are only freed by the child itself, so a key is never reused under it.
//! 5. A live child holds an `Arc` of its parent; a parent holds only `Weak`s of children.
//!
//! # Lock order
//! No code path holds two node locks at once: finishing takes a node's callbacks and
//! children under its lock, releases it, then visits each child. No lock is held while
//! user code (a callback) runs.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::sync::atomic::Ordering::{Acquire, Release};

use slab::Slab;
use tokio::runtime::Handle;

use super::super::callbacks::{CallbackList, run_caught};
use super::super::debug::{CONTEXTS, Live};
use super::super::error::Failure;
use super::super::protocols::CallbackHandle;
use super::Ctx;
use super::log::Logger;
use crate::sync::{Arc, AtomicU8, Mutex, Weak, lock};

const PENDING: u8 = 0;
const DONE: u8 = 1;
/// `slot` of a node that is not in any parent's `children`.
const UNREGISTERED: usize = usize::MAX;

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
    own: OnceLock<Failure>,
    inner: Mutex<Inner>,
    pub(crate) parent: Option<Arc<Node>>,
    slot: usize,
    pub(crate) name: Cow<'static, str>,
    pub(crate) extras: Option<Box<Extras>>,
    _live: Live<CONTEXTS>,
}

#[derive(Default)]
struct Inner {
    children: Option<Box<Slab<Weak<Node>>>>,
    callbacks: CallbackList<CtxCallback>,
}

/// What one node hands over when it becomes DONE.
type Taken = (Arc<Node>, CallbackList<CtxCallback>, Vec<Weak<Node>>);

impl Node {
    pub(crate) fn root(name: Cow<'static, str>, extras: Option<Box<Extras>>) -> Arc<Node> {
        Arc::new(Node {
            state: AtomicU8::new(PENDING),
            own: OnceLock::new(),
            inner: Mutex::new(Inner::default()),
            parent: None,
            slot: UNREGISTERED,
            name,
            extras,
            _live: Live::new(),
        })
    }

    /// A child of `parent`: registered with it, or created DONE if `parent` is done.
    pub(crate) fn child(
        parent: &Arc<Node>,
        name: Cow<'static, str>,
        extras: Option<Box<Extras>>,
    ) -> Arc<Node> {
        let mut g = lock(&parent.inner);
        if parent.done() {
            drop(g);
            return Arc::new(Node {
                state: AtomicU8::new(DONE),
                own: OnceLock::new(),
                inner: Mutex::new(Inner::default()),
                parent: Some(parent.clone()),
                slot: UNREGISTERED,
                name,
                extras,
                _live: Live::new(),
            });
        }
        let children = g.children.get_or_insert_with(Default::default);
        let entry = children.vacant_entry();
        let slot = entry.key();
        let node = Arc::new_cyclic(|weak| {
            entry.insert(weak.clone());
            Node {
                state: AtomicU8::new(PENDING),
                own: OnceLock::new(),
                inner: Mutex::new(Inner::default()),
                parent: Some(parent.clone()),
                slot,
                name,
                extras,
                _live: Live::new(),
            }
        });
        drop(g);
        node
    }

    /// Acquire: pairs with the Release store in `take_for_done`, so whoever sees DONE
    /// also sees the outcome written before it.
    pub(crate) fn done(&self) -> bool {
        self.state.load(Acquire) == DONE
    }

    /// This node's own outcome, if it has one.
    pub(crate) fn own(&self) -> Option<&Failure> {
        self.own.get()
    }

    /// The outcome this node reports: its own, else the nearest ancestor's own.
    pub(crate) fn outcome(&self) -> Option<Failure> {
        if !self.done() {
            return None;
        }
        let mut node = self;
        loop {
            if let Some(f) = node.own.get() {
                return Some(f.clone());
            }
            node = node.parent.as_deref()?;
        }
    }

    /// Sets this node's own outcome. Runs the callbacks of this node and of every
    /// descendant that became done through it, after every lock is released.
    pub(crate) fn finish(self: &Arc<Node>, failure: Failure) -> bool {
        let taken = {
            let mut g = lock(&self.inner);
            if self.own.set(failure.clone()).is_err() {
                return false;
            }
            if g.children.as_deref().is_none_or(Slab::is_empty) {
                // A leaf (the common case: a guard dropped): no descendants to visit,
                // so skip the batch and its allocations.
                if self.state.load(Acquire) == DONE {
                    return true;
                }
                // Release: pairs with the Acquire in `done`.
                self.state.store(DONE, Release);
                g.children = None;
                let callbacks = std::mem::take(&mut g.callbacks);
                drop(g);
                if callbacks.len() > 0 {
                    run_done(vec![(self.clone(), callbacks)], &failure);
                }
                return true;
            }
            match Self::take_for_done(self, &mut g) {
                Some(t) => t,
                // Already done through an ancestor: the own outcome changes what this
                // node and its descendants report, but callbacks already ran.
                None => return true,
            }
        };
        run_done(propagate(taken), &failure);
        true
    }

    /// Under `g` (this node's lock): stores DONE and takes callbacks and children.
    fn take_for_done(node: &Arc<Node>, g: &mut Inner) -> Option<Taken> {
        if node.state.load(Acquire) == DONE {
            return None;
        }
        // Release: pairs with the Acquire in `done`.
        node.state.store(DONE, Release);
        let callbacks = std::mem::take(&mut g.callbacks);
        let children = g
            .children
            .take()
            .map(|s| s.into_iter().map(|(_, w)| w).collect())
            .unwrap_or_default();
        Some((node.clone(), callbacks, children))
    }

    /// Adds a callback, or runs it at once (outside the lock) if the node is done.
    pub(crate) fn add_callback(
        self: &Arc<Node>,
        key: Option<CallbackHandle>,
        cb: CtxCallback,
    ) -> CallbackHandle {
        {
            let mut g = lock(&self.inner);
            if !self.done() {
                return g.callbacks.push(key, cb);
            }
        }
        let outcome = self.outcome().unwrap_or(Failure::Cancelled);
        let ctx = Ctx::from_node(self.clone());
        run_caught("context done callback", || cb(&ctx, &outcome));
        key.unwrap_or_default()
    }

    pub(crate) fn remove_callback(&self, key: CallbackHandle) -> usize {
        lock(&self.inner).callbacks.remove(key)
    }

    pub(crate) fn has_callback(&self, key: CallbackHandle) -> bool {
        lock(&self.inner).callbacks.contains(key)
    }

    /// The live children, in no particular order.
    pub(crate) fn live_children(&self) -> Vec<Arc<Node>> {
        let g = lock(&self.inner);
        g.children
            .as_deref()
            .map(|s| s.iter().filter_map(|(_, w)| w.upgrade()).collect())
            .unwrap_or_default()
    }

    /// How many children are registered (live or being dropped).
    pub(crate) fn child_count(&self) -> usize {
        lock(&self.inner).children.as_deref().map_or(0, Slab::len)
    }
}

/// Marks every live descendant reached from `first` DONE, breadth first, collecting what
/// each hands over. A descendant already DONE is skipped: whoever made it DONE handles
/// its subtree.
fn propagate(first: Taken) -> Vec<(Arc<Node>, CallbackList<CtxCallback>)> {
    let mut out = Vec::new();
    let mut queue = std::collections::VecDeque::new();
    let (node, callbacks, children) = first;
    out.push((node, callbacks));
    queue.extend(children);
    while let Some(weak) = queue.pop_front() {
        // A child whose last handle is being dropped cannot be upgraded; its own Drop
        // finishes it as cancelled.
        let Some(child) = weak.upgrade() else {
            continue;
        };
        let taken = {
            let mut g = lock(&child.inner);
            Node::take_for_done(&child, &mut g)
        };
        if let Some((node, callbacks, children)) = taken {
            queue.extend(children);
            if callbacks.len() > 0 {
                out.push((node, callbacks));
            }
        }
    }
    out
}

/// Runs the collected callbacks, in order, with no lock held.
fn run_done(batch: Vec<(Arc<Node>, CallbackList<CtxCallback>)>, failure: &Failure) {
    for (node, mut callbacks) in batch {
        if callbacks.len() == 0 {
            continue;
        }
        let ctx = Ctx::from_node(node);
        for cb in callbacks.take() {
            run_caught("context done callback", || cb(&ctx, failure));
        }
    }
}

impl Node {
    /// What dropping a node does: unregister from the parent and, unless already done,
    /// finish as cancelled. Idempotent, so `Drop` may run after an explicit call.
    fn release(&mut self) {
        if let Some(parent) = &self.parent {
            if self.slot != UNREGISTERED {
                let mut g = lock(&parent.inner);
                if let Some(children) = g.children.as_deref_mut() {
                    children.try_remove(self.slot);
                    if children.is_empty() && children.capacity() > 64 {
                        g.children = None;
                    }
                }
                self.slot = UNREGISTERED;
            }
        }
        if self.state.load(Acquire) == DONE {
            return;
        }
        // Nothing refers to this context any more: it finishes as cancelled so that its
        // callbacks still run exactly once. They get a stand-in context with the same
        // name, parent and outcome, since this one can no longer be handed out.
        self.state.store(DONE, Release);
        let mut callbacks = std::mem::take(&mut lock(&self.inner).callbacks);
        if callbacks.len() == 0 {
            return;
        }
        let stand_in = Arc::new(Node {
            state: AtomicU8::new(DONE),
            own: OnceLock::from(Failure::Cancelled),
            inner: Mutex::new(Inner::default()),
            parent: self.parent.clone(),
            slot: UNREGISTERED,
            name: std::mem::take(&mut self.name),
            extras: self.extras.take(),
            _live: Live::new(),
        });
        let ctx = Ctx::from_node(stand_in);
        for cb in callbacks.take() {
            run_caught("context done callback", || cb(&ctx, &Failure::Cancelled));
        }
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
