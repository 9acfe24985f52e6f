//! [`Refused`]: the work a closed holder did not take, given back to the caller.

use std::fmt;

/// Work a task holder refused, handed back: the holder had finished, or its context was
/// done, when the work was given to a `try_` form (as tokio's `mpsc::SendError` gives
/// back the value a closed channel refused).
///
/// The work was neither run nor dropped: take it back with
/// [`into_inner`](Self::into_inner) to run it elsewhere, count it or drop it yourself.
///
/// # Example
/// ```
/// use machinery::helpers as hp;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = hp::Ctx::beginning("app");
/// let ts = hp::task_holder(&ctx);
/// ctx.cancel();
/// let batch = vec![1, 2, 3];
/// let refused = ts.try_spawn(async move { batch.len() }).unwrap_err();
/// assert_eq!(refused.to_string(), "task holder is closed");
/// // The future comes back unpolled, with the batch it owns: run it here instead.
/// assert_eq!(refused.into_inner().await, 3);
/// # }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Refused<W> {
    work: W,
}

impl<W> Refused<W> {
    pub(crate) fn new(work: W) -> Self {
        Refused { work }
    }

    /// The refused work (a future, a scoped work closure, a task), as it was given.
    pub fn into_inner(self) -> W {
        self.work
    }

    /// The refused work, by reference.
    pub fn get_ref(&self) -> &W {
        &self.work
    }
}

/// Shows no field: the work need not be `Debug` (as tokio's `SendError`).
impl<W> fmt::Debug for Refused<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused").finish_non_exhaustive()
    }
}

impl<W> fmt::Display for Refused<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task holder is closed")
    }
}

impl<W> std::error::Error for Refused<W> {}
