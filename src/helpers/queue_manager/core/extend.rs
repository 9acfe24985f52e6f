//! Extending a produced feed (SEMANTICS, "Extending"): a value is a `Success` at the
//! back, a function a `Call` at the back, an iterator, stream, future or task a new
//! source under the producer's chain.
//!
//! # Invariants
//! 1. Extending loops (a context wrapper is unwrapped in place), never recurses, and
//!    adds at most one entry or one source.
//! 2. Nothing new starts after the stop: a future comes back unspawned, a task not done
//!    is cancelled, each in its `Failure`, and is listed as cut short.
//! 3. Spawning and registering run after unlocking (`Deferred`).

use super::*;

impl<V: Send + 'static, C: Send + Sync + 'static> State<V, C> {
    /// Extends a feed produced by the source of `chain` (SEMANTICS, "Extending"): a
    /// value is a `Success` at the back, a function a `Call` at the back, any other
    /// source a new source under `chain`.
    pub(super) fn extend(
        &mut self,
        mut feed: Feed<V, C>,
        chain: Sources,
        mut ctx: Ctxt<C>,
        d: &mut Deferred<V, C>,
    ) {
        loop {
            match feed {
                Feed::WithContext(inner, context) => {
                    // The producer's context may be the last handle: its drop is user
                    // code, after unlocking.
                    if let Some(old) = ctx.replace(context) {
                        d.trash(old);
                    }
                    feed = *inner;
                    continue;
                }
                Feed::Value(value) => self.push(Raw::Success {
                    sources: chain,
                    value,
                    context: ctx,
                }),
                Feed::Error(e) | Feed::ItemError(e) => self.failure(chain, Failure::Error(e), ctx),
                Feed::Function(f) => self.queue.push_back(Entry::Call(f, chain, ctx)),
                source => {
                    self.add_source_under(source, Some(&chain), ctx, d);
                }
            }
            return;
        }
    }

    /// Adds a source (an iterator, stream, future or task) under `parent`.
    pub(super) fn add_source_under(
        &mut self,
        feed: Feed<V, C>,
        parent: Option<&Sources>,
        ctx: Ctxt<C>,
        d: &mut Deferred<V, C>,
    ) -> SourceId {
        let kind = feed.kind().unwrap_or(QueueInput::Value);
        let id = self.new_id(kind);
        let chain = chain_under(parent, id);
        match feed {
            Feed::Generator(it) | Feed::Iterator(it) => {
                let key = self.insert(id, chain, ctx, Body::Iter(it), Turn::Queued);
                self.queue.push_back(Entry::Step(key, id.number()));
            }
            Feed::Stream(s) => {
                let key = self.sources.vacant_key();
                let body = Body::NewStream(Box::new(StreamSource::new(
                    s,
                    self.this.clone(),
                    key,
                    id.number(),
                )));
                self.insert(id, chain, ctx, body, Turn::Queued);
                self.queue.push_back(Entry::Step(key, id.number()));
            }
            Feed::Future(fut) => {
                // `add_coroutine`: a COROUTINE source that spawns the future and adds
                // that task as a TASK source under it.
                if let Some(failure) = self.stopped.clone() {
                    // Nothing new starts after the stop: the future comes back unspawned.
                    self.refused(chain, failure, ctx, Feed::Future(fut));
                    return id;
                }
                let task_id = self.new_id(QueueInput::Task);
                let task_chain = chain.child(task_id);
                let key = self.insert(task_id, task_chain, ctx, None, Turn::Spawning);
                d.spawn(key, task_id.number(), fut);
            }
            Feed::Task(t) => {
                let p = t.into_inner();
                let task = p.handle();
                if let Some(failure) = self.stopped.clone()
                    && !task.done()
                {
                    d.cancel(task.clone());
                    self.cancelled.push(task);
                    d.trash(p);
                    self.cut_short.push((chain.clone(), ctx.clone()));
                    self.failure(chain, failure, ctx);
                    return id;
                }
                let key = self.insert(id, chain, ctx, Body::Task(p), Turn::Waiting);
                d.register(key, id.number(), task);
            }
            other => {
                // Values, errors and functions are extended, not added; a context
                // wrapper is unwrapped by `extend`.
                self.extend(other, chain, ctx, d);
            }
        }
        id
    }
}
