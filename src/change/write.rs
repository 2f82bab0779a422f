//! The one way the tool changes files on a node: preflight, back up, write atomically, audit.
//! Used by every mutating command, so the safety rules live in one place.
use std::path::PathBuf;

pub use crate::change::plan::PlannedWrite;
use crate::error::{Error, Result};
use crate::node::NodeLayout;
use crate::node::store::audit::{self, FileChange};
use crate::node::store::backup::{self, Backup, Source};
use crate::node::store::sha256_hex;
use crate::node::store::strays::{self, Stray};
use crate::ui::Ui;

pub struct Applied {
    pub backup: Backup,
    pub moved_strays: Vec<String>,
}

/// Refuses (exit 3) when stray copies or editor leftovers sit in the manifest directory, unless
/// the operator asked to move them away.
pub fn check_strays(layout: &NodeLayout, move_strays: bool) -> Result<Vec<Stray>> {
    let found = strays::find(layout);
    if found.is_empty() || move_strays {
        return Ok(found);
    }
    let list: Vec<String> = found
        .iter()
        .map(|s| format!("  {}: {}", s.path.display(), s.why))
        .collect();
    Err(Error::Refused(format!(
        "the manifest directory holds files that must not be there:\n{}\n  what to do: rerun with --move-strays \
         to move them into a backup directory first (if a copy is what the kubelet runs now, moving it \
         restarts kube-apiserver from the real manifest), or move them out of {} yourself",
        list.join("\n"),
        layout.manifests_dir().display()
    )))
}

/// A commit that failed: why, and which files had been renamed into place (and were then put
/// back, or not) before it failed.
pub struct CommitFailure {
    pub error: WriteFailed,
    pub renamed: Vec<PathBuf>,
}

/// Why a commit failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteFailed {
    /// Writing a file failed; the files written before it were put back.
    #[error("writing {} failed: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing a file failed, and putting back the files already written failed too.
    #[error("writing {} failed: {source}, and putting back the files already written failed too: {}", path.display(), unrestored.join("; "))]
    NotPutBack {
        path: PathBuf,
        #[source]
        source: std::io::Error,
        unrestored: Vec<String>,
    },
    /// A failure point of the crash-safety builds, after the renames.
    #[error("{0}")]
    Injected(#[source] Error),
}

impl WriteFailed {
    /// The failure, said once every file is back as it was.
    pub fn as_before(&self) -> String {
        match self {
            WriteFailed::Write { .. } => format!("{self}; the node is as before"),
            WriteFailed::NotPutBack { path, source, .. } => format!(
                "writing {} failed: {source}; the files are put back, the node is as before",
                path.display()
            ),
            WriteFailed::Injected(e) => {
                format!("{e}; the files are put back, the node is as before")
            }
        }
    }
}

/// Checks the files did not change since they were read, backs them (and the strays) up and
/// moves the strays out. Nothing the kubelet reads has changed yet, except strays moved away.
pub fn prepare(
    layout: &NodeLayout,
    ui: &Ui,
    command: &str,
    reason: Option<&str>,
    writes: &[PlannedWrite],
    strays: &[Stray],
) -> Result<Applied> {
    for write in writes {
        let current = match layout.fs().read(&write.path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("cannot read", &write.path, e)),
        };
        if current != write.old {
            return Err(Error::ChangedUnderfoot {
                path: write.path.clone(),
            });
        }
    }
    let mut sources: Vec<Source> = writes
        .iter()
        .filter(|w| w.old.is_some())
        .map(|w| Source {
            path: &w.path,
            restorable: true,
        })
        .collect();
    sources.extend(strays.iter().map(|s| Source {
        path: &s.path,
        restorable: false,
    }));
    let operation = command.replace(' ', "-");
    let backup = backup::create(layout, &operation, reason, &sources).map_err(Error::Backup)?;

    let mut moved_strays = Vec::new();
    for stray in strays {
        let name = stray.path.file_name().expect("a file in a directory");
        let dest = backup.dir.join(format!("moved-{}", name.to_string_lossy()));
        layout
            .fs()
            .rename(&stray.path, &dest)
            .map_err(|e| Error::io("could not move the stray file", &stray.path, e))?;
        moved_strays.push(layout.node_path(&stray.path));
    }
    ui.detail(format!("backed up to {}", backup.dir.display()));
    crate::failpoint!("after-backup");
    Ok(Applied {
        backup,
        moved_strays,
    })
}

