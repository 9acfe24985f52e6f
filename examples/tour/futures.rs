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
    println!("  {}", hp::fut_to_string(&sleeper));
}
