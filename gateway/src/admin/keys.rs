//! Virtual keys, team budgets and spend, behind the admin guard like the rest of `/api`:
//!
//! - `POST /api/keys` creates a key (the answer's `key` is the secret, shown this once),
//!   `GET /api/keys` lists them, `GET|PATCH|DELETE /api/keys/{id}` reads, changes or revokes
//!   one (a revoked key stays listed with `revoked_at`).
//! - `GET /api/teams` lists team budgets; `PUT|DELETE /api/teams/{team}/budget` sets or
//!   removes one.
//! - `GET /api/spend?key=&team=&model=&from=YYYY-MM-DD&to=YYYY-MM-DD`: spend totals over UTC
//!   days (default: the last 30 days through today; at most 366 days), overall and by key,
//!   team, model and provider.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::auth::error;
use super::{AdminState, Ctx};
use crate::auth::virtual_keys::{Budget, KeyError, KeyInput, KeyRecord};
use crate::spend::{Spend, Totals};

pub(super) fn routes<S: AdminState>() -> Router<Ctx<S>> {
    Router::new()
        .route("/api/keys", get(list::<S>).post(create::<S>))
        .route(
            "/api/keys/{id}",
            get(show::<S>).patch(update::<S>).delete(revoke::<S>),
        )
        .route("/api/teams", get(teams::<S>))
        .route(
            "/api/teams/{team}/budget",
            put(set_budget::<S>).delete(clear_budget::<S>),
        )
        .route("/api/spend", get(spend::<S>))
}

fn unavailable() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "this gateway keeps no virtual keys",
    )
}

fn key_error(e: &KeyError) -> Response {
    let (status, kind) = match e {
        KeyError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        KeyError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        KeyError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        KeyError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
    };
    error(status, kind, &e.to_string())
}

fn input(body: &[u8]) -> Result<KeyInput, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid key fields: {e}"))
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// A key as shown, with what its budget has used this period.
async fn shown(spend: &Spend, r: &KeyRecord) -> Value {
    let mut v = r.view();
    if let Some(b) = &r.budget
        && let Some(used) = spend.budget_used("key", &r.id, b).await
        && let Some(o) = v.as_object_mut()
    {
        o.insert("budget_used_usd".into(), json!(used));
    }
    v
}

async fn list<S: AdminState>(State(ctx): State<Ctx<S>>) -> Response {
    let Some(spend) = ctx.gw.spend() else {
        return unavailable();
    };
    match spend.keys().list().await {
        Ok(all) => {
            let mut keys = Vec::with_capacity(all.len());
            for r in &all {
                keys.push(shown(&spend, r).await);
            }
            Json(json!({"keys": keys})).into_response()
        }
        Err(e) => key_error(&e),
    }
}

async fn create<S: AdminState>(State(ctx): State<Ctx<S>>, body: axum::body::Bytes) -> Response {
    let Some(spend) = ctx.gw.spend() else {
        return unavailable();
    };
    let i = match input(&body) {
        Ok(i) => i,
        Err(m) => return bad_request(&m),
    };
    match spend.keys().create(i).await {
        Ok((secret, r)) => {
            let mut v = r.view();
            if let Some(o) = v.as_object_mut() {
                o.insert("key".into(), json!(secret));
            }
            (StatusCode::CREATED, Json(v)).into_response()
        }
        Err(e) => key_error(&e),
    }
}

async fn show<S: AdminState>(State(ctx): State<Ctx<S>>, Path(id): Path<String>) -> Response {
    let Some(spend) = ctx.gw.spend() else {
        return unavailable();
    };
    match spend.keys().get(&id).await {
        Ok(r) => Json(shown(&spend, &r).await).into_response(),
        Err(e) => key_error(&e),
    }
}

async fn update<S: AdminState>(
    State(ctx): State<Ctx<S>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(spend) = ctx.gw.spend() else {
        return unavailable();
    };
    let i = match input(&body) {
        Ok(i) => i,
        Err(m) => return bad_request(&m),
    };
    match spend.keys().update(&id, i).await {
        Ok(r) => Json(shown(&spend, &r).await).into_response(),
        Err(e) => key_error(&e),
    }
}

