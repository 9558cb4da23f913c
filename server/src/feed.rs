//! The change feed: every committed write, in order, to every subscriber, without
//! loss.
//!
//! The events table is the source of truth; memory only speeds up the common case.
//! Storage publishes each committed event on a bounded broadcast ring
//! ([`Storage::subscribe`]). A
//! subscriber delivers from the ring while it keeps up. When it falls behind (the ring
//! overwrote events it had not read) or sees a gap in sequence numbers, it reads the
//! missing events from the table, then goes back to the ring, skipping what it has
//! already sent. Memory is bounded in bytes, whatever the number of subscribers or how
//! slow they are: every event is at most `MAX_EVENT_BYTES` (large fields give way to a
//! flag, see `storage::payload`), the ring holds a fixed number of them, and a
//! subscriber catching up holds one page of at most `CATCH_UP_BYTES`. A slow
//! subscriber still gets every event.
//!
//! A reconnecting client names the last sequence number it saw and is replayed from
//! the table the same way. If retention has already pruned what it missed, it gets a
//! `resync` and continues live.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::storage::payload::MAX_EVENT_BYTES;
use crate::storage::{EventRow, Storage, StorageError};
use crate::telemetry;

/// What one subscriber catching up holds at most: a page of events read from the
/// table, kept until it is sent. Payloads are bounded ([`MAX_EVENT_BYTES`]), so this
/// bounds the rows per page, and a stalled subscriber costs at most this much.
const CATCH_UP_BYTES: usize = 256 * 1024;
/// Events read from the table per query while catching up.
const CATCH_UP_PAGE: u32 = (CATCH_UP_BYTES / MAX_EVENT_BYTES) as u32;

/// What a subscriber's stream yields.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedItem {
    /// First item of every stream; `head` is the newest sequence number at that moment.
    Connected {
        head: i64,
        /// This subscriber's id, as the stats list it.
        subscriber: u64,
        /// How often heartbeats come.
        heartbeat: Duration,
    },
    /// A committed change.
    Change(Arc<EventRow>),
    /// Events the client asked for are gone; it continues live from `head`.
    Resync { head: i64 },
    Heartbeat {
        /// Subscribers connected at that moment.
        subscribers: usize,
    },
}

/// One connected subscriber, as `GET /api/events/stats` shows it.
#[derive(Debug)]
pub struct Subscriber {
    pub id: u64,
    /// Its connection's peer address, by which a stalled subscriber is disconnected.
    pub peer: Option<SocketAddr>,
    pub connected: Instant,
    /// The last sequence number sent to it.
    pub delivered: AtomicI64,
    /// When `delivered` last moved, in milliseconds since `connected`.
    progressed_ms: AtomicU64,
}

impl Subscriber {
    fn delivered(&self, seq: i64) {
        self.delivered.store(seq, Ordering::Relaxed);
        self.progressed_ms.store(
            self.connected.elapsed().as_millis() as u64,
            Ordering::Relaxed,
        );
    }

    /// How long since it was last sent an event.
    fn idle(&self) -> Duration {
        self.connected
            .elapsed()
            .saturating_sub(Duration::from_millis(
                self.progressed_ms.load(Ordering::Relaxed),
            ))
    }
}

/// The feed shared by every subscriber.
pub struct ChangeFeed {
    /// The events table, its head and oldest sequence numbers, and the ring of events
    /// as they commit. Every stream reads through it; the feed keeps no events itself.
    storage: Arc<dyn Storage>,
    /// How often an idle stream sends a heartbeat, so proxies and clients can tell a
    /// quiet feed from a dead connection.
    heartbeat: Duration,
    /// Ends every stream on shutdown, so open streams never hold the process up.
    shutdown: CancellationToken,
    /// The connected subscribers by id, for stats and the reaper. Each stream removes
    /// its own entry when dropped; the lock is never held across an `.await`.
    subscribers: Mutex<HashMap<u64, Arc<Subscriber>>>,
    /// The id the next subscriber gets.
    next_id: AtomicU64,
    /// Counts subscribers disconnected for making no progress.
    stalled: tokio::sync::watch::Sender<u64>,
}

/// Removes a subscriber from the registry when its stream is dropped.
struct Registration {
    feed: Arc<ChangeFeed>,
    subscriber: Arc<Subscriber>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.feed
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.subscriber.id);
    }
}

