//! The porting guide (`docs/PORTING.md`): from Python machinery and from tokio.
//!
//! Included here so that every snippet runs as a doctest.
#![doc = include_str!("../docs/PORTING.md")]
