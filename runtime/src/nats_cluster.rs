//! A three-node (or n-node) JetStream cluster of `nats-server` children on
//! loopback, for the tests and `chorus chaos`: replication, leader
//! elections and node failures are only real on a real cluster.

use std::path::Path;

use crate::nats_server::{NatsServer, NatsServerError, free_port};

/// The cluster's name in every node's `--cluster_name`.
const CLUSTER_NAME: &str = "chorus";

/// Running nodes `node-0` … `node-<n-1>`, each with its own client port,
/// route port and store; stopped on drop.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `n` nodes routed to each other (one: a standalone server), with JetStream, stores under
    /// `dir/node-<i>`. A node is ready when it logs so; the cluster has a
    /// JetStream leader a few seconds later (callers provisioning streams
    /// wait for it: see `nats::until_provisioned`).
    pub fn start(bin: &str, dir: &Path, n: usize) -> Result<Self, NatsServerError> {
        let ports: Vec<(u16, u16)> =
            (0..n).map(|_| Ok((free_port()?, free_port()?))).collect::<std::io::Result<_>>().map_err(NatsServerError::Port)?;
        let routes = ports.iter().map(|(_, route)| format!("nats://127.0.0.1:{route}")).collect::<Vec<_>>().join(",");
        let mut nodes = Vec::with_capacity(n);
        if n == 1 {
            // One node is a plain server: a cluster of one has no one to route to.
            let (client, _) = ports[0];
            return Ok(NatsCluster { nodes: vec![NatsServer::start_with(bin, &dir.join(node_name(0)), client, Vec::new())?] });
        }
        for (i, &(client, route)) in ports.iter().enumerate() {
            let extra = vec![
                "--server_name".into(),
                node_name(i),
                "--cluster_name".into(),
                CLUSTER_NAME.into(),
                "--cluster".into(),
                format!("nats://127.0.0.1:{route}"),
                "--routes".into(),
                routes.clone(),
            ];
            nodes.push(NatsServer::start_with(bin, &dir.join(node_name(i)), client, extra)?);
        }
        Ok(NatsCluster { nodes })
    }

    /// Every node's client URL, comma-separated (a `NATS_URL`).
    pub fn urls(&self) -> String {
        self.nodes.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The process id of node `i`, while it runs.
    pub fn pid_of(&self, i: usize) -> Option<u32> {
        self.nodes.get(i).and_then(NatsServer::pid)
    }

    pub fn node(&mut self, i: usize) -> &mut NatsServer {
        &mut self.nodes[i]
    }

    /// The index of the node called `name` (a stream's leader, as its info names it).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| node_name(i) == name)
    }
}

/// The server name of node `i`.
pub fn node_name(i: usize) -> String {
    format!("node-{i}")
}
