//! Graceful shutdown: a fail-fast holder, then a drain with a deadline and its report.

use std::time::Duration;

use machinery::helpers as hp;
use tokio::time::sleep;

pub async fn run() {
    println!("\n== shutdown");
    let root = hp::Ctx::beginning("svc");
    // errgroup: the first failure cancels the group, with itself as the cause.
    let group = hp::TaskHolder::builder(&root)
        .name("group")
        .fail_fast()
        .build();
    group.spawn_scoped_try("fetch", |_ctx| async {
        sleep(Duration::from_secs(1)).await;
        Err::<(), _>(hp::Error::msg("disk on fire"))
    });
    let sibling = group.spawn_scoped("index", |ctx| async move {
        ctx.wait().await;
        format!("index stopped: {}", ctx.exception().unwrap().unwrap())
    });
    println!("  {}", sibling.join().await.unwrap());
    println!(
        "  try_finish -> {:?}",
        group.try_finish().await.map_err(|e| e.to_string())
    );

    // A drain: one connection says goodbye, one ignores its context and is cut short.
    let conns = hp::TaskHolder::builder(&root).name("conns").build();
    conns.spawn_scoped("polite", |ctx| async move {
        ctx.wait().await;
        sleep(Duration::from_millis(100)).await;
    });
    conns.spawn_scoped("stuck", |_ctx| std::future::pending::<()>());
    let report = hp::Drain::new(&root)
        .holder(conns)
        .run(Duration::from_secs(2))
        .await;
    for line in report.to_string().lines().take(7) {
        println!("  {line}");
    }
}
