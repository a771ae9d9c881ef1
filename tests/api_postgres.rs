//! The same API suite on a real PostgreSQL server, started by the test
//! (Debian's postgresql, installed by ./scripts/setup.sh). Never skipped.

mod api_suite;
mod harness;

async fn postgres(case: &str) -> (outpost::AppState, tempfile::TempDir) {
    let (state, data) = harness::postgres_state(case).await;
    assert_eq!(state.api.db.backend, outpost::db::Backend::Postgres);
    (state, data)
}

api_suite::api_cases!(postgres);
