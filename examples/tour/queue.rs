//! The async queue: two producers, a priority item, an instruction, a hook, and the end
//! of iteration when the context is done (what is left stays for `remaining`).

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
                h.append(format!("{name}-{i}"));
            }
        });
    }
    let h = queue.handle();
    let qctx = queue.ctx().clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(4500)).await;
        h.append_instruction(|| println!("  instruction ran (nothing yielded)"));
        h.append_front("urgent".to_string());
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!("  cancelling the queue's context at 6.5s");
        qctx.cancel();
        h.append("late".to_string());
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
}
