//! The seckill benchmark harness: one command runs a whole flash sale on this machine — the
//! gateway and the order writer against real Redis, RocketMQ and PostgreSQL — drives it with wrk
//! and oha, measures the machine's ceilings beside it, then proves every invariant from the
//! outside (see [`checks`]). `bench/run.sh` builds and starts what it needs and calls the
//! `seckill-bench` binary.

pub mod ceiling;
pub mod checks;
pub mod cpu;
pub mod crowd;
pub mod machine;
pub mod plot;
pub mod report;
pub mod run;
pub mod scrape;
pub mod tools;
