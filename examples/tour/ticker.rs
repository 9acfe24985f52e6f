//! The ticker: a grid that accounts for the loop body, a schedule change (for good and
//! once only), a pause, and `max_time`.

use std::time::Duration;

use futures::StreamExt;
use machinery::helpers as hp;
use tokio::time::{Instant, sleep};

pub async fn run() {
    println!("\n== ticker");
    let ctx = hp::Ctx::beginning("app");
    let start = Instant::now();
    let mut ticker = hp::tick(Duration::from_secs(10), &ctx)
        .name("heartbeat")
        .max_time(Duration::from_secs(200))
        .build()
        .expect("every is not zero");
    let pauser = ticker.pauser().clone();
    while let Some((i, till_next)) = ticker.next().await {
        println!(
            "  tick {i} at {:>3}s (next in {}s)",
            start.elapsed().as_secs(),
            till_next.as_secs()
        );
        sleep(Duration::from_secs(8)).await; // the loop body takes 8 s of every 10
        match i {
            2 => {
                println!("  change_after(20s): every 20 s from the last tick on");
                ticker.change_after(Duration::from_secs(20)).unwrap();
            }
            4 => {
                println!("  change_once(40s): one long gap, then back to every 20 s");
                ticker.change_once(Duration::from_secs(40)).unwrap();
            }
            6 => {
                println!("  pausing for 45 s (holding the pauser's permit)");
                let permit = pauser.clone().acquire_owned().await.unwrap();
                tokio::spawn(async move {
                    sleep(Duration::from_secs(45)).await;
                    drop(permit);
                });
            }
            _ => {}
        }
    }
    println!(
        "  the stream ended at {}s: the next tick would have been at or after max_time 200s",
        start.elapsed().as_secs()
    );

    // The floor: ticks come at least `min_wait` (100 ms by default) apart, so a faster
    // period ticks at 10 Hz (and `build` emits one tracing WARN saying so).
    for min_wait in [Some(Duration::from_millis(100)), None] {
        let start = Instant::now();
        let at: Vec<u128> = hp::tick(Duration::from_millis(50), &ctx)
            .min_wait(min_wait)
            .max_iterations(4)
            .build()
            .expect("every is not zero")
            .map(|_| start.elapsed().as_millis())
            .collect()
            .await;
        println!("  tick(50 ms) with min_wait {min_wait:?}: ticks at {at:?} ms");
    }
}
