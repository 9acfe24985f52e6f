//! The ticker's schedule: pure grid arithmetic, no timers, no locks.
//!
//! # Rules (SEMANTICS.md, Ticker)
//! 1. The grid is `origin + k·every`; `origin` is the instant of the first tick (or the anchored start).
//! 2. After a tick yielded at `t`, the next tick is the first grid point at least
//!    `min_wait` after `t` (`min_wait` on), or strictly after `t` (`min_wait` off).
//!    Timer jitter is not lateness: a tick yielded less than a tenth of
//!    `min(every, min_wait)` after its grid point counts `min_wait` from its grid point.
//! 3. `change_after(d)` (the seed's `change_after(d, set_new_every=True)`) moves the grid
//!    to `last grid point + k·d`; `change_once(d)` (`set_new_every=False`) makes only the
//!    next tick fall on `last grid point + d`, after which the original grid applies
//!    again.
//!
//! # Invariants
//! 1. `every` is zero only while `min_wait` is on (checked by the builder and by
//!    [`Schedule::change`]), so "strictly after" always has an answer.
//! 2. `last` is `None` exactly until the first tick; `next` is then the first tick's due
//!    instant ("now").

use std::time::Duration;

use tokio::time::Instant;

use super::TickerError;

/// How [`Schedule::change`] changes the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// The grid continues from the last tick's grid point with the new period.
    Period,
    /// Only the next tick is the given time after the last tick's grid point.
    Once,
}

/// The state of one ticker's grid.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    origin: Option<Instant>,
    every: Duration,
    min_wait: Option<Duration>,
    /// The grid point and the yield instant of the last tick.
    last: Option<(Instant, Instant)>,
    /// A once-only period for the next tick, not yet applied (only before the first tick).
    one_off: Option<Duration>,
    next: Option<Instant>,
}

impl Schedule {
    /// A schedule whose first tick is due at `start` (as soon as it is first asked for
    /// when `None`).
    pub(crate) fn starting_at(mut self, start: Option<Instant>) -> Self {
        self.origin = start;
        self.next = start;
        self
    }

    /// A schedule that has not ticked yet.
    ///
    /// # Errors
    /// [`TickerError::ZeroEveryWithoutMinWait`] for `every` zero with `min_wait` off.
    pub(crate) fn new(every: Duration, min_wait: Option<Duration>) -> Result<Self, TickerError> {
        if every.is_zero() && min_wait.is_none() {
            return Err(TickerError::ZeroEveryWithoutMinWait);
        }
        Ok(Schedule {
            origin: None,
            every,
            min_wait,
            last: None,
            one_off: None,
            next: None,
        })
    }

    /// When the next tick is due: its grid point, or `now` before the first tick.
    pub(crate) fn due(&self, now: Instant) -> Instant {
        self.next.unwrap_or(now)
    }

    /// The instant of the first tick, once it happened (or the anchored start).
    pub(crate) fn started(&self) -> Option<Instant> {
        self.origin
    }

    /// The floor between two ticks (`None`: off).
    pub(crate) fn min_wait(&self) -> Option<Duration> {
        self.min_wait
    }

    /// The instant the last tick was yielded.
    pub(crate) fn last_yield(&self) -> Option<Instant> {
        self.last.map(|(_, t)| t)
    }

    /// Records a tick for grid point `grid`, yielded at `now`; returns `time_till_next`.
    pub(crate) fn on_tick(&mut self, grid: Instant, now: Instant) -> Duration {
        if self.origin.is_none() {
            self.origin = Some(grid);
        }
        self.last = Some((grid, now));
        let next = self.compute_next(grid, now);
        self.next = Some(next);
        next.saturating_duration_since(now)
    }

    /// Changes the schedule between ticks (see rule 3).
    ///
    /// # Errors
    /// [`TickerError::ZeroEveryWithoutMinWait`] for `every` zero with `min_wait` off; the
    /// schedule is then unchanged.
    pub(crate) fn change(&mut self, every: Duration, change: Change) -> Result<(), TickerError> {
        if every.is_zero() && self.min_wait.is_none() {
            return Err(TickerError::ZeroEveryWithoutMinWait);
        }
        if change == Change::Period {
            self.one_off = None;
            self.every = every;
            if let Some((grid, _)) = self.last {
                self.origin = Some(grid);
            }
        } else {
            self.one_off = Some(every);
        }
        if let Some((grid, now)) = self.last {
            self.next = Some(self.compute_next(grid, now));
        }
        Ok(())
    }

