//! The control API's routes, served with axum on a dedicated thread:
//!
//! | route | answer |
//! |---|---|
//! | `GET /status` | engine state, counters, mirror sizes, plugins |
//! | `GET /metrics` | the same counters and more, for Prometheus |
//! | `GET /watch` | the mirror, then every event dispatched, as JSON lines |
//! | `GET /plugins` | every plugin: name, file, hash, mp-safe, state |
//! | `POST /plugins/{name}/query` | the plugin's answer to the request body (paged answers streamed; `?lines` for JSON lines) |
//! | `POST /plugins/{name}/reload` | loads the plugin's file again and swaps it in |
//! | `POST /plugins/{name}/enable` | clears a disabled plugin's crashes and restarts it |
//! | `GET /mirror/{kind}` | the mirror's links, addresses, neighbours, nexthops, rules or routes, streamed (`?lines` for JSON lines) |
//! | `POST /audit` | audits the kernel against the mirror now; the report |

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::ControlAddr;
use super::reply::{ask, error, json_response};
use crate::engine::{EngineHandle, Kind, Outcome, PluginState, PluginView, Request};
use crate::wit::{EVENT_NAMES, ObjectKind};

/// Why the control API could not start. Each message names the socket or
/// port; the system's reason is the source.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The tokio runtime the API runs on could not be built.
    #[error("starting the control API runtime")]
    Runtime(#[source] std::io::Error),
    /// Something answers on the socket: another dphost is running there.
    #[error(
        "{} is in use: another dphost is running with this control socket",
        path.display()
    )]
    InUse { path: std::path::PathBuf },
    /// A stale socket file, left by a dphost that died, could not be removed.
    #[error("removing stale socket {}", path.display())]
    RemoveStale {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The Unix socket could not be bound (directory missing, permissions).
    #[error("binding the control socket {}", path.display())]
    BindSocket {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TCP port could not be bound (in use, not permitted).
    #[error("binding the control port {addr}")]
    BindPort {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Restricting the socket to its owner (mode 0600) failed, or the
    /// serving thread could not be started.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Starts serving on every address, on a thread of its own. Returns once
/// every listener is bound, so a caller may connect at once.
pub fn spawn(
    addrs: Vec<ControlAddr>,
    engine: EngineHandle,
) -> Result<std::thread::JoinHandle<()>, ServeError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/watch", get(super::watch::watch))
        .route("/plugins", get(plugins))
        .route("/plugins/{name}/query", post(super::answers::query))
        .route("/plugins/{name}/reload", post(reload))
        .route("/plugins/{name}/enable", post(enable))
        .route("/mirror/{kind}", get(super::answers::mirror))
        .route("/audit", post(audit))
        .with_state(engine);
    let mut servers = Vec::new();
    for addr in addrs {
        servers.push(runtime.block_on(bind(addr, app.clone()))?);
    }
    let thread = std::thread::Builder::new()
        .name("dphost-control".into())
        .spawn(move || {
            runtime.block_on(async {
                for server in servers {
                    tokio::spawn(server);
                }
                std::future::pending::<()>().await
            })
        })?;
    Ok(thread)
}

type Server = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

async fn bind(addr: ControlAddr, app: Router) -> Result<Server, ServeError> {
    match &addr {
        ControlAddr::Unix(path) => {
            if path.exists() {
                // A socket someone answers on belongs to a running dphost:
                // taking it over would cut that one off from its operators.
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(ServeError::InUse { path: path.clone() });
                }
                std::fs::remove_file(path).map_err(|source| ServeError::RemoveStale {
                    path: path.clone(),
                    source,
                })?;
            }
            let listener =
                tokio::net::UnixListener::bind(path).map_err(|source| ServeError::BindSocket {
                    path: path.clone(),
                    source,
                })?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            tracing::info!(control = %addr, "control API listening");
            Ok(Box::pin(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(control = %addr, "control API stopped: {e}");
                }
            }))
        }
        ControlAddr::Tcp(socket) => {
            let listener = tokio::net::TcpListener::bind(socket)
                .await
                .map_err(|source| ServeError::BindPort {
                    addr: *socket,
                    source,
                })?;
            tracing::info!(control = %addr, "control API listening");
            Ok(Box::pin(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(control = %addr, "control API stopped: {e}");
                }
            }))
        }
    }
}

