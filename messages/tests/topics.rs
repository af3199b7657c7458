//! `spread_topics` against brokers of the test's own that have never seen a message: every topic
//! of the project is created on every broker before anything is sent, so a consumer started
//! next finds its queues at once instead of at its next rebalance (20 s later).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use rocketmq_client_rust::DefaultMQProducer;
use seckill_messages::client::TOPIC_QUEUES;
use seckill_messages::{spread_topics, MqRuntime, ALL_TOPICS};
use seckill_testkit::PrivateRocketMq;

/// Queues per broker name of `topic`'s route, or `None` while the name server knows no route.
async fn route(admin: &mut DefaultMQProducer, topic: &str) -> Option<BTreeMap<String, i32>> {
    let queues = admin.fetch_publish_message_queues(topic).await.ok()?;
    let mut brokers = BTreeMap::new();
    for queue in &queues {
        *brokers.entry(queue.broker_name().to_string()).or_default() += 1;
    }
    Some(brokers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_topic_gets_queues_on_every_fresh_broker() {
    let mq = PrivateRocketMq::with_brokers(2).await;
    let runtime = MqRuntime::start("topics-test").unwrap();
    let mut admin = DefaultMQProducer::builder(runtime.client_runtime())
        .producer_group("topics_test_admin".to_owned())
        .name_server_addr(mq.namesrv.clone())
        .build();
    admin.start().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Both brokers registered with the name server (their template topic's route lists both).
    while route(&mut admin, "TBW102").await.map_or(0, |r| r.len()) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the brokers never registered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for topic in ALL_TOPICS {
        assert_eq!(
            route(&mut admin, topic).await,
            None,
            "{topic} exists already"
        );
    }

    let spread = spread_topics(&runtime, &mq.namesrv).await.unwrap();
    let all: Vec<String> = ALL_TOPICS.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(spread, all);
    for topic in ALL_TOPICS {
        // The brokers report a new topic to the name server by themselves.
        let brokers = loop {
            match route(&mut admin, topic).await {
                Some(brokers) if brokers.len() == 2 => break brokers,
                other => assert!(
                    tokio::time::Instant::now() < deadline,
                    "{topic} never reached both brokers: {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(
            brokers.values().all(|q| *q == TOPIC_QUEUES),
            "{topic}: {brokers:?}"
        );
    }
    // Nothing left to do the second time.
    assert!(spread_topics(&runtime, &mq.namesrv)
        .await
        .unwrap()
        .is_empty());
    admin.shutdown().await;
    runtime.shutdown().await;
}
