//! `sslmode` is honoured: TLS is compiled in, so `sslmode=require` against
//! a PostgreSQL that offers no TLS is refused with a clear error instead
//! of falling back to plaintext, while `disable` and `prefer` connect.

mod harness;

#[tokio::test]
async fn sslmode_require_refuses_a_server_without_tls() {
    let url = tokio::task::spawn_blocking(|| harness::pg::TestPostgres::shared().create_database("tls")).await.unwrap();
    let err = outpost::db::Db::open(&format!("{url}?sslmode=require")).await.expect_err("no plaintext fallback");
    let text = format!("{err:#}");
    assert!(text.to_lowercase().contains("tls") || text.to_lowercase().contains("ssl"), "{text}");
    for mode in ["disable", "prefer"] {
        outpost::db::Db::open(&format!("{url}?sslmode={mode}")).await.unwrap_or_else(|e| panic!("{mode}: {e:#}"));
    }
}
