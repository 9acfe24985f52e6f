//! chan.* workloads: `hp::queue` / `hp::sync_queue` beside tokio mpsc, flume,
//! async-channel, std mpsc and crossbeam-channel.

use std::time::Duration;

use crate::measure::{OURS, Report, best, current_thread, multi_thread, ns_per, time};

pub const ITEMS: usize = 1_000_000;
const PRODUCERS: usize = 4;

pub fn run(r: &mut Report) {
    if r.wants("chan.1p1c") {
        for (rt_name, multi) in [("current-thread", false), ("multi-thread", true)] {
            let v = format!("1M items, unbounded, {rt_name}");
            let v = v.as_str();
            let w = "chan.1p1c";
            item_rate(r, w, OURS, v, || on_runtime(multi, ours::one_to_many(1)));
            item_rate(r, w, "tokio", v, || on_runtime(multi, tokio_unbounded(1)));
            item_rate(r, w, "flume", v, || on_runtime(multi, flume_unbounded(1)));
            let f = || on_runtime(multi, async_channel_unbounded(1));
            item_rate(r, w, "async-channel", v, f);
        }
        r.note("chan.1p1c: machinery's queue is unbounded only, so no bounded variant is run");
        let v = "1M items, 2 OS threads";
        item_rate(r, "chan.1p1c", OURS, v, ours::sync_one_to_one);
        item_rate(r, "chan.1p1c", "std", v, std_mpsc);
        item_rate(r, "chan.1p1c", "crossbeam-channel", v, crossbeam);
        let v = "1M items, 2 worker threads, sync";
        item_rate(r, "chan.1p2c", OURS, v, ours::sync_one_to_two);
        item_rate(r, "chan.1p2c", "crossbeam-channel", v, crossbeam_one_to_two);
    }
    if r.wants("chan.4p1c") {
        let v = "4 producer threads, 1M items, sync";
        item_rate(r, "chan.4p1c", OURS, v, ours::sync_four_to_one);
        item_rate(r, "chan.4p1c", "std", v, std_mpsc_four);
        item_rate(r, "chan.4p1c", "crossbeam-channel", v, crossbeam_four);
    }
    if r.wants("chan.burst") {
        let (w, v) = ("chan.burst", "1M queued, then drained, current-thread");
        item_rate(r, w, OURS, v, || on_runtime(false, ours::burst()));
        item_rate(r, w, "tokio", v, || on_runtime(false, tokio_burst()));
        item_rate(r, w, "flume", v, || on_runtime(false, flume_burst()));
        let f = || on_runtime(false, async_channel_burst());
        item_rate(r, w, "async-channel", v, f);
    }
    if r.wants("chan.priority") {
        let v = "1M priority appends, then drained";
        item_rate(r, "chan.priority", OURS, v, || {
            on_runtime(false, ours::priority())
        });
    }
    if r.wants("chan.instruction") {
        let v = "1M instructions, then drained";
        item_rate(r, "chan.instruction", OURS, v, || {
            on_runtime(false, ours::instructions())
        });
    }
    if r.wants("chan.mpsc") {
        let v = "4 producers, 1M items, multi-thread";
        let w = "chan.mpsc";
        item_rate(r, w, OURS, v, || {
            on_runtime(true, ours::one_to_many(PRODUCERS))
        });
        item_rate(r, w, "tokio", v, || {
            on_runtime(true, tokio_unbounded(PRODUCERS))
        });
        item_rate(r, w, "flume", v, || {
            on_runtime(true, flume_unbounded(PRODUCERS))
        });
        let f = || on_runtime(true, async_channel_unbounded(PRODUCERS));
        item_rate(r, w, "async-channel", v, f);
    }
}

/// Records the best of `ROUNDS` runs of `run` (each returns its own duration for
/// `ITEMS` items) in ns per item.
fn item_rate(
    r: &mut Report,
    workload: &'static str,
    imp: &'static str,
    variant: &str,
    mut run: impl FnMut() -> Duration,
) {
    let d = best(&mut run);
    r.add(workload, imp, variant, ns_per(d, ITEMS), "ns/item");
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

fn std_mpsc_four() -> Duration {
    let (tx, rx) = std::sync::mpsc::channel();
    time(|| {
        let ps: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in (p..ITEMS).step_by(PRODUCERS) {
                        tx.send(i).unwrap();
                    }
                })
            })
            .collect();
        assert_eq!(rx.iter().take(ITEMS).count(), ITEMS);
        ps.into_iter().for_each(|p| p.join().unwrap());
    })
}

fn crossbeam_four() -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded();
    time(|| {
        let ps: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in (p..ITEMS).step_by(PRODUCERS) {
                        tx.send(i).unwrap();
                    }
                })
            })
            .collect();
        assert_eq!(rx.iter().take(ITEMS).count(), ITEMS);
        ps.into_iter().for_each(|p| p.join().unwrap());
    })
}

/// One producer (this thread), two worker threads sharing the items.
fn crossbeam_one_to_two() -> Duration {
    let (tx, rx) = crossbeam_channel::unbounded::<usize>();
    time(|| {
        let ws: Vec<_> = (0..2)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || rx.iter().count())
            })
            .collect();
        (0..ITEMS).for_each(|i| tx.send(i).unwrap());
        drop(tx);
        let n: usize = ws.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(n, ITEMS);
    })
}

