//! A structured picture of a context and its live descendants ([`Ctx::snapshot`]), for
//! programs and tests that would otherwise match the text of [`Ctx::tree`].
//!
//! Built, walked, formatted and dropped with loops, never recursion: a snapshot of a
//! chain 100 000 contexts deep takes constant stack.

use std::fmt;

use super::super::error::{Error, Failure};
use super::Ctx;
use super::display;
use super::node::Node;
use crate::sync::Arc;

/// A context's own state, as [`Ctx::snapshot`] and [`Ctx::tree`] show it.
///
/// `Pending` and `Waiting` are not done; the others are. A context done only because an
/// ancestor finished is `DoneByAncestor`: it has no outcome of its own, and
/// [`CtxSnapshot::cause`] says what it reports (the nearest ancestor's outcome).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CtxState {
    /// Not done (`pending` in the tree).
    Pending,
    /// Not done, and not started yet: it waits for its turn, e.g. a held task waiting
    /// for a slot under its holder's `limit` (`waiting` in the tree). Only work that
    /// says so shows it; every other context that is not done is `Pending`.
    Waiting,
    /// Cancelled itself (`cancelled` in the tree).
    Cancelled,
    /// Finished itself with this error (`exception TYPE: MESSAGE` in the tree); a
    /// deadline shows as `Failed` with [`DeadlineExceeded`](crate::helpers::DeadlineExceeded).
    Failed(Error),
    /// Done through an ancestor, without an outcome of its own
    /// (`done (through an ancestor)` in the tree).
    DoneByAncestor,
}

impl CtxState {
    /// Whether this state is done (neither `Pending` nor `Waiting`).
    pub fn is_done(&self) -> bool {
        !matches!(self, CtxState::Pending | CtxState::Waiting)
    }

    /// A node's own state (one place decides it, for the tree and the snapshot).
    pub(super) fn of(node: &Node) -> CtxState {
        match node.own() {
            Some(Failure::Cancelled) => CtxState::Cancelled,
            Some(Failure::Error(e)) => CtxState::Failed(e),
            None if node.done() => CtxState::DoneByAncestor,
            None if node.waiting() => CtxState::Waiting,
            None => CtxState::Pending,
        }
    }
}

/// Shown as in the tree: `pending`, `waiting`, `cancelled`, `exception TYPE: MESSAGE`,
/// `done (through an ancestor)`.
impl fmt::Display for CtxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtxState::Pending => f.write_str("pending"),
            CtxState::Waiting => f.write_str("waiting"),
            CtxState::Cancelled => f.write_str("cancelled"),
            CtxState::Failed(e) => write!(f, "exception {}: {e}", e.type_name()),
            CtxState::DoneByAncestor => f.write_str("done (through an ancestor)"),
        }
    }
}

/// One context of a [`Ctx::snapshot`] with its live children, in creation order.
///
/// A plain value taken at one moment: it holds no context alive and does not change.
/// Each context's state is read on its own (not all at one instant), so a snapshot taken
/// while contexts finish may show a parent done and a child not yet.
///
/// Not `Clone`, and its `Debug` is flat (one entry per context): both would otherwise
/// recurse as deep as the tree. Dropping it is a loop too, which is why it implements
/// `Drop`: its fields can be read and borrowed but not moved out (clone a `cause` or
/// `state`, take `children` with `std::mem::take`).
#[non_exhaustive]
pub struct CtxSnapshot {
    /// The context's own name segment: `conn-1`, or `[http]-->conn-1` with a prefix
    /// (the full name is [`Ctx::name`]; the segments from the root down make it, joined
    /// by `-->`).
    pub name: String,
    /// Its own state.
    pub state: CtxState,
    /// What it reports: its own outcome, else its nearest ancestor's (as
    /// [`Ctx::outcome`]); `None` while not done.
    pub cause: Option<Failure>,
    /// Its children that still exist, finished or not, in creation order.
    pub children: Vec<CtxSnapshot>,
}

impl CtxSnapshot {
    /// This context and every descendant, depth first in creation order (the order of
    /// [`Ctx::tree`]'s lines), each with its depth below this one (0 for this one).
    pub fn walk(&self) -> Walk<'_> {
        Walk {
            stack: vec![(0, self)],
        }
    }

    /// How many contexts it shows (itself included).
    pub fn len(&self) -> usize {
        self.walk().count()
    }

    /// Always false: a snapshot shows at least its own context.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The iterator of [`CtxSnapshot::walk`]: `(depth, snapshot)` pairs.
