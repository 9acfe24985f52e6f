//! The task holder: tasks held until they finish, released as they finish, and all
//! cancelled (cleanup included) when the holder's context is cancelled.

use std::time::Duration;

use machinery::helpers as hp;
use tokio::time::{Instant, sleep};

/// Prints when a task's future is dropped: its synchronous cleanup.
struct Cleanup(&'static str);

impl Drop for Cleanup {
    fn drop(&mut self) {
        println!("  cleanup of {} ran", self.0);
    }
}

pub async fn run() {
    println!("\n== task holder");
    let root = hp::Ctx::beginning("app");
    let ctx = root.child("jobs").drop_guard();
    let start = Instant::now();

    let out = hp::task_holder_scope(&ctx, async |ts| {
        ts.spawn(async { sleep(Duration::from_secs(2)).await });
        let quick = ts.spawn(async { "quick" });
        println!("  holding {} tasks", ts.pending());
        // Joining gives the output by value (any `T: Send`, as a JoinHandle).
        println!(
            "  quick -> {:?}; still held: {}",
            quick.join().await,
            ts.contains(&quick)
        );
        Ok::<_, hp::Error>("scope body done")
    })
    .await;
    println!(
        "  scoped holder returned {out:?} at {}s",
        start.elapsed().as_secs()
    );

    // Spawn many, wait for all: no `Task` handle, at tokio-util `TaskTracker`'s cost.
    let batch = hp::task_holder(&ctx);
    for i in 0..1000u64 {
        assert!(batch.spawn_detached(async move {
            std::hint::black_box(i);
        }));
    }
    println!("  1000 detached tasks, pending: {}", batch.pending());
    batch.finish().await;
    println!("  finish returned: all 1000 ran");

    let ts = hp::TaskHolder::builder(&ctx)
        .name("workers")
        .limit(2)
        .build();
    let failing = ts.spawn(async { panic!("worker failed") });
    failing.wait().await;
    println!(
        "  a failing task is logged and released: {}",
        hp::fut_to_string(&failing)
    );
    for name in ["a", "b", "c"] {
        let cleanup = Cleanup(name); // moved into the future: dropped with it
        ts.spawn(async move {
            let _cleanup = cleanup;
            sleep(Duration::from_secs(60)).await;
        });
    }
    // Scoped work gets its own child context, named after the task: cancellation reaches
    // it there and it finishes what it is doing (graceful shutdown).
    ts.spawn_scoped("connection", |c: hp::Ctx| async move {
        c.wait().await;
        sleep(Duration::from_secs(1)).await; // answers the line in hand
        println!("  {} said goodbye", c.name());
    });
    let held: Vec<String> = ts.iter().map(|t| format!("{t:?}")).collect();
    println!("  held in insertion order (2 running, 2 waiting their turn): {held:?}");

    let c = ctx.ctx().clone();
    tokio::spawn(async move {
        sleep(Duration::from_secs(5)).await;
        println!("  cancelling {}", c.name());
        c.cancel();
    });
    let t = Instant::now();
    ts.finish().await;
    println!(
        "  finish returned after {}s, every cleanup done; {} is done: {}",
        t.elapsed().as_secs(),
        root.name(),
        root.done()
    );

    // A typed joinable holder (tokio's JoinSet<T>) with backpressure: `reserve` waits for
    // one of the 2 slots before adding; outputs come in completion order.
    let shipper = hp::Ctx::beginning("shipper");
    let js = hp::TaskHolder::builder(&shipper)
        .limit(2)
        .build_joinable::<u64>();
    for secs in [4, 1, 2] {
        js.reserve().await.spawn(async move {
            sleep(Duration::from_secs(secs)).await;
            secs
        });
    }
    let mut joined = Vec::new();
    while let Some(out) = js.join_next().await {
        joined.push(out.unwrap());
    }
    println!("  batches joined in completion order: {joined:?}");
    // A closed holder refuses work visibly: the try form gives it back.
    shipper.cancel();
    let last_batch = ["line"; 3];
    let refused = js
        .try_spawn(async move { last_batch.len() as u64 })
        .unwrap_err();
    let why = refused.to_string();
    let shipped = refused.into_inner().await;
    println!("  {why}: the last batch came back and shipped here: {shipped} lines");
}
