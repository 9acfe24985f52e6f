//! chan.* workloads: `hp::queue` / `hp::sync_queue` beside tokio mpsc, flume,
//! async-channel, std mpsc and crossbeam-channel.

use std::time::Duration;

use crate::measure::{Report, current_thread, multi_thread, ns_per, time};

pub const ITEMS: usize = 1_000_000;
const PRODUCERS: usize = 4;

pub fn run(r: &mut Report) {
    if r.wants("chan.1p1c") {
        for (rt_name, multi) in [("current-thread", false), ("multi-thread", true)] {
            let variant = format!("1M items, unbounded, {rt_name}");
            ours::one_to_one(r, &variant, multi);
            let d = on_runtime(multi, tokio_unbounded(1));
            r.add(
                "chan.1p1c",
                "tokio",
                variant.clone(),
                ns_per(d, ITEMS),
                "ns/item",
            );
            let d = on_runtime(multi, flume_unbounded(1));
            r.add(
                "chan.1p1c",
                "flume",
                variant.clone(),
                ns_per(d, ITEMS),
                "ns/item",
            );
            let d = on_runtime(multi, async_channel_unbounded(1));
            r.add(
                "chan.1p1c",
                "async-channel",
                variant,
                ns_per(d, ITEMS),
                "ns/item",
            );
        }
        let variant = "1M items, 2 OS threads";
        ours::sync_one_to_one(r, variant);
        r.add(
            "chan.1p1c",
            "std",
            variant,
            ns_per(std_mpsc(), ITEMS),
            "ns/item",
        );
        r.add(
            "chan.1p1c",
            "crossbeam-channel",
            variant,
            ns_per(crossbeam(), ITEMS),
            "ns/item",
        );
    }
    if r.wants("chan.mpsc") {
        let variant = "4 producers, 1M items, multi-thread";
        ours::many_to_one(r, variant, PRODUCERS);
        let d = on_runtime(true, tokio_unbounded(PRODUCERS));
        r.add("chan.mpsc", "tokio", variant, ns_per(d, ITEMS), "ns/item");
        let d = on_runtime(true, flume_unbounded(PRODUCERS));
        r.add("chan.mpsc", "flume", variant, ns_per(d, ITEMS), "ns/item");
        let d = on_runtime(true, async_channel_unbounded(PRODUCERS));
        r.add(
            "chan.mpsc",
            "async-channel",
            variant,
            ns_per(d, ITEMS),
            "ns/item",
        );
    }
}

/// Runs `fut` (which returns its own measured duration) on a fresh runtime.
pub fn on_runtime(multi: bool, fut: impl Future<Output = Duration>) -> Duration {
    let rt = if multi {
        multi_thread()
    } else {
        current_thread()
    };
    rt.block_on(fut)
}

async fn tokio_unbounded(producers: usize) -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let start = std::time::Instant::now();
    for p in 0..producers {
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in (p..ITEMS).step_by(producers) {
                tx.send(i).unwrap();
            }
        });
    }
    drop(tx);
    let mut n = 0;
    while rx.recv().await.is_some() {
        n += 1;
    }
    assert_eq!(n, ITEMS);
    start.elapsed()
}

async fn flume_unbounded(producers: usize) -> Duration {
    let (tx, rx) = flume::unbounded();
    let start = std::time::Instant::now();
    for p in 0..producers {
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in (p..ITEMS).step_by(producers) {
                tx.send(i).unwrap();
            }
        });
    }
    drop(tx);
    let mut n = 0;
    while rx.recv_async().await.is_ok() {
        n += 1;
    }
    assert_eq!(n, ITEMS);
    start.elapsed()
}

async fn async_channel_unbounded(producers: usize) -> Duration {
    let (tx, rx) = async_channel::unbounded();
    let start = std::time::Instant::now();
    for p in 0..producers {
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in (p..ITEMS).step_by(producers) {
                tx.try_send(i).unwrap();
            }
        });
    }
    drop(tx);
    let mut n = 0;
    while rx.recv().await.is_ok() {
        n += 1;
    }
    assert_eq!(n, ITEMS);
    start.elapsed()
}

fn std_mpsc() -> Duration {
    let (tx, rx) = std::sync::mpsc::channel();
    time(|| {
        let p = std::thread::spawn(move || {
            for i in 0..ITEMS {
                tx.send(i).unwrap();
            }
        });
        assert_eq!(rx.iter().count(), ITEMS);
        p.join().unwrap();
    })
}

fn crossbeam() -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded();
    time(|| {
        let p = std::thread::spawn(move || {
            for i in 0..ITEMS {
                tx.send(i).unwrap();
            }
        });
        assert_eq!(rx.iter().count(), ITEMS);
        p.join().unwrap();
    })
}

/// Our side of the chan.* workloads.
mod ours {
    use crate::measure::Report;

    pub fn one_to_one(_r: &mut Report, _variant: &str, _multi: bool) {}
    pub fn sync_one_to_one(_r: &mut Report, _variant: &str) {}
    pub fn many_to_one(_r: &mut Report, _variant: &str, _producers: usize) {}
}
