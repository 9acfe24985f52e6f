//! merge.* workloads: `hp::queue_manager` beside `futures::stream::select_all` and
//! tokio-stream's `StreamMap`, current-thread runtime, ns per item (best of `ROUNDS`).
//!
//! - 10 000 sources of which one is active (1 M items): cost per item must not grow with
//!   idle sources.
//! - 10 sources all active (100 000 items each), and 1 000 × 1 000 items.
//! - one source of 1 M items, as a stream (ours also as a sync iterator, no peer).
//!
//! Each of our items is a `QueueManagerResult::Success` carrying its `sources` chain and
//! a context (`()` here, made per item by `make_empty_context`); the peers yield bare
//! values.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::{self, BoxStream};

use crate::chan::on_runtime;
use crate::measure::{OURS, Report, best, ns_per};

const W: &str = "merge.select_all";
const IDLE: usize = 10_000;
const ACTIVE_ITEMS: usize = 1_000_000;
/// StreamMap polls every stream per item: 1M items over 10k streams would take minutes,
/// so it gets fewer items; the figure is per item either way.
const STREAMMAP_ITEMS: usize = 10_000;

/// The source sets: (variant, sources, items per source) with every source active.
const ALL_ACTIVE: [(&str, usize, usize); 3] = [
    ("10 sources, all active", 10, 100_000),
    ("1000 sources x 1000 items", 1_000, 1_000),
    ("1 source, 1M items", 1, 1_000_000),
];

pub fn run(r: &mut Report) {
    if !r.wants(W) {
        return;
    }
    let v = "10k sources, 1 active";
    let rate = |f: &dyn Fn() -> Duration, n| ns_per(best(f), n);
    let ns = rate(
        &|| on_runtime(false, ours::one_active(ACTIVE_ITEMS)),
        ACTIVE_ITEMS,
    );
    r.add(W, OURS, v, ns, "ns/item");
    let f = || {
        let make = || stream::select_all(idle_and_one(ACTIVE_ITEMS));
        on_runtime(false, drain(make, ACTIVE_ITEMS))
    };
    r.add(
        W,
        "futures select_all",
        v,
        rate(&f, ACTIVE_ITEMS),
        "ns/item",
    );
    let f = || {
        let make = || {
            let sources = idle_and_one(STREAMMAP_ITEMS).into_iter().enumerate();
            sources.collect::<tokio_stream::StreamMap<_, _>>()
        };
        on_runtime(false, drain(make, STREAMMAP_ITEMS))
    };
    let ns = rate(&f, STREAMMAP_ITEMS);
    r.add(W, "tokio-stream StreamMap", v, ns, "ns/item");

    for (v, sources, per) in ALL_ACTIVE {
        let n = sources * per;
        let ns = rate(&|| on_runtime(false, ours::all_active(sources, per)), n);
        r.add(W, OURS, v, ns, "ns/item");
        let f = || {
            let make = || stream::select_all(active(sources, per));
            on_runtime(false, drain(make, n))
        };
        r.add(W, "futures select_all", v, rate(&f, n), "ns/item");
        let f = || {
            let make = || {
                let sources = active(sources, per).into_iter().enumerate();
                sources.collect::<tokio_stream::StreamMap<_, _>>()
            };
            on_runtime(false, drain(make, n))
        };
        r.add(W, "tokio-stream StreamMap", v, rate(&f, n), "ns/item");
    }
    let ns = rate(&|| on_runtime(false, ours::sync_iterator()), ACTIVE_ITEMS);
    r.add(W, OURS, "1 sync iterator, 1M items", ns, "ns/item");
}

fn idle_and_one(items: usize) -> Vec<BoxStream<'static, usize>> {
    let mut v: Vec<BoxStream<'static, usize>> =
        (0..IDLE - 1).map(|_| stream::pending().boxed()).collect();
    v.push(stream::iter(0..items).boxed());
    v
}

fn active(sources: usize, per: usize) -> Vec<stream::Iter<std::ops::Range<usize>>> {
    (0..sources).map(|_| stream::iter(0..per)).collect()
}

/// Builds a peer's merged stream and takes `n` items from it (idle sources never end, so
/// it does not wait for the end); set-up is timed, as ours is.
async fn drain<S: futures::Stream + Unpin>(make: impl FnOnce() -> S, n: usize) -> Duration {
    let start = Instant::now();
    let got = make().take(n).map(std::hint::black_box).count().await;
    assert_eq!(got, n);
    start.elapsed()
}

/// Our side: `hp::queue_manager`, sources added through the feeder.
mod ours {
    use std::time::{Duration, Instant};

    use futures::StreamExt;
    use machinery::helpers::{self as hp, QueueManagerResult as R};

    use super::{IDLE, active, idle_and_one};

    /// Takes `want` successes from the streamer.
    async fn drain(streamer: &mut hp::Streamer<usize, ()>, want: usize) {
        let mut n = 0;
        while n < want {
            match streamer.next().await {
                Some(R::Success { value, .. }) => {
                    std::hint::black_box(value);
                    n += 1;
                }
                Some(_) => {}
                None => panic!("the queue manager ended after {n} of {want} items"),
            }
        }
    }

    pub async fn one_active(items: usize) -> Duration {
        let ctx = hp::Ctx::beginning("bench");
        let (mut streamer, feeder) = hp::queue_manager::<usize, ()>(&ctx);
        let start = Instant::now();
        for s in idle_and_one(items) {
            feeder.add_async_generator(s);
        }
        assert_eq!(feeder.live_sources(), IDLE);
        drain(&mut streamer, items).await;
        start.elapsed()
    }

    pub async fn all_active(sources: usize, per: usize) -> Duration {
        let ctx = hp::Ctx::beginning("bench");
        let (mut streamer, feeder) = hp::queue_manager::<usize, ()>(&ctx);
        let start = Instant::now();
        for s in active(sources, per) {
            feeder.add_async_generator(s);
        }
        feeder.set_as_finished_if_out_of_sources();
        drain(&mut streamer, sources * per).await;
        start.elapsed()
    }

    pub async fn sync_iterator() -> Duration {
        let ctx = hp::Ctx::beginning("bench");
        let (mut streamer, feeder) = hp::queue_manager::<usize, ()>(&ctx);
        let start = Instant::now();
        feeder.add_sync_iterator(0..super::ACTIVE_ITEMS);
        feeder.set_as_finished_if_out_of_sources();
        drain(&mut streamer, super::ACTIVE_ITEMS).await;
        start.elapsed()
    }
}
