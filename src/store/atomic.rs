//! Atomic replacement: the new file is complete and on disk before it gets the target's name.
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{Gid, Uid};

/// Mode and ownership of a file, kept across replacement and recorded in backups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ownership {
    /// Permission bits, written as an octal string ("0600") in JSON.
    #[serde(with = "octal")]
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

mod octal {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{mode:04o}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text = String::deserialize(d)?;
        u32::from_str_radix(&text, 8).map_err(D::Error::custom)
    }
}

impl Ownership {
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Ownership {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        })
    }
}

/// Writes `contents` to a temp file in `tmp_dir` (an existing directory on the same filesystem
/// as `target`; a symlink at `target` itself is replaced, not followed), fsyncs it,
/// gives it `ownership` (or the target's current one), renames it over `target` and fsyncs the
/// directory. A failure at any point leaves `target` untouched and removes the temp file.
pub fn replace(
    target: &Path,
    tmp_dir: &Path,
    contents: &[u8],
    ownership: Option<Ownership>,
) -> std::io::Result<()> {
    let ownership = match ownership {
        Some(o) => o,
        None => Ownership::of(target)?,
    };
    let mut temp = tempfile::Builder::new()
        .prefix(super::TEMP_PREFIX)
        .tempfile_in(tmp_dir)?;
    temp.write_all(contents)?;
    let file = temp.as_file();
    file.set_permissions(std::fs::Permissions::from_mode(ownership.mode))?;
    let meta = file.metadata()?;
    if (meta.uid(), meta.gid()) != (ownership.uid, ownership.gid) {
        nix::unistd::fchown(
            file,
            Some(Uid::from_raw(ownership.uid)),
            Some(Gid::from_raw(ownership.gid)),
        )?;
    }
    file.sync_all()?;
    crate::failpoint_io!("after-temp-write");
    // persist() is rename(2): it fails rather than copy across filesystems.
    temp.persist(target).map_err(|e| e.error)?;
    if let Some(dir) = target.parent() {
        super::sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_keeps_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("manifests/kube-apiserver.yaml");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, "old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
        replace(&target, &tmp, b"new", None).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(Ownership::of(&target).unwrap().mode, 0o640);
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        assert_eq!(
            std::fs::read_dir(target.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn failed_replace_leaves_target_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("missing-dir/file");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let own = Ownership {
            mode: 0o600,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        };
        assert!(replace(&target, &tmp, b"x", Some(own)).is_err());
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    }
}
