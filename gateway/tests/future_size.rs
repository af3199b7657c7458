//! The size of the future hyper boxes for every request. Every byte of it is moved into a box
//! per request: at 36 KB (a RocketMQ send future held inline by a branch only payments take) that
//! move was 7-10 % of the gateway's CPU under `bench/run.sh --scenario hot`.

/// Size of the future an async fn of three arguments returns.
fn future_size<A, B, C, F: std::future::Future>(_: impl Fn(A, B, C) -> F) -> usize {
    std::mem::size_of::<F>()
}

#[test]
fn every_request_s_future_stays_small() {
    let size = future_size(seckill_gateway::http::handle);
    // 2.3 KB when this test was written; a big future awaited inline on any path shows here.
    assert!(
        size <= 8 * 1024,
        "http::handle's future is {size} bytes: box the large future some branch awaits"
    );
}
