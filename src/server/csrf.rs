//! Cross-site requests are refused on every state-changing API route. A page
//! of another site can still make the browser send a form post to the API;
//! the browser marks it (`Sec-Fetch-Site: cross-site`, or an `Origin` of
//! the other site), and that mark is something the page cannot forge. The
//! worker never takes such a request over (it goes to the network as it
//! is), so this check sees it as sent. Requests with neither header (curl,
//! server-to-server) are not a browser's and pass.

use axum::extract::Request;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppError;

/// Whether a state-changing request says it comes from another origin.
fn from_elsewhere(req: &Request) -> bool {
    let h = req.headers();
    let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(site, Some("cross-site") | Some("same-site")) {
        return true;
    }
    // Browsers without Fetch Metadata still send Origin on a POST.
    let (Some(origin), Some(host)) = (h.get(header::ORIGIN), h.get(header::HOST)) else { return false };
    let origin = origin.to_str().unwrap_or("");
    let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
    origin == "null" || authority != host.to_str().unwrap_or("")
}

pub async fn guard(req: Request, next: Next) -> Response {
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if writes && req.uri().path().starts_with("/api/") && from_elsewhere(&req) {
        return AppError::Forbidden {
            code: "cross_site",
            message: "Requests that change data must come from this site's own pages; the browser marked this \
                      one as sent by another site."
                .into(),
        }
        .into_response();
    }
    next.run(req).await
}
