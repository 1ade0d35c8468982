//! Who may use the admin listener. `/healthz`, `/readyz` and `/metrics` are always open (probes
//! and scrapers); everything else passes [`guard`]:
//!
//! - with `admin.token` set, a request needs `Authorization: Bearer <token>` or the UI's
//!   session cookie (set by `POST /ui/login` after the token was typed into the login form;
//!   HttpOnly, SameSite=Strict, so page scripts cannot read it and other sites cannot send
//!   it). Otherwise 401 with a JSON error (or the login page, for `/ui`).
//! - without a token, only a listener bound to loopback serves; one bound beyond it answers 403
//!   saying why, so a forgotten token never exposes the config or the playground.
//!
//! Tokens are compared in constant time (over their SHA-256 digests, so length leaks nothing
//! either).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{AdminState, Ctx};

/// The UI's session cookie.
const COOKIE: &str = "switchboard_admin";

/// The login and logout endpoints (reachable without a token, so the form can be sent).
pub(super) fn routes<S: AdminState>() -> Router<Ctx<S>> {
    Router::new()
        .route("/ui/login", post(login::<S>))
        .route("/ui/logout", post(logout))
}

/// What a request to a guarded endpoint may do.
enum Verdict {
    Allow,
    /// Bound beyond loopback without a token.
    Forbidden,
    /// A token is set and the request did not carry it.
    Unauthorized,
}

fn verdict<S: AdminState>(ctx: &Ctx<S>, headers: &HeaderMap) -> Verdict {
    let Some(token) = ctx.gw.admin_token() else {
        return if ctx.loopback {
            Verdict::Allow
        } else {
            Verdict::Forbidden
        };
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    if bearer.is_some_and(|b| same(b, &token)) {
        return Verdict::Allow;
    }
    if cookie(headers).is_some_and(|c| same(&c, &cookie_value(&token))) {
        return Verdict::Allow;
    }
    Verdict::Unauthorized
}

/// Always open: kubelet probes and Prometheus scrapes.
const OPEN: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// The middleware in front of the whole admin listener: the probes pass, the sign-in
/// endpoints check for themselves, everything else (unknown paths too) needs the token.
pub(super) async fn guard<S: AdminState>(
    State(ctx): State<Ctx<S>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if OPEN.contains(&path) || path == "/ui/login" || path == "/ui/logout" {
        return next.run(req).await;
    }
    match verdict(&ctx, req.headers()) {
        Verdict::Allow => next.run(req).await,
        Verdict::Forbidden => forbidden(),
        Verdict::Unauthorized => {
            let path = req.uri().path();
            if path == "/ui" || path == "/ui/" {
                login_page(StatusCode::UNAUTHORIZED, None)
            } else {
                unauthorized()
            }
        }
    }
}

fn forbidden() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "forbidden",
        "the admin listener is bound beyond loopback and admin.token is not set; set admin.token \
         (or bind admin.bind to 127.0.0.1) to use /ui, /api, /config and /drain",
    )
}

fn unauthorized() -> Response {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this admin endpoint needs admin.token: send `Authorization: Bearer <token>`",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"switchboard-admin\""),
    );
    r
}

/// A JSON error in the gateway's shape.
pub(super) fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"type": kind, "message": message}})),
    )
        .into_response()
}

/// `POST /ui/login` (form field `token`): sets the session cookie and goes to the UI.
async fn login<S: AdminState>(State(ctx): State<Ctx<S>>, body: Bytes) -> Response {
    let Some(token) = ctx.gw.admin_token() else {
        return if ctx.loopback {
            see_ui(None)
        } else {
            forbidden()
        };
    };
    let typed = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !same(typed.trim(), &token) {
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That token is not admin.token."),
        );
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        cookie_value(&token)
    );
    see_ui(Some(cookie))
}

/// `POST /ui/logout`: forgets the session cookie.
async fn logout() -> Response {
    see_ui(Some(format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    )))
}

fn see_ui(cookie: Option<String>) -> Response {
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui")]).into_response();
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// The login form: the only page served without the token. Self-contained (the UI's files
/// need the token).
fn login_page(status: StatusCode, problem: Option<&str>) -> Response {
    let problem = problem
        .map(|p| format!("<p class=\"problem\" id=\"login-problem\">{p}</p>"))
        .unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Switchboard admin: sign in</title><style>{LOGIN_CSS}</style></head><body>\
<form method=\"post\" action=\"/ui/login\" id=\"login\"><h1>Switchboard admin</h1>\
<p>This admin listener needs <code>admin.token</code>.</p>{problem}\
<label>Token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" autofocus></label>\
<button type=\"submit\">Sign in</button></form></body></html>"
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

const LOGIN_CSS: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;display:flex;\
justify-content:center;padding-top:15vh}form{background:#fff;padding:2em;border-radius:8px;\
box-shadow:0 1px 4px #0002;min-width:20em}label{display:block;margin:1em 0}input{width:100%;\
padding:.4em;box-sizing:border-box}button{padding:.5em 1.2em}.problem{color:#b00020}";

/// The session cookie's value for `token`: a digest, so the cookie jar never holds the token.
fn cookie_value(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"switchboard-admin-ui\0");
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Constant-time equality of two secrets (compares their SHA-256 digests).
fn same(a: &str, b: &str) -> bool {
    let (da, db) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    let diff = da
        .iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_value() {
        assert!(same("s3cret", "s3cret"));
        assert!(!same("s3cret", "s3cre"));
        assert!(!same("", "x"));
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; switchboard_admin=abc; b=2"),
        );
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
    }
}
