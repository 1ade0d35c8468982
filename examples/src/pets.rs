//! A small REST pet store, described by `examples/openapi/pets.yaml` (which it also serves at
//! `/openapi.yaml`): path, query and header parameters, a JSON body and JSON errors. The
//! gateway's OpenAPI targets (`targets[].openapi`) are tested against it.
//!
//! - `GET /pets?limit=&tag=`: the pets, in creation order;
//! - `POST /pets` (header `X-Owner`, body `{"name", "tag"}`): 201 with the pet, 400 without a
//!   name;
//! - `GET /pets/{petId}`, `DELETE /pets/{petId}`: the pet, 204, or 404 `{"code", "message"}`;
//! - `PUT /pets/{petId}/photo` (`image/png`): 204.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::Deserialize;
use serde_json::{Value, json};

/// The store's OpenAPI document.
pub const OPENAPI: &str = include_str!("../openapi/pets.yaml");

#[derive(Default)]
struct Store {
    next: u64,
    pets: Vec<Value>,
}

type Shared = Arc<Mutex<Store>>;

fn error(status: StatusCode, message: String) -> Response {
    (
        status,
        axum::Json(json!({"code": status.as_u16(), "message": message})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    tag: Option<String>,
}

async fn list(State(s): State<Shared>, Query(q): Query<ListQuery>) -> Response {
    let store = s.lock().unwrap_or_else(|e| e.into_inner());
    let pets: Vec<&Value> = store
        .pets
        .iter()
        .filter(|p| q.tag.as_deref().is_none_or(|t| p["tag"] == t))
        .take(q.limit.unwrap_or(usize::MAX))
        .collect();
    axum::Json(json!(pets)).into_response()
}

async fn create(State(s): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Ok(new) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "the body is not JSON".into());
    };
    let Some(name) = new
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return error(StatusCode::BAD_REQUEST, "a pet needs a name".into());
    };
    let owner = headers.get("x-owner").and_then(|v| v.to_str().ok());
    let mut store = s.lock().unwrap_or_else(|e| e.into_inner());
    store.next += 1;
    let pet =
        json!({"id": store.next.to_string(), "name": name, "tag": new.get("tag"), "owner": owner});
    store.pets.push(pet.clone());
    (StatusCode::CREATED, axum::Json(pet)).into_response()
}

async fn show(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    let store = s.lock().unwrap_or_else(|e| e.into_inner());
    match store.pets.iter().find(|p| p["id"] == id.as_str()) {
        Some(p) => axum::Json(p.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no pet {id}")),
    }
}

async fn delete(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    let mut store = s.lock().unwrap_or_else(|e| e.into_inner());
    let before = store.pets.len();
    store.pets.retain(|p| p["id"] != id.as_str());
    if store.pets.len() == before {
        return error(StatusCode::NOT_FOUND, format!("no pet {id}"));
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn photo(Path(_id): Path<String>) -> StatusCode {
    StatusCode::NO_CONTENT
}

/// The pet store's routes, with an empty store.
pub fn router() -> Router {
    Router::new()
        .route(
            "/openapi.yaml",
            get(|| async { ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI) }),
        )
        .route("/pets", get(list).post(create))
        .route("/pets/{petId}", get(show).delete(delete))
        .route("/pets/{petId}/photo", put(photo))
        .with_state(Shared::default())
}

/// Serve the pet store on `addr` (port 0: any free port); returns the bound address.
pub async fn serve(addr: SocketAddr) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router()).await;
    });
    Ok((local, task))
}
