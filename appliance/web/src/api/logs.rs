//! `/api/v1/logs`: recent log lines, or a Server-Sent Events stream of
//! new ones with `follow=true`.

use alpharen_rpc::logs::{self as m, Logs};
use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use super::{AppState, Q, Reader, rpc};
use crate::error::ApiError;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    service: Option<String>,
    lines: Option<usize>,
    /// Keep the response open and stream new lines (Server-Sent Events).
    #[serde(default)]
    follow: bool,
}

#[utoipa::path(get, path = "/api/v1/logs", tag = "node", params(LogsQuery),
    responses((status = 200, description = "Log lines; with follow=true a text/event-stream of lines", body = Value)))]
pub(super) async fn logs(
    State(app): AppState,
    _c: Reader,
    Q(q): Q<LogsQuery>,
) -> Result<Response, ApiError> {
    let params = Logs {
        service: q.service,
        lines: q.lines.unwrap_or(m::DEFAULT_LINES).min(10_000),
        follow: q.follow,
    };
    if !params.follow {
        return Ok(Json(rpc(&app, m::READ, params).await?).into_response());
    }
    let params = alpharen_rpc::to_params(&params);
    let (first, stream) =
        alpharen_rpc::call_stream(&app.socket, m::READ, params, crate::CALL_TIMEOUT).await?;
    let backlog: Vec<Value> = match first {
        Value::Array(a) => a,
        _ => Vec::new(),
    };
    let events = futures_util::stream::unfold(
        (backlog.into_iter(), stream),
        |(mut backlog, mut stream)| async move {
            let item = match backlog.next() {
                Some(v) => v,
                None => stream.next().await?,
            };
            let ev = Event::default().event("line").data(item.to_string());
            Some((Ok::<_, std::convert::Infallible>(ev), (backlog, stream)))
        },
    );
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
