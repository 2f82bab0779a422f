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

/// Creates a directory (and parents) that only root may enter.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !path.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// fsync a directory, so that a rename or a new entry in it survives a power cut.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}
