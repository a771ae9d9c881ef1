//! The same API suite on PostgreSQL through PgBouncer in transaction
//! pooling mode (Debian's pgbouncer, installed by ./scripts/setup.sh), with
//! 3 server connections shared by every client: named prepared statements,
//! or an unnamed one parsed in one round trip and run in the next, would
//! break here. Never skipped.

mod api_suite;
mod harness;

async fn pgbouncer(case: &str) -> (outpost::AppState, tempfile::TempDir) {
    let (state, data) = harness::pgbouncer_state(case).await;
    assert_eq!(state.api.db.backend, outpost::db::Backend::Postgres);
    (state, data)
}

api_suite::api_cases!(pgbouncer);
