//! The same API suite on a real PostgreSQL server, started by the test
//! (Debian's postgresql, installed by ./scripts/setup.sh). Never skipped.

mod api_suite;
mod harness;

macro_rules! on_postgres {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let (state, _data) = harness::postgres_state(stringify!($case)).await;
            assert_eq!(state.api.db.backend, outpost::db::Backend::Postgres);
            api_suite::$case(state).await;
        }
    )*};
}

on_postgres!(
    auth_round_trip,
    every_route_needs_a_valid_cookie,
    sessions_and_messages,
    batch_is_all_or_nothing,
    users_see_only_their_own_data,
    sync_init_is_metadata_first,
    bad_input_is_a_clear_4xx,
    idempotency_key_replays_and_refuses_misuse,
    idempotency_under_concurrency,
    idempotency_leases_and_expiry,
);
