//! Asking the engine from the control API's async handlers, and the shapes
//! of the replies: every handler goes through [`ask`], so none blocks the
//! async runtime and none waits forever.

use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use crossbeam_channel::bounded;
use serde_json::json;

use crate::engine::{EngineHandle, Request};

/// Longest wait for the engine or a plugin to answer. Threat: a request
/// that never completes holding a connection forever.
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A JSON body with its status.
pub(super) fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `{"error": message}` with its status.
pub(super) fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    json_response(status, json!({ "error": message.to_string() }).to_string())
}

/// Sends a request to the engine and waits (off the async runtime) for
/// the answer `make` asks for.
pub(super) async fn ask<T: Send + 'static>(
    engine: &EngineHandle,
    make: impl FnOnce(crossbeam_channel::Sender<T>) -> Request,
) -> Result<T, Response> {
    let (tx, rx) = bounded(1);
    engine
        .requests
        .try_send(make(tx))
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "the engine is busy"))?;
    tokio::task::spawn_blocking(move || rx.recv_timeout(ANSWER_TIMEOUT))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?
        .map_err(|_| {
            error(
                StatusCode::GATEWAY_TIMEOUT,
                "the engine did not answer in time",
            )
        })
}
