//! The context fan-out walks a parent's children a chunk at a time, unlocking the parent
//! between chunks: callbacks still run breadth first in creation order, exactly once,
//! while children are dropped and created during the walk, and user code re-entering the
//! crate from a callback or a `Drop` is queued, not recursed into.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use machinery::helpers::{Ctx, Failure};

/// Wider than one chunk (64) several times over, and not a multiple of it.
const WIDE: usize = 1_000;

fn recorder(log: &Arc<Mutex<Vec<String>>>, ctx: &Ctx, name: String) {
    let log = log.clone();
    ctx.add_done_callback(move |_| log.lock().unwrap().push(name));
}

#[test]
fn a_fanout_wider_than_a_chunk_runs_callbacks_breadth_first_in_creation_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let root = Ctx::beginning("root");
    recorder(&log, &root, "root".into());
    let mut kids = Vec::new();
    let mut grands = Vec::new();
    let mut holes = Vec::new();
    for i in 0..WIDE {
        if i % 7 == 0 {
            // Dropped before the cancel: the walk meets free keys between live ones.
            holes.push(root.child("hole").drop_guard());
        }
        let c = root.child(format!("c{i}")).drop_guard();
        recorder(&log, &c, format!("c{i}"));
        // Every third child has two children of its own.
        if i % 3 == 0 {
            for j in 0..2 {
                let g = c.child(format!("g{i}.{j}")).drop_guard();
                recorder(&log, &g, format!("g{i}.{j}"));
                grands.push(g);
            }
        }
        kids.push(c);
    }
    drop(holes);
    assert!(root.cancel());
    let mut expected = vec!["root".to_owned()];
    expected.extend((0..WIDE).map(|i| format!("c{i}")));
    for i in (0..WIDE).step_by(3) {
        expected.extend((0..2).map(|j| format!("g{i}.{j}")));
    }
    assert_eq!(*log.lock().unwrap(), expected);
    assert!(kids.iter().all(|k| k.done()) && grands.iter().all(|g| g.done()));
}

#[test]
fn children_dropped_and_created_during_a_wide_fanout_each_finish_exactly_once() {
    for round in 0..20 {
        let root = Ctx::beginning("root");
        let counts: Arc<Vec<AtomicUsize>> =
            Arc::new((0..2 * WIDE).map(|_| AtomicUsize::new(0)).collect());
        let mut kids = Vec::new();
        for i in 0..WIDE {
            let c = root.child("c").drop_guard();
            let counts = counts.clone();
            c.add_done_callback(move |f| {
                assert!(matches!(f, Failure::Cancelled));
                counts[i].fetch_add(1, SeqCst);
            });
            kids.push(Some(c));
        }
        let barrier = Arc::new(Barrier::new(2));
        let (r, b) = (root.clone(), barrier.clone());
        let canceller = thread::spawn(move || {
            b.wait();
            assert!(r.cancel());
        });
        barrier.wait();
        // Meanwhile: drop every other child (each finishes itself, or was finished by
        // the walk) and create new ones (registered before the root is done, or
        // created done).
        let mut late = Vec::new();
        for i in (round % 2..WIDE).step_by(2) {
            kids[i] = None;
            let c = root.child("late").drop_guard();
            let counts = counts.clone();
            let k = WIDE + late.len();
            c.add_done_callback(move |_| {
                counts[k].fetch_add(1, SeqCst);
            });
            late.push(c);
        }
        canceller.join().unwrap();
        assert!(kids.iter().flatten().all(|k| k.done()));
        assert!(late.iter().all(|k| k.done()));
        drop(late);
        let n = WIDE + WIDE / 2;
        for (i, c) in counts.iter().enumerate().take(n) {
            assert_eq!(c.load(SeqCst), 1, "round {round}, callback {i}");
        }
    }
}

/// Callbacks of a wide tree that cancel another wide tree, and captured values whose
/// `Drop` (run when each callback is consumed) creates and cancels contexts: both
/// re-enter the crate from inside finishing work, and everything runs exactly once.
#[test]
fn callbacks_and_drops_re_entering_during_a_wide_fanout_run_once() {
    struct Reenter(Ctx, Arc<AtomicUsize>);
    impl Drop for Reenter {
        fn drop(&mut self) {
            let c = self.0.child("from drop").drop_guard();
            let n = self.1.clone();
            c.add_done_callback(move |_| {
                n.fetch_add(1, SeqCst);
            });
            c.cancel();
        }
    }
    let other = Ctx::beginning("other");
    let ran = Arc::new(AtomicUsize::new(0));
    let other_kids: Vec<_> = (0..WIDE)
        .map(|_| {
            let c = other.child("o").drop_guard();
            let ran = ran.clone();
            c.add_done_callback(move |_| {
                ran.fetch_add(1, SeqCst);
            });
            c
        })
        .collect();
    let root = Ctx::beginning("root");
    let dropped = Arc::new(AtomicUsize::new(0));
    let fired = Arc::new(AtomicUsize::new(0));
    let kids: Vec<_> = (0..WIDE)
        .map(|i| {
            let c = root.child("c").drop_guard();
            let guard = Reenter(Ctx::beginning("side"), dropped.clone());
            let (other, fired) = (other.clone(), fired.clone());
            c.add_done_callback(move |_| {
                let _keep = &guard;
                fired.fetch_add(1, SeqCst);
                if i == WIDE / 2 {
                    assert!(other.cancel());
                }
            });
            c
        })
        .collect();
    assert!(root.cancel());
    assert_eq!(fired.load(SeqCst), WIDE);
    assert_eq!(dropped.load(SeqCst), WIDE);
    assert_eq!(ran.load(SeqCst), WIDE);
    assert!(kids.iter().all(|k| k.done()));
    assert!(other_kids.iter().all(|k| k.done()));
}

#[test]
fn a_hundred_thousand_wide_fanout_with_callbacks_runs_each_once() {
    let root = Ctx::beginning("root");
    let n = Arc::new(AtomicUsize::new(0));
    let kids: Vec<_> = (0..100_000)
        .map(|_| {
            let c = root.child("c").drop_guard();
            let n = n.clone();
            c.add_done_callback(move |_| {
                n.fetch_add(1, SeqCst);
            });
            c
        })
        .collect();
    root.cancel();
    assert_eq!(n.load(SeqCst), 100_000);
    assert!(kids.iter().all(|k| k.done()));
}
