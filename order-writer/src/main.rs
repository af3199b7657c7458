//! `seckill-order-writer`: will consume `seckill_order` from RocketMQ and persist each order to
//! PostgreSQL with a transactional message (see DESIGN.md §4). Not built yet: the gateway keeps
//! every won order in the ledger's outbox (`sk:{A}:outbox`) until the writer exists, so nothing
//! is lost meanwhile.

fn main() -> std::process::ExitCode {
    eprintln!(
        "seckill-order-writer: not implemented yet; won orders stay in the ledger outbox \
         (see `seckillctl verify`)"
    );
    std::process::ExitCode::from(2)
}
