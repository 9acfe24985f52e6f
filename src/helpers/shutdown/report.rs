//! What a drain leaves behind: [`ShutdownReport`].

use std::fmt;
use std::time::Duration;

use crate::helpers::error::{Error, Failure};

/// How a [drain](super::Drain) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DrainEnd {
    /// Everything handed to the drain finished before the deadline.
    Drained,
    /// The deadline came first: what still ran was cut short.
    DeadlineExceeded,
    /// The force future resolved first (a second signal): what still ran was cut short.
    /// The text is what the force future gave (e.g. `received SIGTERM`).
    Forced(String),
}

/// What a [drain](super::Drain) saw: why it started, how it ended, what finished, what
/// was cut short and every error collected. Its `Display` is the printed report (it
/// starts with `shutdown report`).
///
/// Every task running under the drain when it began is in `finished` or `cut_short`,
/// named as [`Ctx::tree`](crate::helpers::Ctx::tree) shows it where it has a context.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// The drained context's full name.
    pub ctx: String,
    /// How the context had finished when the drain began (the signal, a failure, or the
    /// drain's own cancellation).
    pub cause: Option<Failure>,
    /// How the drain ended.
    pub end: DrainEnd,
    /// How long the drain took.
    pub elapsed: Duration,
    /// What finished while draining (or had already), in the order it was handed over.
    pub finished: Vec<String>,
    /// What was still running at the end and was cut short (cancelled at once), and the
    /// queue managers' sources their stop cut short.
    pub cut_short: Vec<String>,
    /// Every error collected: failed tasks, a fail-fast holder's failures, each with the
    /// name of what failed.
    pub errors: Vec<(String, Error)>,
    /// The context tree when something was cut short (what was still alive), else `None`.
    pub tree: Option<String>,
}

impl ShutdownReport {
    /// Whether everything finished before the deadline (errors aside).
    pub fn drained(&self) -> bool {
        self.end == DrainEnd::Drained && self.cut_short.is_empty()
    }

    /// Records an error once (clones of one error are one error).
    pub(super) fn error(&mut self, name: String, e: &Error) {
        if !self.errors.iter().any(|(_, seen)| seen.same(e)) {
            self.errors.push((name, e.clone()));
        }
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shutdown report for {}", self.ctx)?;
        if let Some(cause) = &self.cause {
            write!(f, " (cause: {cause})")?;
        }
        match &self.end {
            DrainEnd::Drained => writeln!(f, ": drained in {:?}", self.elapsed)?,
            DrainEnd::DeadlineExceeded => {
                writeln!(f, ": deadline exceeded after {:?}", self.elapsed)?
            }
            DrainEnd::Forced(why) => writeln!(f, ": forced ({why}) after {:?}", self.elapsed)?,
        }
        let lists = [("finished", &self.finished), ("cut short", &self.cut_short)];
        for (title, list) in lists {
            writeln!(f, "  {title}: {}", list.len())?;
            for item in list {
                writeln!(f, "    {item}")?;
            }
        }
        writeln!(f, "  errors: {}", self.errors.len())?;
        for (name, e) in &self.errors {
            writeln!(f, "    {name}: {e}")?;
        }
        if let Some(tree) = &self.tree {
            writeln!(f, "  still alive at the end:")?;
            for line in tree.lines() {
                writeln!(f, "    {line}")?;
            }
        }
        Ok(())
    }
}