#[derive(Debug)]
pub struct Walk<'a> {
    stack: Vec<(usize, &'a CtxSnapshot)>,
}

impl<'a> Iterator for Walk<'a> {
    type Item = (usize, &'a CtxSnapshot);

    fn next(&mut self) -> Option<Self::Item> {
        let (depth, s) = self.stack.pop()?;
        self.stack
            .extend(s.children.iter().rev().map(|c| (depth + 1, c)));
        Some((depth, s))
    }
}

/// Flat: `[(depth, name, state), ...]` in walk order.
impl fmt::Debug for CtxSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.walk()
                    .map(|(depth, s)| (depth, s.name.as_str(), s.state.to_string())),
            )
            .finish()
    }
}

impl Drop for CtxSnapshot {
    fn drop(&mut self) {
        // Take the children out level by level, so no drop recurses into a child that
        // has children of its own.
        let mut stack = std::mem::take(&mut self.children);
        while let Some(mut s) = stack.pop() {
            stack.append(&mut s.children);
        }
    }
}

impl Ctx {
    /// A structured snapshot of this context and every descendant that still exists
    /// (finished or not, as [`Ctx::tree`] lists them), children in creation order: walk it
    /// with [`CtxSnapshot::walk`] instead of matching the tree's text.
    ///
    /// ```
    /// use machinery::helpers::{self as hp, CtxState};
    ///
    /// let root = hp::Ctx::beginning("app");
    /// let db = root.child("db");
    /// let web = root.child("web");
    /// web.cancel();
    /// let snap = root.snapshot();
    /// let names: Vec<_> = snap.walk().map(|(depth, s)| (depth, s.name.as_str())).collect();
    /// assert_eq!(names, [(0, "app"), (1, "db"), (1, "web")]);
    /// assert!(matches!(snap.children[1].state, CtxState::Cancelled));
    /// // "is anything still running?"
    /// let running: Vec<_> = snap.walk().filter(|(_, s)| !s.state.is_done()).map(|(_, s)| &s.name).collect();
    /// assert_eq!(running, ["app", "db"]);
    /// # drop((db, web));
    /// ```
    pub fn snapshot(&self) -> CtxSnapshot {
        snapshot(&self.node)
    }
}

/// Built in two loops: a preorder list of (parent index, snapshot without children),
/// then, from the last entry back to the first, each moved into its parent (all of an
/// entry's descendants come after it, so its children are complete when it is moved).
fn snapshot(top: &Arc<Node>) -> CtxSnapshot {
    let mut flat: Vec<(usize, Option<CtxSnapshot>)> = Vec::new();
    // (node, parent's index in `flat`, what the parent reports)
    let mut stack = vec![(top.clone(), usize::MAX, None::<Failure>)];
    let mut first = true;
    while let Some((node, parent, parent_cause)) = stack.pop() {
        let state = CtxState::of(&node);
        let cause = match &state {
            CtxState::Pending | CtxState::Waiting => None,
            CtxState::Cancelled => Some(Failure::Cancelled),
            CtxState::Failed(e) => Some(Failure::Error(e.clone())),
            // The nearest ancestor's own outcome: the parent's cause, passed down (one
            // walk up for the top only, so a deep chain costs no walk per context).
            CtxState::DoneByAncestor if first => node.outcome(),
            CtxState::DoneByAncestor => parent_cause.or_else(|| node.outcome()),
        };
        first = false;
        let index = flat.len();
        let mut children = node.live_children();
        children.reverse(); // popped in creation order
        stack.extend(children.into_iter().map(|c| (c, index, cause.clone())));
        flat.push((
            parent,
            Some(CtxSnapshot {
                name: display::segment(&node),
                state,
                cause,
                children: Vec::new(),
            }),
        ));
    }
    while flat.len() > 1 {
        let (parent, s) = flat.pop().expect("more than one entry");
        let mut s = s.expect("moved once");
        s.children.reverse(); // moved in from the last child to the first
        if let Some(p) = flat[parent].1.as_mut() {
            p.children.push(s);
        }
    }
    let mut top = flat.pop().and_then(|(_, s)| s).expect("the top entry");
    top.children.reverse();
    top
}
