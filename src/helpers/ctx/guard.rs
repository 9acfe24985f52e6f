//! [`CtxGuard`]: the seed's `with ctx.child(...) as c:` (`ctx.child(..).drop_guard()`): a
//! context that is cancelled when the guard is dropped, even while clones of it are alive.

use std::fmt;
use std::ops::Deref;

use super::super::error::Failure;
use super::super::protocols::CallbackHandle;
use super::Ctx;

/// A context that cancels itself when dropped, made by [`Ctx::drop_guard`].
///
/// Derefs to [`Ctx`]. Keep the guard for as long as the context should live.
///
/// # The temporary-guard trap, closed
/// [`Ctx::child`] returns a plain [`Ctx`], so `let c = ctx.child("x").clone();` is a live
/// context. Only an explicit `drop_guard()` makes a guard, and a guard cannot be cloned
/// (cloning one out, `guard.ctx().clone()`, gives a plain handle that the guard cancels
/// when it drops, which is what the guard is for).
///
/// # Drop
/// Cancels the child, running its callbacks and those of its descendants before `drop`
/// returns. A child already done, by itself or through an ancestor, keeps its outcome:
/// after `root.set_exception(e)` the dropped guard's child still reports `e` (Go's
/// `defer cancel()`).
#[must_use = "dropping the guard cancels the child at once"]
pub struct CtxGuard {
    /// `None` only inside [`detach`](Self::detach), which consumes the guard: the size of
    /// one pointer, what a user holds per guarded child (a million guards in a `Vec`
    /// took 16 MB with a separate flag).
    ctx: Option<Ctx>,
}

impl CtxGuard {
    pub(crate) fn new(ctx: Ctx) -> Self {
        CtxGuard { ctx: Some(ctx) }
    }

    /// The guarded context.
    pub fn ctx(&self) -> &Ctx {
        self.ctx
            .as_ref()
            .expect("set until detach consumes the guard")
    }

    /// Whether the context (or an ancestor) has finished. The same as `ctx().done()`.
    pub fn done(&self) -> bool {
        self.ctx().done()
    }

    /// Cancels the context now; see [`Ctx::cancel`].
    pub fn cancel(&self) -> bool {
        self.ctx().cancel()
    }

    /// Registers `cb(how)` on the context; see [`Ctx::add_done_callback`].
    ///
    /// An inherent method, so that importing [`WaitByCallback`](crate::helpers::WaitByCallback)
    /// (which the guard implements too) does not make `guard.add_done_callback(|how| ..)`
    /// resolve to the trait's method.
    pub fn add_done_callback(&self, cb: impl FnOnce(&Failure) + Send + 'static) -> CallbackHandle {
        self.ctx().add_done_callback(cb)
    }

    /// Removes a registration that has not run; see [`Ctx::remove_done_callback`].
    pub fn remove_done_callback(&self, handle: CallbackHandle) -> usize {
        self.ctx().remove_done_callback(handle)
    }

    /// Gives up the guard: the child is no longer cancelled on drop (it still finishes as
    /// cancelled once nothing refers to it).
    pub fn detach(mut self) -> Ctx {
        self.ctx
            .take()
            .expect("set until detach consumes the guard")
    }
}

impl Deref for CtxGuard {
    type Target = Ctx;
    fn deref(&self) -> &Ctx {
        self.ctx()
    }
}

impl Drop for CtxGuard {
    fn drop(&mut self) {
        if let Some(ctx) = &self.ctx {
            // Not `cancel()`: a child already done through an ancestor would take
            // "cancelled" as its own outcome over the ancestor's (CTX 5).
            ctx.node.finish_if_pending(Failure::Cancelled);
        }
    }
}

impl fmt::Debug for CtxGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.ctx(), f)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_guard_is_the_size_of_one_pointer() {
        // What a user holds per guarded child (issue 26: 16 B with a separate flag).
        assert_eq!(std::mem::size_of::<super::CtxGuard>(), 8);
    }
}
