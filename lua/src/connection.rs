//! How the ledger reaches Redis: one node, or a Redis Cluster.
//!
//! `SECKILL_REDIS_URL` holds one URL (a single node) or several comma-separated node URLs (a
//! cluster: any of its nodes, the client discovers the rest and follows MOVED and ASK). Either
//! way a [`Connection`] is a multiplexed, reconnecting handle that routes each command by its
//! first key; every ledger script touches one slot (`sk:{<activity>}:…`), so the scripts run
//! unchanged on both.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// Where the ledger lives, parsed from `SECKILL_REDIS_URL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topology {
    Node(String),
    /// Seed nodes of a Redis Cluster (at least two).
    Cluster(Vec<String>),
}

impl Topology {
    /// One URL: a node; several, comma-separated: a cluster. Empty entries are refused, so a
    /// stray comma is a clear error rather than a silently different topology.
    pub fn parse(text: &str) -> Result<Self, String> {
        let urls: Vec<&str> = text.split(',').map(str::trim).collect();
        if urls.iter().any(|u| u.is_empty()) {
            return Err(format!(
                "{text:?}: expected one Redis URL, or several separated by commas (no empty entry)"
            ));
        }
        for url in &urls {
            redis::Client::open(*url).map_err(|e| format!("{url:?}: {e}"))?;
        }
        Ok(match urls.as_slice() {
            [one] => Topology::Node((*one).to_owned()),
            many => Topology::Cluster(many.iter().map(|u| (*u).to_owned()).collect()),
        })
    }

    /// Every URL given (one for a node).
    pub fn urls(&self) -> Vec<&str> {
        match self {
            Topology::Node(url) => vec![url],
            Topology::Cluster(urls) => urls.iter().map(String::as_str).collect(),
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Topology::Cluster(_))
    }
}

/// A connection to the ledger's Redis, single node or cluster. Cheap to clone (clones share the
/// socket or sockets).
#[derive(Clone)]
pub enum Connection {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Node(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    /// On a cluster, a pipeline must stay within one slot (the client refuses others with a
    /// CROSSSLOT error): the ledger's pipelines do.
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Node(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Node(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_a_node_several_are_a_cluster() {
        assert_eq!(
            Topology::parse("redis://127.0.0.1:6379").unwrap(),
            Topology::Node("redis://127.0.0.1:6379".into())
        );
        let cluster = Topology::parse("redis://127.0.0.1:7001, redis://127.0.0.1:7002").unwrap();
        assert!(cluster.is_cluster());
        assert_eq!(
            cluster.urls(),
            ["redis://127.0.0.1:7001", "redis://127.0.0.1:7002"]
        );
    }

    #[test]
    fn stray_commas_and_bad_urls_are_refused() {
        for bad in [
            "",
            "redis://127.0.0.1:7001,",
            ",redis://a:1",
            "redis://a:1,,redis://b:2",
            "http://x",
        ] {
            assert!(Topology::parse(bad).is_err(), "{bad:?}");
        }
    }
}
