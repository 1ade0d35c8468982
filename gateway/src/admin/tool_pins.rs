//! `GET /api/tool-pins` (the MCP tool definitions this replica has pinned and seen, and which
//! changed) and `POST /api/tool-pins/approve` (`{"route", "tool"}`: pin the current
//! definition, unblocking the tool). Behind the admin guard like the rest of `/api`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::auth::error;
use super::{AdminState, Ctx};

pub(super) fn routes<S: AdminState>() -> Router<Ctx<S>> {
    Router::new()
        .route("/api/tool-pins", get(list::<S>))
        .route("/api/tool-pins/approve", post(approve::<S>))
}

async fn list<S: AdminState>(State(ctx): State<Ctx<S>>) -> Response {
    let pins = ctx.gw.tool_pins().map(|p| p.list()).unwrap_or_default();
    Json(json!({"pins": pins})).into_response()
}

#[derive(Deserialize)]
struct Approve {
    route: String,
    tool: String,
}

async fn approve<S: AdminState>(State(ctx): State<Ctx<S>>, body: axum::body::Bytes) -> Response {
    let Ok(a) = serde_json::from_slice::<Approve>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "send {\"route\": ..., \"tool\": ...}",
        );
    };
    let Some(pins) = ctx.gw.tool_pins() else {
        return error(StatusCode::NOT_FOUND, "not_found", "no tool pins here");
    };
    match pins.approve(&a.route, &a.tool).await {
        Ok(true) => Json(json!({"approved": {"route": a.route, "tool": a.tool}})).into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such tool has been seen on that route",
        ),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the sessions store could not record the pin",
        ),
    }
}
