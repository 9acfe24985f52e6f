//! Ties a context to the process's shutdown signals (Go's `signal.NotifyContext`).

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::helpers::ctx::Ctx;
use crate::helpers::error::Error;

/// The signal that asked the process to stop: the cause a context gets from
/// [`on_shutdown_signals`] (match it with [`Error::downcast_ref`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownSignal {
    /// SIGINT (Ctrl-C in a terminal), on Unix.
    #[error("received SIGINT")]
    Interrupt,
    /// SIGTERM (what `kill`, systemd and container runtimes send), on Unix.
    #[error("received SIGTERM")]
    Terminate,
    /// Ctrl-C, where there are no Unix signals.
    #[error("received Ctrl-C")]
    CtrlC,
}

/// What the listener has seen.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// The signal that finished the context.
    first: Option<ShutdownSignal>,
    /// A signal that came while the context was already done: stop draining.
    forced: Option<ShutdownSignal>,
}

/// Listens for shutdown signals while it lives; see [`on_shutdown_signals`].
///
/// # Drop
/// Stops listening (the listener task is aborted). Tokio keeps its process-wide signal
/// handler installed, so a later SIGINT or SIGTERM no longer ends the process by itself:
/// keep the handle for the program's whole life.
#[derive(Debug)]
pub struct Signals {
    seen: watch::Receiver<Seen>,
    listener: JoinHandle<()>,
}

/// Ties `ctx` to the process's shutdown signals: SIGINT and SIGTERM on Unix, Ctrl-C
/// elsewhere.
///
/// The first signal finishes `ctx` with [`ShutdownSignal`] as its error (its cause,
/// readable with `ctx.exception()`); a signal that comes while `ctx` is already done (a
/// second signal, or the first after `ctx` finished otherwise) resolves
/// [`Signals::forced`]: a [`Drain`](super::Drain) given it stops waiting and cuts short
/// what still runs. The handlers are installed before this returns (on Unix), so a
/// signal sent right after it is not lost.
///
/// # Errors
/// When the signal handlers cannot be installed.
///
/// # Panics
/// Outside a tokio runtime.
///
/// # Example
/// ```no_run
/// use machinery::helpers as hp;
/// use std::time::Duration;
///
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let root = hp::Ctx::beginning("service");
/// let signals = hp::on_shutdown_signals(&root)?;
/// root.wait().await; // serve until SIGINT or SIGTERM
/// let cause = root.exception().unwrap().unwrap();
/// assert!(cause.downcast_ref::<hp::ShutdownSignal>().is_some());
/// let report = hp::Drain::new(&root).force_on(signals.forced()).run(Duration::from_secs(5)).await;
/// println!("{report}");
/// # Ok(())
/// # }
/// ```
pub fn on_shutdown_signals(ctx: &Ctx) -> std::io::Result<Signals> {
    let (tx, seen) = watch::channel(Seen::default());
    let listener = listen(ctx.clone(), tx)?;
    Ok(Signals { seen, listener })
}

impl Signals {
    /// The signal that finished the context, if one has.
    pub fn first(&self) -> Option<ShutdownSignal> {
        self.seen.borrow().first
    }

    /// Resolves with the signal that came while the context was already done (the
    /// user's "stop now"); never resolves once the handle is dropped.
    pub fn forced(&self) -> impl Future<Output = ShutdownSignal> + Send + 'static {
        let mut seen = self.seen.clone();
        async move {
            let forced = seen
                .wait_for(|s| s.forced.is_some())
                .await
                .map(|s| s.forced);
            match forced {
                Ok(Some(signal)) => signal,
                _ => std::future::pending().await,
            }
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// One signal arrived: the first finishes `ctx`, any later one forces the end.
fn on_signal(ctx: &Ctx, tx: &watch::Sender<Seen>, signal: ShutdownSignal) {
    if !ctx.done() && ctx.set_exception(Error::new(signal)) {
        tx.send_modify(|s| s.first = Some(signal));
    } else {
        tx.send_modify(|s| s.forced = s.forced.or(Some(signal)));
    }
}

#[cfg(unix)]
fn listen(ctx: Ctx, tx: watch::Sender<Seen>) -> std::io::Result<JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    // Installed here, before returning: a signal right after the call is seen.
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(tokio::spawn(async move {
        loop {
            let signal = tokio::select! {
                Some(()) = int.recv() => ShutdownSignal::Interrupt,
                Some(()) = term.recv() => ShutdownSignal::Terminate,
                else => return,
            };
            on_signal(&ctx, &tx, signal);
        }
    }))
}

#[cfg(not(unix))]
fn listen(ctx: Ctx, tx: watch::Sender<Seen>) -> std::io::Result<JoinHandle<()>> {
    Ok(tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            on_signal(&ctx, &tx, ShutdownSignal::CtrlC);
        }
    }))
}
