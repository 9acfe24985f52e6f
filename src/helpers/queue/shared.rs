//! The part of an async queue that producers and the consumer share.
//!
//! # Invariants
//! 1. The queue's logical order is `deque[..ahead] ++ batch ++ deque[ahead..]`, where
//!    `batch` is the consumer's private buffer (see `Queue`). `ahead` counts entries
//!    pushed to the front with priority since the consumer last took a batch.
//! 2. `ahead_flag` is true whenever `ahead > 0` (it may briefly stay true after the
//!    consumer took them, which only costs one extra lock).
//! 3. `batch_len` is the length of the consumer's batch; it is written only by the
//!    consumer, under the lock whenever entries move between `deque` and the batch.
//! 4. Once `closed`, `deque` is empty and stays empty: appends are refused.
//!
//! # Lock order
//! One lock. No user code runs and no waker is woken while it is held.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::task::Waker;

use super::drop_later::drop_all;
use crate::helpers::Event;
use crate::helpers::debug::{Live, QUEUES};
use crate::sync::{AtomicBool, AtomicUsize, Mutex, lock};

/// A callable queued with `append_instruction`: run when reached, nothing yielded.
pub(crate) type Instruction = Box<dyn FnOnce() + Send + 'static>;

/// One queued entry.
pub(crate) enum Entry<T> {
    /// A value to yield.
    Item(T),
    /// A callable to run.
    Instruction(Instruction),
}

/// Which end of the queue an entry goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Behind everything queued.
    Back,
    /// Before everything queued.
    Front,
}

pub(crate) struct State<T: 'static> {
    pub(crate) deque: VecDeque<Entry<T>>,
    pub(crate) ahead: usize,
    pub(crate) waker: Option<Waker>,
    pub(crate) closed: bool,
}

pub(crate) struct Shared<T: 'static> {
    pub(crate) state: Mutex<State<T>>,
    pub(crate) ahead_flag: AtomicBool,
    pub(crate) batch_len: AtomicUsize,
    pub(crate) breaker: Event,
    _live: Live<QUEUES>,
}

impl<T: 'static> Shared<T> {
    pub(crate) fn new() -> Self {
        Shared {
            state: Mutex::new(State {
                deque: VecDeque::new(),
                ahead: 0,
                waker: None,
                closed: false,
            }),
            ahead_flag: AtomicBool::new(false),
            batch_len: AtomicUsize::new(0),
            breaker: Event::new(),
            _live: Live::new(),
        }
    }

    /// Queues `entry` at `end`; false when the queue is closed.
    pub(crate) fn push(&self, entry: Entry<T>, end: End) -> bool {
        let waker = {
            let mut st = lock(&self.state);
            if st.closed {
                drop(st);
                // Outside the lock: dropping it may run user Drop code (which may append
                // again: `drop_all` keeps that iterative).
                drop_all(Some(entry), "queue entry drop");
                return false;
            }
            if end == End::Front {
                st.deque.push_front(entry);
                st.ahead += 1;
                // Release: pairs with the Acquire in `Queue::take`; the lock orders the rest.
                self.ahead_flag.store(true, Release);
            } else {
                st.deque.push_back(entry);
            }
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Wakes a consumer waiting for entries (used when the ctx or the breaker fires).
    pub(crate) fn wake(&self) {
        let waker = lock(&self.state).waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Queued entries (items and instructions), the consumer's batch included.
    pub(crate) fn len(&self) -> usize {
        let st = lock(&self.state);
        // Relaxed: a snapshot; every move between deque and batch happens under this lock.
        st.deque.len() + self.batch_len.load(Relaxed)
    }

    /// Whether the consumer must merge priority entries into its batch.
    pub(crate) fn has_ahead(&self) -> bool {
        // Acquire: pairs with the Release store in `push`.
        self.ahead_flag.load(Acquire)
    }
}