/// Writes every file atomically (putting back the ones written if a later one fails) and
/// records the change in the audit log.
pub fn commit(
    layout: &NodeLayout,
    ui: &Ui,
    command: &str,
    reason: Option<&str>,
    writes: &[PlannedWrite],
    prepared: Applied,
) -> std::result::Result<Applied, CommitFailure> {
    let Applied {
        backup,
        moved_strays,
    } = prepared;
    let mut done: Vec<&PlannedWrite> = Vec::new();
    let renamed = |done: &[&PlannedWrite]| done.iter().map(|w| w.path.clone()).collect();
    for write in writes {
        if let Err(source) = write_node_file(layout, &write.path, &write.new, write.ownership) {
            let unrestored = put_back(layout, done.iter().copied());
            let path = write.path.clone();
            let error = if unrestored.is_empty() {
                WriteFailed::Write { path, source }
            } else {
                WriteFailed::NotPutBack {
                    path,
                    source,
                    unrestored,
                }
            };
            return Err(CommitFailure {
                error,
                renamed: renamed(&done),
            });
        }
        ui.detail(format!(
            "wrote {} (rename from {})",
            write.path.display(),
            layout.staging_dir().display()
        ));
        done.push(write);
    }

    if let Err(error) = injected_after_rename() {
        return Err(CommitFailure {
            error: WriteFailed::Injected(error),
            renamed: renamed(&done),
        });
    }
    let mut record = audit::Record::new(command, reason, "written");
    record.backup = Some(layout.node_path(&backup.dir));
    record.files = writes
        .iter()
        .map(|w| FileChange {
            path: layout.node_path(&w.path),
            sha256_before: w.old.as_deref().map(sha256_hex),
            sha256_after: Some(sha256_hex(&w.new)),
        })
        .chain(moved_strays.iter().map(|p| FileChange {
            path: p.clone(),
            sha256_before: None,
            sha256_after: None,
        }))
        .collect();
    // The change is made and backed up; a missing audit line must not hide that.
    audit::append_or_warn(layout, &record);
    Ok(Applied {
        backup,
        moved_strays,
    })
}

/// A new file's missing directory (`~alice/.kube`) is made private and owned like the file.
pub fn make_parent(layout: &NodeLayout, write: &PlannedWrite) -> Result<()> {
    let Some(dir) = write.path.parent().filter(|d| !layout.fs().exists(d)) else {
        return Ok(());
    };
    layout
        .fs()
        .create_dir_all(dir, 0o700, write.ownership.map(|o| (o.uid, o.gid)))
        .map_err(|e| Error::io("cannot create", dir, e))?;
    Ok(())
}

/// Replaces a file on the node atomically (`NodeFs::replace`): a link is written through
/// inside the root, so that the file it points at (the one in use) gets the new bytes and the
/// link stays a link; the temp file is made in the staging directory (the node's
/// `/etc/kubernetes/tmp`, a person's state directory) when that is on the target's filesystem (never in the manifest directory), else beside the target.
pub fn write_node_file(
    layout: &NodeLayout,
    path: &std::path::Path,
    contents: &[u8],
    ownership: Option<crate::node::fs::Ownership>,
) -> std::io::Result<()> {
    let tmp = layout.staging_dir();
    layout.fs().private_dir(&tmp)?;
    layout.fs().replace(path, &tmp, contents, ownership)
}

fn injected_after_rename() -> Result<()> {
    crate::failpoint!("after-rename");
    Ok(())
}

/// Puts back every file that no longer holds its old bytes: after a failed step, what is on
/// disk decides, not what the step thinks it did. Returns what could not be put back.
pub fn put_back_changed(layout: &NodeLayout, writes: &[PlannedWrite]) -> Vec<String> {
    put_back(
        layout,
        writes
            .iter()
            .filter(|w| layout.fs().read(&w.path).ok() != w.old),
    )
}

/// Puts each written file back as it was (atomically; removes files that did not exist).
/// Returns what could not be put back.
pub fn put_back<'a>(
    layout: &NodeLayout,
    writes: impl IntoIterator<Item = &'a PlannedWrite>,
) -> Vec<String> {
    let mut failed = Vec::new();
    for write in writes {
        let result = match &write.old {
            Some(old) => write_node_file(layout, &write.path, old, None),
            None => match layout.fs().remove_file(&write.path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        if let Err(e) = result {
            failed.push(format!("{}: {e}", write.path.display()));
        }
    }
    failed
}