async fn tokio_burst() -> Duration {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let start = std::time::Instant::now();
    (0..ITEMS).for_each(|i| tx.send(i).unwrap());
    for _ in 0..ITEMS {
        rx.recv().await.unwrap();
    }
    start.elapsed()
}

async fn flume_burst() -> Duration {
    let (tx, rx) = flume::unbounded();
    let start = std::time::Instant::now();
    (0..ITEMS).for_each(|i| tx.send(i).unwrap());
    for _ in 0..ITEMS {
        rx.recv_async().await.unwrap();
    }
    start.elapsed()
}

async fn async_channel_burst() -> Duration {
    let (tx, rx) = async_channel::unbounded();
    let start = std::time::Instant::now();
    (0..ITEMS).for_each(|i| tx.try_send(i).unwrap());
    for _ in 0..ITEMS {
        rx.recv().await.unwrap();
    }
    start.elapsed()
}

/// Our side of the chan.* workloads: `hp::queue` and `hp::sync_queue`. Our queues end
/// with their context, not when producers go away, so the consumer takes exactly
/// `ITEMS` items.
mod ours {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::time::{Duration, Instant};

    use futures::StreamExt;
    use machinery::helpers as hp;

    use super::{ITEMS, PRODUCERS};

    /// `producers` tasks append `ITEMS` items in all through queue handles; the
    /// consumer (the runtime's main task) takes them.
    pub async fn one_to_many(producers: usize) -> Duration {
        let ctx = hp::Ctx::beginning("bench");
        let mut q = hp::queue::<usize>(&ctx).build();
        let start = Instant::now();
        for p in 0..producers {
            let h = q.handle();
            tokio::spawn(async move {
                for i in (p..ITEMS).step_by(producers) {
                    h.append(i).unwrap();
                }
            });
        }
        let mut all = q.get_all();
        for _ in 0..ITEMS {
            all.next().await.unwrap();
        }
        start.elapsed()
    }

    /// All items queued first, then drained: the case where the Python original
    /// yields to the loop before every item.
    pub async fn burst() -> Duration {
        let ctx = hp::Ctx::beginning("bench");
        let mut q = hp::queue::<usize>(&ctx).build();
        let start = Instant::now();
        (0..ITEMS).for_each(|i| {
            q.append(i).unwrap();
        });
        let mut all = q.get_all();
        for _ in 0..ITEMS {
            all.next().await.unwrap();
        }
        start.elapsed()
    }

    /// Priority appends (each goes in front), then a drain: newest first.
    pub async fn priority() -> Duration {
        let ctx = hp::Ctx::beginning("bench");
        let mut q = hp::queue::<usize>(&ctx).build();
        let start = Instant::now();
        (0..ITEMS).for_each(|i| {
            q.append_front(i).unwrap();
        });
        let mut all = q.get_all();
        assert_eq!(all.next().await, Some(ITEMS - 1));
        for _ in 1..ITEMS {
            all.next().await.unwrap();
        }
        start.elapsed()
    }

    /// Instructions (boxed closures the consumer runs in order), then one item that
    /// shows they all ran.
    pub async fn instructions() -> Duration {
        let ctx = hp::Ctx::beginning("bench");
        let mut q = hp::queue::<usize>(&ctx).build();
        let count = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        for _ in 0..ITEMS {
            let c = count.clone();
            q.append_instruction(move || {
                c.fetch_add(1, Relaxed);
            })
            .unwrap();
        }
        q.append(0).unwrap();
        assert_eq!(q.get_all().next().await, Some(0));
        let d = start.elapsed();
        assert_eq!(count.load(Relaxed), ITEMS);
        d
    }

    /// Four producer threads, the consumer on this thread.
    pub fn sync_four_to_one() -> Duration {
        let ctx = hp::Ctx::beginning("bench");
        let q = hp::sync_queue::<usize>(&ctx).build();
        let start = Instant::now();
        let ps: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in (p..ITEMS).step_by(PRODUCERS) {
                        q.append(i).unwrap();
                    }
                })
            })
            .collect();
        assert_eq!(q.get_all().take(ITEMS).count(), ITEMS);
        ps.into_iter().for_each(|p| p.join().unwrap());
        start.elapsed()
    }

    /// One producer (this thread), two worker threads sharing the items.
    pub fn sync_one_to_two() -> Duration {
        let ctx = hp::Ctx::beginning("bench");
        let q = hp::sync_queue::<usize>(&ctx)
            .empty_on_finished(true)
            .build();
        let start = Instant::now();
        let ws: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || q.get_all().count())
            })
            .collect();
        (0..ITEMS).for_each(|i| {
            q.append(i).unwrap();
        });
        q.ctx().cancel();
        let n: usize = ws.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(n, ITEMS);
        start.elapsed()
    }

    /// One producer thread, the consumer on this thread.
    pub fn sync_one_to_one() -> Duration {
        let ctx = hp::Ctx::beginning("bench");
        let q = hp::sync_queue::<usize>(&ctx).build();
        let producer = q.clone();
        let start = Instant::now();
        let t = std::thread::spawn(move || {
            (0..ITEMS).for_each(|i| {
                producer.append(i).unwrap();
            })
        });
        assert_eq!(q.get_all().take(ITEMS).count(), ITEMS);
        t.join().unwrap();
        start.elapsed()
    }
}
