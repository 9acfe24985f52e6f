//! tick.interval: `hp::tick` beside `tokio::time::interval`, in real time.
//!
//! 200 ticks of 10 ms, idle and with a 25 ms stall in the loop body every 20th tick:
//! mean and max lateness against the ideal grid, double ticks (two ticks less than half a
//! period apart), and the CPU time of the runtime thread. Lateness is against the grid
//! `start + k·10 ms` (the nearest grid point not after the tick), the same for everyone.

use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use crate::measure::{OURS, Report, current_thread, thread_cpu};

pub const TICKS: usize = 200;
pub const EVERY: Duration = Duration::from_millis(10);
pub const STALL: Duration = Duration::from_millis(25);

pub fn run(r: &mut Report) {
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
    let mut seen = Vec::with_capacity(TICKS);
    let (start, cpu0) = (Instant::now(), thread_cpu());
    for i in 0..TICKS {
        interval.tick().await;
        seen.push(start.elapsed());
        body(i, stalls);
    }
    Stats::new(&seen, thread_cpu() - cpu0)
}

/// Lateness and CPU figures of one run.
pub struct Stats {
    mean_late: Duration,
    max_late: Duration,
    doubles: usize,
    cpu: Duration,
}

impl Stats {
    /// `seen[i]` is when tick i was yielded, from the start.
    pub fn new(seen: &[Duration], cpu: Duration) -> Self {
        let lateness: Vec<Duration> = seen
            .iter()
            .map(|t| {
                // Lateness against the nearest grid point not after it.
                let k = t.as_nanos() / EVERY.as_nanos();
                *t - EVERY * k as u32
            })
            .collect();
        let doubles = seen.windows(2).filter(|w| w[1] - w[0] < EVERY / 2).count();
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
    use std::time::{Duration, Instant};

    use futures::StreamExt;
    use machinery::helpers as hp;

    use super::{EVERY, Stats, TICKS, body};
    use crate::measure::thread_cpu;

    pub async fn ticks(min_wait: Option<Duration>, stalls: bool) -> Stats {
        let ctx = hp::Ctx::beginning("bench");
        let mut ticker = hp::tick(EVERY, &ctx)
            .min_wait(min_wait)
            .max_iterations(TICKS as u64)
            .build()
            .expect("every is not zero");
        let mut seen = Vec::with_capacity(TICKS);
        let (start, cpu0) = (Instant::now(), thread_cpu());
        while ticker.next().await.is_some() {
            seen.push(start.elapsed());
            body(seen.len() - 1, stalls);
        }
        assert_eq!(seen.len(), TICKS);
        Stats::new(&seen, thread_cpu() - cpu0)
    }
}
