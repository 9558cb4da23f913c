//! Reading the change stream (`GET /api/events`) as parsed SSE events, with a deadline
//! on each one: a missing event fails the test instead of hanging it.

use std::time::Duration;

use futures::StreamExt;

/// A parsed SSE stream.
pub type SseStream = std::pin::Pin<
    Box<
        dyn futures::Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// How long a test waits for the next event, heartbeats included.
const EVENT_WITHIN: Duration = Duration::from_secs(20);

/// The next SSE event, or a panic after [`EVENT_WITHIN`].
pub async fn next_event(stream: &mut SseStream) -> eventsource_stream::Event {
    tokio::time::timeout(EVENT_WITHIN, stream.next())
        .await
        .expect("no SSE event within 20 s")
        .expect("the stream ended")
        .expect("a well-formed SSE event")
}

/// The next event that is not a heartbeat.
pub async fn next_change(stream: &mut SseStream) -> eventsource_stream::Event {
    loop {
        let event = next_event(stream).await;
        if event.event != "heartbeat" {
            return event;
        }
    }
}

/// The body of `response` as a stream of SSE events.
pub fn sse_stream(response: reqwest::Response) -> SseStream {
    Box::pin(eventsource_stream::EventStream::new(
        response.bytes_stream(),
    ))
}
