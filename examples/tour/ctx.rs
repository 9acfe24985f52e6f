//! The context tree: children, a cancel that reaches grandchildren, a callback, a timeout
//! and the tree dump.

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

    server.cancel();
    println!("  after server.cancel(): {conn:?}");
    print!("{}", root.tree());
}
