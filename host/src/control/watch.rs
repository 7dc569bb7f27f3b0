//! `GET /watch`: the mirror as of the request, then every event as it is
//! dispatched, one JSON object per line (like `ip monitor`, but from the
//! mirror, so a client that applies the lines holds what the mirror holds).
//!
//! A line is `{"event":"route-add","route":{...}}` (the object as
//! `GET /mirror/{kind}` shows it) or `{"event":"sync-begin","kind":"route"}`.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::reply::ask;
use crate::engine::{EngineHandle, Request, WatchItem};
use crate::mirror::event_json;
use crate::wit::Event;
use crate::wit::filter::Subscription;

/// Lines handed to the connection at a time, at most. Threat: a slow
/// client making the feeding thread hold a whole replay as text.
const LINES_QUEUE: usize = 64;

/// Events of a replay turned into text at a time. Threat: a whole replay
/// as one piece of text.
const REPLAY_STEP: usize = 1024;

fn lines(events: &[Event]) -> Bytes {
    let mut text = String::new();
    for event in events {
        text.push_str(&event_json(event).to_string());
        text.push('\n');
    }
    Bytes::from(text)
}

pub async fn watch(State(engine): State<EngineHandle>) -> Response {
    let feed = match ask(&engine, Request::Watch).await {
        Ok(feed) => feed,
        Err(response) => return response,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(LINES_QUEUE);
    // The engine's feed is a blocking channel: a thread turns it into text
    // until the client goes away (the send fails) or the engine drops it.
    let spawned = std::thread::Builder::new()
        .name("dphost-watch-client".into())
        .spawn(move || {
            let send = |bytes| tx.blocking_send(Ok(bytes)).is_ok();
            for item in feed {
                let going = match item {
                    WatchItem::Start(replay) => replay.replay_each(
                        &Subscription::everything(),
                        REPLAY_STEP,
                        &mut |events| send(lines(events)),
                    ),
                    WatchItem::Batch(events) => send(lines(&events)),
                };
                if !going {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}
