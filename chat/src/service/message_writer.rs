//! Group commit for new messages: posts queue here and are written in batches, one
//! transaction per batch, so the cost of a commit is shared by every message that arrived
//! while the previous one ran. A post is answered only after its batch committed, so an
//! acknowledged message is as durable as before.
//!
//! Order: a channel's messages are queued under its lock in id order, always to the same
//! writer, and each message's `done` (which dispatches `message_create`) runs in queue
//! order after the commit, so events still leave in id order.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::IdGen;
use crate::model::ChannelId;
use crate::service::metrics::ChatMetrics;
use crate::store::guilds::Message;
use crate::store::{Backend, Store, StoreError};

/// Messages one transaction takes at most.
const MAX_BATCH: usize = 256;

/// What happens to a message once its batch is decided.
pub(crate) type Done = Box<dyn FnOnce(Result<Message, StoreError>) + Send>;

struct Job {
    m: Message,
    done: Done,
}

/// The writers of one store: one on SQLite (it takes one writer at a time anyway),
/// several on Postgres, each owning a share of the channels.
#[derive(Debug)]
pub(crate) struct MessageWriter {
    shards: Vec<mpsc::UnboundedSender<Job>>,
}

impl MessageWriter {
    pub(crate) fn start(store: Store, ids: Arc<IdGen>, metrics: Arc<ChatMetrics>) -> Self {
        let n = match store.backend {
            Backend::Sqlite => 1,
            Backend::Postgres => 4,
        };
        let shards = (0..n)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(run(store.clone(), ids.clone(), metrics.clone(), rx));
                tx
            })
            .collect();
        MessageWriter { shards }
    }

    /// Queues a message; `done` gets it back (with its final id) once it is committed, or
    /// the error. Call under the channel's lock, in id order.
    pub(crate) fn submit(&self, m: Message, done: Done) {
        let shard = &self.shards[shard_of(m.channel_id, self.shards.len())];
        if let Err(mpsc::error::SendError(job)) = shard.send(Job { m, done }) {
            // The writer is gone only when the runtime is shutting down.
            (job.done)(Err(StoreError::Files("the message writer stopped".into())));
        }
    }
}

async fn run(
    store: Store,
    ids: Arc<IdGen>,
    metrics: Arc<ChatMetrics>,
    mut rx: mpsc::UnboundedReceiver<Job>,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (mut batch, dones): (Vec<Message>, Vec<Done>) =
            jobs.drain(..).map(|j| (j.m, j.done)).unzip();
        metrics.message_batch.observe(batch.len() as f64);
        let r = metrics
            .db(
                "insert_message",
                store.insert_messages(&mut batch, |last| ids.after(last)),
            )
            .await;
        match r {
            Ok(outcomes) => {
                for ((m, done), r) in batch.into_iter().zip(dones).zip(outcomes) {
                    done(r.map(|()| m));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, messages = batch.len(), "a batch of messages failed");
                for done in dones {
                    done(Err(e.replica()));
                }
            }
        }
    }
}

/// Which writer a channel's messages go to.
fn shard_of(channel: ChannelId, shards: usize) -> usize {
    channel.0.rem_euclid(shards as i64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_always_goes_to_one_writer() {
        let c = ChannelId(123_456_789);
        assert_eq!(shard_of(c, 4), shard_of(c, 4));
        assert_eq!(shard_of(ChannelId(4), 4), 0);
        assert_eq!(shard_of(ChannelId(7), 4), 3);
    }
}
