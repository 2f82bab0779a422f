//! The tool's own records on the node — backups (with checksums), the lock, the audit log — and
//! the strays found in the manifest directory. Every byte goes through `node::fs`.
pub mod audit;
pub mod backup;
pub mod lock;
pub mod strays;

use sha2::{Digest, Sha256};

use crate::node::NodeLayout;

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes temp files a killed run left (one may hold a whole kubeconfig with its private key).
/// Called under the node lock, so no other run's temp file is in flight. Returns their paths.
pub fn remove_stale_temps(
    layout: &NodeLayout,
    dirs: &[std::path::PathBuf],
) -> Vec<std::path::PathBuf> {
    let mut removed = Vec::new();
    for dir in dirs {
        let Ok(entries) = layout.fs().read_dir(dir) else {
            continue;
        };
        for entry in entries {
            let stale = entry
                .name
                .to_string_lossy()
                .starts_with(crate::node::fs::TEMP_PREFIX)
                && entry.kind == crate::node::fs::Kind::File;
            if stale && layout.fs().remove_file(&entry.path).is_ok() {
                removed.push(entry.path);
            }
        }
    }
    removed
}
