//! Log in as a name (reference-grade: no password), log out, who am I.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::check_text;
use crate::auth;
use crate::db::now_ms;
use crate::server::extract::{new_id, JsonBody, User};
use crate::server::{AppError, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/auth/login", post(login)).route("/auth/logout", post(logout)).route("/auth/me", get(me))
}

#[cfg(test)]
mod tests {
    #[test]
    fn forwarding_headers_that_name_another_machine() {
        let check = |pairs: &[(&'static str, &'static str)]| {
            let mut h = axum::http::HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, v.parse().unwrap());
            }
            super::forwarded_from_elsewhere(&h)
        };
        assert!(!check(&[]));
        assert!(!check(&[("x-forwarded-for", "127.0.0.1")]));
        assert!(!check(&[("x-forwarded-for", "::1, 127.0.0.1")]));
        assert!(!check(&[("forwarded", "for=\"[::1]:5173\";proto=http")]));
        assert!(!check(&[("x-real-ip", "127.0.0.1:5173")]));
        assert!(check(&[("x-forwarded-for", "203.0.113.9")]));
        assert!(check(&[("x-forwarded-for", "127.0.0.1, 203.0.113.9")]));
        assert!(check(&[("forwarded", "for=198.51.100.7")]));
        assert!(check(&[("forwarded", "for=_hidden")]));
        assert!(check(&[("x-real-ip", "10.0.0.1")]));
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    user: String,
}

/// Whether a proxy's forwarding headers name a client off this machine.
fn forwarded_from_elsewhere(headers: &axum::http::HeaderMap) -> bool {
    let loopback = |v: &str| {
        let v = v.trim().trim_matches('"');
        let v = v.strip_prefix('[').map_or(v, |r| r.split(']').next().unwrap_or_default());
        let v = if v.matches(':').count() == 1 { v.split(':').next().unwrap_or_default() } else { v };
        v.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) || v == "localhost"
    };
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().map(|h| h.to_str().unwrap_or("?").to_string()).collect()
    };
    let mut clients: Vec<String> = Vec::new();
    for v in values("x-forwarded-for").into_iter().chain(values("x-real-ip")) {
        clients.extend(v.split(',').map(str::to_string));
    }
    for v in values("forwarded") {
        for part in v.split([',', ';']) {
            if let Some((k, val)) = part.split_once('=') {
                if k.trim().eq_ignore_ascii_case("for") {
                    clients.push(val.to_string());
                }
            }
        }
    }
    clients.iter().any(|c| !loopback(c))
}

async fn login(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: JsonBody<Login>,
) -> Result<Response, AppError> {
    use crate::server::NameLogin;
    let allowed = match state.api.settings.name_login {
        NameLogin::Anyone => true,
        NameLogin::Local => !forwarded_from_elsewhere(&headers),
        NameLogin::Off => false,
    };
    if !allowed {
        return Err(AppError::Forbidden {
            code: "name_login_disabled",
            message: "Logging in by name alone (no password) is only for a server used from its own machine, and \
                      this request came from elsewhere (or the server has public host names). Put a real login in \
                      front of the API, or start it with --allow-name-login for a trusted network."
                .into(),
        });
    }
    let name = body.value.user.trim().to_string();
    check_text("user", &name, 1, 64)?;
    if name.chars().any(|c| c.is_control()) {
        return Err(AppError::bad_request("invalid_field", "user must not contain control characters"));
    }
    let db = &state.api.db;
    let now = now_ms();
    // Insert-or-ignore, then read: two logins racing for a new name agree.
    db.execute(
        crate::db::query("INSERT INTO users (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(new_id())
            .bind(&name)
            .bind(now),
    )
    .await?;
    let (id,): (String,) =
        db.fetch_one(crate::db::query_as("SELECT id FROM users WHERE name = $1").bind(&name)).await?;
    let cookie = auth::set_cookie(&state.api.session_key.issue(&id, now));
    Ok(([(SET_COOKIE, cookie)], Json(json!({ "user": { "id": id, "name": name } }))).into_response())
}

/// Ends the session on the server, not just in this browser: the cookie is
/// revoked, so a copy of it (another tab's, a stolen one) is no login either.
async fn logout(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Result<Response, AppError> {
    let value =
        headers.get_all(axum::http::header::COOKIE).iter().filter_map(|h| h.to_str().ok()).find_map(auth::find_cookie);
    if let Some(value) = value {
        if state.api.session_key.verify(value, now_ms()).is_ok() {
            if let Some((token, expires_at)) = auth::revocation(value) {
                state.api.db.execute(crate::db::query(
                    "INSERT INTO revoked_sessions (token, expires_at) VALUES ($1, $2) ON CONFLICT (token) DO NOTHING",
                )
                .bind(token)
                .bind(expires_at))
                .await?;
            }
        }
    }
    Ok(([(SET_COOKIE, auth::clear_cookie())], Json(json!({ "ok": true }))).into_response())
}

async fn me(State(state): State<AppState>, user: User) -> Result<Json<serde_json::Value>, AppError> {
    let row: Option<(String,)> =
        state.api.db.fetch_optional(crate::db::query_as("SELECT name FROM users WHERE id = $1").bind(&user.id)).await?;
    // A valid cookie for a user the database does not know (a wiped
    // database) is no login.
    let (name,) = row.ok_or(AppError::Unauthenticated)?;
    Ok(Json(json!({ "id": user.id, "name": name })))
}
