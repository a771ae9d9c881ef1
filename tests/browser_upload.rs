//! A page in Chromium uploads straight to the object store through a
//! presigned URL: the store's CORS answers the page's origin (another
//! port), and the origin then confirms the object.

mod harness;

use harness::{Chromium, Origin};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_uploads_to_the_store_with_a_presigned_url() {
    let (state, _data) = harness::sqlite_state().await;
    let store_origin = state.api.store.config.endpoint.clone();
    let origin = Origin::start(state);
    assert_ne!(origin.origin(), store_origin, "the store is another origin");
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url("/")).await;

    let result = tab
        .eval(
            r#"(async () => {
            const json = (r) => r.json().then((body) => ({ status: r.status, body }));
            const post = (path, body) => fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) }).then(json);
            await post('/api/auth/login', { user: 'painter' });
            const bytes = new Uint8Array(100000).map((_, i) => i % 251);
            const presign = await post('/api/assets/presign', { op: 'put', filename: 'pic.bin', contentType: 'application/octet-stream', size: bytes.length });
            const put = await fetch(presign.body.url, { method: 'PUT', headers: presign.body.headers, body: new Blob([bytes]) });
            const complete = await post(`/api/assets/${presign.body.assetId}/complete`, {});
            const get = await post('/api/assets/presign', { op: 'get', assetId: presign.body.assetId });
            const back = new Uint8Array(await (await fetch(get.body.url)).arrayBuffer());
            return { put: put.status, etag: put.headers.get('ETag'), complete, same: back.length === bytes.length && back.every((b, i) => b === bytes[i]) };
        })()"#,
        )
        .await;
    assert_eq!(result["put"], 200, "{result}");
    assert!(result["etag"].as_str().is_some_and(|e| !e.is_empty()), "ETag readable across origins: {result}");
    assert_eq!(result["complete"]["status"], 200, "{result}");
    assert_eq!(result["complete"]["body"]["status"], "uploaded");
    assert_eq!(result["complete"]["body"]["size"], 100000);
    assert_eq!(result["same"], Value::Bool(true));
    chromium.close().await;
}
