use machinery::helpers as hp;
use std::time::Instant;
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n = 300_000;
    let ctx = hp::Ctx::beginning("bench");
    let ts = hp::task_holder(&ctx);
    let t = Instant::now();
    for i in 0..n { ts.add_coroutine(async move { std::hint::black_box(i); }, true); }
    let add = t.elapsed();
    ts.finish().await;
    println!("add {:?}/task, finish {:?}/task", add / n, (t.elapsed() - add) / n);
    let t = Instant::now();
    let v: Vec<_> = (0..n).map(|i| ctx.async_as_background(async move { std::hint::black_box(i); }, true)).collect();
    let add = t.elapsed();
    for x in &v { x.wait().await; }
    println!("bg add {:?}/task, wait {:?}/task", add / n as u32, (t.elapsed() - add) / n as u32);
}
