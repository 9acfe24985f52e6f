//! The context tree: children, a cancel that reaches grandchildren, a callback, a timeout,
//! `run_until_cancelled`, and the tree dump (also at shutdown, while children drain).

use std::time::Duration;

use machinery::helpers as hp;

pub async fn run() {
    println!("\n== context tree");
    let root = hp::Ctx::beginning("app");
    let server = root.child("server").drop_guard();
    let conn = server
        .child_with("conn-1", hp::CtxOptions::new().prefix("http"))
        .drop_guard();
    let deadline = root
        .child_with_timeout("job", Duration::from_secs(2))
        .drop_guard();
    conn.add_on_done(|ctx, how| println!("  callback: {} finished: {how}", ctx.name()));
    print!("{}", root.tree());

    let out = root
        .async_with_timeout(tokio::time::sleep(Duration::from_secs(30)))
        .name("slow")
        .timeout(Duration::from_secs(1))
        .await;
    println!("  async_with_timeout after 1s: {out:?}");

    deadline.wait().await;
    println!("  {} -> {:?}", deadline.name(), deadline.exception());

    let worker = root.child("worker");
    let w = worker.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        w.cancel();
    });
    let out = worker
        .run_until_cancelled(tokio::time::sleep(Duration::from_secs(30)))
        .await;
    println!("  run_until_cancelled on a context cancelled first: {out:?}");

    server.cancel();
    println!("  after server.cancel(): {conn:?}");
    println!("  the tree at shutdown still shows what is draining:");
    print!("{}", root.tree());
    println!("  children of app still alive: {}", root.child_count());
    let snap = root.snapshot();
    let draining: Vec<(usize, &str, String)> = snap
        .walk()
        .map(|(depth, s)| (depth, s.name.as_str(), s.state.to_string()))
        .collect();
    println!("  the same as a snapshot to walk: {draining:?}");

    let job = hp::Ctx::beginning_with_timeout("job", Duration::from_secs(60));
    let how = job.child("export").wait().await;
    println!("  a root with a 60 s budget: its child finished with `{how}`");
}
