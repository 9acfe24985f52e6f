//! [`CtxGuard`]: the seed's `with ctx.child(...) as c:`: a child that is cancelled when
//! the guard is dropped, even while clones of it are alive.

use std::fmt;
use std::ops::Deref;

use super::Ctx;

/// A child context that cancels itself when dropped.
///
/// Derefs to [`Ctx`]. Keep the guard for as long as the child should live.
///
/// # The temporary-guard trap
/// `let c = ctx.child("x").clone();` would clone the context out of a temporary guard
/// that is dropped at the end of the statement, cancelling `c` at once. To make that
/// hard to write by accident, `CtxGuard::clone` is deprecated (a warning, an error under
/// `-D warnings`): keep the guard, or call [`CtxGuard::ctx`] on a guard you keep.
///
/// # Drop
/// Cancels the child (a no-op if it is already done), running its callbacks and those of
/// its descendants before `drop` returns.
#[must_use = "dropping the guard cancels the child at once"]
pub struct CtxGuard {
    ctx: Ctx,
    armed: bool,
}

impl CtxGuard {
    pub(crate) fn new(ctx: Ctx) -> Self {
        CtxGuard { ctx, armed: true }
    }

    /// The guarded context.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// Gives up the guard: the child is no longer cancelled on drop (it still finishes as
    /// cancelled once nothing refers to it).
    pub fn detach(mut self) -> Ctx {
        self.armed = false;
        self.ctx.clone()
    }

    /// Deprecated on purpose: see "The temporary-guard trap".
    #[deprecated(
        note = "cloning out of a guard gives a context that is cancelled when the guard drops; \
                keep the guard and use `guard.ctx().clone()`"
    )]
    #[allow(clippy::should_implement_trait)]
    pub fn clone(&self) -> Ctx {
        self.ctx.clone()
    }
}

impl Deref for CtxGuard {
    type Target = Ctx;
    fn deref(&self) -> &Ctx {
        &self.ctx
    }
}

impl Drop for CtxGuard {
    fn drop(&mut self) {
        if self.armed {
            self.ctx.cancel();
        }
    }
}

impl fmt::Debug for CtxGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.ctx, f)
    }
}
