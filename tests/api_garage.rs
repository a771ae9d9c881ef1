//! The presigned-upload flow against Garage, a production S3
//! implementation: the origin's SigV4 URLs must work there too, not only
//! with the embedded store.

mod api_suite;
mod harness;

#[path = "harness/garage.rs"]
mod garage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_upload_round_trip_on_garage() {
    let garage = tokio::task::spawn_blocking(garage::Garage::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = outpost::Options { s3: Some(garage.config.clone()), ..outpost::Options::embedded(dir.path()) };
    let state = outpost::AppState::open(options).await.expect("origin on Garage");
    assert!(state.api.store.embedded.is_none());
    api_suite::presigned_upload_round_trip(state).await;
    drop(garage);
}