/// Prometheus text format (version 0.0.4).
async fn metrics(State(engine): State<EngineHandle>) -> Response {
    let plugins = match ask(&engine, Request::Plugins).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let text = super::metrics::render(&engine.stats, plugins);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn status(State(engine): State<EngineHandle>) -> Response {
    let plugins = match ask(&engine, Request::Plugins).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    json_response(StatusCode::OK, status_json(&engine, &plugins).to_string())
}

/// The status document: engine state and counters, mirror sizes, and per
/// plugin its state and events delivered.
pub fn status_json(engine: &EngineHandle, plugins: &[PluginView]) -> Value {
    let s = &engine.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let syncs = load(&s.syncs);
    let per_kind = |values: [u64; Kind::ALL.len()]| {
        let mut map = serde_json::Map::new();
        for (kind, value) in Kind::ALL.iter().zip(values) {
            map.insert(kind.name().to_string(), json!(value));
        }
        Value::Object(map)
    };
    json!({
        "state": s.state().name(),
        "rcvbuf": load(&s.rcvbuf),
        "notifications": per_kind(s.reader.notifications.each_ref().map(load)),
        "enobufs": load(&s.enobufs),
        "socket_errors": load(&s.socket_errors),
        "syncs": syncs,
        "resyncs": syncs.saturating_sub(1),
        "syncs_abandoned": load(&s.syncs_abandoned),
        "dump_interruptions": load(&s.dump_interruptions),
        "unparsed": {
            "notifications": load(&s.reader.unparsed),
            "dumps": load(&s.dump_unparsed),
        },
        "reconciliations": load(&s.reconciliations),
        "last_sync_ms": load(&s.last_sync_micros) as f64 / 1e3,
        "sync_objects": load(&s.sync_objects),
        "mirror": per_kind(s.mirror.each_ref().map(load)),
        "events": load(&s.events),
        "events_by_case": EVENT_NAMES
            .iter()
            .zip(&s.events_by_case)
            .map(|(name, n)| (name.to_string(), json!(load(n))))
            .collect::<serde_json::Map<_, _>>(),
        "events_by_kind": ObjectKind::ALL
            .iter()
            .map(|k| (k.name().to_string(), json!(load(&s.events_by_kind[*k as usize]))))
            .collect::<serde_json::Map<_, _>>(),
        "replays": load(&s.replays),
        "audits": load(&s.audits),
        "audits_failed": load(&s.audits_failed),
        "audit_repairs": ObjectKind::ALL
            .iter()
            .map(|k| (k.name().to_string(), json!(load(&s.audit_repairs[*k as usize]))))
            .collect::<serde_json::Map<_, _>>(),
        "last_audit_ms": load(&s.last_audit_micros) as f64 / 1e3,
        "last_audit_cpu_ms": load(&s.last_audit_cpu_micros) as f64 / 1e3,
        "plugins": plugins.iter().map(|p| json!({
            "name": &*p.worker.name,
            "state": p.state_name(),
            "failure": failure(&p.worker.state),
            "events": p.worker.events,
            "calls": p.worker.calls,
            "overflows": p.worker.overflows,
            "resyncs": p.worker.resyncs,
            "memory_bytes": p.worker.memory_bytes,
            "latency_ms": latency(p),
            "restarts": p.supervision.restarts,
            "reloads": p.supervision.reloads,
            "recent_crashes": p.supervision.recent_crashes,
            "last_crash": p.supervision.last_crash.as_ref().map(|e| e.to_string()),
            "rejected": rejected(p),
            "last_reload_ms": p.supervision.last_reload.map(|d| d.as_secs_f64() * 1e3),
            "watched": p.supervision.watched,
        })).collect::<Vec<_>>(),
    })
}

/// Quantiles of the time from dispatch until the plugin took a batch.
fn latency(p: &PluginView) -> Value {
    let ms = |q| p.worker.latency.quantile(q).map(|d| d.as_secs_f64() * 1e3);
    json!({"batches": p.worker.latency.count(), "p50": ms(0.5), "p99": ms(0.99), "max": ms(1.0)})
}

/// The last refused reload: the file's hash and the reason.
fn rejected(p: &PluginView) -> Value {
    match &p.supervision.rejected {
        Some(r) => json!({"sha256": r.sha256, "reason": r.reason}),
        None => Value::Null,
    }
}

fn failure(state: &PluginState) -> Value {
    match state {
        PluginState::Failed(reason) => json!(reason.to_string()),
        _ => Value::Null,
    }
}

async fn plugins(State(engine): State<EngineHandle>) -> Response {
    let plugins = match ask(&engine, Request::Plugins).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let list: Vec<Value> = plugins
        .iter()
        .map(|p| {
            json!({
                "name": &*p.worker.name,
                "version": p.worker.info.version,
                "file": p.worker.meta.path.display().to_string(),
                "sha256": p.worker.meta.sha256,
                "mp_safe": p.worker.info.mp_safe,
                "api": p.worker.meta.api.number(),
                "kinds": p.worker.info.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
                "filter": crate::wit::filter::json(&p.worker.filter),
                "state": p.state_name(),
                "failure": failure(&p.worker.state),
                "restarts": p.supervision.restarts,
                "reloads": p.supervision.reloads,
                "rejected": rejected(p),
            })
        })
        .collect();
    json_response(StatusCode::OK, Value::Array(list).to_string())
}

async fn reload(State(engine): State<EngineHandle>, Path(name): Path<String>) -> Response {
    answer_of(ask(&engine, |reply| Request::reload(&name, reply)).await)
}

async fn enable(State(engine): State<EngineHandle>, Path(name): Path<String>) -> Response {
    answer_of(
        ask(&engine, |reply| Request::Enable {
            plugin: name,
            reply,
        })
        .await,
    )
}

/// A command's outcome as `{"result": ...}` or an error.
fn answer_of(asked: Result<Outcome, Response>) -> Response {
    match asked {
        Ok(Ok(message)) => json_response(StatusCode::OK, json!({ "result": message }).to_string()),
        Ok(Err(message)) => error(StatusCode::UNPROCESSABLE_ENTITY, message),
        Err(response) => response,
    }
}

/// An audit now: its report, or why it could not finish.
async fn audit(State(engine): State<EngineHandle>) -> Response {
    match ask(&engine, Request::Audit).await {
        Ok(Ok(report)) => json_response(StatusCode::OK, report.json().to_string()),
        Ok(Err(why)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("audit failed: {why}"),
        ),
        Err(response) => response,
    }
}
