//! A crawler on the queue manager: pages produce links, each link is fetched as a
//! source of its own carrying its URL as its context, and a deadline cuts the crawl
//! short; the report says which pages did not finish.
//!
//! No network: each fetch is simulated with `tokio::time::sleep` on a paused clock, so
//! the run is deterministic and checks itself with assertions. Run it with
//! `cargo run --example crawler`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use machinery::helpers::{self as hp, Feed, QueueManagerResult as R};
use tokio::time::Instant;

/// The simulated site: each page's fetch time and links.
fn site() -> HashMap<&'static str, (u64, Vec<&'static str>)> {
    HashMap::from([
        ("/", (100, vec!["/a", "/b", "/c"])),
        ("/a", (200, vec!["/a/1", "/a/2"])),
        ("/b", (300, vec!["/", "/b/1"])), // a link back: fetched once only
        ("/c", (2_000, vec![])),          // slow: the deadline cuts it short
        ("/a/1", (100, vec![])),
        ("/a/2", (5_000, vec![])), // slower still
        ("/b/1", (400, vec!["/b/1/x"])),
        ("/b/1/x", (100, vec![])),
    ])
}

type Site = Arc<HashMap<&'static str, (u64, Vec<&'static str>)>>;
type Seen = Arc<Mutex<HashSet<&'static str>>>;

/// A page as a source: a future that fetches it and produces its text and, for every
/// link not seen yet, the next page as a source with the link's URL as its context.
fn page(url: &'static str, site: Site, seen: Seen) -> Feed<String, String> {
    Feed::future(async move {
        let (millis, links) = site[url].clone();
        tokio::time::sleep(Duration::from_millis(millis)).await;
        let mut out = vec![Feed::Value(format!("{url}: {} links", links.len()))];
        for link in links {
            if seen.lock().unwrap().insert(link) {
                out.push(page(link, site.clone(), seen.clone()));
            }
        }
        Feed::iterator(out)
    })
    .with_context(url.to_string())
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let root = hp::Ctx::beginning("crawler");
    // The crawl may take one second.
    let crawl = root.child_with_timeout("crawl", Duration::from_secs(1));
    let start = Instant::now();
    let site: Site = Arc::new(site());
    let seen: Seen = Arc::new(Mutex::new(HashSet::from(["/"])));
    let (mut streamer, feeder) = hp::queue_manager::<String, String>(&crawl);
    feeder.add_value(page("/", site.clone(), seen.clone()));

    let mut fetched = Vec::new();
    let mut stopped = None;
    while let Some(result) = streamer.next().await {
        let at = start.elapsed().as_millis();
        match result {
            R::Success {
                value,
                context,
                sources,
            } => {
                println!("{at:>5} ms  fetched {value}   (context {context}, chain {sources:?})");
                assert_eq!(value.split(':').next(), Some(context.as_str()));
                fetched.push(context.to_string());
            }
            R::Stopped { error } => {
                println!("{at:>5} ms  stopped: {error:?}");
                stopped = Some(error);
            }
            R::Failure { error, context, .. } => {
                println!("{at:>5} ms  {context} did not finish: {error}")
            }
            R::IterationStop { .. } => {}
        }
    }

    // What finished before the deadline, in the order it finished.
    assert_eq!(fetched, ["/", "/a", "/b", "/a/1", "/b/1", "/b/1/x"]);
    assert!(
        matches!(stopped, Some(Some(_))),
        "the deadline stopped the crawl"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(1));

    // What the deadline cut short: each page's task, with its chain and its URL.
    let cut = streamer.cut_short();
    for c in &cut {
        println!("cut short: {} (chain {:?})", c.context, c.sources);
    }
    let cut_urls: BTreeSet<&str> = cut.iter().map(|c| c.context.as_str()).collect();
    assert_eq!(cut_urls, BTreeSet::from(["/a/2", "/c"]));
    assert!(
        cut.iter()
            .all(|c| c.sources.producer().kind() == hp::QueueInput::Task)
    );
    streamer.close().await;
    println!("crawler: ok");
}