    fn compute_next(&mut self, grid: Instant, now: Instant) -> Instant {
        // Timer jitter is not lateness (rule 2): a tick yielded within a tenth of
        // `min(every, min_wait)` of its grid point counts `min_wait` from the grid point.
        let now = match self.min_wait {
            Some(m) if now.saturating_duration_since(grid) < self.every.min(m) / 10 => grid,
            _ => now,
        };
        match self.one_off.take() {
            Some(d) => next_point(grid, d, grid, now, self.min_wait),
            None => {
                let origin = self.origin.unwrap_or(grid);
                next_point(origin, self.every, grid, now, self.min_wait)
            }
        }
    }
}

/// The first point of the grid `origin + k·every` (k ≥ 0) that is strictly after
/// `last_grid` (the grid point of the tick just yielded: one instant never ticks twice)
/// and at least `min_wait` after `now`, or strictly after `now` when `min_wait` is off.
///
/// `every` zero (only with `min_wait` on) gives `now + min_wait`.
pub(crate) fn next_point(
    origin: Instant,
    every: Duration,
    last_grid: Instant,
    now: Instant,
    min_wait: Option<Duration>,
) -> Instant {
    let (bound, strict) = match min_wait {
        Some(m) => (add_saturating(now, m), false),
        None => (now, true),
    };
    if every.is_zero() {
        return bound.max(origin);
    }
    let point = first_point(origin, every, bound, strict);
    if point > last_grid {
        // A grid point after `last_grid` is at least the first one strictly after it:
        // the common case (an on-time tick) needs one grid computation, not two.
        return point;
    }
    point.max(first_point(origin, every, last_grid, true))
}

/// The first point of `origin + k·every` (k ≥ 0, `every` > 0) at or after `bound`
/// (strictly after when `strict`).
fn first_point(origin: Instant, every: Duration, bound: Instant, strict: bool) -> Instant {
    if bound < origin || (!strict && bound == origin) {
        return origin;
    }
    let since = (bound - origin).as_nanos();
    let period = every.as_nanos();
    // In u64 when both fit (under 584 years): one division instruction instead of a
    // call to the 128-bit division routine, for every tick.
    let (mut k, exact) = match (u64::try_from(since), u64::try_from(period)) {
        (Ok(s), Ok(p)) => (u128::from(s / p), s.is_multiple_of(p)),
        _ => (since / period, since.is_multiple_of(period)),
    };
    if strict || !exact {
        k += 1;
    }
    add_saturating(origin, mul(every, k))
}

/// `t + d`, or about a century after `t` when that is not representable (a huge
/// `min_wait` or `every`): the tick is then simply never due.
pub(crate) fn add_saturating(t: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    t.checked_add(d)
        .unwrap_or_else(|| t.checked_add(CENTURY).unwrap_or(t))
}

