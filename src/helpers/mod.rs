//! The `hp` surface: `use machinery::helpers as hp;`.
//!
//! Re-exports only; each helper lives in its own module.

mod callbacks;
mod completion;
pub mod ctx;
pub mod error;
mod event;
mod future;
pub mod protocols;
pub mod queue_manager;
mod task;
mod wait;

pub use ctx::{Ctx, CtxGuard, CtxOptions, CtxWait, Logger, TracingLogger, WithTimeout};
pub use error::{
    DeadlineExceeded, Error, ErrorGroup, Failure, Message, Outcome, Panicked, StatusError,
};
pub use event::Event;
pub use future::{Fut, FutOutcome};
pub use protocols::{
    CallbackHandle, DoneCallback, FutureState, FutureStatus, NamedFuture, WaitByCallback, WithRepr,
    fut_to_string,
};
pub use queue_manager::{
    Feed, QueueFeeder, QueueInput, QueueManagerResult, SourceId, Sources, Streamer, TaskFeed,
    queue_manager, queue_manager_named, queue_manager_scoped,
};
pub use task::{AnyTask, Task, TaskId, TaskOutcome};
pub use wait::{WaitDone, wait_for_all, wait_for_first};
