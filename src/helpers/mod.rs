//! The `hp` surface: `use machinery::helpers as hp;`.
//!
//! Re-exports only; each helper lives in its own module.

mod callbacks;
mod completion;
pub mod ctx;
pub mod debug;
pub mod error;
pub mod event;
pub mod future;
pub mod generator;
mod panics;
pub mod protocols;
pub mod queue;
pub mod queue_manager;
pub mod results;
pub mod scope;
pub mod shutdown;
pub mod sync_queue;
pub mod task;
pub mod task_holder;
pub mod ticker;
pub mod wait;

pub use ctx::{Ctx, CtxGuard, CtxOptions, CtxWait, Logger, TracingLogger, WithTimeout};
pub use ctx::{CtxSnapshot, CtxState};
pub use error::{
    BoxError, DeadlineExceeded, Error, ErrorGroup, Failure, Message, Outcome, Panicked, StatusError,
};
pub use event::Event;
pub use future::{Fut, FutOutcome};
pub use generator::{
    AsyncGenerator, Co, GeneratorExit, GeneratorReturn, IgnoredGeneratorExit, StopGenerator,
    TryGenerator, Yield, stop_async_generator,
};
pub use protocols::{
    CallbackHandle, DoneCallback, FutureState, FutureStatus, NamedFuture, WaitByCallback, WithRepr,
    fut_state_to_string, fut_to_string,
};
pub use queue::{
    AppendError, GetAll, Iterations, LimitedQueue, Queue, QueueHandle, QueueOptions, Remaining,
    queue,
};
pub use queue_manager::{
    CHAIN_KEEP, CutShort, Feed, QueueFeeder, QueueInput, QueueManagerResult, ResultContext,
    SourceId, Sources, Streamer, TaskFeed, queue_manager, queue_manager_named,
    queue_manager_scoped, queue_manager_with_empty_context,
};
pub use results::{find_and_apply_result, noncancelled_results_from_futs};
pub use scope::{AsyncContextManager, ensure_aexit, using};
pub use shutdown::{Drain, DrainEnd, ShutdownReport};
#[cfg(feature = "signal")]
pub use shutdown::{ShutdownSignal, Signals, on_shutdown_signals};
pub use sync_queue::{
    SyncGetError, SyncQueue, SyncQueueHandle, SyncQueueIter, SyncQueueOptions, SyncRemaining,
    sync_queue,
};
pub use task::{AnyTask, OutputTaken, Task, TaskId, TaskJoin};
pub use task_holder::{
    JoinHolder, JoinHolderHandle, JoinSlot, Refused, Slot, TaskHolder, TaskHolderBuilder,
    TaskHolderHandle, join_holder, task_holder, task_holder_scope,
};
pub use ticker::{Ticker, TickerBuilder, TickerControl, TickerError, tick};
pub use wait::{WaitDone, wait_for_all, wait_for_first};
