//! What the node shows during a wait, behind a trait: the real node (/proc, the attempt logs,
//! the apiserver's health over verified TLS) or a fake in tests.
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use crate::apiserver::client::{ApiClient, Endpoint};
use crate::apiserver::logs;
use crate::apiserver::process::{self, ApiserverProcess};
use crate::node::NodeLayout;
use crate::ui::Ui;

pub trait Observer {
    /// The `kube-apiserver` process serving `port`, if any.
    fn serving(&mut self, port: u16) -> Option<ApiserverProcess>;
    /// `/livez` then `/readyz`.
    fn health(&mut self) -> Result<(), String>;
    /// Container attempt logs the kubelet wrote since the wait began, oldest first.
    fn new_attempts(&mut self) -> Vec<PathBuf>;
    /// The last lines of an attempt's log, for the operator.
    fn log_tail(&mut self, log: &std::path::Path) -> String;
    /// Gets a kubelet that has not reacted to restart the apiserver (only while changing).
    fn nudge(&mut self, port: u16, deadline: Instant);
    /// The mirror pod's config hash, where the API answers.
    fn config_hash(&mut self) -> Option<String>;
    /// The CRI container id, where the host's runtime may be asked.
    fn container_id(&mut self) -> Option<String>;
}

/// The real node under `--root`.
pub struct NodeObserver<'a> {
    layout: &'a NodeLayout,
    ui: &'a Ui,
    runtime: tokio::runtime::Runtime,
    client: ApiClient,
    advertise_endpoint: Option<String>,
    logs_before: BTreeSet<PathBuf>,
}

impl<'a> NodeObserver<'a> {
    pub fn new(
        layout: &'a NodeLayout,
        ui: &'a Ui,
        endpoint: &Endpoint,
        advertise_endpoint: Option<String>,
        changing: bool,
    ) -> Result<Self, String> {
        let runtime = crate::apiserver::runtime();
        let client = runtime
            .block_on(async { ApiClient::new(layout, endpoint) })
            .map_err(|e| format!("cannot build a client: {e}"))?;
        // A change's proof gives up at a signal (and rolls back); a rollback's proof does not.
        let client = if changing { client } else { client.finishing() };
        Ok(NodeObserver {
            layout,
            ui,
            runtime,
            client,
            advertise_endpoint,
            logs_before: logs::attempt_files(layout),
        })
    }
}

impl Observer for NodeObserver<'_> {
    fn log_tail(&mut self, log: &std::path::Path) -> String {
        logs::tail(self.layout, log, 5)
    }

    fn serving(&mut self, port: u16) -> Option<ApiserverProcess> {
        process::find_apiserver(port)
    }

    fn health(&mut self) -> Result<(), String> {
        self.runtime
            .block_on(self.client.healthy())
            .map_err(|e| e.to_string())
    }

    fn new_attempts(&mut self) -> Vec<PathBuf> {
        logs::new_attempts(self.layout, &self.logs_before)
    }

    fn nudge(&mut self, port: u16, deadline: Instant) {
        super::nudge::nudge(self.layout, self.ui, port, deadline);
    }

    fn container_id(&mut self) -> Option<String> {
        process::crictl_container_id(self.layout)
    }

    fn config_hash(&mut self) -> Option<String> {
        self.runtime.block_on(
            self.client
                .mirror_config_hash(self.advertise_endpoint.as_deref()),
        )
    }
}