/// `every · k` without overflow panics (saturates at about 584 years).
fn mul(every: Duration, k: u128) -> Duration {
    let nanos = every.as_nanos().saturating_mul(k);
    let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
    Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn next_point_equals_the_later_of_both_grid_bounds() {
        // The one-computation shortcut against the definition (both bounds, the later
        // point), over every small case: periods 1..4 ms, min_wait off/0/1/3/7 ms, the
        // last grid point and "now" anywhere in 0..20 ms.
        let o = Instant::now();
        let ms = Duration::from_millis;
        for every in 1..5 {
            for min_wait in [None, Some(0), Some(1), Some(3), Some(7)] {
                for last in 0..20 {
                    for now in 0..20 {
                        let (bound, strict) = match min_wait {
                            Some(m) => (o + ms(now + m), false),
                            None => (o + ms(now), true),
                        };
                        let want = first_point(o, ms(every), bound, strict).max(first_point(
                            o,
                            ms(every),
                            o + ms(last),
                            true,
                        ));
                        let got =
                            next_point(o, ms(every), o + ms(last), o + ms(now), min_wait.map(ms));
                        assert_eq!(
                            got, want,
                            "every {every} min_wait {min_wait:?} last {last} now {now}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn next_point_follows_the_grid() {
        let o = Instant::now();
        let ms100 = Some(Duration::from_millis(100));
        assert_eq!(next_point(o, s(5), o + s(10), o + s(14), None), o + s(15));
        assert_eq!(next_point(o, s(5), o + s(10), o + s(15), None), o + s(20));
        // min_wait zero: a late tick for 10 yielded at 15 is followed by the one for 15.
        assert_eq!(
            next_point(o, s(5), o + s(10), o + s(15), Some(s(0))),
            o + s(15)
        );
        // ... but an on-time tick is never followed by its own grid point again.
        assert_eq!(
            next_point(o, s(5), o + s(15), o + s(15), Some(s(0))),
            o + s(20)
        );
        assert_eq!(next_point(o, s(5), o + s(10), o + s(10), ms100), o + s(15));
        let g = o + s(3);
        assert_eq!(
            next_point(o, s(0), g, g, ms100),
            g + Duration::from_millis(100)
        );
        assert_eq!(
            next_point(o + s(6), s(5), o + s(6), o + s(6), ms100),
            o + s(11)
        );
    }

    #[test]
    fn first_point_takes_the_128_bit_way_past_584_years_and_agrees_below() {
        let o = Instant::now();
        // A period past u64 nanoseconds: the wide division, saturating far away.
        let huge = Duration::from_secs(700 * 365 * 24 * 3600);
        assert!(first_point(o, huge, o + s(1), true) > o + s(1));
        // A period of 2^64 ns: the 128-bit way, whatever the bound.
        let wide = Duration::from_nanos(u64::MAX) + Duration::from_nanos(1);
        assert!(first_point(o, wide, o, true) > o);
        assert_eq!(first_point(o, wide, o, false), o);
        // Below: exact multiples and not, strict and not.
        assert_eq!(first_point(o, s(5), o + s(10), false), o + s(10));
        assert_eq!(first_point(o, s(5), o + s(10), true), o + s(15));
        assert_eq!(first_point(o, s(5), o + s(11), false), o + s(15));
    }

    #[test]
    fn one_off_returns_to_the_original_grid() {
        let o = Instant::now();
        let mut sc = Schedule::new(s(3), Some(Duration::from_millis(100))).unwrap();
        assert_eq!(sc.on_tick(o, o), s(3));
        assert_eq!(sc.on_tick(o + s(3), o + s(3)), s(3));
        assert_eq!(sc.on_tick(o + s(6), o + s(6)), s(3));
        sc.change(s(5), Change::Once).unwrap();
        assert_eq!(sc.due(o), o + s(11));
        assert_eq!(sc.on_tick(o + s(11), o + s(11)), s(1));
        assert_eq!(sc.on_tick(o + s(12), o + s(12)), s(3));
    }

    #[test]
    fn timer_jitter_counts_min_wait_from_the_grid_point() {
        let o = Instant::now();
        let ms = Duration::from_millis;
        let mut sc = Schedule::new(ms(100), Some(ms(100))).unwrap();
        assert_eq!(sc.on_tick(o, o), ms(100));
        // 1 ms late (under a tenth of 100 ms): the next grid point is not skipped.
        assert_eq!(sc.on_tick(o + ms(100), o + ms(101)), ms(99));
        assert_eq!(sc.due(o), o + ms(200));
        // 9 ms late: still jitter.
        assert_eq!(sc.on_tick(o + ms(200), o + ms(209)), ms(91));
        // 10 ms late (a tenth): lateness, `min_wait` counts from the late instant.
        assert_eq!(sc.on_tick(o + ms(300), o + ms(310)), ms(190));
        assert_eq!(sc.due(o), o + ms(500));
    }

    proptest::proptest! {
        #[test]
        fn next_point_is_the_first_allowed_grid_point(
            every in 1u64..10_000, now in 0u64..1_000_000, wait in proptest::option::of(0u64..20_000)
        ) {
            let o = Instant::now();
            let every_d = Duration::from_millis(every);
            let now_i = o + Duration::from_millis(now);
            let min_wait = wait.map(Duration::from_millis);
            let p = next_point(o, every_d, o, now_i, min_wait);
            proptest::prop_assert!(p > o);
            // On the grid.
            proptest::prop_assert_eq!((p - o).as_nanos() % every_d.as_nanos(), 0);
            // Allowed.
            match min_wait {
                Some(m) => proptest::prop_assert!(p >= now_i + m),
                None => proptest::prop_assert!(p > now_i),
            }
            // First: the grid point before it is not allowed.
            if p - o > every_d {
                let before = p - every_d;
                match min_wait {
                    Some(m) => proptest::prop_assert!(before < now_i + m),
                    None => proptest::prop_assert!(before <= now_i),
                }
            }
        }
    }
}
