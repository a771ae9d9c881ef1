//! Which requests the worker takes, and in which role.

use super::config::Config;
use super::url;

/// What the worker does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Not ours: the fetch event is left alone (`respondWith` is not called).
    Passthrough,
    /// The worker's own `GET {apiPrefix}__outpost/version`.
    Version,
    /// A configured metadata read; the index is into `Config::reads`.
    Read(usize),
    /// A configured write; the index is into `Config::writes`.
    Write(usize),
    /// A same-origin GET outside the API kept for offline starts; the index
    /// is into `Config::shell`.
    Shell(usize),
    /// One of the origin's auth routes: sent as it is, its answer read for
    /// who is logged in.
    Auth(AuthRoute),
    /// A file to store on the device and upload (`uploadPath`).
    Upload,
    /// An asset's bytes (`contentPath`).
    Content,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRoute {
    Login,
    Logout,
    Me,
}

/// The route of a request as the fetch event shows it. A navigation that is
/// not a GET is a form posted by some page, possibly another site's: the
/// worker would send it again from the app's own origin, with the app's
/// cookies and `Sec-Fetch-Site: same-origin`, defeating the browser's CSRF
/// defences. It goes to the network untouched instead, so they apply.
pub fn route_request(config: &Config, origin: &str, method: &str, request_url: &str, navigate: bool) -> Route {
    if navigate && method != "GET" {
        return Route::Passthrough;
    }
    route(config, origin, method, request_url)
}

/// Decides the route of `method url`, for a worker whose origin is `origin`.
pub fn route(config: &Config, origin: &str, method: &str, request_url: &str) -> Route {
    let Some(parts) = url::split(request_url) else {
        return Route::Passthrough;
    };
    if parts.origin != origin {
        return Route::Passthrough;
    }
    let path = parts.path;
    if !path.starts_with(config.api_prefix.as_str()) {
        return match method {
            "GET" => position(&config.shell, path).map_or(Route::Passthrough, Route::Shell),
            _ => Route::Passthrough,
        };
    }
    let auth = &config.auth;
    match method {
        "GET" if path == config.version_path() => Route::Version,
        "GET" if auth.me.matches(path) => Route::Auth(AuthRoute::Me),
        "GET" if config.content_path.matches(path) => Route::Content,
        "POST" if config.upload_path.matches(path) => Route::Upload,
        "POST" if auth.login.matches(path) => Route::Auth(AuthRoute::Login),
        "POST" if auth.logout.matches(path) => Route::Auth(AuthRoute::Logout),
        "GET" => position(&config.reads, path).map_or(Route::Passthrough, Route::Read),
        "POST" | "PUT" | "PATCH" | "DELETE" => position(&config.writes, path).map_or(Route::Passthrough, Route::Write),
        _ => Route::Passthrough,
    }
}

fn position(patterns: &[super::pattern::Pattern], path: &str) -> Option<usize> {
    patterns.iter().position(|p| p.matches(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "http://127.0.0.1:8080";

    fn r(method: &str, url: &str) -> Route {
        route(&Config::default(), O, method, url)
    }

    #[test]
    fn version_route_is_the_workers_own() {
        assert_eq!(r("GET", "http://127.0.0.1:8080/api/__outpost/version"), Route::Version);
        assert_eq!(r("POST", "http://127.0.0.1:8080/api/__outpost/version"), Route::Passthrough);
    }

    #[test]
    fn default_reads_and_writes() {
        assert_eq!(r("GET", "http://127.0.0.1:8080/api/sync/init"), Route::Read(0));
        assert_eq!(r("GET", "http://127.0.0.1:8080/api/chat/sessions/1/messages?x=1"), Route::Read(1));
        assert_eq!(r("POST", "http://127.0.0.1:8080/api/chat/messages/batch"), Route::Write(0));
        assert_eq!(r("DELETE", "http://127.0.0.1:8080/api/projects/9"), Route::Write(1));
    }

    #[test]
    fn everything_else_is_left_alone() {
        assert_eq!(r("GET", "http://127.0.0.1:8080/"), Route::Passthrough);
        assert_eq!(r("GET", "http://127.0.0.1:8080/app.js"), Route::Passthrough);
        assert_eq!(r("POST", "http://127.0.0.1:8080/api/health"), Route::Passthrough);
        assert_eq!(r("HEAD", "http://127.0.0.1:8080/api/projects"), Route::Passthrough);
        // Cross-origin, even with the same path.
        assert_eq!(r("GET", "http://127.0.0.1:9090/api/sync/init"), Route::Passthrough);
        assert_eq!(r("GET", "https://127.0.0.1:8080/api/sync/init"), Route::Passthrough);
        assert_eq!(r("POST", "https://cdn.example/api/chat/x"), Route::Passthrough);
        assert_eq!(r("GET", "data:text/plain,/api/sync/init"), Route::Passthrough);
    }

    #[test]
    fn uploads_and_content_come_before_reads_and_writes() {
        assert_eq!(r("POST", "http://127.0.0.1:8080/api/assets/upload"), Route::Upload);
        assert_eq!(r("GET", "http://127.0.0.1:8080/api/assets/local-1/content"), Route::Content);
        assert_eq!(r("GET", "http://127.0.0.1:8080/api/assets/local-1"), Route::Read(3));
        assert_eq!(r("GET", "http://127.0.0.1:8080/api/assets/upload"), Route::Read(3));
    }

    #[test]
    fn auth_routes_are_watched() {
        assert_eq!(r("POST", "http://127.0.0.1:8080/api/auth/login"), Route::Auth(AuthRoute::Login));
        assert_eq!(r("POST", "http://127.0.0.1:8080/api/auth/logout"), Route::Auth(AuthRoute::Logout));
        assert_eq!(r("GET", "http://127.0.0.1:8080/api/auth/me"), Route::Auth(AuthRoute::Me));
        assert_eq!(r("GET", "http://127.0.0.1:8080/api/auth/login"), Route::Passthrough);
    }

    #[test]
    fn shell_routes_only_when_configured() {
        assert_eq!(r("GET", "http://127.0.0.1:8080/app.js"), Route::Passthrough);
        let c = Config::from_json(r#"{"shell": ["/", "/app.js", "/static/*"]}"#).unwrap();
        assert_eq!(route(&c, O, "GET", "http://127.0.0.1:8080/?x=1"), Route::Shell(0));
        assert_eq!(route(&c, O, "GET", "http://127.0.0.1:8080/app.js"), Route::Shell(1));
        assert_eq!(route(&c, O, "GET", "http://127.0.0.1:8080/static/a.css"), Route::Shell(2));
        assert_eq!(route(&c, O, "POST", "http://127.0.0.1:8080/app.js"), Route::Passthrough);
        assert_eq!(route(&c, O, "GET", "http://other:8080/app.js"), Route::Passthrough);
    }

    #[test]
    fn form_posts_are_never_taken_over() {
        let c = Config::from_json(r#"{"shell": ["/"]}"#).unwrap();
        for (method, path) in [
            ("POST", "/api/inbox"),
            ("POST", "/api/assets/upload"),
            ("POST", "/api/auth/logout"),
            ("PUT", "/api/chat/x"),
        ] {
            let url = format!("{O}{path}");
            assert_ne!(route_request(&c, O, method, &url, false), Route::Passthrough, "{method} {path} from a page");
            assert_eq!(route_request(&c, O, method, &url, true), Route::Passthrough, "{method} {path} as a navigation");
        }
        assert_eq!(route_request(&c, O, "GET", &format!("{O}/"), true), Route::Shell(0), "GET navigations still are");
    }
}
