//! A TCP echo server as a real program would write it with machinery: a context per
//! connection, a task holder for the connection tasks, a stats ticker, graceful shutdown
//! with async cleanup, and the context tree dumped at shutdown.
//!
//! It drives itself: it starts the server on 127.0.0.1, runs quick clients and long-lived
//! ones, shuts down while the long-lived ones are still connected, and asserts that every
//! line was echoed, every long-lived client got its goodbye, and nothing is left running.
//!
//! `cargo run --example echo_server`
//!
//! With `-- --until-signal` it serves like a real service instead: it prints
//! `listening on ADDR`, its own long-lived clients keep connections open, and it serves
//! until SIGINT or SIGTERM (Ctrl-C). Then it drains with a deadline (each connection
//! says goodbye and flushes for 2 s), prints the shutdown report and exits 0; a second
//! signal during the drain cuts short what still runs, and it exits 1 with the report.

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

/// A connection's drain period in the self-driving mode: long enough that the dump
/// taken at shutdown sees it.
const DRAIN: Duration = Duration::from_millis(200);
/// A connection's drain period under `--until-signal` (a real server flushing): long
/// enough for a second signal to come during the drain.
const SIGNAL_DRAIN: Duration = Duration::from_secs(2);
/// How long the `--until-signal` shutdown waits before cutting short what is left.
const DEADLINE: Duration = Duration::from_secs(10);

/// The running server: its connections, accept loop and stats ticker.
struct Server {
    server: hp::Ctx,
    addr: std::net::SocketAddr,
    holder: hp::TaskHolder,
    accept: hp::Task<()>,
    ticker: hp::Task<()>,
    stats: Arc<Stats>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = hp::Ctx::beginning("echo");
    if std::env::args().any(|a| a == "--until-signal") {
        std::process::exit(until_signal(root).await);
    }
    let server = start(&root, DRAIN).await;
    println!("listening on {}", server.addr);
    drive(root, server).await;
}

/// `--until-signal`: serves until SIGINT or SIGTERM, drains, reports; the exit code.
async fn until_signal(root: hp::Ctx) -> i32 {
    // Installed before the address is printed: a signal sent once it is, is seen.
    let signals = hp::on_shutdown_signals(&root).expect("install the signal handlers");
    let Server {
        addr,
        holder,
        accept,
        ticker,
        ..
    } = start(&root, SIGNAL_DRAIN).await;
    // Our own long-lived clients keep connections open until the server says goodbye.
    let (connected_tx, mut connected_rx) = tokio::sync::mpsc::channel(LONG);
    let clients: Vec<_> = (0..LONG)
        .map(|c| tokio::spawn(long_client(addr, c, connected_tx.clone())))
        .collect();
    for _ in 0..LONG {
        connected_rx
            .recv()
            .await
            .expect("a long-lived client connected");
    }
    // Announced once serving: a signal from here on finds connections to drain.
    println!("listening on {addr} ({LONG} connections open)");
    root.wait().await;
    println!("draining: {}", root.outcome().expect("done"));
    let report = hp::Drain::new(&root)
        .holder(holder)
        .task_named("accept loop", &accept)
        .task_named("stats ticker", &ticker)
        .force_on(signals.forced())
        .run(DEADLINE)
        .await;
    println!("{report}");
    for c in clients {
        c.abort();
    }
    if report.drained() { 0 } else { 1 }
}

/// Starts the server on 127.0.0.1; each connection drains for `drain` at shutdown.
async fn start(root: &hp::Ctx, drain: Duration) -> Server {
    let server = root.child("server");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
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
                    serve(socket, conn, stats, drain)
                });
            }
        })
    };
    Server {
        server,
        addr,
        holder,
        accept,
        ticker,
        stats,
    }
}

