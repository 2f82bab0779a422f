//! The append-only JSON-lines audit log: who changed what, when, why, with file hashes.
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    pub path: String,
    pub sha256_before: Option<String>,
    pub sha256_after: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub time: String,
    pub uid: u32,
    pub sudo_user: Option<String>,
    pub command: String,
    pub reason: Option<String>,
    pub outcome: String,
    pub files: Vec<FileChange>,
    pub backup: Option<String>,
    /// Certificates issued: subject, serial, validity, fingerprint. Never a key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<crate::credentials::issue::CertFacts>,
}

impl Record {
    pub fn new(
        command: impl Into<String>,
        reason: Option<&str>,
        outcome: impl Into<String>,
    ) -> Self {
        Record {
            time: crate::clock::rfc3339(crate::clock::now_unix()),
            uid: nix::unistd::getuid().as_raw(),
            sudo_user: std::env::var("SUDO_USER").ok(),
            command: command.into(),
            reason: reason.map(str::to_string),
            outcome: outcome.into(),
            files: Vec::new(),
            backup: None,
            certificates: Vec::new(),
        }
    }
}

/// Appends one line (O_APPEND, 0600, never through a symlink) and fsyncs it.
pub fn append(log: &Path, record: &Record) -> std::io::Result<()> {
    if let Some(dir) = log.parent() {
        super::private_dir(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(log)?;
    let mut line = serde_json::to_string(record).map_err(std::io::Error::other)?;
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.sync_all()
}
