//! tick.interval: `hp::tick` beside `tokio::time::interval`, real time, 10 ms × 200 ticks,
//! idle and with a 25 ms stall every 20th tick. Reports mean/max lateness against the
//! ideal grid `start + k·10 ms` (for a skipped grid point: against the grid point the
//! tick stands for), ticks closer than half a period ("double ticks"), and CPU time of the
//! runtime thread (current-thread runtime, `/proc/thread-self/schedstat`).
//!
//! `cargo bench --bench ticker`

use std::time::Duration;

use futures::StreamExt;
use machinery::helpers as hp;
use tokio::time::{Instant, MissedTickBehavior};

const EVERY: Duration = Duration::from_millis(10);
const TICKS: usize = 200;
const STALL: Duration = Duration::from_millis(25);

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Report {
    mean_late_us: f64,
    max_late_us: f64,
    doubles: usize,
    cpu_ms: f64,
}

/// `ticks` holds (scheduled instant, actual instant) per tick.
fn report(ticks: &[(Instant, Instant)], cpu_ns: u64) -> Report {
    let late: Vec<f64> = ticks
        .iter()
        .map(|(due, at)| at.saturating_duration_since(*due).as_nanos() as f64 / 1000.0)
        .collect();
    let doubles = ticks
        .windows(2)
        .filter(|w| w[1].1 - w[0].1 < Duration::from_millis(2))
        .count();
    Report {
        mean_late_us: late.iter().sum::<f64>() / late.len() as f64,
        max_late_us: late.iter().cloned().fold(0.0, f64::max),
        doubles,
        cpu_ms: cpu_ns as f64 / 1e6,
    }
}

fn stall(i: usize, stalls: bool) {
    if stalls && i % 20 == 19 {
        std::thread::sleep(STALL); // a blocking loop body
    }
}

async fn ours(min_wait: Option<Duration>, stalls: bool) -> Report {
    let ctx = hp::Ctx::beginning("bench");
    let mut ticker = hp::tick(EVERY, &ctx)
        .min_wait(min_wait)
        .max_iterations(TICKS as u64)
        .build()
        .unwrap();
    let cpu = thread_cpu_ns();
    let mut due = Instant::now();
    let mut ticks = Vec::with_capacity(TICKS);
    while let Some((i, till_next)) = ticker.next().await {
        let now = Instant::now();
        ticks.push((due, now));
        due = now + till_next;
        stall(i as usize, stalls);
    }
    report(&ticks, thread_cpu_ns() - cpu)
}

async fn interval(behavior: MissedTickBehavior, stalls: bool) -> Report {
    let mut iv = tokio::time::interval(EVERY);
    iv.set_missed_tick_behavior(behavior);
    let cpu = thread_cpu_ns();
    let mut ticks = Vec::with_capacity(TICKS);
    for i in 0..TICKS {
        let due = iv.tick().await;
        ticks.push((due, Instant::now()));
        stall(i + 1, stalls);
    }
    report(&ticks, thread_cpu_ns() - cpu)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("tick.interval: 10 ms x 200 ticks, real time, current-thread runtime");
    println!(
        "{:<44} {:>8} {:>12} {:>11} {:>8} {:>8}",
        "impl", "variant", "mean late us", "max late us", "doubles", "cpu ms"
    );
    for stalls in [false, true] {
        let variant = if stalls { "stalls" } else { "idle" };
        let runs: Vec<(&str, Report)> = vec![
            (
                "machinery hp::tick min_wait(None)",
                rt.block_on(ours(None, stalls)),
            ),
            (
                "machinery hp::tick min_wait(0)",
                rt.block_on(ours(Some(Duration::ZERO), stalls)),
            ),
            (
                "tokio interval (Burst, default)",
                rt.block_on(interval(MissedTickBehavior::Burst, stalls)),
            ),
            (
                "tokio interval (Skip)",
                rt.block_on(interval(MissedTickBehavior::Skip, stalls)),
            ),
        ];
        for (name, r) in runs {
            println!(
                "{:<44} {:>8} {:>12.0} {:>11.0} {:>8} {:>8.2}",
                name, variant, r.mean_late_us, r.max_late_us, r.doubles, r.cpu_ms
            );
        }
    }
}
