//! A tour of machinery: each helper in a few lines, printing what happens.
//!
//! `cargo run --release --example tour`

mod ctx;
mod futures;
mod odd;
mod queue;
mod queue_manager;
mod shutdown;
mod task_holder;
mod ticker;

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    // Panics inside tasks are caught and become errors; print them in one line.
    std::panic::set_hook(Box::new(|info| println!("  (a task panicked: {info})")));
    futures::run().await;
    ctx::run().await;
    queue::run().await;
    odd::run().await;
    ticker::run().await;
    task_holder::run().await;
    queue_manager::run().await;
    shutdown::run().await;
    println!("\ntour finished");
}
