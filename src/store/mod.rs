//! Everything that writes on the node: atomic replace, backups, the lock, the audit log.
pub mod atomic;
pub mod audit;
pub mod backup;
pub mod lock;
pub mod strays;

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(sha256_hex(&bytes))
}

/// Creates a directory (and parents) that only root may enter. Errors name the path: "File
/// exists" alone does not tell an operator that `/etc/kubernetes/tmp` is a file.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let made = (|| {
        if !path.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
    })();
    made.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "{} must be a directory only root can enter: {e}",
                path.display()
            ),
        )
    })
}

/// The prefix of every temp file the tool makes; what a killed run leaves behind has it.
pub const TEMP_PREFIX: &str = ".kubeadm-recover-";

/// Removes temp files a killed run left (one may hold a whole kubeconfig with its private key).
/// Called under the node lock, so no other run's temp file is in flight. Returns their paths.
pub fn remove_stale_temps(dirs: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    let mut removed = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let stale = entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
                && entry.file_type().is_ok_and(|t| t.is_file());
            if stale && std::fs::remove_file(entry.path()).is_ok() {
                removed.push(entry.path());
            }
        }
    }
    removed
}

/// fsync a directory, so that a rename or a new entry in it survives a power cut.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}
