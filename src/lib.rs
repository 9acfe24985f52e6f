//! # machinery
//!
//! Async helpers for tokio that keep concurrent programs free of leaks and forgotten
//! work. Users write `use machinery::helpers as hp;`.
//!
//! ## The tour
//!
//! Everything starts from a **context tree** ([`helpers::Ctx`]): one root per program,
//! a child for each part of it. Cancelling a context finishes all of its descendants at
//! once, with a cause you can read ([`helpers::Failure`]), names you can print
//! (`app-->server-->conn`) and done callbacks that run exactly once. A child that nobody
//! refers to any more finishes and unregisters itself, so a long-lived root holds memory
//! flat. Contexts can carry deadlines, and [`helpers::Ctx::tree`] dumps what is alive.
//!
//! Around it:
//! - [`helpers::Fut`], [`helpers::Event`] and [`helpers::Task`]: a settable shared future,
//!   an event, and a named spawned task with done callbacks, where a panic becomes an
//!   error. `wait_for_first` / `wait_for_all` wait on any mix of them.
//! - [`helpers::tick`]: a ticker on a fixed grid whose schedule can change while it ticks,
//!   with a pauser.
//! - [`helpers::task_holder()`]: keeps spawned tasks until they finish, releases them as
//!   they do, and on the way out waits for them, or cancels them if the context is done.
//! - [`helpers::queue()`] and [`helpers::sync_queue()`]: async and thread queues with
//!   priority items, instructions and a breaker, that end when their context does.
//! - the queue manager: one stream from many kinds of sources, where sources may produce
//!   more sources.
//! - the odd helpers: [`helpers::using`] / [`helpers::ensure_aexit`] (async context
//!   managers), [`helpers::AsyncGenerator`] with [`helpers::stop_async_generator`], and
//!   the result helpers.
//!
//! Porting code: [from Python machinery](guide#coming-from-python-machinery) and
//! [from tokio / tokio-util](guide#coming-from-tokio--tokio-util) (the [`guide`]).
//!
//! ```
//! use machinery::helpers as hp;
//! use std::time::Duration;
//! use futures_util::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let root = hp::Ctx::beginning("app");
//!
//! // A queue fed by a task held by a task holder; a ticker paces the producer.
//! let mut queue = hp::queue::<u64>(&root).build();
//! let producer = queue.handle();
//! let ts = hp::task_holder(&root);
//! let ticks = hp::tick(Duration::from_secs(1), &root).max_iterations(3).build().unwrap();
//! ts.spawn(async move {
//!     let mut ticks = ticks;
//!     while let Some((i, _)) = ticks.next().await {
//!         producer.append(i).unwrap(); // `Err` gives `i` back if the queue is gone
//!     }
//! });
//! ts.finish().await;
//! assert_eq!(queue.remaining().collect::<Vec<_>>(), [1, 2, 3]);
//!
//! root.cancel(); // finishes the queue's and the ticker's child contexts too
//! assert!(queue.ctx().done());
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]

pub mod guide;
pub mod helpers;
pub(crate) mod sync;

/// The README's example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
