//! The append-only JSON-lines audit log: who changed what, when, why, with file hashes.
use std::io::Write;

use serde::Serialize;

use crate::node::NodeLayout;

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
            time: crate::runtime::clock::rfc3339(crate::runtime::clock::now_unix()),
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
pub fn append(layout: &NodeLayout, record: &Record) -> std::io::Result<()> {
    let log = layout.audit_log();
    if let Some(dir) = log.parent() {
        layout.fs().private_dir(dir)?;
    }
    let mut file = layout.fs().open_append(&log)?;
    let mut line = serde_json::to_string(record).map_err(std::io::Error::other)?;
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.sync_all()
}

/// The audit policy once a change is live: a line that cannot be written is said loudly on
/// stderr, never turned into a failure of a change that was made and backed up.
pub fn append_or_warn(layout: &NodeLayout, record: &Record) {
    if let Err(e) = append(layout, record) {
        crate::ui::stderr_line(&format!(
            "warning: could not write the audit log {}: {e}",
            layout.audit_log().display()
        ));
    }
}
