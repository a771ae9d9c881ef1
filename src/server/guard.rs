//! What every request passes before a handler: the `Host` allow-list (DNS
//! rebinding), the concurrency limit and the time budget.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::HOST;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{AppError, AppState};

/// Which `Host` values a request may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPolicy {
    /// Loopback names on any port (`localhost`, `*.localhost`, `127.x.y.z`,
    /// `[::1]`): the policy of a server listening on a loopback address, so
    /// local proxies and dev servers on other ports keep working, while a
    /// page on another name that DNS-rebinds to 127.0.0.1 is refused.
    Loopback,
    /// These host names (any port), lowercase, and loopback ones too (a
    /// health check from the machine itself).
    Names(Vec<String>),
}

impl HostPolicy {
    /// Whether `host` (a `Host` header: name or IP, optional port) is served.
    pub fn allows(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        if is_loopback_name(&name) {
            return true;
        }
        match self {
            HostPolicy::Loopback => false,
            HostPolicy::Names(names) => names.contains(&name),
        }
    }
}

/// The name part of a `Host` value: `[::1]:80` → `::1`, `a.b:8080` → `a.b`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // `[v6]` or `[v6]:port`, nothing else after the bracket.
        return match rest.split_once(']') {
            Some((v6, "")) => v6,
            Some((v6, port))
                if port.strip_prefix(':').is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
            {
                v6
            }
            _ => "",
        };
    }
    host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(name, _)| name)
}

fn is_loopback_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name == "localhost" || name.ends_with(".localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Refuses requests for hosts this server does not serve (`421`).
pub async fn check_host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let host =
        req.headers().get(HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri().authority().map(|a| a.as_str()));
    match host {
        // No Host at all is no browser (browsers always send one), so it
        // cannot be a rebinding page: an in-process client, a probe.
        None => next.run(req).await,
        Some(host) if state.api.settings.hosts.allows(host) => next.run(req).await,
        Some(host) => AppError::UnknownHost { host: host.chars().take(100).collect() }.into_response(),
    }
}

/// How many requests run at once, and how long each may take.
pub struct Limits {
    pub slots: Arc<tokio::sync::Semaphore>,
    pub budget: Duration,
}

impl Limits {
    pub fn new(settings: &super::Settings) -> Limits {
        Limits {
            slots: Arc::new(tokio::sync::Semaphore::new(settings.max_concurrent.max(1))),
            budget: settings.request_timeout,
        }
    }
}

/// Answers `503` with `Retry-After` when every slot is taken, or when the
/// request runs past its budget: the client learns at once, instead of
/// waiting on a queue that grows without bound. A write whose answer timed
/// out still completes (it runs in a task of its own), so its retry gets
/// the stored answer.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limits = &state.api.limits;
    let Ok(_slot) = limits.slots.clone().try_acquire_owned() else {
        return AppError::Unavailable {
            code: "overloaded",
            message: "The server is handling as many requests as it can; retry in a moment.".into(),
            retry_after_secs: 1,
        }
        .into_response();
    };
    match tokio::time::timeout(limits.budget, next.run(req)).await {
        Ok(res) => res,
        Err(_) => AppError::Unavailable {
            code: "timeout",
            message: format!(
                "The server could not answer within {} s; retry later. A write it was given is applied at most once.",
                limits.budget.as_secs_f32()
            ),
            retry_after_secs: 2,
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_policy_takes_loopback_names_on_any_port() {
        let p = HostPolicy::Loopback;
        for ok in [
            "localhost",
            "localhost:3000",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:8080",
            "[::1]",
            "app.localhost:5173",
            "LOCALHOST",
            "localhost.",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1",
            "",
            "[::2]:80",
            "0.0.0.0",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
    }

    #[test]
    fn named_policy_takes_its_names_and_loopback() {
        let p = HostPolicy::Names(vec!["app.example.com".into()]);
        assert!(p.allows("app.example.com"));
        assert!(p.allows("APP.example.com:443"));
        assert!(p.allows("127.0.0.1:8080"));
        assert!(!p.allows("example.com"));
        assert!(!p.allows("app.example.com.evil.example"));
    }
}
