//! Answers sent as they are made, in chunked encoding: the mirror's
//! listings, paged query answers and `GET /watch`. Whoever makes the
//! answer holds a [`Sink`]; the connection takes chunks from it as the
//! client reads, so memory holds a few chunks whatever the answer's size,
//! and a client that goes away stops the maker at its next chunk.

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

/// Chunks on their way to the client, at most. Threat: a slow client
/// making the answer's maker hold the whole answer as text.
const CHUNKS_QUEUE: usize = 16;

/// Where a streamed answer's chunks go.
pub struct Sink(mpsc::Sender<Result<Bytes, std::io::Error>>);

impl Sink {
    /// Sends a chunk from a thread; false once the client has gone.
    pub fn blocking_send(&self, bytes: impl Into<Bytes>) -> bool {
        self.0.blocking_send(Ok(bytes.into())).is_ok()
    }

    /// Sends a chunk from a task; false once the client has gone.
    pub async fn send(&self, bytes: impl Into<Bytes>) -> bool {
        self.0.send(Ok(bytes.into())).await.is_ok()
    }

    /// Ends the answer unfinished: the connection is closed without the
    /// last chunk, so the client knows it has not got all of it (the
    /// status line went long ago). The reason goes to the log.
    pub async fn fail(self, why: impl std::fmt::Display) {
        tracing::warn!("a streamed answer was cut short: {why}");
        let _ = self
            .0
            .send(Err(std::io::Error::other(why.to_string())))
            .await;
    }
}

/// A 200 answer of `content_type` whose body comes through the returned
/// [`Sink`].
pub fn response(content_type: &'static str) -> (Sink, Response) {
    let (tx, rx) = mpsc::channel(CHUNKS_QUEUE);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response();
    (Sink(tx), response)
}

/// A 200 answer whose body `make` writes on a thread of its own (named
/// `name`), chunk by chunk into the [`Sink`] it is given.
pub fn from_thread(
    name: &str,
    content_type: &'static str,
    make: impl FnOnce(Sink) + Send + 'static,
) -> Response {
    let (sink, response) = response(content_type);
    match std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || make(sink))
    {
        Ok(_) => response,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
