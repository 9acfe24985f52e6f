//! The odd helpers: an async generator stopped by `stop_async_generator`, `ensure_aexit`
//! and `using`, and the result helpers.

use std::time::Duration;

use machinery::helpers::{self as hp, AsyncContextManager};
use tokio::time::Instant;

/// The seed's `MyCM`: `start` may fail; `finish` must run either way.
struct MyCm {
    fail_start: bool,
}

impl AsyncContextManager for MyCm {
    type Value = &'static str;

    async fn enter(&mut self) -> Result<&'static str, hp::Error> {
        println!("  start()");
        if self.fail_start {
            return Err(hp::Error::msg("port already in use"));
        }
        Ok("connection")
    }

    async fn exit(&mut self, error: Option<&hp::Error>) -> Result<(), hp::Error> {
        println!("  finish(error = {error:?})");
        Ok(())
    }
}

pub async fn run() {
    println!("\n== odd helpers");
    generator().await;
    pipeline().await;
    scope().await;
    results();
}

async fn generator() {
    let start = Instant::now();
    // Reads a sensor once a second; a thrown-in error other than "recalibrate" ends it.
    let mut readings = hp::AsyncGenerator::new(|co: hp::Co<u32, u32>| async move {
        let mut offset = 0;
        for raw in 100.. {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match co.yield_(raw + offset).await {
                Ok(adjust) => offset += adjust,
                Err(hp::Failure::Error(e)) if e.to_string() == "recalibrate" => {
                    println!("  generator: recalibrating, then carrying on");
                    offset = 0;
                }
                Err(f) => {
                    println!("  generator: cleaning up after {f}");
                    return Err(f);
                }
            }
        }
        Ok(())
    });
    for adjust in [0, 5, 5] {
        let got = readings.asend(adjust).await;
        println!("  t={:?} asend({adjust}) -> {got:?}", start.elapsed());
    }
    let got = readings.athrow(hp::Error::msg("recalibrate")).await;
    println!("  athrow(recalibrate) -> {got:?}");

    let stopped = hp::stop_async_generator(&mut readings).provide(0).await;
    println!(
        "  stop_async_generator -> {stopped:?}; finished: {}",
        readings.finished()
    );
}

/// Generators nest to any depth: 10 000 stages, each relaying the one before it.
async fn pipeline() {
    use futures::StreamExt;
    let mut stage = hp::AsyncGenerator::new(|co: hp::Co<u32>| async move {
        for i in 1..=3 {
            co.yield_(i).await?;
        }
        Ok::<(), hp::Failure>(())
    });
    for _ in 0..10_000 {
        let mut inner = stage;
        stage = hp::AsyncGenerator::new(move |co: hp::Co<u32>| async move {
            while let Some(v) = inner.next().await {
                co.yield_(v * 2 % 1_000).await?;
            }
            Ok::<(), hp::Failure>(())
        });
    }
    let out: Vec<u32> = stage.collect().await;
    println!("  10 000 nested stages -> {out:?}");
}

async fn scope() {
    let got = hp::using(&mut MyCm { fail_start: false }, async |conn| {
        println!("  body uses the {conn}");
        Ok(conn.len())
    })
    .await;
    println!("  using -> {got:?}");

    let entered = hp::ensure_aexit(&mut MyCm { fail_start: true }).await;
    println!("  ensure_aexit with a failing start -> {entered:?}");
}

fn results() {
    let futs: Vec<hp::Fut<&str>> = (0..3).map(|_| hp::Fut::new()).collect();
    let final_fut = hp::Fut::new();
    futs[1].set_result("pong");
    let changed = hp::find_and_apply_result(&final_fut, &futs);
    println!(
        "  find_and_apply_result -> {changed}; final = {:?}; the others = {:?}",
        final_fut.result(),
        futs.iter().map(|f| f.result().ok()).collect::<Vec<_>>()
    );

    let failing: Vec<hp::Fut<u8>> = (0..2).map(|_| hp::Fut::new()).collect();
    failing[0].set_exception(hp::Error::msg("timeout"));
    failing[1].set_exception(hp::Error::msg("refused"));
    let (err, results) = hp::noncancelled_results_from_futs(&failing);
    println!("  noncancelled_results_from_futs -> ({err:?}, {results:?})");
}
