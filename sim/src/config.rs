//! Knobs of the simulation, in a file under the sandbox so that tests can turn them while the
//! simulated kubelet and apiserver run. The tool under test never reads this file.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct SimConfig {
    pub node_name: String,
    /// How long a new apiserver takes before it serves (ms).
    pub startup_delay_ms: u64,
    /// Arguments the simulated apiserver refuses at start-up, as if they were invalid.
    pub reject_args: Vec<String>,
    /// The kubelet's full relist period (ms); the real kubelet's is 20 s.
    pub relist_ms: u64,
    /// Whether the kubelet watches the directory with inotify (the real one does).
    pub inotify: bool,
    /// A kubelet that never restarts anything: for the nudge-and-rollback path.
    pub frozen: bool,
    /// Added to the simulated apiserver's clock when it checks tokens: makes tokens stale
    /// without waiting an hour.
    pub clock_offset_seconds: i64,
    /// Real upstream binaries (`etcd`, `kube-apiserver`) the kubelet runs instead of the
    /// simulated apiserver: a node laid out by the real kubeadm (`node --kube-bin DIR`).
    pub kube_bin: Option<PathBuf>,
    /// A hostile apiserver, for the deadline tests: every connection accepted while this is set
    /// is answered the same way whatever it asks (see `Stall`).
    pub stall: Option<Stall>,
    /// How long the simulated apiserver lives on after SIGTERM, no longer listening (ms). The
    /// real one waits for its open watches until the kubelet kills it at the pod's grace period
    /// (30 s in kubeadm's manifest); the kubelet here honours that grace period as the real one.
    pub shutdown_linger_ms: u64,
    /// The crash-loop back-off's unit (ms): restarts after the first wait 1, 2, 4, 8 … units,
    /// at most 30. The real kubelet's unit is 10 s (10 s, 20 s, 40 s … 5 min).
    pub backoff_unit_ms: u64,
    /// From the old pod's end to the new container's start on an edit (ms): the kubelet tears
    /// down the old pod's sandbox and makes the new one. About 6 s on the real kubelet.
    pub pod_replace_ms: u64,
    /// From the container's creation (its attempt log appears) to its process (ms): runc
    /// creates the container, then starts it. Measured on the real node: about 130 ms — a
    /// window in which an attempt exists and no apiserver process does.
    pub container_start_ms: u64,
    /// Whether the apiserver re-reads its serving certificate when the file changes (the real
    /// one does); off: it keeps the one it started with.
    pub serving_cert_reload: bool,
}

/// How a stalled apiserver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stall {
    /// `200 OK` headers, then one byte of the body a second, for ever: no read ever times out.
    Trickle,
    /// `200 OK` and an endless chunked body, 64 KiB every 10 ms.
    Flood,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            node_name: "sim-cp-1".into(),
            startup_delay_ms: 300,
            reject_args: Vec::new(),
            relist_ms: 20_000,
            inotify: true,
            frozen: false,
            clock_offset_seconds: 0,
            kube_bin: None,
            stall: None,
            shutdown_linger_ms: 300,
            backoff_unit_ms: 1000,
            pod_replace_ms: 300,
            container_start_ms: 130,
            serving_cert_reload: true,
        }
    }
}

pub fn sim_dir(root: &Path) -> PathBuf {
    root.join("var/lib/kubeadm-recover-sim")
}

pub fn path(root: &Path) -> PathBuf {
    sim_dir(root).join("config.json")
}

impl SimConfig {
    pub fn load(root: &Path) -> SimConfig {
        std::fs::read(path(root))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, root: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(sim_dir(root))?;
        let tmp = sim_dir(root).join(".config.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, path(root))
    }
}
