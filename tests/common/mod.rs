//! Test helpers shared by several test files.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use machinery::helpers as hp;

/// An error with a fixed message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Boom(pub &'static str);

/// What a [`Capture`] logger recorded, one line per message.
pub type Log = Arc<Mutex<Vec<String>>>;

/// A logger that keeps every message: `info CTX: MSG` and `exception CTX: MSG: TYPE:ERR`.
#[derive(Clone, Default)]
pub struct Capture(pub Log);

impl hp::Logger for Capture {
    fn info(&self, ctx: &str, msg: &str) {
        self.0.lock().unwrap().push(format!("info {ctx}: {msg}"));
    }
    fn exception(&self, ctx: &str, msg: &str, err: Option<&hp::Error>) {
        let e = err.map_or("-".to_owned(), |e| format!("{}:{e}", e.type_name()));
        self.0
            .lock()
            .unwrap()
            .push(format!("exception {ctx}: {msg}: {e}"));
    }
}

/// Takes what was logged so far.
pub fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// How long a multi-thread stress test may run before it fails instead of hanging.
pub const WATCHDOG: std::time::Duration = std::time::Duration::from_secs(30);

/// A small seeded generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}
