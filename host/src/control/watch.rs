//! `GET /watch`: the mirror as of the request, then every event as it is
//! dispatched, one JSON object per line (like `ip monitor`, but from the
//! mirror, so a client that applies the lines holds what the mirror holds).
//!
//! A line is `{"event":"route-add","route":{...}}` (the object as
//! `GET /mirror/{kind}` shows it) or `{"event":"sync-begin","kind":"route"}`.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;

use super::reply::ask;
use super::stream;
use crate::engine::{EngineHandle, Request, WatchItem};
use crate::mirror::write_event_json;
use crate::wit::Event;
use crate::wit::filter::Subscription;

/// Events of a replay or a batch turned into text at a time. Threat: a
/// whole replay, or a reconcile's batch of a full table, as one piece of
/// text.
const REPLAY_STEP: usize = 1024;

fn lines(events: &[Event]) -> Bytes {
    let mut text = Vec::new();
    for event in events {
        write_event_json(event, &mut text);
        text.push(b'\n');
    }
    Bytes::from(text)
}

pub async fn watch(State(engine): State<EngineHandle>) -> Response {
    let feed = match ask(&engine, Request::Watch).await {
        Ok(feed) => feed,
        Err(response) => return response,
    };
    // The engine's feed is a blocking channel: a thread turns it into text
    // until the client goes away (the send fails) or the engine drops it.
    stream::from_thread("dphost-watch-client", "application/x-ndjson", move |sink| {
        for item in feed {
            let going = match item {
                WatchItem::Start(replay) => {
                    replay.replay_each(&Subscription::everything(), REPLAY_STEP, &mut |events| {
                        sink.blocking_send(lines(events))
                    })
                }
                // A reconcile's batch can hold a whole table's changes:
                // turned into text a step at a time.
                WatchItem::Batch(events) => events
                    .chunks(REPLAY_STEP)
                    .all(|step| sink.blocking_send(lines(step))),
            };
            if !going {
                return;
            }
        }
    })
}
