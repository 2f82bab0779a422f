//! Backups in `/etc/kubernetes/tmp/kubeadm-recover-backup-<UTC>-<operation>/`: 0700, files 0600,
//! their original path and metadata in `backup.json`, and a `SHA256SUMS` that `sha256sum -c`
//! understands. Never inside the manifest directory.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::node::NodeLayout;
use crate::node::fs::Ownership;

pub const PREFIX: &str = "kubeadm-recover-backup-";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupFile {
    /// Name inside the backup directory.
    pub name: String,
    /// Where it came from on the node (absolute, as seen on the node).
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub ownership: Ownership,
    /// False for stray copies moved out of the manifest directory: putting them back would
    /// recreate the trap the tool removed.
    pub restorable: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    pub id: String,
    pub created: String,
    pub operation: String,
    pub reason: Option<String>,
    pub files: Vec<BackupFile>,
    #[serde(skip)]
    pub dir: PathBuf,
}

/// A file to put in a backup.
pub struct Source<'a> {
    pub path: &'a Path,
    pub restorable: bool,
}

/// Copies `sources` into a new backup directory. On failure the partial directory is removed.
pub fn create(
    layout: &NodeLayout,
    operation: &str,
    reason: Option<&str>,
    sources: &[Source],
) -> std::io::Result<Backup> {
    let tmp = layout.backups_dir();
    layout.fs().private_dir(&tmp)?;
    let stamp = crate::runtime::clock::compact_ms(crate::runtime::clock::now_unix_ms());
    let (id, dir) = (1..)
        .map(|n| {
            let id = if n == 1 {
                format!("{stamp}-{operation}")
            } else {
                format!("{stamp}-{operation}-{n}")
            };
            let dir = tmp.join(format!("{PREFIX}{id}"));
            (id, dir)
        })
        .find(|(_, dir)| !layout.fs().exists(dir))
        .expect("an unused name exists");
    layout.fs().private_dir(&dir)?;
    let result = fill(layout, &dir, &id, operation, reason, sources);
    if result.is_err() {
        let _ = layout.fs().remove_dir_all(&dir);
    }
    result
}

fn fill(
    layout: &NodeLayout,
    dir: &Path,
    id: &str,
    operation: &str,
    reason: Option<&str>,
    sources: &[Source],
) -> std::io::Result<Backup> {
    let mut files = Vec::new();
    let mut sums = String::new();
    for (i, source) in sources.iter().enumerate() {
        let bytes = layout.fs().read(source.path)?;
        let base = source
            .path
            .file_name()
            .map_or_else(|| format!("file-{i}"), |n| n.to_string_lossy().into_owned());
        let name = if files.iter().any(|f: &BackupFile| f.name == base) {
            format!("{i}-{base}")
        } else {
            base
        };
        layout.fs().create_new_private(&dir.join(&name), &bytes)?;
        let sha256 = super::sha256_hex(&bytes);
        sums.push_str(&format!("{sha256}  {name}\n"));
        files.push(BackupFile {
            name,
            path: layout.node_path(source.path),
            sha256,
            size: bytes.len() as u64,
            ownership: Ownership::of(layout, source.path)?,
            restorable: source.restorable,
        });
    }
    let backup = Backup {
        id: id.to_string(),
        created: crate::runtime::clock::rfc3339(crate::runtime::clock::now_unix()),
        operation: operation.to_string(),
        reason: reason.map(str::to_string),
        files,
        dir: dir.to_path_buf(),
    };
    layout
        .fs()
        .create_new_private(&dir.join("SHA256SUMS"), sums.as_bytes())?;
    let meta = serde_json::to_vec_pretty(&backup).map_err(std::io::Error::other)?;
    layout
        .fs()
        .create_new_private(&dir.join("backup.json"), &meta)?;
    layout.fs().sync_dir(dir)?;
    layout
        .fs()
        .sync_dir(dir.parent().expect("backup dir has a parent"))?;
    Ok(backup)
}

/// Every backup the tool made, oldest first. Unreadable ones are listed with what is wrong.
pub fn list(layout: &NodeLayout) -> Vec<Result<Backup, (PathBuf, String)>> {
    let Ok(entries) = layout.fs().read_dir(&layout.backups_dir()) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .into_iter()
        .filter(|e| e.name.to_string_lossy().starts_with(PREFIX))
        .map(|e| e.path)
        .collect();
    dirs.sort();
    dirs.into_iter().map(|dir| load(layout, &dir)).collect()
}

fn load(layout: &NodeLayout, dir: &Path) -> Result<Backup, (PathBuf, String)> {
    let text = layout
        .fs()
        .read(&dir.join("backup.json"))
        .map_err(|e| (dir.to_path_buf(), e.to_string()))?;
    let mut backup: Backup = serde_json::from_slice(&text)
        .map_err(|e| (dir.to_path_buf(), format!("backup.json: {e}")))?;
    backup.dir = dir.to_path_buf();
    Ok(backup)
}

/// Finds a backup by its id (or its directory name).
pub fn find(layout: &NodeLayout, id: &str) -> Option<Result<Backup, (PathBuf, String)>> {
    let id = id.strip_prefix(PREFIX).unwrap_or(id);
    let dir = layout.backups_dir().join(format!("{PREFIX}{id}"));
    layout.fs().is_dir(&dir).then(|| load(layout, &dir))
}

impl Backup {
    /// Checks every file against both `backup.json` and `SHA256SUMS`; returns what does not match.
    pub fn verify(&self, layout: &NodeLayout) -> Vec<String> {
        let sums = layout
            .fs()
            .read_to_string(&self.dir.join("SHA256SUMS"))
            .unwrap_or_default();
        let mut problems = Vec::new();
        for file in &self.files {
            let listed = sums
                .lines()
                .any(|l| l == format!("{}  {}", file.sha256, file.name));
            if !listed {
                problems.push(format!(
                    "{}: not listed in SHA256SUMS with its recorded checksum",
                    file.name
                ));
            }
            match layout
                .fs()
                .read(&self.dir.join(&file.name))
                .map(|b| super::sha256_hex(&b))
            {
                Ok(actual) if actual == file.sha256 => {}
                Ok(actual) => problems.push(format!(
                    "{}: checksum {actual} does not match the recorded {}",
                    file.name, file.sha256
                )),
                Err(e) => problems.push(format!("{}: {e}", file.name)),
            }
        }
        problems
    }

    pub fn read(&self, layout: &NodeLayout, file: &BackupFile) -> std::io::Result<Vec<u8>> {
        layout.fs().read(&self.dir.join(&file.name))
    }
}
