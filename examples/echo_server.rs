//! A TCP echo server as a real program would write it with machinery: a context per
//! connection, a task holder for the connection tasks, a stats ticker, graceful shutdown
//! with async cleanup, and the context tree dumped at shutdown.
//!
//! It drives itself: it starts the server on 127.0.0.1, runs quick clients and long-lived
//! ones, shuts down while the long-lived ones are still connected, and asserts that every
//! line was echoed, every long-lived client got its goodbye, and nothing is left running.
//!
//! `cargo run --example echo_server`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use futures::StreamExt;
use machinery::helpers as hp;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Quick clients: connect, send `LINES` lines, check the echoes, leave.
const QUICK: usize = 8;
/// Long-lived clients: still connected when the server shuts down.
const LONG: usize = 4;
const LINES: usize = 5;

/// What the server counts.
#[derive(Default)]
struct Stats {
    connections: AtomicUsize,
    lines: AtomicUsize,
    goodbyes: AtomicUsize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = hp::Ctx::beginning("echo");
    let server = root.child("server");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    println!("listening on {addr}");
    let stats = Arc::new(Stats::default());

    // Connection tasks live in a holder on the server's context: finishing it waits for
    // each connection's cleanup, and the holder lets finished connections go at once.
    let holder = hp::task_holder(&server);
    let handle = holder.handle();

    // A stats line every 50 ms until the server's context is done.
    let ticker = {
        let stats = stats.clone();
        let mut ticks = hp::tick(Duration::from_millis(50), &server)
            .name("stats")
            .build()
            .expect("a valid schedule");
        server.async_as_background(async move {
            while let Some((i, _)) = ticks.next().await {
                println!(
                    "  stats #{i}: {} connections, {} lines",
                    stats.connections.load(Relaxed),
                    stats.lines.load(Relaxed)
                );
            }
        })
    };

    // The accept loop: one held task per connection, each on its own child context.
    let accept = {
        let ctx = server.clone();
        let stats = stats.clone();
        server.async_as_background(async move {
            loop {
                let (socket, peer) = tokio::select! {
                    _ = ctx.wait() => break,
                    accepted = listener.accept() => accepted.expect("accept"),
                };
                stats.connections.fetch_add(1, Relaxed);
                let stats = stats.clone();
                // Each connection task gets its own child context, named after it:
                // cancelling the server reaches it, and the tree shows it.
                handle.spawn_scoped(format!("conn {}", peer.port()), move |conn| {
                    serve(socket, conn, stats)
                });
            }
        })
    };

    // Quick clients finish on their own.
    let quick: Vec<_> = (0..QUICK)
        .map(|c| tokio::spawn(quick_client(addr, c)))
        .collect();
    for q in quick {
        assert_eq!(q.await.expect("quick client"), LINES);
    }
    // Long-lived clients stay connected until the server says goodbye.
    let (connected_tx, mut connected_rx) = tokio::sync::mpsc::channel(LONG);
    let long: Vec<_> = (0..LONG)
        .map(|c| tokio::spawn(long_client(addr, c, connected_tx.clone())))
        .collect();
    for _ in 0..LONG {
        connected_rx
            .recv()
            .await
            .expect("a long-lived client connected");
    }
    while holder.pending() < LONG {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // Shutdown: cancelling the root reaches every connection; each finishes its line,
    // says goodbye and closes (async cleanup). The tree shows what is still draining.
    println!("shutting down with {} connections open", holder.pending());
    root.cancel();
    let dump = root.tree();
    println!("tree at shutdown:\n{dump}");
    // Every connection still draining is in the dump (SEMANTICS CTX 13), in its own state.
    assert_eq!(dump.matches("-->conn ").count(), LONG, "{dump}");
    holder.finish().await;
    accept.wait().await;
    ticker.wait().await;

    let mut echoed = 0;
    for l in long {
        let (lines, bye) = l.await.expect("long-lived client");
        assert!(bye, "a long-lived client got its goodbye");
        echoed += lines;
    }
    println!(
        "done: {} connections, {} lines echoed, {} goodbyes",
        stats.connections.load(Relaxed),
        stats.lines.load(Relaxed),
        stats.goodbyes.load(Relaxed)
    );
    assert_eq!(stats.connections.load(Relaxed), QUICK + LONG);
    assert_eq!(stats.lines.load(Relaxed), QUICK * LINES + echoed);
    assert_eq!(stats.goodbyes.load(Relaxed), LONG);
    assert!(server.cancelled());
    println!("echo server finished");
}

/// Echoes lines until the client leaves or `ctx` is done; on shutdown it says goodbye
/// first (the async cleanup a dropped future could not do).
async fn serve(socket: TcpStream, ctx: hp::Ctx, stats: Arc<Stats>) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    loop {
        let line = tokio::select! {
            _ = ctx.wait() => {
                let _ = write.write_all(b"bye\n").await;
                // A drain period before closing (a real server would flush its
                // buffers here): long enough that the dump taken at shutdown sees it.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = write.shutdown().await;
                stats.goodbyes.fetch_add(1, Relaxed);
                return;
            }
            line = lines.next_line() => line,
        };
        match line {
            Ok(Some(line)) => {
                stats.lines.fetch_add(1, Relaxed);
                if write
                    .write_all(format!("{line}\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            _ => return, // the client left
        }
    }
}

/// Sends `LINES` lines, checks each echo, and leaves; returns the lines echoed.
async fn quick_client(addr: std::net::SocketAddr, c: usize) -> usize {
    let socket = TcpStream::connect(addr).await.expect("connect");
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    for i in 0..LINES {
        let sent = format!("client {c} line {i}");
        write
            .write_all(format!("{sent}\n").as_bytes())
            .await
            .expect("send");
        let got = lines.next_line().await.expect("read").expect("an echo");
        assert_eq!(got, sent);
    }
    LINES
}

/// Sends a line every 10 ms until the server says goodbye; returns (lines echoed, bye).
async fn long_client(
    addr: std::net::SocketAddr,
    c: usize,
    connected: tokio::sync::mpsc::Sender<()>,
) -> (usize, bool) {
    let socket = TcpStream::connect(addr).await.expect("connect");
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut echoed = 0;
    let first = format!("long {c} hello");
    write
        .write_all(format!("{first}\n").as_bytes())
        .await
        .expect("send");
    assert_eq!(
        lines.next_line().await.expect("read").as_deref(),
        Some(first.as_str())
    );
    echoed += 1;
    connected.send(()).await.expect("main is waiting");
    loop {
        match lines.next_line().await {
            Ok(Some(line)) if line == "bye" => return (echoed, true),
            Ok(Some(_)) => echoed += 1,
            _ => return (echoed, false),
        }
    }
}
