//! `stop_async_generator`: throw in, send, close, whatever the generator does.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;

use super::AsyncGenerator;
use crate::helpers::error::Failure;

/// Makes sure an async generator has stopped (the seed's `stop_async_generator`).
///
/// Returns a [`StopGenerator`] to await, with two optional settings (the seed's
/// `provide` and `exc` arguments): [`provide(value)`](StopGenerator::provide) and
/// [`throw(failure)`](StopGenerator::throw).
///
/// Awaiting it throws the failure in ([`Failure::Cancelled`] unless `throw` says
/// otherwise), then sends the `provide` value, then always closes the generator; a
/// generator exhausted along the way is normal.
///
/// - suspended at a yield that does not catch the thrown failure: its cleanup runs and
///   the thrown failure is returned;
/// - never started: its body never runs and the thrown failure is returned;
/// - catches it and yields again: it receives the `provide` value (without one, it is
///   closed at that yield), is closed, and `Ok(())` is returned;
/// - already finished: `Ok(())`.
///
/// # Errors
/// The thrown failure when the generator did not catch it, any other failure it ended
/// with, or the failure of closing it (which wins, as an exception raised in Python's
/// `finally` does).
///
/// # Cancel safety
/// Not cancel safe, as [`AsyncGenerator::asend`]: dropped mid-way, the step it started
/// is finished by the next call on the generator, and stopping again completes the stop.
///
/// # Example
/// ```
/// use machinery::helpers as hp;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut numbers = hp::AsyncGenerator::new(|co: hp::Co<u32>| async move {
///     for i in 0.. {
///         co.yield_(i).await?;
///     }
///     Ok::<(), hp::Failure>(())
/// });
/// assert_eq!(numbers.asend(()).await.unwrap(), Some(0));
/// let stopped = hp::stop_async_generator(&mut numbers).await;
/// assert!(stopped.unwrap_err().is_cancelled());
/// assert!(numbers.finished());
///
/// // With the seed's `exc` and `provide`:
/// let mut echo = hp::AsyncGenerator::new(|co: hp::Co<String, String>| async move {
///     let mut said = String::from("hello");
///     loop {
///         said = match co.yield_(said).await {
///             Ok(s) => s,
///             Err(hp::Failure::Error(e)) if e.to_string() == "flush" => "flushed".into(),
///             Err(other) => return Err::<(), _>(other),
///         };
///     }
/// });
/// assert_eq!(echo.asend(String::new()).await.unwrap().as_deref(), Some("hello"));
/// hp::stop_async_generator(&mut echo)
///     .throw(hp::Error::msg("flush"))
///     .provide("bye".to_owned())
///     .await
///     .unwrap();
/// assert!(echo.finished());
/// # }
/// ```
pub fn stop_async_generator<Y, S>(generator: &mut AsyncGenerator<Y, S>) -> StopGenerator<'_, Y, S> {
    StopGenerator {
        generator,
        provide: None,
        thrown: Failure::Cancelled,
    }
}

/// Stops an async generator when awaited: made by [`stop_async_generator`], which has the
/// rules and an example.
///
/// # Drop
/// Dropped before it is awaited, it does nothing. Its future dropped mid-way leaves the
/// generator for the next call to finish (see [`stop_async_generator`]).
#[must_use = "the generator is stopped only when this is awaited"]
pub struct StopGenerator<'a, Y, S> {
    generator: &'a mut AsyncGenerator<Y, S>,
    provide: Option<S>,
    thrown: Failure,
}

impl<'a, Y, S> StopGenerator<'a, Y, S> {
    /// The value sent to a generator that caught the thrown failure and yielded again
    /// (the seed's `provide`). Without it, such a generator is closed at that yield.
    pub fn provide(mut self, value: S) -> Self {
        self.provide = Some(value);
        self
    }

    /// Throws `failure` in instead of [`Failure::Cancelled`] (the seed's `exc`).
    pub fn throw(mut self, failure: impl Into<Failure>) -> Self {
        self.thrown = failure.into();
        self
    }

    async fn run(self) -> Result<(), Failure> {
        let StopGenerator {
            generator,
            provide,
            thrown,
        } = self;
        let sent = async {
            generator.athrow(thrown).await?;
            if let Some(value) = provide {
                generator.asend(value).await?;
            }
            Ok(())
        }
        .await;
        let closed = generator.aclose().await;
        closed.and(sent)
    }
}

impl<'a, Y: Send + 'a, S: Send + 'a> IntoFuture for StopGenerator<'a, Y, S> {
    type Output = Result<(), Failure>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl<Y, S> fmt::Debug for StopGenerator<'_, Y, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopGenerator")
            .field("generator", &self.generator)
            .field("provide", &self.provide.is_some())
            .field("thrown", &self.thrown)
            .finish()
    }
}
