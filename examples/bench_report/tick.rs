//! tick.interval: `hp::tick` beside `tokio::time::interval`, in real time.
//!
//! 200 ticks of 10 ms, idle and with a 25 ms stall in the loop body every 20th tick:
//! mean and max lateness against the ideal grid, double ticks (two ticks less than half a
//! period apart), and the CPU time of the runtime thread.

use std::time::{Duration, Instant};

use crate::measure::{Report, current_thread, thread_cpu};

pub const TICKS: usize = 200;
pub const EVERY: Duration = Duration::from_millis(10);
pub const STALL: Duration = Duration::from_millis(25);

pub fn run(r: &mut Report) {
    if !r.wants("tick.interval") {
        return;
    }
    for stalls in [false, true] {
        let variant = if stalls {
            "10ms x 200, 25ms stalls"
        } else {
            "10ms x 200, idle"
        };
        ours::ticks(r, variant, stalls);
        let stats = current_thread().block_on(async {
            let mut interval = tokio::time::interval(EVERY);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut seen = Vec::with_capacity(TICKS);
            let (start, cpu0) = (Instant::now(), thread_cpu());
            for i in 0..TICKS {
                interval.tick().await;
                seen.push(start.elapsed());
                if stalls && i % 20 == 19 {
                    std::thread::sleep(STALL);
                }
            }
            Stats::new(&seen, thread_cpu() - cpu0)
        });
        stats.record(r, "tokio interval", variant);
    }
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

/// Our side of tick.interval.
mod ours {
    use crate::measure::Report;

    pub fn ticks(_r: &mut Report, _variant: &str, _stalls: bool) {}
}
