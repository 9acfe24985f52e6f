//! The settable future, the event and the task.

use machinery::helpers as hp;

pub async fn run() {
    println!("== futures, events, tasks");
    let fut = hp::Fut::named("answer");
    fut.add_done_callback(|o: &hp::Outcome<u32>| println!("  callback saw {o:?}"));
    let waiter = tokio::spawn({
        let fut = fut.clone();
        async move { fut.await }
    });
    fut.set_result(42);
    println!(
        "  {} awaited by another task: {:?}",
        hp::fut_to_string(&fut),
        waiter.await.unwrap()
    );

    let ev = hp::Event::new();
    let t = hp::Task::spawn_named("waits-for-event", {
        let ev = ev.clone();
        async move {
            ev.wait().await;
            "event seen"
        }
    });
    ev.set();
    println!("  task {:?} -> {:?}", t.name(), t.clone().await);

    let panicky = hp::Task::spawn_named("panics", async { panic!("boom") });
    panicky.wait().await;
    println!("  {}", hp::fut_to_string(&panicky));

    let sleeper = hp::Task::spawn_named("sleeper", std::future::pending::<()>());
    sleeper.cancel();
    sleeper.wait().await;
    println!(
        "  {} (state only: {})",
        hp::fut_to_string(&sleeper),
        hp::fut_state_to_string(&sleeper)
    );

    // A chain: each future's callback completes the next. Finishing started inside a
    // callback is queued and run by the outermost call, so any length runs in constant
    // stack, and all of it has run when the first set_result returns.
    let chain: Vec<hp::Fut<u32>> = (0..100_000).map(|_| hp::Fut::new()).collect();
    for pair in chain.windows(2) {
        let next = pair[1].clone();
        pair[0].add_done_callback(move |o: &hp::Outcome<u32>| {
            next.set_result(o.as_ref().map_or(0, |v| v + 1));
        });
    }
    chain[0].set_result(0);
    println!(
        "  a chain of {} futures: the last got {:?}",
        chain.len(),
        chain[chain.len() - 1].result()
    );
}
