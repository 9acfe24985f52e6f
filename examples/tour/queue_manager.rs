//! The queue manager: one stream of results from functions, iterators, generators,
//! values, futures, tasks and streams, with extension (a source producing sources),
//! failures, contexts, and a stop when the context is cancelled.
//!
//! The order is the turn model's (SEMANTICS, "Turn model"; the worked example in the
//! `queue_manager` module docs): a step of a source puts the extension of its item and
//! the next step at the back of the queue, so a value surfaces one round after its step;
//! each result names its chain of sources, producer first (`[TASK#6, COROUTINE#5]`: a
//! future is a COROUTINE that spawns a TASK).

use std::time::Duration;

use futures::StreamExt;
use machinery::helpers::{self as hp, Feed, QueueManagerResult as R};
use tokio::time::Instant;

fn show(r: &R<String, &'static str>) -> String {
    let chain = |s: &hp::Sources| format!("{s:?}");
    match r {
        R::Success {
            sources,
            value,
            context,
        } => format!("Success {value:?} ctx={context:?} from {}", chain(sources)),
        R::Failure {
            sources,
            error,
            context,
            ..
        } => format!("Failure {error} ctx={context:?} from {}", chain(sources)),
        R::IterationStop {
            sources,
            error,
            context,
            ..
        } => {
            format!(
                "IterationStop error={error:?} ctx={context:?} from {}",
                chain(sources)
            )
        }
        R::Stopped { error } => format!("Stopped error={error:?}"),
    }
}

/// The worked example of the module docs, step by step, with the chains the model gives.
async fn turns() {
    let root = hp::Ctx::beginning("turns");
    let (mut streamer, feeder) =
        hp::queue_manager_with_empty_context::<i32, &'static str>(&root, "queue_manager", || "-");
    feeder.add_sync_iterator_with_context([1, 2], "list"); // SYNC_ITERATOR#1: [St1]
    feeder.add_value(10); // VALUE#2: [St1, S10]
    feeder.add_sync_function(|| Feed::generator([20])); // #3 runs now, SYNC_GENERATOR#4
    feeder.add_coroutine(async { 30 }); // COROUTINE#5 spawns TASK#6
    feeder.set_as_finished_if_out_of_sources();
    let mut seen = Vec::new();
    while let Some(r) = streamer.next().await {
        let line = match &r {
            R::Success { value, sources, .. } => format!("{value} {sources:?}"),
            R::IterationStop { sources, .. } => format!("end {sources:?}"),
            R::Failure { error, .. } => format!("failed {error}"),
            R::Stopped { error } => format!("stopped {error:?}"),
        };
        println!("  {line}");
        seen.push(line);
    }
    assert_eq!(
        seen,
        [
            "10 [VALUE#2]",
            "1 [SYNC_ITERATOR#1]",
            "20 [SYNC_GENERATOR#4, SYNC_FUNCTION#3]",
            "end [SYNC_GENERATOR#4, SYNC_FUNCTION#3]",
            "2 [SYNC_ITERATOR#1]",
            "end [SYNC_ITERATOR#1]",
            "30 [TASK#6, COROUTINE#5]",
            "stopped None",
        ]
    );
}

/// One bad line and go on (`Feed::item_error`), then a stop: the rest of the iterator
/// comes back in its `IterationStop`, to count or re-queue.
async fn nothing_lost() {
    let root = hp::Ctx::beginning("parser");
    let (mut streamer, feeder) = hp::queue_manager::<u32, ()>(&root);
    let lines = ["1", "x", "3", "4", "5"].map(|l| match l.parse::<u32>() {
        Ok(n) => Feed::Value(n),
        Err(e) => Feed::item_error(hp::Error::msg(format!("line {l:?}: {e}"))),
    });
    feeder.add_sync_iterator(lines);
    let mut left = 0;
    while let Some(mut r) = streamer.next().await {
        if let Some(Feed::Iterator(rest)) = r.take_unread() {
            left = rest.count();
        }
        match r {
            R::Success { value, .. } => {
                println!("  parsed {value}");
                if value == 3 {
                    streamer.ctx().cancel(); // stop: 4 is produced already, 5 is not
                }
            }
            R::Failure { error, .. } => println!("  bad line, going on: {error}"),
            R::IterationStop { error, .. } => println!("  iterator ended: {error:?}"),
            R::Stopped { error } => println!("  stopped: {error:?}"),
        }
    }
    println!("  lines handed back unread: {left}");
    assert_eq!(left, 1);
}

pub async fn run() {
    println!("\n== queue manager: the turn model");
    turns().await;
    println!("\n== queue manager: one bad item, a stop, and what comes back");
    nothing_lost().await;
    println!("\n== queue manager");
    let root = hp::Ctx::beginning("app");
    let start = Instant::now();
    let (mut streamer, feeder) =
        hp::queue_manager_with_empty_context::<String, &'static str>(&root, "qm", || "-");

    feeder.add_sync_function_with_context(|| "from a function".to_string(), "fn");
    feeder.add_value("a value".to_string());
    feeder.add_sync_iterator_with_context(["list 1".to_string(), "list 2".to_string()], "list");
    feeder.add_sync_generator_with_context(
        (1..=2).map(|i| {
            if i == 2 {
                // A generator producing a source: a future that produces an iterator.
                Feed::future(async {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Feed::iterator(["nested a".to_string(), "nested b".to_string()])
                })
            } else {
                Feed::Value(format!("gen {i}"))
            }
        }),
        "gen",
    );
    feeder.add_coroutine_with_context(
        async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "a future after 2s".to_string()
        },
        "future",
    );
    feeder.add_task_with_context(
        hp::Task::spawn(async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "a task after 3s".to_string()
        }),
        "task",
    );
    feeder.add_async_generator_with_context(
        futures::stream::iter(1..=2).then(|i| async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            format!("stream {i}")
        }),
        "stream",
    );
    feeder.add_sync_function_with_context(
        || Feed::<String, &str>::error(hp::Error::msg("this one failed")),
        "bad",
    );
    feeder.add_coroutine_with_context(
        async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "never".to_string()
        },
        "slow",
    );
    let r2 = root.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        println!("  (cancelling the context at 5s)");
        r2.cancel();
    });

    while let Some(result) = streamer.next().await {
        println!(
            "  {:>4.1}s {}",
            start.elapsed().as_secs_f32(),
            show(&result)
        );
    }
    println!("  live sources at the end: {}", feeder.live_sources());
    for c in streamer.cut_short() {
        println!(
            "  cut short by the stop: {:?} ctx={:?}",
            c.sources, c.context
        );
    }
    streamer.close().await;
}
