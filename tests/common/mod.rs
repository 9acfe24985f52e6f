//! Test helpers shared by the ctx test files.
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
