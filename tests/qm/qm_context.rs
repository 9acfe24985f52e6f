//! Queue manager contexts (issue 24 item 6): a result's context costs O(1) (shared, not
//! copied), `make_empty_context` is optional, and a context of the wrong type does not
//! compile (the `compile_fail` doctest of `Feed::with_context`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use futures::StreamExt;
use machinery::helpers::{self as hp, Feed, QueueManagerResult as R, ResultContext};

use crate::common;

fn contexts_of(results: Vec<R<u32, String>>) -> Vec<ResultContext<String>> {
    results
        .into_iter()
        .filter_map(|r| match r {
            R::Success { context, .. } => Some(context),
            _ => None,
        })
        .collect()
}

/// 10 000 results of one source share its one `String`: no copy per result.
async fn a_string_context_is_shared_by_every_result_of_its_source() {
    let ctx = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = hp::queue_manager::<u32, String>(&ctx);
    let given = Arc::new("https://example.com/page".to_string());
    feeder.add_sync_iterator([Feed::iterator(0..5_000u32).with_shared_context(given.clone())]);
    feeder.add_sync_generator_with_context(0..5_000u32, "gen".to_string());
    feeder.set_as_finished_if_out_of_sources();
    let results: Vec<_> = streamer.by_ref().collect().await;
    let contexts = contexts_of(results);
    assert_eq!(contexts.len(), 10_000);
    let from_given: Vec<_> = contexts.iter().filter(|c| ***c == *given).collect();
    assert_eq!(from_given.len(), 5_000);
    assert!(
        from_given
            .iter()
            .all(|c| Arc::ptr_eq(c.shared().expect("shared"), &given)),
        "every result holds the Arc given, not a copy"
    );
    let gen_ctx: Vec<_> = contexts.iter().filter(|c| ***c == "gen").collect();
    assert_eq!(gen_ctx.len(), 5_000);
    let first = gen_ctx[0].shared().expect("shared").clone();
    assert!(
        gen_ctx
            .iter()
            .all(|c| Arc::ptr_eq(c.shared().unwrap(), &first))
    );
    // Only the results (and our two handles) hold it: no hidden copies in the manager.
    drop(contexts);
    assert_eq!(Arc::strong_count(&given), 1);
    assert_eq!(Arc::strong_count(&first), 1);
}

#[test]
fn a_string_context_is_shared_by_every_result_of_its_source_both_runtimes() {
    common::block_on_paused(a_string_context_is_shared_by_every_result_of_its_source());
    common::multi_thread(a_string_context_is_shared_by_every_result_of_its_source());
}

/// No `make_empty_context`: a result without a context carries `C::default()`.
#[tokio::test(start_paused = true)]
async fn without_make_empty_context_results_carry_the_default() {
    let ctx = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = hp::queue_manager::<u32, String>(&ctx);
    feeder.add_value(1);
    feeder.add_value_with_context(2, "two".to_string());
    feeder.set_as_finished_if_out_of_sources();
    let got: Vec<(u32, String, bool)> = streamer
        .by_ref()
        .filter_map(|r| async move {
            match r {
                R::Success { value, context, .. } => {
                    Some((value, context.to_string(), context.is_empty_context()))
                }
                _ => None,
            }
        })
        .collect()
        .await;
    assert_eq!(got, [(1, String::new(), true), (2, "two".into(), false)]);
}

/// The seed's form: `make_empty_context` is called once per context-less result, when
/// it is handed out, and never for a result with a context.
#[tokio::test(start_paused = true)]
async fn the_seed_form_calls_make_empty_context_once_per_result_without_one() {
    let ctx = hp::Ctx::beginning("t");
    let made = Arc::new(AtomicUsize::new(0));
    let m = made.clone();
    let (mut streamer, feeder) =
        hp::queue_manager_with_empty_context::<u32, String>(&ctx, "qm", move || {
            format!("empty{}", m.fetch_add(1, SeqCst))
        });
    feeder.add_sync_iterator([1u32, 2]);
    feeder.add_sync_iterator_with_context([3u32], "given".to_string());
    feeder.set_as_finished_if_out_of_sources();
    assert_eq!(made.load(SeqCst), 0, "made when handed out, not before");
    let got: Vec<String> = streamer
        .by_ref()
        .map(|r| match r.context() {
            Some(c) => c.clone(),
            None => "-".into(),
        })
        .collect()
        .await;
    // [St1, St2] | St1: VS1 -> [St2, VS1] | St2: VS3 -> [VS1, VS3] | VS1: S1, St1: VS2
    // -> [VS3, S1, VS2] | VS3: S3, St2 ends -> [S1, VS2, S3, IS2] | S1 out | VS2: S2,
    // St1 ends -> [S3, IS2, S2, IS1] | out x4 | Stopped
    assert_eq!(got, ["empty0", "given", "given", "empty1", "empty2", "-"]);
    assert_eq!(made.load(SeqCst), 3);
}

/// A produced feed's own context replaces the producer's for it and what it produces;
/// replacing it again does not nest, and dropping the replaced one runs no user code
/// under the manager's lock (a `Drop` that re-enters the manager).
#[tokio::test(start_paused = true)]
async fn a_replaced_context_whose_drop_reenters_the_manager() {
    #[derive(Default)]
    struct Noisy(Option<hp::QueueFeeder<u32, Noisy>>, &'static str);
    impl Drop for Noisy {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f.add_value(self.1.len() as u32);
            }
        }
    }
    let ctx = hp::Ctx::beginning("t");
    let (mut streamer, feeder) = hp::queue_manager::<u32, Noisy>(&ctx);
    // The producer's context (dropped when its source ends and its results are gone).
    feeder.add_sync_iterator_with_context(
        [Feed::Value(1).with_context(Noisy(Some(feeder.clone()), "inner"))],
        Noisy(Some(feeder.clone()), "outer!"),
    );
    // St1 takes the feed -> [E, St1] | E: S1 @inner -> [St1, S1] | St1 ends -> [S1, IS1]
    let mut got = Vec::new();
    for _ in 0..2 {
        let r = streamer.next().await.expect("a result");
        got.push(format!(
            "{:?} @{}",
            r.value(),
            r.context().map_or("-", |c| c.1)
        ));
    }
    // Dropping the last results drops both contexts: each adds its value from its Drop.
    // VALUE#2 ("inner", 5) then VALUE#3 ("outer!", 6).
    feeder.set_as_finished_if_out_of_sources();
    let rest: Vec<Option<u32>> = streamer
        .by_ref()
        .map(|r| r.value().copied())
        .collect()
        .await;
    assert_eq!(got, ["Some(1) @inner", "None @outer!"]);
    assert_eq!(rest, [Some(5), Some(6), None]);
}
