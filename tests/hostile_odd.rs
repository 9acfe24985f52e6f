//! Hostile tests for the odd helpers (generators, `stop_async_generator`, `using`,
//! `ensure_aexit`, the result helpers), by class: user `Drop` re-entering the crate,
//! panics wherever user code runs, long chains on a 2 MiB stack, cancellation at every
//! await point, both runtimes.

mod common;

use common::in_child_process;
use futures::StreamExt;
use machinery::helpers as hp;

/// A stage that relays every item of the stage before it.
fn relay(inner: hp::AsyncGenerator<u32>) -> hp::AsyncGenerator<u32> {
    hp::AsyncGenerator::new(move |co: hp::Co<u32>| async move {
        let mut inner = inner;
        while let Some(v) = inner.next().await {
            co.yield_(v).await?;
        }
        Ok::<(), hp::Failure>(())
    })
}

fn counter(n: u32) -> hp::AsyncGenerator<u32> {
    hp::AsyncGenerator::new(move |co: hp::Co<u32>| async move {
        for i in 0..n {
            co.yield_(i).await?;
        }
        Ok::<(), hp::Failure>(())
    })
}

fn depth() -> usize {
    std::env::var("PROBE_DEPTH").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000)
}

#[test]
fn probe_nested_poll() {
    in_child_process("probe_nested_poll", || {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut g = counter(3);
            for _ in 0..depth() {
                g = relay(g);
            }
            let got: Vec<u32> = g.collect().await;
            assert_eq!(got, [0, 1, 2]);
        });
    });
}

#[test]
fn probe_nested_drop() {
    in_child_process("probe_nested_drop", || {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut g = counter(3);
            for _ in 0..depth() {
                g = relay(g);
            }
            drop(g);
        });
    });
}
