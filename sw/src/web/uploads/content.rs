//! `GET {contentPath}`: an asset's bytes from the device, else from the
//! store through a presigned GET (kept if it fits), always served inertly.

use crate::web::global::Whole;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use web_sys::{Blob, Request, Response};

use super::{api_error, await_js, Uploads};
use crate::core::content::{self, Ranged};
use crate::core::reads;
use crate::core::text::{cat, num};
use crate::core::upload::{self, api, BlobMeta};
use crate::web::db;
use crate::web::error::Result;
use crate::web::{global, response};

impl Uploads {
    /// `GET {contentPath}`: the local blob when there (a use, for the LRU),
    /// else the store's copy through a presigned GET, kept if it fits.
    pub async fn content(self: &Rc<Self>, request: Request) -> Result<Response> {
        let url = request.url();
        // A `<video>` asks for ranges to seek; served by slicing the Blob.
        let range = global::header(&request.headers(), "range");
        let path = crate::core::url::split(&url).map(|p| p.path.to_string()).unwrap_or_default();
        let named = path.strip_suffix("/content").unwrap_or(&path);
        let id = named[crate::core::text::rfind_byte(named, b'/').map_or(0, |i| i + 1)..].to_string();
        let user = self.identity.current();
        let metas = self.blob_metas().whole().await?;
        let local =
            metas.iter().find(|(k, m)| m.user == user && (*k == id || m.asset_id.as_deref() == Some(id.as_str())));
        if let Some((key, meta)) = local {
            if let Some(blob) = self.blob(key).whole().await? {
                let touched = BlobMeta { last_used: global::now_ms(), ..meta.clone() };
                db::put_if_present(&self.db, db::BLOBS, db::BLOB_META, key, &reads::encode(&touched)).whole().await?;
                return blob_response(&blob, &meta.content_type, "local", range.as_deref());
            }
        }
        // Not on the device: a temp id may have its server id by now.
        let server_id = if id.starts_with(upload::TEMP_PREFIX) {
            let user = self.identity.current();
            db::id_map(&self.db, user.as_deref()).whole().await?.get(&id).map(str::to_string)
        } else {
            Some(id.clone())
        };
        let Some(server_id) = server_id else {
            return api_error(
                404,
                "not_found",
                &cat!("No asset ", id, " is on this device or known to the origin yet."),
            );
        };
        let (heard, answer) = self.api(&api::download(&self.config, &server_id), None).whole().await;
        let url = match heard.status() {
            Some(200..=299) => match api::download_url(&answer) {
                Some(url) => url,
                None => {
                    let message = cat!("The origin's answer for asset ", server_id, " holds no download URL.");
                    return api_error(502, "origin_error", &message);
                }
            },
            // The origin's refusal (404, 403…) goes to the page as it is.
            Some(s) if crate::core::json::parse(&answer).is_ok() && std::str::from_utf8(&answer).is_ok() => {
                return response::json(s, std::str::from_utf8(&answer).unwrap_or_default());
            }
            Some(s) => {
                let message = cat!("The origin answered HTTP ", num(s.into()), " for asset ", server_id, ".");
                return api_error(s, "origin_error", &message);
            }
            None => {
                let message = cat!(
                    "Asset ",
                    server_id,
                    " is not on this device and the origin could not be reached; try again online."
                );
                return api_error(504, "offline", &message);
            }
        };
        let fetched = global::fetch(&global::get(&url, None)?).whole().await;
        let Ok(r) = fetched else {
            return api_error(504, "offline", "The object store could not be reached; try again online.");
        };
        if !r.ok() {
            let message = cat!("The object store answered HTTP ", num(r.status().into()), ".");
            return api_error(502, "store_error", &message);
        }
        let content_type =
            global::header(&r.headers(), "content-type").unwrap_or_else(|| "application/octet-stream".into());
        let blob: Blob = await_js(global::blob(&r)?).whole().await?.dyn_into()?;
        let meta = BlobMeta {
            size: blob.size() as u64,
            last_used: global::now_ms(),
            pinned: false,
            asset_id: Some(server_id.clone()),
            user,
            content_type: content_type.clone(),
        };
        // A copy that does not fit is simply not kept.
        let _ = self.keep(&server_id, &blob, &meta, None).whole().await;
        blob_response(&blob, &content_type, "network", range.as_deref())
    }
}

/// A kept file as an answer: whole, or the part `range` asks for (a slice of
/// the Blob, a view that copies nothing into wasm or JS memory).
fn blob_response(blob: &Blob, content_type: &str, source: &str, range: Option<&str>) -> Result<Response> {
    let size = blob.size() as u64;
    let ranged = content::range(range, size);
    let headers = js_sys::Array::new();
    global::pair(&headers, "Content-Type", content_type);
    global::pair(&headers, "Accept-Ranges", "bytes");
    if let Some(value) = content::content_range(ranged, size) {
        global::pair(&headers, "Content-Range", &value);
    }
    // A kept file is data, never a page of the app (see `core::content`).
    for (name, value) in content::headers(content_type) {
        global::pair(&headers, name, value);
    }
    global::pair(&headers, "Outpost-Source", if source == "local" { "worker" } else { "store" });
    if source == "local" {
        global::pair(&headers, "Outpost-Cache", "local");
    }
    match ranged {
        Ranged::Whole => global::new_response(200, &headers, blob),
        Ranged::Part { start, end } => {
            global::pair(&headers, "Content-Length", &num(end - start));
            global::new_response(206, &headers, &global::slice(blob, start, end))
        }
        Ranged::Unsatisfiable => global::new_response(416, &headers, &wasm_bindgen::JsValue::NULL),
    }
}