impl ChangeFeed {
    pub fn new(
        storage: Arc<dyn Storage>,
        heartbeat: Duration,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            storage,
            heartbeat,
            shutdown,
            subscribers: Mutex::default(),
            next_id: AtomicU64::new(1),
            stalled: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The number of stalled subscribers disconnected so far, as a watch.
    pub fn stalled_disconnects(&self) -> tokio::sync::watch::Receiver<u64> {
        self.stalled.subscribe()
    }

    /// Starts the task that disconnects subscribers which are behind and have been
    /// sent nothing for `stall`, by calling `close` with their peer address. They can
    /// reconnect with their last id and lose nothing. The task ends on shutdown.
    pub fn spawn_reaper(
        self: &Arc<Self>,
        stall: Duration,
        close: impl Fn(SocketAddr) + Send + 'static,
    ) {
        let feed = Arc::clone(self);
        let period = (stall / 4).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tokio::select! {
                    _ = feed.shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let Ok(head) = feed.head().await else {
                    continue;
                };
                for subscriber in feed.subscribers() {
                    let behind = subscriber.delivered.load(Ordering::Relaxed) < head;
                    let Some(peer) = subscriber.peer else {
                        continue;
                    };
                    if behind && subscriber.idle() >= stall {
                        tracing::warn!(%peer, id = subscriber.id, "disconnecting a subscriber that stopped reading");
                        close(peer);
                        feed.stalled.send_modify(|n| *n += 1);
                        metrics::counter!(telemetry::SSE_STALLED).increment(1);
                    }
                }
            }
        });
    }

    /// The connected subscribers.
    pub fn subscribers(&self) -> Vec<Arc<Subscriber>> {
        let mut list: Vec<_> = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        list.sort_by_key(|s| s.id);
        list
    }

    /// How many subscribers are connected.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Sets the feed's gauges for a scrape of `/metrics`: subscribers, and how far
    /// behind the head they are (the most, and how many are behind at all).
    pub async fn observe(&self) {
        let subscribers = self.subscribers();
        metrics::gauge!(telemetry::SSE_SUBSCRIBERS).set(subscribers.len() as f64);
        let Ok(head) = self.head().await else {
            return;
        };
        let lags = subscribers
            .iter()
            .map(|s| (head - s.delivered.load(Ordering::Relaxed)).max(0));
        let (lagging, max_lag) = lags.fold((0u64, 0i64), |(n, max), lag| {
            (n + u64::from(lag > 0), max.max(lag))
        });
        metrics::gauge!(telemetry::SSE_LAGGING).set(lagging as f64);
        metrics::gauge!(telemetry::SSE_MAX_LAG).set(max_lag as f64);
    }

    /// The newest sequence number.
    pub async fn head(&self) -> Result<i64, StorageError> {
        self.storage.head_seq().await
    }

    /// A stream of every event after `last_event_id` (or from now on, when `None`),
    /// with heartbeats, until shutdown or the stream is dropped.
    pub fn subscribe(
        self: &Arc<Self>,
        last_event_id: Option<i64>,
        peer: Option<SocketAddr>,
    ) -> impl Stream<Item = Result<FeedItem, StorageError>> + Send + 'static {
        let feed = Arc::clone(self);
        async_stream::try_stream! {
            // Subscribe before reading the head: every event committed from here on
            // arrives on the ring, and the ones up to the head are read from the table.
            let mut live = feed.storage.subscribe();
            let head = feed.head().await?;
            let subscriber = feed.register(peer, head);
            let _registration = Registration { feed: Arc::clone(&feed), subscriber: Arc::clone(&subscriber) };
            yield FeedItem::Connected { head, subscriber: subscriber.id, heartbeat: feed.heartbeat };

            let mut last = match last_event_id {
                None => head,
                Some(id) if id >= 0 && id <= head && feed.replayable_from(id).await? => id,
                Some(_) => {
                    yield FeedItem::Resync { head };
                    head
                }
            };
            subscriber.delivered(last);
            // The newest sequence number known to exist; behind it, read the table.
            let mut known = head;
            let mut heartbeat = tokio::time::interval_at(
                tokio::time::Instant::now() + feed.heartbeat,
                feed.heartbeat,
            );
            loop {
                if last < known {
                    let rows = feed.page_after(last).await?;
                    if rows.first().is_some_and(|first| first.seq != last + 1) && !feed.replayable_from(last).await? {
                        // Pruned while this subscriber lagged: say so, go on live.
                        known = feed.head().await?;
                        last = known;
                        // Caught up as far as the client can be: neither lag nor stall.
                        subscriber.delivered(last);
                        yield FeedItem::Resync { head: last };
                        continue;
                    }
                    if rows.len() < CATCH_UP_PAGE as usize {
                        known = rows.last().map_or(last, |r| r.seq).max(last);
                    }
                    for row in rows {
                        last = row.seq;
                        subscriber.delivered(last);
                        yield FeedItem::Change(Arc::new(row));
                    }
                    continue;
                }
                let received = tokio::select! {
                    biased;
                    _ = feed.shutdown.cancelled() => break,
                    received = live.recv() => received,
                    _ = heartbeat.tick() => {
                        yield FeedItem::Heartbeat { subscribers: feed.subscriber_count() };
                        continue;
                    }
                };
                match received {
                    Ok(event) if event.seq <= last => {}
                    Ok(event) if event.seq == last + 1 => {
                        last = event.seq;
                        known = last;
                        subscriber.delivered(last);
                        yield FeedItem::Change(event);
                    }
                    // A gap: the table has what came between.
                    Ok(event) => known = event.seq,
                    Err(RecvError::Lagged(_)) => {
                        metrics::counter!(telemetry::SSE_RING_OVERRUNS).increment(1);
                        known = feed.head().await?;
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        }
    }

    fn register(&self, peer: Option<SocketAddr>, head: i64) -> Arc<Subscriber> {
        let subscriber = Arc::new(Subscriber {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            peer,
            connected: Instant::now(),
            delivered: AtomicI64::new(head),
            progressed_ms: AtomicU64::new(0),
        });
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(subscriber.id, Arc::clone(&subscriber));
        subscriber
    }

    /// Whether every event after `id` is still in the table.
    async fn replayable_from(&self, id: i64) -> Result<bool, StorageError> {
        let oldest = self.storage.oldest_seq().await?;
        let head = self.head().await?;
        Ok(id >= head || oldest.is_some_and(|oldest| oldest <= id + 1))
    }

    async fn page_after(&self, last: i64) -> Result<Vec<EventRow>, StorageError> {
        self.storage.events_after(last, CATCH_UP_PAGE).await
    }
}
