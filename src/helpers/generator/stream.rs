//! Iterating a generator: `Stream<Item = Y>`, and [`TryGenerator`] for `Result<Y, Failure>`.
//!
//! Python's `async for v in gen` is `asend(None)` until `StopAsyncIteration`; here each
//! item is `asend(S::default())` until the body returns. Both streams are
//! `Send + 'static` when `Y` and `S` are, so the queue manager can take them as sources.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::{FusedStream, Stream};

use super::{AsyncGenerator, Step};
use crate::helpers::error::Failure;

/// Yields what the body yields; ends when the body returns or fails.
///
/// A failure ends the stream quietly and stays readable with
/// [`AsyncGenerator::failure`]; use [`AsyncGenerator::into_try_stream`] to receive it as
/// an item instead.
///
/// # Cancel safety
/// Cancel safe: a `next()` dropped mid-step loses nothing; the next poll continues it.
impl<Y, S: Default> Stream for AsyncGenerator<Y, S> {
    type Item = Y;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Y>> {
        match ready!(self.get_mut().poll_stream_step(cx)) {
            Some(Step::Yielded(y)) => Poll::Ready(Some(y)),
            Some(Step::Returned(_)) | None => Poll::Ready(None),
        }
    }
}

impl<Y, S: Default> FusedStream for AsyncGenerator<Y, S> {
    fn is_terminated(&self) -> bool {
        self.finished()
    }
}

/// A generator iterated as `Stream<Item = Result<Y, Failure>>`: what the body yields,
/// then the failure it ended with (if any) as the last item.
///
/// Made by [`AsyncGenerator::into_try_stream`].
///
/// # Cancel safety
/// Cancel safe, as the generator's own `Stream`.
///
/// # Drop
/// Drops the generator (see [`AsyncGenerator`]).
///
/// # Example
/// ```
/// use futures::StreamExt;
/// use machinery::helpers as hp;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let generator = hp::AsyncGenerator::new(|co: hp::Co<u8>| async move {
///     co.yield_(1).await?;
///     Err::<(), _>(hp::Error::msg("sensor unplugged"))
/// });
/// let items: Vec<_> = generator.into_try_stream().collect().await;
/// assert_eq!(items[0].as_ref().unwrap(), &1);
/// assert_eq!(items[1].as_ref().unwrap_err().to_string(), "sensor unplugged");
/// assert_eq!(items.len(), 2);
/// # }
/// ```
pub struct TryGenerator<Y, S> {
    generator: AsyncGenerator<Y, S>,
}

impl<Y, S> TryGenerator<Y, S> {
    pub(super) fn new(generator: AsyncGenerator<Y, S>) -> Self {
        TryGenerator { generator }
    }

    /// The generator, to `asend` / `athrow` / `aclose` or stop it.
    pub fn get_mut(&mut self) -> &mut AsyncGenerator<Y, S> {
        &mut self.generator
    }

    /// Gives the generator back.
    pub fn into_inner(self) -> AsyncGenerator<Y, S> {
        self.generator
    }
}

impl<Y, S: Default> Stream for TryGenerator<Y, S> {
    type Item = Result<Y, Failure>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match ready!(self.get_mut().generator.poll_stream_step(cx)) {
            Some(Step::Yielded(y)) => Poll::Ready(Some(Ok(y))),
            Some(Step::Returned(Err(f))) => Poll::Ready(Some(Err(f))),
            Some(Step::Returned(Ok(()))) | None => Poll::Ready(None),
        }
    }
}

impl<Y, S: Default> FusedStream for TryGenerator<Y, S> {
    fn is_terminated(&self) -> bool {
        self.generator.finished()
    }
}

impl<Y, S> fmt::Debug for TryGenerator<Y, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TryGenerator")
            .field(&self.generator)
            .finish()
    }
}
