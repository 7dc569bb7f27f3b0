//! The answers that can be as long as a full table: the mirror's listings
//! (`GET /mirror/{kind}`) and plugins' query answers (`POST
//! /plugins/{name}/query`), which a plugin may give in pages. Both stream:
//! a listing is written from a copy-on-write snapshot of the mirror on a
//! thread of its own (the engine's thread only takes the snapshot), and a
//! paged answer is sent page by page, each page asked for once the one
//! before is on its way. Either is one JSON array, one element per line,
//! or with `?lines` JSON lines (one element per line, nothing else).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::reply::{ANSWER_TIMEOUT, ask, error, json_response};
use super::stream::{self, Sink};
use crate::dispatch::{Pages, Taken};
use crate::engine::{EngineHandle, Kind, QueryError, Request};
use crate::mirror::CHUNK;
use crate::wit::Answer;

/// How a list is written: one JSON array, or JSON lines.
#[derive(Clone, Copy)]
struct Form {
    lines: bool,
}

impl Form {
    /// `?lines` (or `lines=1`, `lines=true`) asks for JSON lines.
    fn of(query: Option<String>) -> Form {
        let lines = query.is_some_and(|q| {
            q.split('&')
                .any(|p| matches!(p, "lines" | "lines=1" | "lines=true"))
        });
        Form { lines }
    }

    fn content_type(self) -> &'static str {
        if self.lines {
            "application/x-ndjson"
        } else {
            "application/json"
        }
    }

    fn head(self) -> &'static [u8] {
        if self.lines { b"" } else { b"[\n" }
    }

    fn separator(self) -> &'static [u8] {
        if self.lines { b"\n" } else { b",\n" }
    }

    /// What ends the list, after `any` element.
    fn tail(self, any: bool) -> &'static [u8] {
        match (self.lines, any) {
            (true, true) => b"\n",
            (true, false) => b"",
            (false, true) => b"\n]\n",
            (false, false) => b"]\n",
        }
    }
}

/// `GET /mirror/{kind}`.
pub async fn mirror(
    State(engine): State<EngineHandle>,
    Path(kind): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let kind = match kind.as_str() {
        "links" | "link" => Kind::Link,
        "addresses" | "address" => Kind::Address,
        "neighbours" | "neighbour" | "neighbors" => Kind::Neighbour,
        "nexthops" | "nexthop" => Kind::Nexthop,
        "rules" | "rule" => Kind::Rule,
        "routes" | "route" => Kind::Route,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "{other:?}: expected links, addresses, neighbours, nexthops, rules or routes"
                ),
            );
        }
    };
    let snapshot = match ask(&engine, Request::Mirror).await {
        Ok(snapshot) => snapshot,
        Err(response) => return response,
    };
    let form = Form::of(query);
    stream::from_thread("dphost-listing", form.content_type(), move |sink| {
        let mut out = Vec::with_capacity(CHUNK * 2);
        out.extend_from_slice(form.head());
        let mut sent = false;
        let mut flush = |out: &mut Vec<u8>| {
            sent = true;
            sink.blocking_send(std::mem::replace(out, Vec::with_capacity(CHUNK * 2)))
        };
        if snapshot.write_json(kind, form.separator(), &mut out, &mut flush) {
            let any = sent || out.len() > form.head().len();
            out.extend_from_slice(form.tail(any));
            sink.blocking_send(out);
        }
    })
}

/// Why a call for an answer got none: the status and message for the
/// client.
type Failure = (StatusCode, String);

/// One call of a query: its first page (`cursor` none) or the next.
async fn call(
    engine: &EngineHandle,
    plugin: &str,
    request: &str,
    cursor: Option<String>,
) -> Result<Answer, Failure> {
    let (plugin, request) = (plugin.to_string(), request.to_string());
    let name = plugin.clone();
    let submitted = ask(engine, move |reply| Request::Query {
        plugin,
        request,
        cursor,
        reply,
    })
    .await
    .map_err(|_| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the engine did not take the query".to_string(),
        )
    })?
    .map_err(failure)?;
    match tokio::task::spawn_blocking(move || submitted.recv_timeout(ANSWER_TIMEOUT)).await {
        Ok(Ok(answer)) => answer.map_err(failure),
        _ => Err((
            StatusCode::GATEWAY_TIMEOUT,
            format!("plugin {name:?} did not answer in time"),
        )),
    }
}

fn failure(e: QueryError) -> Failure {
    let code = match e {
        QueryError::NoSuchPlugin(_) => StatusCode::NOT_FOUND,
        QueryError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        QueryError::Failed { .. } | QueryError::OutOfSync(_) => StatusCode::SERVICE_UNAVAILABLE,
        QueryError::Refused { .. } | QueryError::BadPage { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    };
    (code, e.to_string())
}

/// `POST /plugins/{name}/query`: a whole answer as the plugin gave it; a
/// paged one streamed as one list.
pub async fn query(
    State(engine): State<EngineHandle>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    request: String,
) -> Response {
    let form = Form::of(query);
    let mut pages = Pages::new(&name);
    let first = call(&engine, &name, &request, None)
        .await
        .and_then(|answer| pages.take(answer).map_err(failure));
    let (items, last) = match first {
        Err((code, message)) => return error(code, message),
        Ok(Taken::Whole(text)) => return json_response(StatusCode::OK, text),
        Ok(Taken::Items(items)) => (items, false),
        Ok(Taken::Last(items)) => (items, true),
    };
    let (sink, response) = stream::response(form.content_type());
    tokio::spawn(follow(
        engine,
        name,
        request,
        pages,
        (items, last),
        form,
        sink,
    ));
    response
}

/// Sends a paged answer's pages, asking for each next one once the one
/// before is on its way.
async fn follow(
    engine: EngineHandle,
    name: String,
    request: String,
    mut pages: Pages,
    (mut items, mut last): (Vec<String>, bool),
    form: Form,
    sink: Sink,
) {
    let mut any = false;
    let mut text = form.head().to_vec();
    loop {
        for item in &items {
            if any {
                text.extend_from_slice(form.separator());
            }
            any = true;
            text.extend_from_slice(item.as_bytes());
        }
        if last {
            text.extend_from_slice(form.tail(any));
        }
        if !sink.send(std::mem::take(&mut text)).await || last {
            return;
        }
        let next = call(&engine, &name, &request, pages.cursor())
            .await
            .and_then(|answer| pages.take(answer).map_err(failure));
        match next {
            Ok(Taken::Items(more)) => items = more,
            Ok(Taken::Last(more)) => (items, last) = (more, true),
            Ok(Taken::Whole(_)) => unreachable!("only a first call is taken whole"),
            Err((_, why)) => return sink.fail(why).await,
        }
    }
}
