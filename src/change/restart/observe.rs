//! What the node shows during a wait, behind a trait: the real node (/proc, the attempt logs,
//! the apiserver's health over verified TLS) or a fake in tests.
use std::time::Instant;

use crate::apiserver::client::{ApiClient, ClientError, Endpoint, ProbeError};
use crate::apiserver::logs;
use crate::apiserver::process::{self, ApiserverProcess};
use crate::node::NodeLayout;
use crate::ui::Ui;

pub trait Observer {
    /// The `kube-apiserver` process serving `port`, if any.
    fn serving(&mut self, port: u16) -> Option<ApiserverProcess>;
    /// `/livez` then `/readyz`.
    fn health(&mut self) -> Result<(), ProbeError>;
    /// The container attempts the kubelet started since the wait began, and the newest's log.
    fn attempts(&mut self) -> logs::Since;
    /// Whether anything listens on `port` (an apiserver shutting down does not).
    fn listening(&mut self, port: u16) -> bool;
    /// The last lines of the log that says why `attempt` failed, for the operator.
    fn log_tail(&mut self, attempt: &logs::Attempt) -> String;
    /// Gets a kubelet that has not reacted to restart the apiserver (only while changing).
    fn nudge(&mut self, port: u16, deadline: Instant);
    /// Stops the container of the old apiserver `pid`, which has stopped listening, at once;
    /// whether it did.
    fn end_shutdown(&mut self, pid: i32) -> bool;
    /// The config hash of the pod process `pid` runs in.
    fn config_hash(&mut self, pid: i32) -> Option<String>;
    /// The CRI container id of process `pid`.
    fn container_id(&mut self, pid: i32) -> Option<String>;
}

/// The real node under `--root`.
pub struct NodeObserver<'a> {
    layout: &'a NodeLayout,
    ui: &'a Ui,
    runtime: tokio::runtime::Runtime,
    client: ApiClient,
    advertise_endpoint: Option<String>,
    attempts: logs::AttemptCounter,
}

impl<'a> NodeObserver<'a> {
    pub fn new(
        layout: &'a NodeLayout,
        ui: &'a Ui,
        endpoint: &Endpoint,
        advertise_endpoint: Option<String>,
        changing: bool,
    ) -> Result<Self, ClientError> {
        let runtime = crate::apiserver::runtime();
        let client = runtime.block_on(async { ApiClient::new(layout, endpoint) })?;
        // A change's proof gives up at a signal (and rolls back); a rollback's proof does not.
        let client = if changing { client } else { client.finishing() };
        Ok(NodeObserver {
            layout,
            ui,
            runtime,
            client,
            advertise_endpoint,
            attempts: logs::AttemptCounter::new(logs::attempts(layout)),
        })
    }
}

impl Observer for NodeObserver<'_> {
    fn log_tail(&mut self, attempt: &logs::Attempt) -> String {
        logs::tail(self.layout, &logs::telling(self.layout, attempt), 5)
    }

    fn serving(&mut self, port: u16) -> Option<ApiserverProcess> {
        process::find_apiserver(port)
    }

    fn health(&mut self) -> Result<(), ProbeError> {
        self.runtime.block_on(self.client.healthy())
    }

    fn attempts(&mut self) -> logs::Since {
        self.attempts.observe(&logs::attempts(self.layout))
    }

    fn listening(&mut self, port: u16) -> bool {
        process::listening_on(port)
    }

    fn nudge(&mut self, port: u16, deadline: Instant) {
        super::nudge::nudge(self.layout, self.ui, port, deadline);
    }

    fn end_shutdown(&mut self, pid: i32) -> bool {
        super::nudge::end_shutdown(self.layout, self.ui, pid)
    }

    /// The process's cgroup first (the runtime's truth), crictl where that says nothing.
    fn container_id(&mut self, pid: i32) -> Option<String> {
        process::pod_of(pid)
            .map(|pod| pod.container_id)
            .or_else(|| process::crictl_container_id(self.layout))
    }

    /// The process's cgroup first: right after an outage the mirror pod can show the OLD hash
    /// for a minute. The mirror pod where there is no pod cgroup (a simulated node).
    fn config_hash(&mut self, pid: i32) -> Option<String> {
        process::pod_of(pid).map(|pod| pod.uid).or_else(|| {
            self.runtime.block_on(
                self.client
                    .mirror_config_hash(self.advertise_endpoint.as_deref()),
            )
        })
    }
}
