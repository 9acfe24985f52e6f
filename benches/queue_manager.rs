//! Queue manager beside `futures::stream::select_all` and tokio-stream `StreamMap`.
//!
//! `cargo bench --bench queue_manager` (a plain harness: each case runs a few times and
//! the best and median ns per item are printed; pass a filter word to run some cases).
//!
//! Cases:
//! - `streams_1000x1000`: 1 000 always-ready streams of 1 000 items each.
//! - `idle_10000_one_active`: 9 999 streams that never yield plus one of N items.
//! - `one_iterator_1m`: one source of 1 000 000 values (for us both as a sync iterator
//!   and as a stream).

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use machinery::helpers::{self as hp, QueueManagerResult as R};
use tokio_stream::StreamMap;

const RUNS: usize = 5;

fn report(case: &str, imp: &str, items: u64, mut times: Vec<Duration>) {
    times.sort();
    let per = |d: Duration| d.as_nanos() as f64 / items as f64;
    println!(
        "{case:<24} {imp:<26} best {:>9.1} ns/item   median {:>9.1} ns/item   ({items} items)",
        per(times[0]),
        per(times[times.len() / 2]),
    );
}

fn measure<F: FnMut() -> u64>(case: &str, imp: &str, runs: usize, mut f: F) {
    let mut times = Vec::new();
    let mut items = 0;
    for _ in 0..runs {
        let start = Instant::now();
        items = f();
        times.push(start.elapsed());
    }
    report(case, imp, items, times);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn drain_ours(streamer: &mut hp::Streamer<u64, ()>, want: u64) -> u64 {
    let mut n = 0;
    while let Some(r) = streamer.next().await {
        if let R::Success { value, .. } = r {
            std::hint::black_box(value);
            n += 1;
            if n == want {
                break;
            }
        }
    }
    n
}

async fn drain_plain<S: futures::Stream<Item = T> + Unpin, T>(s: &mut S, want: u64) -> u64 {
    let mut n = 0;
    while let Some(v) = s.next().await {
        std::hint::black_box(v);
        n += 1;
        if n == want {
            break;
        }
    }
    n
}

fn streams_1000x1000(rt: &tokio::runtime::Runtime) {
    let case = "streams_1000x1000";
    let (streams, items) = (1_000u64, 1_000u64);
    measure(case, "machinery::queue_manager", RUNS, || {
        rt.block_on(async {
            let ctx = hp::Ctx::beginning("bench");
            let (mut streamer, feeder) = hp::queue_manager::<u64, ()>(&ctx, || ());
            for _ in 0..streams {
                feeder.add_async_generator(stream::iter(0..items), None);
            }
            feeder.set_as_finished_if_out_of_sources();
            drain_ours(&mut streamer, streams * items).await
        })
    });
    measure(case, "futures::select_all", RUNS, || {
        rt.block_on(async {
            let mut all = stream::select_all((0..streams).map(|_| stream::iter(0..items)));
            drain_plain(&mut all, streams * items).await
        })
    });
    measure(case, "tokio_stream::StreamMap", RUNS, || {
        rt.block_on(async {
            let mut map = StreamMap::new();
            for k in 0..streams {
                map.insert(k, stream::iter(0..items));
            }
            drain_plain(&mut map, streams * items).await
        })
    });
}

fn idle_10000_one_active(rt: &tokio::runtime::Runtime) {
    let case = "idle_10000_one_active";
    let idle = 9_999u64;
    let items = 1_000_000u64;
    let active = || -> BoxStream<'static, u64> { stream::iter(0..items).boxed() };
    let pending = || -> BoxStream<'static, u64> { stream::pending().boxed() };
    measure(case, "machinery::queue_manager", RUNS, || {
        rt.block_on(async {
            let ctx = hp::Ctx::beginning("bench");
            let (mut streamer, feeder) = hp::queue_manager::<u64, ()>(&ctx, || ());
            for _ in 0..idle {
                feeder.add_async_generator(pending(), None);
            }
            feeder.add_async_generator(active(), None);
            drain_ours(&mut streamer, items).await
        })
    });
    measure(case, "futures::select_all", RUNS, || {
        rt.block_on(async {
            let mut all = stream::select_all((0..idle).map(|_| pending()).chain([active()]));
            drain_plain(&mut all, items).await
        })
    });
    // StreamMap polls every stream per item: scaled down to 2 000 items.
    let few = 2_000u64;
    measure(case, "tokio_stream::StreamMap", 3, || {
        rt.block_on(async {
            let mut map = StreamMap::new();
            for k in 0..idle {
                map.insert(k, pending());
            }
            map.insert(idle, stream::iter(0..few).boxed());
            drain_plain(&mut map, few).await
        })
    });
}

fn one_iterator_1m(rt: &tokio::runtime::Runtime) {
    let case = "one_iterator_1m";
    let items = 1_000_000u64;
    measure(case, "machinery (sync iterator)", RUNS, || {
        rt.block_on(async {
            let ctx = hp::Ctx::beginning("bench");
            let (mut streamer, feeder) = hp::queue_manager::<u64, ()>(&ctx, || ());
            feeder.add_sync_iterator(0..items, None);
            feeder.set_as_finished_if_out_of_sources();
            drain_ours(&mut streamer, items).await
        })
    });
    measure(case, "machinery (stream)", RUNS, || {
        rt.block_on(async {
            let ctx = hp::Ctx::beginning("bench");
            let (mut streamer, feeder) = hp::queue_manager::<u64, ()>(&ctx, || ());
            feeder.add_async_generator(stream::iter(0..items), None);
            feeder.set_as_finished_if_out_of_sources();
            drain_ours(&mut streamer, items).await
        })
    });
    measure(case, "futures::select_all", RUNS, || {
        rt.block_on(async {
            let mut all = stream::select_all([stream::iter(0..items)]);
            drain_plain(&mut all, items).await
        })
    });
    measure(case, "tokio_stream::StreamMap", RUNS, || {
        rt.block_on(async {
            let mut map = StreamMap::new();
            map.insert(0, stream::iter(0..items));
            drain_plain(&mut map, items).await
        })
    });
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let on = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let rt = rt();
    if on("streams_1000x1000") {
        streams_1000x1000(&rt);
    }
    if on("idle_10000_one_active") {
        idle_10000_one_active(&rt);
    }
    if on("one_iterator_1m") {
        one_iterator_1m(&rt);
    }
}
