//! The change feed as this server hears it: every event any server commits, read
//! from the events table in sequence order and sent to this server's subscribers.
//!
//! One task, the follower, owns the position: it reads everything after the last
//! event it sent whenever something may have committed, and nothing else sends. It
//! is woken three ways: by this server's own writes right after they commit, by a
//! second task that `LISTEN`s for the `NOTIFY` every write transaction sends at
//! commit (writes made through other servers), and by a slow timer in case a
//! notification was missed while the listener was reconnecting. Sequence numbers
//! commit in order (see `write`), so reading `seq > last` never skips an event that
//! commits later with a smaller number.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures::StreamExt;
use tokio::sync::{Notify, broadcast, watch};
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use super::connect::Target;
use super::read;
use super::write::CHANNEL;
use crate::storage::EventRow;

/// Events read per query while catching up.
const PAGE: u32 = 512;

/// How often the follower looks for events without being woken.
const POLL: Duration = Duration::from_secs(2);

/// Longest pause between two attempts to reconnect the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// This server's end of the change feed.
pub(super) struct Feed {
    subscribers: broadcast::Sender<Arc<EventRow>>,
    /// The last sequence number sent to subscribers.
    sent: watch::Receiver<i64>,
    wake: Arc<Notify>,
}

impl Feed {
    /// Starts the follower after `head` (events up to it are history, not news) and
    /// the listener; both stop when `stop` is cancelled.
    pub fn spawn(
        pool: Pool,
        target: Target,
        head: i64,
        capacity: usize,
        stop: CancellationToken,
    ) -> Self {
        let (subscribers, _) = broadcast::channel(capacity.max(1));
        let (sent_tx, sent) = watch::channel(head);
        let wake = Arc::new(Notify::new());
        tokio::spawn(follow(
            pool,
            head,
            subscribers.clone(),
            sent_tx,
            Arc::clone(&wake),
            stop.clone(),
        ));
        tokio::spawn(listen(target, CHANNEL, Arc::clone(&wake), stop));
        Self {
            subscribers,
            sent,
            wake,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventRow>> {
        self.subscribers.subscribe()
    }

    /// Wakes the follower and waits, at most `patience`, until it has sent `seq`: a
    /// write answers after its event reached this server's subscribers, as in SQLite.
    /// The write has committed either way, so running out of patience is not an error.
    pub async fn sent(&self, seq: i64, patience: Duration) {
        self.wake.notify_one();
        let mut sent = self.sent.clone();
        let _ = tokio::time::timeout(patience, sent.wait_for(|&s| s >= seq)).await;
    }
}

async fn follow(
    pool: Pool,
    mut last: i64,
    subscribers: broadcast::Sender<Arc<EventRow>>,
    sent: watch::Sender<i64>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
        loop {
            let page = match pool.get().await {
                Ok(client) => read::events_after(&client, last, PAGE).await,
                Err(e) => Err(e.into()),
            };
            match page {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    for event in events {
                        last = event.seq;
                        // No subscriber is not an error.
                        let _ = subscribers.send(Arc::new(event));
                    }
                    sent.send_replace(last);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the change feed; retrying");
                    break;
                }
            }
        }
    }
}

/// Keeps one connection listening on `channel`, reconnecting with backoff, and wakes
/// `wake` on each notification and after each (re)connection, when whatever was
/// notified meanwhile has to be read again.
pub(super) async fn listen(
    target: Target,
    channel: &'static str,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(100);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut connected = false;
        let listening = async {
            let (client, mut connection) = target.config.connect(target.tls.clone()).await?;
            let notified = Arc::clone(&wake);
            let mut driver = tokio::spawn(async move {
                let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(message) = messages.next().await {
                    if let AsyncMessage::Notification(_) = message? {
                        notified.notify_one();
                    }
                }
                Ok::<(), tokio_postgres::Error>(())
            });
            if let Err(e) = client.batch_execute(&format!("LISTEN {channel}")).await {
                driver.abort();
                return Err(e);
            }
            connected = true;
            // Anything committed while nobody listened is read now.
            wake.notify_one();
            let ended = tokio::select! {
                () = stop.cancelled() => Ok(()),
                ended = &mut driver => ended.unwrap_or(Ok(())),
            };
            driver.abort();
            drop(client);
            ended
        };
        let result = tokio::select! {
            () = stop.cancelled() => return,
            result = listening => result,
        };
        if stop.is_cancelled() {
            return;
        }
        if connected {
            backoff = FIRST_BACKOFF;
        }
        match result {
            Ok(()) => tracing::warn!(channel, "a listener's connection closed; reconnecting"),
            Err(e) => {
                tracing::warn!(channel, error = %e, "a listener lost PostgreSQL; reconnecting")
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