/// The self-driving run: clients, a shutdown while the long-lived ones are connected,
/// and checks that nothing was lost.
async fn drive(root: hp::Ctx, srv: Server) {
    let Server {
        server,
        addr,
        holder,
        accept,
        ticker,
        stats,
    } = srv;

    // Quick clients finish on their own.
    let quick: Vec<_> = (0..QUICK)
        .map(|c| tokio::spawn(quick_client(addr, c)))
        .collect();
    let mut ports = std::collections::HashSet::new();
    for q in quick {
        let (lines, port) = q.await.expect("quick client");
        assert_eq!(lines, LINES);
        ports.insert(port);
    }
    // Long-lived clients stay connected until the server says goodbye.
    let (connected_tx, mut connected_rx) = tokio::sync::mpsc::channel(LONG);
    let long: Vec<_> = (0..LONG)
        .map(|c| tokio::spawn(long_client(addr, c, connected_tx.clone())))
        .collect();
    let mut long_ports = Vec::new();
    for _ in 0..LONG {
        let port = connected_rx
            .recv()
            .await
            .expect("a long-lived client connected");
        long_ports.push(port);
    }
    ports.extend(long_ports.iter().copied());
    while holder.pending() < LONG {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // Shutdown: cancelling the root reaches every connection; each finishes its line,
    // says goodbye and closes (async cleanup). The tree shows what is still draining.
    println!("shutting down with {} connections open", holder.pending());
    root.cancel();
    let dump = root.tree();
    println!("tree at shutdown:\n{dump}");
    // Every connection still draining is in the dump (SEMANTICS CTX 13), in its own
    // state: each long-lived one (draining for `DRAIN`). A quick client's connection may
    // still be closing when the shutdown starts (it then shows too) or may have just
    // ended, so the check assumes no timing: every connection in the dump is one of ours,
    // and every connection still held after the dump that is not in it is a quick one
    // that has ended meanwhile.
    let in_dump = |port: u16| dump.contains(&format!("-->conn {port} ["));
    for port in &long_ports {
        assert!(in_dump(*port), "long-lived conn {port} missing:\n{dump}");
    }
    for line in dump.lines().filter(|l| l.contains("-->conn ")) {
        let port = line
            .split("-->conn ")
            .nth(1)
            .and_then(|r| r.split(" [").next());
        let port: u16 = port.and_then(|p| p.parse().ok()).expect(line);
        assert!(
            ports.contains(&port),
            "an unknown connection {port}:\n{dump}"
        );
    }
    for task in &holder {
        let name = task.name().expect("connections are named");
        let port: u16 = name.trim_start_matches("conn ").parse().expect("a port");
        assert!(
            in_dump(port) || !long_ports.contains(&port),
            "held conn {port} missing:\n{dump}"
        );
    }
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
async fn serve(socket: TcpStream, ctx: hp::Ctx, stats: Arc<Stats>, drain: Duration) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    loop {
        let line = tokio::select! {
            _ = ctx.wait() => {
                let _ = write.write_all(b"bye\n").await;
                // A drain period before closing (a real server would flush its
                // buffers here).
                tokio::time::sleep(drain).await;
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

/// Sends `LINES` lines, checks each echo, and leaves; returns the lines echoed and its
/// port (the server names the connection after it).
async fn quick_client(addr: std::net::SocketAddr, c: usize) -> (usize, u16) {
    let socket = TcpStream::connect(addr).await.expect("connect");
    let port = socket.local_addr().expect("local address").port();
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
    (LINES, port)
}

/// Says hello, tells `connected` its port once echoed, then waits until the server says
/// goodbye; returns (lines echoed, bye).
async fn long_client(
    addr: std::net::SocketAddr,
    c: usize,
    connected: tokio::sync::mpsc::Sender<u16>,
) -> (usize, bool) {
    let socket = TcpStream::connect(addr).await.expect("connect");
    let port = socket.local_addr().expect("local address").port();
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
    connected.send(port).await.expect("main is waiting");
    loop {
        match lines.next_line().await {
            Ok(Some(line)) if line == "bye" => return (echoed, true),
            Ok(Some(_)) => echoed += 1,
            _ => return (echoed, false),
        }
    }
}
