//! tick.interval: `hp::tick` beside `tokio::time::interval`, in real time.
//!
//! tick.rate: ticks per second of `tick(100 ms)` with the default `min_wait` over 2 s of
//! real time, beside `interval(100 ms)`: timer jitter must not make it skip grid points.
//!
//! 200 ticks of 10 ms, idle and with a 25 ms stall in the loop body every 20th tick:
//! mean and max lateness against the ideal grid, double ticks (two ticks less than 2 ms
//! apart: back to back, as the Python original's `min_wait=0` and interval's `Burst`
//! catch-up give), and the CPU time of the runtime thread. Lateness is against the
//! instant each tick was due: interval's `tick()` returns it; ours is the previous tick's
//! instant plus the `time_till_next` the ticker gave with it. A tick that stands for a
//! grid point missed during a stall is late by the stall.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::measure::{OURS, Report, current_thread, thread_cpu};

pub const TICKS: usize = 200;
pub const EVERY: Duration = Duration::from_millis(10);
pub const STALL: Duration = Duration::from_millis(25);
/// Ticks closer than this count as a double tick.
const DOUBLE: Duration = Duration::from_millis(2);

/// tick.rate: how many ticks `tick(100 ms)` (default `min_wait`) and `interval(100 ms)`
/// give in 2 s of real time, as ticks per second.
fn rate(r: &mut Report) {
    const WINDOW: Duration = Duration::from_secs(2);
    const PERIOD: Duration = Duration::from_millis(100);
    let v = "tick(100ms), default min_wait, 2 s real time";
    let rt = current_thread();
    let ours = rt.block_on(async {
        use futures::StreamExt;
        let ctx = machinery::helpers::Ctx::beginning("bench");
        let ticker = machinery::helpers::tick(PERIOD, &ctx)
            .max_time(WINDOW)
            .build()
            .expect("every is not zero");
        ticker.count().await
    });
    r.add(
        "tick.rate",
        OURS,
        v,
        ours as f64 / WINDOW.as_secs_f64(),
        "ticks/s",
    );
    let theirs = rt.block_on(async {
        let start = Instant::now();
        let mut interval = tokio::time::interval(PERIOD);
        let mut n = 0;
        while interval.tick().await < start + WINDOW {
            n += 1;
        }
        n
    });
    r.add(
        "tick.rate",
        "tokio interval",
        v,
        theirs as f64 / WINDOW.as_secs_f64(),
        "ticks/s",
    );
}

pub fn run(r: &mut Report) {
    if r.wants("tick.rate") {
        rate(r);
    }
    if !r.wants("tick.interval") {
        return;
    }
    for stalls in [false, true] {
        let v = if stalls {
            "10ms x 200, 25ms stalls"
        } else {
            "10ms x 200, idle"
        };
        let rt = current_thread();
        // `min_wait(None)`: tick on the grid, skipping missed points (what interval's
        // Skip does); the seed's default min_wait (100 ms) would slow a 10 ms ticker.
        rt.block_on(ours::ticks(None, stalls)).record(r, OURS, v);
        for (imp, behavior) in [
            ("tokio interval (Burst)", MissedTickBehavior::Burst),
            ("tokio interval (Skip)", MissedTickBehavior::Skip),
        ] {
            rt.block_on(interval(behavior, stalls)).record(r, imp, v);
        }
        let v = format!("{v}, min_wait(0)");
        rt.block_on(ours::ticks(Some(Duration::ZERO), stalls))
            .record(r, OURS, &v);
    }
}

/// The loop body: a 25 ms blocking stall after every 20th tick when `stalls`.
fn body(i: usize, stalls: bool) {
    if stalls && i % 20 == 19 {
        std::thread::sleep(STALL);
    }
}

async fn interval(behavior: MissedTickBehavior, stalls: bool) -> Stats {
    let mut interval = tokio::time::interval(EVERY);
    interval.set_missed_tick_behavior(behavior);
    let mut ticks = Vec::with_capacity(TICKS);
    let cpu0 = thread_cpu();
    for i in 0..TICKS {
        let due = interval.tick().await;
        ticks.push((due, Instant::now()));
        body(i, stalls);
    }
    Stats::new(&ticks, thread_cpu() - cpu0)
}

/// Lateness and CPU figures of one run.
pub struct Stats {
    mean_late: Duration,
    max_late: Duration,
    doubles: usize,
    cpu: Duration,
}

impl Stats {
    /// `ticks[i]` is (the instant tick i was due, the instant it was yielded).
    pub fn new(ticks: &[(Instant, Instant)], cpu: Duration) -> Self {
        let lateness: Vec<Duration> = ticks
            .iter()
            .map(|(due, at)| at.saturating_duration_since(*due))
            .collect();
        let doubles = ticks
            .windows(2)
            .filter(|w| w[1].1 - w[0].1 < DOUBLE)
            .count();
        Stats {
            mean_late: lateness.iter().sum::<Duration>() / lateness.len().max(1) as u32,
            max_late: lateness.iter().copied().max().unwrap_or_default(),
            doubles,
            cpu,
        }
    }

    pub fn record(&self, r: &mut Report, imp: &'static str, variant: &str) {
        r.add(
            "tick.interval",
            imp,
            variant,
            self.mean_late.as_secs_f64() * 1e6,
            "µs mean lateness",
        );
        r.add(
            "tick.interval",
            imp,
            variant,
            self.max_late.as_secs_f64() * 1e6,
            "µs max lateness",
        );
        r.add(
            "tick.interval",
            imp,
            variant,
            self.doubles as f64,
            "double ticks",
        );
        r.add(
            "tick.interval",
            imp,
            variant,
            self.cpu.as_secs_f64() * 1e3,
            "ms CPU",
        );
    }
}

/// Our side of tick.interval: `hp::tick`.
mod ours {
    use std::time::Duration;

    use futures::StreamExt;
    use machinery::helpers as hp;
    use tokio::time::Instant;

    use super::{EVERY, Stats, TICKS, body};
    use crate::measure::thread_cpu;

    pub async fn ticks(min_wait: Option<Duration>, stalls: bool) -> Stats {
        let ctx = hp::Ctx::beginning("bench");
        let mut ticker = hp::tick(EVERY, &ctx)
            .min_wait(min_wait)
            .max_iterations(TICKS as u64)
            .build()
            .expect("every is not zero");
        let mut ticks = Vec::with_capacity(TICKS);
        let cpu0 = thread_cpu();
        let mut due = None;
        while let Some((_, till_next)) = ticker.next().await {
            let at = Instant::now();
            ticks.push((due.unwrap_or(at), at));
            // The ticker says when the next grid point is: that tick's due instant.
            due = Some(at + till_next);
            body(ticks.len() - 1, stalls);
        }
        assert_eq!(ticks.len(), TICKS);
        Stats::new(&ticks, thread_cpu() - cpu0)
    }
}
