//! The simulated node: a kubeadm node's files, a kubelet, and an apiserver that behave like the
//! real ones in everything the tool relies on (DESIGN.md §4). Used by `rehearse` and the tests,
//! as the separate `kubeadm-recover-sim` binary: the product binary, which runs as root on real
//! control-plane nodes, contains none of this. The tool talks to the simulation only through
//! what a real node offers: files, /proc, and the apiserver's HTTPS API.
//!
//! [`rehearse`] is the rehearsal itself (sandbox, network namespace, kubelet, each step run
//! through the product binary): `kubeadm-recover rehearse` only finds this binary and hands
//! over to `kubeadm-recover-sim rehearse`.
pub mod apiserver;
pub mod certs;
pub mod config;
pub mod flags;
pub mod kubeadm;
pub mod kubelet;
pub mod netns;
pub mod node;
pub mod rehearse;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that hands the personas (`kubelet`, `kube-apiserver`) their sandbox.
pub const ROOT_ENV: &str = "KUBEADM_RECOVER_SIM_ROOT";

/// The simulation's wall clock. It never reads the tool's test clock: the tool and the node
/// must disagree about "now" only when a test says so (`SimConfig::clock_offset_seconds`).
pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn now_unix() -> i64 {
    now_unix_ms().div_euclid(1000)
}

/// A sandbox root the simulation may act in: an existing directory, never `/`. The simulated
/// apiserver reads the node's service-account signing key and mints tokens: pointed at a real
/// node's `/` it would be a token minter for that cluster, so it refuses.
pub fn sandbox_root(root: &Path) -> Result<PathBuf, String> {
    let canonical = root
        .canonicalize()
        .map_err(|e| format!("sandbox root {}: {e}", root.display()))?;
    if canonical == Path::new("/") {
        return Err(format!(
            "refusing to simulate a node at {}: the simulator runs only in a sandbox directory, never on a real root",
            root.display()
        ));
    }
    if !canonical.is_dir() {
        return Err(format!(
            "sandbox root {} is not a directory",
            root.display()
        ));
    }
    Ok(canonical)
}

/// The sandbox root handed to a persona through [`ROOT_ENV`]; it must exist and hold a node the
/// simulator built (its state directory).
pub fn persona_root(persona: &str) -> Result<PathBuf, String> {
    let Some(root) = std::env::var_os(ROOT_ENV).filter(|r| !r.is_empty()) else {
        return Err(format!(
            "{persona}: this is the kubeadm-recover simulator, not the real {persona}; it runs only in a sandbox \
             named by {ROOT_ENV} (use `kubeadm-recover rehearse`)"
        ));
    };
    let root = sandbox_root(Path::new(&root)).map_err(|e| format!("{persona}: {e}"))?;
    if !config::sim_dir(&root).is_dir() {
        return Err(format!(
            "{persona}: {} is not a simulated node (no {}); build one with `kubeadm-recover-sim node --root DIR`",
            root.display(),
            config::sim_dir(&root).display()
        ));
    }
    Ok(root)
}
