//! The async queue: two producers, a priority item, an instruction, a hook, and the end
//! of iteration when the context is done (what is left stays for `remaining`). Then
//! producers ending a stream (the last handle's drop closes the queue; a late append comes
//! back), and the sync queue as a worker pool: two threads share a burst of jobs.

use std::time::Duration;

use futures::StreamExt;
use machinery::helpers as hp;

pub async fn run() {
    println!("\n== queue");
    let root = hp::Ctx::beginning("app");
    let mut queue = hp::queue::<String>(&root).name("jobs").build();
    queue.process_after_yielded(|view| {
        if view.len() == 1 {
            println!("  hook: one entry left");
        }
    });
    for (name, every) in [("fast", 1), ("slow", 3)] {
        let h = queue.handle();
        tokio::spawn(async move {
            for i in 1..=3 {
                tokio::time::sleep(Duration::from_secs(every)).await;
                if let Err(refused) = h.append(format!("{name}-{i}")) {
                    // The queue was dropped meanwhile: the item comes back.
                    let item = refused.into_inner();
                    println!("  (later) {item} came back: the queue is gone");
                }
            }
        });
    }
    let h = queue.handle();
    let qctx = queue.ctx().clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(4500)).await;
        h.append_instruction(|| println!("  instruction ran (nothing yielded)"))
            .unwrap();
        h.append_front("urgent".to_string()).unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!("  cancelling the queue's context at 6.5s");
        qctx.cancel();
        h.append("late".to_string()).unwrap();
    });
    let start = tokio::time::Instant::now();
    let mut all = queue.get_all();
    while let Some(item) = all.next().await {
        println!("  {:>4.1}s got {item}", start.elapsed().as_secs_f64());
    }
    drop(all);
    println!(
        "  iteration ended; remaining: {:?}",
        queue.remaining().collect::<Vec<_>>()
    );
    producers_close().await;
    sync_worker_pool().await;
}

/// The last producer handle's drop ends the consumer's loop; an append after it comes back.
async fn producers_close() {
    println!("  producers end the stream: the last handle's drop closes the queue");
    let root = hp::Ctx::beginning("app");
    let mut lines = hp::queue::<String>(&root)
        .close_when_handles_dropped(true)
        .build();
    let tx = lines.handle();
    tokio::spawn(async move {
        for n in 1..=2 {
            tx.append(format!("line {n}")).unwrap();
        }
    }); // `tx` drops with the task
    let got: Vec<String> = lines.get_all().collect().await;
    println!("    got {got:?}, then the iteration ended");
    let refused = lines.append("late".to_string()).unwrap_err();
    let why = refused.to_string();
    let back = refused.into_inner();
    println!("    a late append: {why}; the caller has {back:?} back");
}

/// Two worker threads take jobs one at a time with `get`; a burst of six is shared.
async fn sync_worker_pool() {
    println!("  sync queue: two worker threads share a burst of 6 jobs");
    let root = hp::Ctx::beginning("app");
    let jobs = hp::sync_queue::<u32>(&root)
        .name("jobs")
        .empty_on_finished(true)
        .build();
    let workers: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|name| {
            let jobs = jobs.clone();
            tokio::task::spawn_blocking(move || {
                let mut done = Vec::new();
                while let Ok(job) = jobs.get(Duration::from_secs(60)) {
                    std::thread::sleep(Duration::from_millis(5)); // the work
                    done.push(job);
                }
                (name, done)
            })
        })
        .collect();
    (1..=6).for_each(|job| {
        jobs.append(job).unwrap();
    });
    jobs.ctx().cancel(); // empty_on_finished: the workers drain the queue, then stop
    let mut all = Vec::new();
    for w in workers {
        let (_name, done) = w.await.expect("worker");
        all.extend(done); // how the six split between w1 and w2 depends on thread timing
    }
    all.sort_unstable();
    println!("    handled, each once: {all:?}");
    assert_eq!(all, [1, 2, 3, 4, 5, 6]);
}
