//! Stress on the multi-thread runtime: a queue manager fed from many tasks (values,
//! iterators, coroutines) while its context is cancelled at a seeded random moment.
//! Asserts: `Stopped` exactly once; every value exactly once (stream, then `remaining`);
//! each iterator's values in order, followed by exactly one `IterationStop`; exactly one
//! result per coroutine and every coroutine future finished or dropped; no live source
//! left. A real-time watchdog fails the test instead of hanging it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use machinery::helpers::{self as hp, QueueManagerResult as R};

use crate::common;
use common::{Rng, WATCHDOG};
const FEEDERS: u32 = 8;
const VALUES: u32 = 300;
const ITERS: u32 = 6;
const ITEMS: u32 = 20;
const FUTS: u32 = 10;

/// Counts coroutine futures that ended (finished or dropped).
struct Ended(Arc<AtomicUsize>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[derive(Default)]
struct Added {
    values: Vec<hp::SourceId>,
    iters: Vec<hp::SourceId>,
    futs: Vec<hp::SourceId>,
}

type Res = R<(u32, u32), u32>;

async fn feed(feeder: hp::QueueFeeder<(u32, u32), u32>, f: u32, ended: Arc<AtomicUsize>) -> Added {
    let mut added = Added::default();
    let mut rng = Rng(u64::from(f) + 11);
    for n in 0..VALUES {
        added
            .values
            .push(feeder.add_value_with_context(hp::Feed::Value((f, n)), f));
        if n % (VALUES / ITERS) == 0 {
            added
                .iters
                .push(feeder.add_sync_iterator_with_context((0..ITEMS).map(move |i| (f, i)), f));
        }
        if n % (VALUES / FUTS) == 0 {
            let e = Ended(ended.clone());
            let pause = Duration::from_micros(rng.below(2_000));
            added.futs.push(feeder.add_coroutine_with_context(
                async move {
                    let _e = e;
                    tokio::time::sleep(pause).await;
                    (f, 999)
                },
                f,
            ));
        }
        if rng.below(8) == 0 {
            tokio::task::yield_now().await;
        }
    }
    added
}

/// What a stop hands back (a coroutine not spawned, an iterator's rest) is the
/// consumer's: dropped here, so the coroutines' end counters see it.
fn handed_back(mut r: Res) -> Res {
    drop(r.take_unread());
    r
}

/// Checks one round's results against what was added.
fn check(results: &[Res], added: &[Added]) {
    let stops = results.iter().filter(|r| r.is_stopped()).count();
    assert_eq!(stops, 1, "Stopped exactly once");
    let mut per_source: HashMap<hp::SourceId, Vec<&Res>> = HashMap::new();
    for r in results {
        if let Some(s) = r.sources() {
            per_source.entry(s.added()).or_default().push(r);
        }
    }
    for a in added {
        for id in &a.values {
            let rs = &per_source[id];
            assert_eq!(rs.len(), 1, "value {id:?} delivered once");
            assert!(matches!(rs[0], R::Success { .. }));
        }
        for id in &a.iters {
            let rs = &per_source[id];
            let (last, items) = rs.split_last().expect("an iterator gives results");
            assert!(
                matches!(last, R::IterationStop { .. }),
                "{id:?} ends with IterationStop"
            );
            let seen: Vec<u32> = items
                .iter()
                .map(|r| r.value().expect("values before the stop").1)
                .collect();
            assert_eq!(
                seen,
                (0..seen.len() as u32).collect::<Vec<_>>(),
                "{id:?} in order"
            );
            if let R::IterationStop { error: None, .. } = last {
                assert_eq!(seen.len(), ITEMS as usize, "{id:?} ran out");
            }
        }
        for id in &a.futs {
            let rs = &per_source[id];
            assert_eq!(rs.len(), 1, "coroutine {id:?} has one result");
            match rs[0] {
                R::Success { value, .. } => assert_eq!(value.1, 999),
                R::Failure { error, .. } => assert!(error.is_cancelled()),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

async fn one_round(seed: u64) -> (usize, bool) {
    let root = hp::Ctx::beginning("stress");
    let (mut streamer, feeder) =
        hp::queue_manager_with_empty_context::<(u32, u32), u32>(&root, "queue_manager", || {
            u32::MAX
        });
    let ended = Arc::new(AtomicUsize::new(0));
    let mctx = streamer.ctx().clone();
    let mut rng = Rng(seed);
    let cancel_after = Duration::from_micros(rng.below(8_000));
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(cancel_after).await;
        mctx.cancel();
    });
    let feeders: Vec<_> = (0..FEEDERS)
        .map(|f| tokio::spawn(feed(feeder.clone(), f, ended.clone())))
        .collect();
    let results = Arc::new(Mutex::new(Vec::new()));
    while let Some(r) = streamer.next().await {
        results.lock().unwrap().push(handed_back(r));
    }
    canceller.await.unwrap();
    let mut added = Vec::new();
    for f in feeders {
        added.push(f.await.unwrap());
    }
    // Sources added after the stop are still delivered by the turn model (an iterator's
    // step finds the ctx done): new iterations over the stopped streamer take them, and
    // each ends (without waiting) once the queue is empty. Collect until every
    // coroutine has ended (bounded).
    let futs = (FEEDERS * (FUTS)) as usize;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        streamer.resume();
        while let Some(r) = streamer.next().await {
            results.lock().unwrap().push(handed_back(r));
        }
        if ended.load(SeqCst) >= futs && streamer.live_sources() == 0 {
            streamer.resume();
            while let Some(r) = streamer.next().await {
                results.lock().unwrap().push(handed_back(r));
            }
            break;
        }
        assert!(std::time::Instant::now() < deadline, "sources never ended");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let results = std::mem::take(&mut *results.lock().unwrap());
    check(&results, &added);
    assert_eq!(ended.load(SeqCst), futs);
    let cut = results
        .iter()
        .any(|r| matches!(r, R::IterationStop { error: Some(_), .. }));
    (results.len(), cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_manager_fed_from_many_tasks_while_its_ctx_is_cancelled_at_a_random_moment() {
    let start = std::time::Instant::now();
    let run = async {
        let (mut total, mut cut) = (0, 0);
        for seed in 1..=30u64 {
            let (n, c) = one_round(seed * 0x9e37_79b9).await;
            total += n;
            cut += usize::from(c);
        }
        (total, cut)
    };
    let (total, cut) = tokio::time::timeout(WATCHDOG, run)
        .await
        .expect("watchdog: the queue manager stress hung");
    eprintln!(
        "stress_qm: 30 rounds, {total} results, {cut} with iterators cut by the cancel, in {:?}",
        start.elapsed()
    );
}
