//! Which requests the worker takes, and in which role.

use super::config::Config;
use super::json;
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

/// The browser's static routes for this config (`InstallEvent.addRoutes`,
/// given by `shim/sw.js` at install where the browser has them): one rule
/// that sends every request outside what `route` can claim straight to
/// the network, so such a request never starts the worker nor waits for
/// its fetch event. Each claim is a URLPattern matching at least what its
/// pattern matches (a `*` segment becomes a wildcard, a write route any
/// method): what the router keeps from the worker is never a request
/// `route` would take; what it lets through, `route` still decides.
pub fn static_routes(config: &Config) -> String {
    const GET: Option<&str> = Some("GET");
    const POST: Option<&str> = Some("POST");
    let (auth, version) = (&config.auth, config.version_path());
    let mut claims = vec![
        (auth.me.as_str(), GET),
        (config.content_path.as_str(), GET),
        (version.as_str(), GET),
        (config.upload_path.as_str(), POST),
        (auth.login.as_str(), POST),
        (auth.logout.as_str(), POST),
    ];
    for list in [&config.reads, &config.shell] {
        for p in list {
            claims.push((p.as_str(), GET));
        }
    }
    for p in &config.writes {
        claims.push((p.as_str(), None)); // POST, PUT, PATCH or DELETE
    }
    // Written as text: this runs once per install, and a `json::Value`
    // built for it would cost the wasm more than the text does.
    let mut or: Vec<String> = Vec::new();
    for &(pattern, method) in &claims {
        let mut claim = String::from(r#"{"urlPattern":{"pathname":"#);
        json::write_str(&url_pattern(pattern), &mut claim);
        if let Some(m) = method {
            claim.push_str(r#"},"requestMethod":""#);
            claim.push_str(m);
            claim.push('"');
        } else {
            claim.push('}');
        }
        claim.push('}');
        if !or.contains(&claim) {
            or.push(claim);
        }
    }
    let mut rule = String::from(r#"[{"condition":{"not":{"or":["#);
    rule.push_str(&super::text::join(&or, ","));
    rule.push_str(r#"]}},"source":"network"}]"#);
    rule
}

/// The reads a cold start's bootstrap may answer from the network before
/// the wasm is ready (`shim/sw.js`, `coldRead`), as JSON text:
/// `{"prefix": …, "reads": […], "not": […], "shell": […]}`. A GET whose
/// path starts with `prefix`, matches a pattern of `reads` and none of
/// `not` is exactly a request `route` makes a `Route::Read` that is not
/// stale-while-revalidate; one whose path does not start with `prefix` and
/// matches a pattern of `shell` is exactly a `Route::Shell`. Both are
/// network-first reads, whose answer (below 500) the worker hands to the
/// page as it came anyway. `not` holds the routes `route` tries before the
/// reads (version, `me`, content) and the stale-while-revalidate patterns
/// (answered from the copy first).
pub fn cold_reads(config: &Config) -> String {
    let version = config.version_path();
    let mut not = vec![version.as_str(), config.auth.me.as_str(), config.content_path.as_str()];
    for p in &config.stale_while_revalidate {
        not.push(p.as_str());
    }
    let mut reads = Vec::new();
    for p in &config.reads {
        reads.push(p.as_str());
    }
    let mut shell = Vec::new();
    for p in &config.shell {
        shell.push(p.as_str());
    }
    let mut out = String::from(r#"{"prefix":"#);
    json::write_str(&config.api_prefix, &mut out);
    for (name, items) in [(r#","reads":["#, reads), (r#"],"not":["#, not), (r#"],"shell":["#, shell)] {
        out.push_str(name);
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::write_str(item, &mut out);
        }
    }
    out.push_str("]}");
    out
}

/// A route pattern (`core::pattern`) as a URLPattern pathname that matches
/// every path it matches: literal characters escaped, a `*` segment and
/// an open tail as URLPattern's `*` (any characters, `/` included).
fn url_pattern(pattern: &str) -> String {
    let open_tail = pattern.ends_with("*") && !pattern.ends_with("/*");
    let body = if open_tail { &pattern[..pattern.len() - 1] } else { pattern };
    let mut out = String::with_capacity(pattern.len() + 4);
    for (i, segment) in super::text::split(body, b'/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if segment == "*" {
            out.push('*');
            continue;
        }
        // By bytes: the characters escaped are ASCII, and the text between
        // them is copied whole (no char decoding and encoding).
        let mut from = 0;
        for (i, &b) in segment.as_bytes().iter().enumerate() {
            if matches!(b, b'\\' | b':' | b'(' | b')' | b'{' | b'}' | b'?' | b'+' | b'*') {
                out.push_str(&segment[from..i]);
                out.push('\\');
                from = i;
            }
        }
        out.push_str(&segment[from..]);
    }
    if open_tail {
        out.push('*');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::json::Value;

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

    /// URLPattern's pathname matching, for the patterns `url_pattern` makes:
    /// `\x` is `x`, `*` is any characters (none, and `/`, included).
    fn url_pattern_matches(pattern: &str, path: &str) -> bool {
        fn go(p: &[char], s: &[char]) -> bool {
            match p.first() {
                None => s.is_empty(),
                Some('*') => (0..=s.len()).any(|i| go(&p[1..], &s[i..])),
                Some('\\') => s.first() == p.get(1) && go(&p[2..], &s[1..]),
                Some(c) => s.first() == Some(c) && go(&p[1..], &s[1..]),
            }
        }
        go(&pattern.chars().collect::<Vec<_>>(), &path.chars().collect::<Vec<_>>())
    }

    /// Whether the router would leave `method path` to the worker.
    fn router_claims(rules: &str, method: &str, path: &str) -> bool {
        let rules = json::parse(rules.as_bytes()).unwrap();
        let Value::Array(rules) = &rules else { panic!("{rules:?}") };
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].get("source").and_then(Value::as_str), Some("network"));
        let Some(Value::Array(or)) = rules[0].get("condition").and_then(|c| c.get("not")).and_then(|n| n.get("or"))
        else {
            panic!("{rules:?}")
        };
        or.iter().any(|c| {
            let pathname = c.get("urlPattern").and_then(|u| u.get("pathname")).and_then(Value::as_str).unwrap();
            let method_ok = c.get("requestMethod").and_then(Value::as_str).is_none_or(|m| m == method);
            method_ok && url_pattern_matches(pathname, path)
        })
    }

    #[test]
    fn url_patterns_escape_literals_and_widen_wildcards() {
        assert_eq!(url_pattern("/api/assets/*/content"), "/api/assets/*/content");
        assert_eq!(url_pattern("/api/chat/sessions*"), "/api/chat/sessions*");
        assert_eq!(url_pattern("/static/*"), "/static/*");
        assert_eq!(url_pattern("/a:b/(c)+{d}?"), r"/a\:b/\(c\)\+\{d\}\?");
        assert!(url_pattern_matches(&url_pattern("/a:b/(c)"), "/a:b/(c)"));
        assert!(!url_pattern_matches(&url_pattern("/a:b"), "/a:bc"));
    }

    /// What the bootstrap answers from the network before the wasm is
    /// ready is exactly what `route` makes a network-first read: the table
    /// read the way `shim/sw.js` reads it, against `route`, over paths made
    /// from each config's own patterns.
    #[test]
    fn cold_reads_are_exactly_the_network_first_reads() {
        let configs = [
            Config::default(),
            Config::from_json(r#"{"staleWhileRevalidate": ["/api/projects*"], "shell": ["/", "/static/*", "/app*"]}"#)
                .unwrap(),
            Config::from_json(
                r#"{"apiPrefix": "/v1/", "reads": ["/v1/*", "/v1/notes*"], "writes": ["/v1/notes/*"],
                    "auth": {"login": "/v1/login", "logout": "/v1/logout", "me": "/v1/me"},
                    "uploadPath": "/v1/files", "contentPath": "/v1/files/*/bytes",
                    "staleWhileRevalidate": ["/v1/feed"]}"#,
            )
            .unwrap(),
        ];
        for config in &configs {
            let table = json::parse(cold_reads(config).as_bytes()).unwrap();
            let strings = |name: &str| -> Vec<super::super::pattern::Pattern> {
                let Value::Array(items) = table.get(name).unwrap() else { panic!("{name} is a list") };
                items.iter().map(|v| super::super::pattern::Pattern::parse(v.as_str().unwrap()).unwrap()).collect()
            };
            let prefix = table.get("prefix").unwrap().as_str().unwrap().to_string();
            let (reads, not, shell) = (strings("reads"), strings("not"), strings("shell"));
            let mut paths: Vec<String> =
                ["/", "/api/", "/api/health", "/v1/", "/v1/health", "/v1/me", "/v1/feed", "/index.html", "/appx/y"]
                    .map(String::from)
                    .into();
            paths.push(config.version_path());
            let all =
                config.reads.iter().chain(&config.writes).chain(&config.shell).chain(&config.stale_while_revalidate);
            for p in all.chain([&config.auth.me, &config.content_path, &config.upload_path]) {
                for fill in ["x", "", "a/b", "7"] {
                    paths.push(p.as_str().replace('*', fill));
                }
            }
            let mut fast = 0;
            for path in &paths {
                let swr = config.stale_while_revalidate.iter().any(|p| p.matches(path));
                let want = match route(config, O, "GET", &format!("{O}{path}?q=1")) {
                    Route::Read(_) => !swr,
                    Route::Shell(_) => true,
                    _ => false,
                };
                let bootstrap = if path.starts_with(prefix.as_str()) {
                    reads.iter().any(|p| p.matches(path)) && !not.iter().any(|p| p.matches(path))
                } else {
                    shell.iter().any(|p| p.matches(path))
                };
                assert_eq!(bootstrap, want, "GET {path}");
                fast += want as usize;
            }
            assert!(fast > 2, "the corpus has cold reads: {fast}");
        }
    }

    /// Every request `route` claims, the router leaves to the worker: paths
    /// made from each config's own patterns (each `*` as one segment, an
    /// empty one, several) and others, with every method.
    #[test]
    fn the_static_routes_never_keep_a_claimed_request_from_the_worker() {
        let configs = [
            Config::default(),
            Config::from_json(r#"{"shell": ["/", "/app.js", "/static/*", "/_next/static*"]}"#).unwrap(),
            Config::from_json(
                r#"{"apiPrefix": "/v1/", "reads": ["/v1/notes*", "/v1/(x)/*"], "writes": ["/v1/notes/*"],
                    "auth": {"login": "/v1/login", "logout": "/v1/logout", "me": "/v1/me"},
                    "uploadPath": "/v1/files", "contentPath": "/v1/files/*/bytes", "shell": ["/"]}"#,
            )
            .unwrap(),
        ];
        let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
        for config in &configs {
            let rules = static_routes(config);
            let mut paths: Vec<String> =
                ["/", "/app.js", "/index.html", "/api/health", "/api/", "/v1/", "/v1/health", "/static/a/b.css"]
                    .map(String::from)
                    .into();
            paths.push(config.version_path());
            let patterns = config.reads.iter().chain(&config.writes).chain(&config.shell).chain([
                &config.auth.login,
                &config.auth.logout,
                &config.auth.me,
                &config.upload_path,
                &config.content_path,
            ]);
            for p in patterns {
                for fill in ["x", "", "a/b", "7?q"] {
                    paths.push(p.as_str().replace('*', fill));
                }
            }
            let mut claimed = 0;
            for path in &paths {
                for method in methods {
                    let url = format!("{O}{path}");
                    if route(config, O, method, &url) != Route::Passthrough {
                        claimed += 1;
                        assert!(
                            router_claims(&rules, method, path),
                            "{method} {path}: claimed, but the router skips the worker"
                        );
                    }
                }
            }
            assert!(claimed > 10, "the corpus claims something: {claimed}");
            // And it does keep the worker out of what it does not take.
            assert!(!router_claims(&rules, "GET", "/index.html"));
        }
        let default = static_routes(&Config::default());
        assert!(!router_claims(&default, "GET", "/api/health"), "an API route the config does not name");
        assert!(!router_claims(&default, "GET", "/app.js"), "no shell by default");
        assert!(router_claims(&default, "GET", "/api/__outpost/version"));
    }
}
