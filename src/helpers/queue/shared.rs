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
//! 4. Once `consumer_gone`, `deque` is empty and stays empty: appends are refused.
//! 5. Once `closed` (by a producer), appends are refused; what `deque` holds is still
//!    taken. So `closed` with an empty deque and batch means everything appended before
//!    the close was taken: the iteration ends.
//!
//! # Lock order
//! One lock. No user code runs and no waker is woken while it is held.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::task::Waker;

use super::append_error::{AppendError, Why};
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
    /// The `Queue` (the consumer) was dropped.
    pub(crate) consumer_gone: bool,
    /// A producer closed the queue.
    pub(crate) closed: bool,
}

pub(crate) struct Shared<T: 'static> {
    pub(crate) state: Mutex<State<T>>,
    pub(crate) ahead_flag: AtomicBool,
    pub(crate) batch_len: AtomicUsize,
    pub(crate) breaker: Event,
    /// Live `QueueHandle`s (producer handles).
    pub(crate) producers: AtomicUsize,
    /// Close the queue when the last `QueueHandle` is dropped.
    pub(crate) close_with_handles: bool,
    _live: Live<QUEUES>,
}

impl<T: 'static> Shared<T> {
    pub(crate) fn new(close_with_handles: bool) -> Self {
        Shared {
            state: Mutex::new(State {
                deque: VecDeque::new(),
                ahead: 0,
                waker: None,
                consumer_gone: false,
                closed: false,
            }),
            ahead_flag: AtomicBool::new(false),
            batch_len: AtomicUsize::new(0),
            breaker: Event::new(),
            producers: AtomicUsize::new(0),
            close_with_handles,
            _live: Live::new(),
        }
    }

    /// Queues `value` (made an entry by `wrap`, under the lock) at `end`; gives it back
    /// when the queue is closed or its consumer is gone.
    ///
    /// A refused value is returned untouched: no user code (its `Drop`) runs here.
    pub(crate) fn push<V>(
        &self,
        value: V,
        wrap: impl FnOnce(V) -> Entry<T>,
        end: End,
    ) -> Result<(), AppendError<V>> {
        let waker = {
            let mut st = lock(&self.state);
            if st.consumer_gone {
                return Err(AppendError::new(value, Why::ConsumerGone));
            }
            if st.closed {
                return Err(AppendError::new(value, Why::Closed));
            }
            let entry = wrap(value);
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
        Ok(())
    }

    /// Closes the queue from the producer side and wakes a waiting consumer; true when
    /// this call closed it.
    pub(crate) fn close(&self) -> bool {
        let (first, waker) = {
            let mut st = lock(&self.state);
            let first = !st.closed;
            st.closed = true;
            (first, st.waker.take())
        };
        if let Some(w) = waker {
            w.wake();
        }
        first
    }

    /// Whether a producer closed the queue.
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.state).closed
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
