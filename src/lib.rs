//! # machinery
//!
//! Async helpers for tokio that keep concurrent programs free of leaks and forgotten work.
//!
//! Users write `use machinery::helpers as hp;`.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]

pub mod helpers;
pub(crate) mod sync;