async fn revoke<S: AdminState>(State(ctx): State<Ctx<S>>, Path(id): Path<String>) -> Response {
    let Some(spend) = ctx.gw.spend() else {
        return unavailable();
    };
    match spend.keys().revoke(&id).await {
        Ok(r) => Json(r.view()).into_response(),
        Err(e) => key_error(&e),
    }
}

async fn teams<S: AdminState>(State(ctx): State<Ctx<S>>) -> Response {
    let Some(spend) = ctx.gw.spend() else {
        return unavailable();
    };
    match spend.keys().teams().await {
        Ok(all) => {
            let mut out = BTreeMap::new();
            for (team, b) in all {
                let used = spend.budget_used("team", &team, &b).await;
                out.insert(team, json!({"budget": b, "budget_used_usd": used}));
            }
            Json(json!({"teams": out})).into_response()
        }
        Err(e) => key_error(&e),
    }
}

async fn set_budget<S: AdminState>(
    State(ctx): State<Ctx<S>>,
    Path(team): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(spend) = ctx.gw.spend() else {
        return unavailable();
    };
    let b: Budget = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("invalid budget: {e}"),
            );
        }
    };
    match spend.keys().set_team_budget(&team, Some(b.clone())).await {
        Ok(()) => Json(json!({"team": team, "budget": b})).into_response(),
        Err(e) => key_error(&e),
    }
}

async fn clear_budget<S: AdminState>(
    State(ctx): State<Ctx<S>>,
    Path(team): Path<String>,
) -> Response {
    let Some(spend) = ctx.gw.spend() else {
        return unavailable();
    };
    match spend.keys().set_team_budget(&team, None).await {
        Ok(()) => Json(json!({"team": team, "budget": null})).into_response(),
        Err(e) => key_error(&e),
    }
}

async fn spend<S: AdminState>(
    State(ctx): State<Ctx<S>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(spend) = ctx.gw.spend() else {
        return unavailable();
    };
    let today = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        / 86_400) as i64;
    let day = |name: &str, default: i64| match q.get(name) {
        None => Ok(default),
        Some(s) => crate::spend::parse_day(s)
            .ok_or_else(|| format!("`{name}` must be a UTC date, YYYY-MM-DD")),
    };
    let to = match day("to", today) {
        Ok(d) => d,
        Err(m) => return bad_request(&m),
    };
    let from = match day("from", to - 29) {
        Ok(d) => d,
        Err(m) => return bad_request(&m),
    };
    if from > to || to - from >= 366 {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "`from` must not be after `to`, and the range is at most 366 days",
        );
    }
    let query = crate::spend::Query {
        from,
        to,
        key: q.get("key").cloned(),
        team: q.get("team").cloned(),
        model: q.get("model").cloned(),
    };
    let rows = match spend.query(&query).await {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                &format!("the sessions store is unavailable: {e}"),
            );
        }
    };
    let mut total = Totals::default();
    let mut by: [BTreeMap<String, Totals>; 4] = Default::default();
    for (row, t) in &rows {
        total.add(t);
        for (map, name) in by
            .iter_mut()
            .zip([&row.key, &row.team, &row.model, &row.provider])
        {
            map.entry(name.clone()).or_default().add(t);
        }
    }
    let shown = |m: &BTreeMap<String, Totals>| {
        m.iter()
            .map(|(k, t)| (k.clone(), t.json()))
            .collect::<serde_json::Map<_, _>>()
    };
    let [by_key, by_team, by_model, by_provider] = &by;
    Json(json!({
        "from": crate::spend::day_string(from),
        "to": crate::spend::day_string(to),
        "total": total.json(),
        "by_key": shown(by_key),
        "by_team": shown(by_team),
        "by_model": shown(by_model),
        "by_provider": shown(by_provider),
    }))
    .into_response()
}
