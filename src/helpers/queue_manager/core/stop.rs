//! Finishing sources when the manager stops (invariant 3 of the core): iterations end
//! with the stop's error, running tasks are cancelled, finished tasks still deliver.

use super::{Deferred, Raw, State};
use crate::helpers::error::Failure;
use crate::helpers::queue_manager::feed::Feed;
use crate::helpers::queue_manager::result::{SourceId, Sources};
use crate::helpers::queue_manager::sources::{Body, PendingSource};

impl<V: Send + 'static, C: Clone + Send + 'static> State<V, C> {
    /// Finishes a source because the manager stopped (invariant 3).
    pub(super) fn finish(
        &mut self,
        body: Body<V>,
        chain: Sources,
        context: Option<C>,
        failure: &Failure,
        out: &mut Vec<Raw<V, C>>,
        d: &mut Deferred<V>,
    ) {
        let error = Some(failure.clone());
        if body.is_iteration() {
            out.push(Raw::IterationStop {
                sources: chain,
                error,
                context,
            });
            d.graveyard.push(body);
            return;
        }
        if let Some(task) = body.task() {
            if !task.done() {
                self.cancelled.retain(|t| !t.done());
                self.cancelled.push(task.clone());
                d.cancel.push(task);
            } else if let Body::Pending(p) = body {
                // Already finished: what it produced is still delivered.
                self.finish_done(p, chain, context, failure, out, d);
                return;
            }
        }
        out.push(Raw::Failure {
            sources: chain,
            error: failure.clone(),
            context,
        });
        d.graveyard.push(body);
    }

    fn finish_done(
        &mut self,
        mut p: Box<dyn PendingSource<V>>,
        chain: Sources,
        context: Option<C>,
        failure: &Failure,
        out: &mut Vec<Raw<V, C>>,
        d: &mut Deferred<V>,
    ) {
        match p.take() {
            Ok(Feed::Value(value)) => out.push(Raw::Success {
                sources: chain,
                value,
                context,
            }),
            Ok(Feed::Error(e)) => out.push(Raw::Failure {
                sources: chain,
                error: Failure::Error(e),
                context,
            }),
            Ok(feed) => {
                if let Ok((kind, body)) = Body::from_feed(feed) {
                    self.next_number += 1;
                    let child = chain.child(SourceId::new(kind, self.next_number));
                    self.finish(body, child, context, failure, out, d);
                }
            }
            Err(error) => out.push(Raw::Failure {
                sources: chain,
                error,
                context,
            }),
        }
    }
}
