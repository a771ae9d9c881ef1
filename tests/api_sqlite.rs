//! The API suite on the default backend: SQLite under a temp `--data`.

mod api_suite;
mod harness;

async fn sqlite(_case: &str) -> (outpost::AppState, tempfile::TempDir) {
    harness::sqlite_state().await
}

api_suite::api_cases!(sqlite);
