//! The only way the tool opens, creates, renames and reads files on the node. Every lookup is
//! relative to one handle on the root, opened once (the root canonicalised once, at start):
//!
//! - symlinks are resolved INSIDE the root (`pathrs`: openat2 `RESOLVE_IN_ROOT`, or its
//!   emulation on older kernels), so an absolute link in a `--root` sandbox
//!   (`root/.kube/config -> /etc/kubernetes/admin.conf`) means the sandbox's admin.conf, never
//!   the host's, and `..` never climbs out;
//! - run as root, a directory that a non-root user owns, or that others may write (a home,
//!   `~/.kube`, a kubeconfig under /tmp), starts a *user zone*: from there on every component is opened with
//!   `O_NOFOLLOW`, must not be a symlink, must belong to that user or root and must not be
//!   group- or world-writable. A link there is the user's to change at any instant, so root
//!   never follows one;
//! - nothing but a static pod manifest, renamed complete into place, ever lands in the
//!   manifest directory (`/etc/kubernetes/manifests`): every write and rename is checked here,
//!   in one place, against that directory's identity.
//!
//! Callers pass the host paths `NodeLayout::path` gives; a path outside the root is refused.
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::{Gid, Uid};

/// The static pod manifests a rename may put into the manifest directory.
pub const STATIC_POD_MANIFESTS: [&str; 4] = [
    "kube-apiserver.yaml",
    "kube-controller-manager.yaml",
    "kube-scheduler.yaml",
    "etcd.yaml",
];

/// The node path of kubeadm's manifest directory, guarded against every other write.
const MANIFESTS: &str = "etc/kubernetes/manifests";

/// The largest node file the tool reads (manifests, kubeconfigs, certificates, logs, state).
const MAX_READ: u64 = 64 << 20;

/// How many symlinks one lookup may follow (Linux's own limit).
const MAX_LINKS: usize = 40;

/// What a file is, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// A file's metadata, as the tool needs it.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub modified: std::time::SystemTime,
    /// The inode's change time (ctime): unlike `modified`, no `touch` can set it back.
    pub changed: std::time::SystemTime,
    dev: u64,
    ino: u64,
}

impl Meta {
    fn of(stat: &FileStat) -> Meta {
        let format = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        let kind = if format == SFlag::S_IFREG {
            Kind::File
        } else if format == SFlag::S_IFDIR {
            Kind::Dir
        } else if format == SFlag::S_IFLNK {
            Kind::Symlink
        } else {
            Kind::Other
        };
        Meta {
            kind,
            mode: stat.st_mode & 0o7777,
            uid: stat.st_uid,
            gid: stat.st_gid,
            size: stat.st_size as u64,
            modified: std::time::UNIX_EPOCH
                + std::time::Duration::new(stat.st_mtime.max(0) as u64, stat.st_mtime_nsec as u32),
            changed: std::time::UNIX_EPOCH
                + std::time::Duration::new(stat.st_ctime.max(0) as u64, stat.st_ctime_nsec as u32),
            dev: stat.st_dev,
            ino: stat.st_ino,
        }
    }
    pub fn is_file(&self) -> bool {
        self.kind == Kind::File
    }
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
    pub fn ownership(&self) -> Ownership {
        Ownership {
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
        }
    }
    fn writable_by_others(&self) -> bool {
        self.mode & 0o022 != 0
    }
    fn sticky(&self) -> bool {
        self.mode & 0o1000 != 0
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: OsString,
    /// The host path: the listed directory's path joined with the name.
    pub path: PathBuf,
    pub kind: Kind,
}

/// Where a lookup ended: the directory that holds the last component, and its name there.
struct Place {
    /// An `O_PATH` handle on the directory, already checked.
    dir: OwnedFd,
    name: OsString,
    /// The node path of the last component, as looked up (for messages and link targets).
    node_path: PathBuf,
    /// Inside a user zone: who controls it (root never follows a link there).
    zone: Option<Zone>,
}

/// A part of the tree a user controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zone {
    /// Everything below belongs to this user (or root).
    User(u32),
    /// Right inside a sticky, world-writable directory (`/tmp`): each entry is its own
    /// owner's to rename or remove, so the entry's owner starts the zone.
    Sticky,
}

/// What a write is, for the manifest directory's guard.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WriteKind {
    /// A complete file renamed into place under a static pod manifest's name.
    ManifestRename,
    /// Anything else: a temp file, a backup, a log line, a new directory.
    Other,
}

pub struct NodeFs {
    root: pathrs::Root,
    host: PathBuf,
    manifests: OnceLock<Option<(u64, u64)>>,
    /// Run as root: user zones are enforced. A person without root follows their own links
    /// (`~/.kube/config` from a dotfiles directory) as kubectl does: they reach nothing they
    /// could not reach anyway.
    as_root: bool,
}

impl std::fmt::Debug for NodeFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeFs({})", self.host.display())
    }
}

fn io_error(e: nix::Error) -> std::io::Error {
    std::io::Error::from(e)
}

fn pathrs_error(e: pathrs::error::Error) -> std::io::Error {
    match e.kind() {
        pathrs::error::ErrorKind::OsError(Some(errno)) => std::io::Error::from_raw_os_error(errno),
        _ => std::io::Error::other(e.to_string()),
    }
}

/// An error that names the node path and says what is wrong with it.
fn refused(node_path: &Path, why: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("{}: {why}", node_path.display()),
    )
}

/// A system call's error, with the node path it was about (its kind kept).
fn named(node_path: &Path, e: nix::Error) -> std::io::Error {
    let e = io_error(e);
    std::io::Error::new(e.kind(), format!("{}: {e}", node_path.display()))
}

fn path_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

impl NodeFs {
    /// Opens the root once. `root` is canonicalised here and never again.
    pub fn open(root: &Path) -> std::io::Result<NodeFs> {
        let host = root.canonicalize()?;
        let root = pathrs::Root::open(&host).map_err(pathrs_error)?;
        Ok(NodeFs {
            root,
            host,
            manifests: OnceLock::new(),
            as_root: nix::unistd::geteuid().is_root(),
        })
    }

    /// The root on the host, canonical.
    pub fn host_root(&self) -> &Path {
        &self.host
    }

    /// The node path (inside the root) of a host path the layout made.
    fn inner(&self, path: &Path) -> std::io::Result<PathBuf> {
        let rel = path.strip_prefix(&self.host).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{} is not inside the node root {}",
                    path.display(),
                    self.host.display()
                ),
            )
        })?;
        Ok(Path::new("/").join(rel))
    }

    fn stat_fd(fd: impl AsFd) -> std::io::Result<Meta> {
        nix::sys::stat::fstat(fd)
            .map(|s| Meta::of(&s))
            .map_err(io_error)
    }

    /// Walks to the directory holding the last component of `node_path`. Outside a user zone
    /// a link is followed inside the root (its target substituted and the walk begun again, so
    /// that the target's own directories are checked too); inside a zone none is.
    fn place(&self, node_path: &Path, links: &mut usize) -> std::io::Result<Place> {
        let mut path = node_path.to_path_buf();
        'walk: loop {
            let components: Vec<Component> = path.components().collect();
            let Some((Component::Normal(last), parents)) = components.split_last() else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{}: not a file path", path.display()),
                ));
            };
            let mut prefix = PathBuf::from("/");
            let mut dir: OwnedFd = self.root.resolve("/").map_err(pathrs_error)?.into();
            let mut zone: Option<Zone> = None;
            for (i, component) in parents.iter().enumerate() {
                let name: &OsStr = match component {
                    Component::RootDir | Component::CurDir => continue,
                    Component::Prefix(_) => unreachable!("unix paths"),
                    Component::ParentDir if zone.is_some() => {
                        return Err(refused(
                            &path,
                            "a path with `..` inside a directory a user controls is refused",
                        ));
                    }
                    Component::ParentDir => OsStr::new(".."),
                    Component::Normal(n) => n,
                };
                prefix.push(name);
                let Some(in_zone) = zone else {
                    // Outside a zone: the prefix holds no link (each was substituted), so
                    // pathrs resolves it as it reads, `..` kept inside the root.
                    let handle = self.root.resolve_nofollow(&prefix).map_err(pathrs_error)?;
                    let meta = Self::stat_fd(&handle)?;
                    if meta.kind == Kind::Symlink {
                        *links += 1;
                        if *links > MAX_LINKS {
                            return Err(std::io::Error::from_raw_os_error(nix::libc::ELOOP));
                        }
                        let target = self.root.readlink(&prefix).map_err(pathrs_error)?;
                        let base = prefix.parent().unwrap_or(Path::new("/")).to_path_buf();
                        let mut next = if target.is_absolute() {
                            target
                        } else {
                            base.join(target)
                        };
                        for rest in &parents[i + 1..] {
                            next.push(rest);
                        }
                        next.push(last);
                        path = next;
                        continue 'walk;
                    }
                    if meta.kind != Kind::Dir {
                        return Err(refused(
                            &path,
                            format!("{} is not a directory", prefix.display()),
                        ));
                    }
                    zone = self.zone_entry(&prefix, &meta)?;
                    dir = handle.into();
                    continue;
                };
                let next = nix::fcntl::openat(&dir, name, path_flags(), Mode::empty())
                    .map_err(|e| named(&prefix, e))?;
                let meta = Self::stat_fd(&next)?;
                zone = Some(Zone::User(Self::zone_check(&prefix, &meta, in_zone)?));
                if meta.kind != Kind::Dir {
                    return Err(refused(
                        &path,
                        format!("{} is not a directory", prefix.display()),
                    ));
                }
                dir = next;
            }
            return Ok(Place {
                dir,
                name: last.to_os_string(),
                node_path: path.clone(),
                zone,
            });
        }
    }

    /// Whether a directory reached outside any zone starts one, and for whom.
    fn zone_entry(&self, prefix: &Path, meta: &Meta) -> std::io::Result<Option<Zone>> {
        if !self.as_root {
            return Ok(None);
        }
        if meta.writable_by_others() {
            if meta.sticky() {
                // /tmp: anyone may create, but only an entry's owner may rename or remove it.
                return Ok(Some(Zone::Sticky));
            }
            return Err(refused(
                prefix,
                format!(
                    "the directory is writable by others (mode {:04o}): refused, as anyone could swap what lies in it",
                    meta.mode
                ),
            ));
        }
        Ok((meta.uid != 0).then_some(Zone::User(meta.uid)))
    }

    /// A component inside a user zone: no link, the user's or root's, not writable by others.
    /// Returns the user who controls what lies below it.
    fn zone_check(path: &Path, meta: &Meta, zone: Zone) -> std::io::Result<u32> {
        let owner = match zone {
            Zone::User(owner) => owner,
            Zone::Sticky => meta.uid,
        };
        if meta.kind == Kind::Symlink {
            return Err(refused(
                path,
                "a symbolic link in a directory a user controls: root never follows it (it could point anywhere, the manifest directory included)",
            ));
        }
        if meta.uid != owner && meta.uid != 0 {
            return Err(refused(
                path,
                format!(
                    "owned by uid {}, not by the directory's owner (uid {owner}) or root: refused",
                    meta.uid
                ),
            ));
        }
        if meta.writable_by_others() {
            return Err(refused(
                path,
                format!(
                    "writable by others (mode {:04o}): refused, as anyone could swap it",
                    meta.mode
                ),
            ));
        }
        Ok(owner)
    }

    /// The last component without following it: `Ok(None)` when it does not exist.
    fn last(&self, place: &Place) -> std::io::Result<Option<Meta>> {
        match nix::sys::stat::fstatat(
            &place.dir,
            place.name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(stat) => Ok(Some(Meta::of(&stat))),
            Err(nix::Error::ENOENT) => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    /// Looks `path` up to its final file: a trusted link is followed inside the root (and the
    /// place of what it points at returned); a link in a user zone is refused.
    fn locate(&self, path: &Path) -> std::io::Result<(Place, Option<Meta>)> {
        let mut node_path = self.inner(path)?;
        let mut links = 0;
        loop {
            let place = self.place(&node_path, &mut links)?;
            let meta = self.last(&place)?;
            let Some(meta) = meta else {
                return Ok((place, None));
            };
            if meta.kind != Kind::Symlink {
                if let Some(owner) = place.zone {
                    Self::zone_check(&place.node_path, &meta, owner)?;
                }
                return Ok((place, Some(meta)));
            }
            if let Some(owner) = place.zone {
                // Always an error: a link in a user zone is never followed.
                Self::zone_check(&place.node_path, &meta, owner)?;
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ELOOP));
            }
            let target = PathBuf::from(
                nix::fcntl::readlinkat(&place.dir, place.name.as_os_str()).map_err(io_error)?,
            );
            node_path = if target.is_absolute() {
                target
            } else {
                place
                    .node_path
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .join(target)
            };
        }
    }

    fn manifests_identity(&self) -> Option<(u64, u64)> {
        *self.manifests.get_or_init(|| {
            let handle = self.root.resolve(MANIFESTS).ok()?;
            let meta = Self::stat_fd(&handle).ok()?;
            Some((meta.dev, meta.ino))
        })
    }

    /// The one check that keeps everything but a complete static pod manifest out of the
    /// manifest directory, where the kubelet would run any file it finds.
    fn guard(&self, place: &Place, write: WriteKind) -> std::io::Result<()> {
        let dir = Self::stat_fd(&place.dir)?;
        if self.manifests_identity() != Some((dir.dev, dir.ino)) {
            return Ok(());
        }
        let allowed = write == WriteKind::ManifestRename
            && STATIC_POD_MANIFESTS
                .iter()
                .any(|m| OsStr::new(m) == place.name);
        if allowed {
            Ok(())
        } else {
            Err(refused(
                &place.node_path,
                "refused: nothing but a complete static pod manifest, renamed into place, is ever written into the manifest directory (the kubelet would run any file there)",
            ))
        }
    }

    fn open_last(place: &Place, flags: OFlag, mode: Mode) -> std::io::Result<File> {
        nix::fcntl::openat(
            &place.dir,
            place.name.as_os_str(),
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            mode,
        )
        .map(File::from)
        .map_err(|e| named(&place.node_path, e))
    }

    /// Reads the last component as a regular file of bounded size. Opened non-blocking and
    /// checked on the open descriptor: a FIFO or a device someone put where a kubeconfig should
    /// be never hangs root (nor does a sparse terabyte exhaust its memory).
    fn read_regular(place: &Place) -> std::io::Result<Vec<u8>> {
        let file = Self::open_last(place, OFlag::O_RDONLY | OFlag::O_NONBLOCK, Mode::empty())?;
        let meta = Self::stat_fd(&file)?;
        if meta.kind != Kind::File {
            return Err(refused(
                &place.node_path,
                "not a regular file (a FIFO, a device or a socket): not read",
            ));
        }
        if meta.size > MAX_READ {
            return Err(refused(
                &place.node_path,
                format!(
                    "{} bytes, more than the {MAX_READ} a node file may be",
                    meta.size
                ),
            ));
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_READ + 1), &mut bytes)?;
        Ok(bytes)
    }

    pub fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let (place, meta) = self.locate(path)?;
        if meta.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: No such file or directory", place.node_path.display()),
            ));
        }
        Self::read_regular(&place)
    }

    pub fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        String::from_utf8(self.read(path)?)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Metadata of what `path` names, trusted links followed inside the root.
    pub fn metadata(&self, path: &Path) -> std::io::Result<Meta> {
        let (place, meta) = self.locate(path)?;
        meta.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: No such file or directory", place.node_path.display()),
            )
        })
    }

    /// Metadata of `path` itself, a link not followed.
    pub fn symlink_metadata(&self, path: &Path) -> std::io::Result<Meta> {
        let place = self.place(&self.inner(path)?, &mut 0)?;
        self.last(&place)?
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    pub fn read_link(&self, path: &Path) -> std::io::Result<PathBuf> {
        let place = self.place(&self.inner(path)?, &mut 0)?;
        nix::fcntl::readlinkat(&place.dir, place.name.as_os_str())
            .map(PathBuf::from)
            .map_err(io_error)
    }

    pub fn exists(&self, path: &Path) -> bool {
        self.metadata(path).is_ok()
    }
    pub fn is_file(&self, path: &Path) -> bool {
        self.metadata(path).is_ok_and(|m| m.is_file())
    }
    pub fn is_dir(&self, path: &Path) -> bool {
        self.metadata(path).is_ok_and(|m| m.is_dir())
    }

    /// The host path of what `path` names once its links are followed inside the root.
    pub fn resolved(&self, path: &Path) -> std::io::Result<PathBuf> {
        let (place, _) = self.locate(path)?;
        Ok(self.host_path(&place.node_path))
    }

    fn host_path(&self, node_path: &Path) -> PathBuf {
        self.host
            .join(node_path.strip_prefix("/").unwrap_or(node_path))
    }

    /// The entries of a directory, sorted by name.
    pub fn read_dir(&self, path: &Path) -> std::io::Result<Vec<Entry>> {
        let (place, meta) = self.locate(path)?;
        if !meta.is_some_and(|m| m.is_dir()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: not a directory", place.node_path.display()),
            ));
        }
        let fd: OwnedFd =
            Self::open_last(&place, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())?.into();
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(io_error)?;
        let mut entries = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(io_error)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string();
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                Some(nix::dir::Type::File) => Kind::File,
                Some(nix::dir::Type::Directory) => Kind::Dir,
                Some(nix::dir::Type::Symlink) => Kind::Symlink,
                _ => Kind::Other,
            };
            entries.push(Entry {
                path: path.join(&name),
                name,
                kind,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Replaces the file `path` names atomically: a complete, fsynced temp file renamed over
    /// it. A trusted link is written through (the file it points at gets the bytes, the link
    /// stays); in a user zone the file must be the user's or root's, and no link is followed.
    /// The temp file goes in `tmp_dir` when that is on the target's filesystem (never in the
    /// manifest directory), else beside the target.
    pub fn replace(
        &self,
        path: &Path,
        tmp_dir: &Path,
        contents: &[u8],
        ownership: Option<Ownership>,
    ) -> std::io::Result<()> {
        let (target, meta) = self.locate(path)?;
        let ownership = match (ownership, meta) {
            (Some(o), _) => o,
            (None, Some(m)) => m.ownership(),
            (None, None) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{}: No such file or directory", target.node_path.display()),
                ));
            }
        };
        self.guard(&target, WriteKind::ManifestRename)?;
        let target_dir = Self::stat_fd(&target.dir)?;
        let in_manifests = self.manifests_identity() == Some((target_dir.dev, target_dir.ino));
        let beside = || {
            nix::fcntl::openat(
                &target.dir,
                ".",
                path_flags() | OFlag::O_DIRECTORY,
                Mode::empty(),
            )
            .map_err(io_error)
        };
        let tmp = self.locate_dir(tmp_dir).ok();
        let (temp_dir, in_tmp) = match tmp {
            Some((dir, meta))
                if meta.dev == target_dir.dev
                    && self.manifests_identity() != Some((meta.dev, meta.ino)) =>
            {
                (dir, true)
            }
            _ => {
                if in_manifests {
                    return Err(refused(
                        &target.node_path,
                        format!(
                            "{} is not on the manifest directory's filesystem: a rename from it would be cross-device (and is never a copy), and the temp file never goes beside the manifest",
                            tmp_dir.display()
                        ),
                    ));
                }
                (beside()?, false)
            }
        };
        match self.write_and_rename(&target, temp_dir, contents, ownership) {
            // The same filesystem, another mount (the kubelet bind-mounts /var/lib/kubelet on
            // itself): rename(2) crosses mounts, not only devices. Staged beside the target
            // instead, except in the manifest directory, where nothing is ever staged.
            Err(e) if in_tmp && !in_manifests && e.raw_os_error() == Some(nix::libc::EXDEV) => {
                self.write_and_rename(&target, beside()?, contents, ownership)?
            }
            other => other?,
        }
        Self::sync(&target.dir)
    }

    /// A complete, fsynced temp file in `temp_dir`, renamed over `target`; the temp file is
    /// removed when that fails.
    fn write_and_rename(
        &self,
        target: &Place,
        temp_dir: OwnedFd,
        contents: &[u8],
        ownership: Ownership,
    ) -> std::io::Result<()> {
        let temp_name = temp_name();
        let temp = Place {
            dir: temp_dir,
            name: temp_name.clone(),
            node_path: PathBuf::from(&temp_name),
            zone: None,
        };
        self.guard(&temp, WriteKind::Other)?;
        let mut file = Self::open_last(
            &temp,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(0o600),
        )?;
        let written = (|| {
            file.write_all(contents)?;
            nix::sys::stat::fchmod(&file, Mode::from_bits_truncate(ownership.mode))
                .map_err(io_error)?;
            let meta = Self::stat_fd(&file)?;
            if (meta.uid, meta.gid) != (ownership.uid, ownership.gid) {
                nix::unistd::fchown(
                    &file,
                    Some(Uid::from_raw(ownership.uid)),
                    Some(Gid::from_raw(ownership.gid)),
                )
                .map_err(io_error)?;
            }
            file.sync_all()?;
            crate::failpoint_io!("after-temp-write");
            nix::fcntl::renameat(
                &temp.dir,
                temp.name.as_os_str(),
                &target.dir,
                target.name.as_os_str(),
            )
            .map_err(io_error)
        })();
        if let Err(e) = written {
            let _ = nix::unistd::unlinkat(
                &temp.dir,
                temp.name.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            return Err(e);
        }
        Ok(())
    }

    fn locate_dir(&self, path: &Path) -> std::io::Result<(OwnedFd, Meta)> {
        let (place, meta) = self.locate(path)?;
        if !meta.is_some_and(|m| m.is_dir()) {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        let fd = nix::fcntl::openat(
            &place.dir,
            place.name.as_os_str(),
            path_flags() | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .map_err(io_error)?;
        let meta = Self::stat_fd(&fd)?;
        Ok((fd, meta))
    }

    /// A readable descriptor of the directory an `O_PATH` handle names (fsync, fchmod and
    /// fchown refuse an `O_PATH` one).
    fn reopen_dir(dir: &OwnedFd) -> std::io::Result<OwnedFd> {
        nix::fcntl::openat(
            dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_error)
    }

    fn sync(dir: &OwnedFd) -> std::io::Result<()> {
        File::from(Self::reopen_dir(dir)?).sync_all()
    }

    /// fsync the directory `path`, so a rename or a new entry in it survives a power cut.
    pub fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        let (fd, _) = self.locate_dir(path)?;
        Self::sync(&fd)
    }

    /// Creates a new file (never an existing one, never through a link), 0600, with `bytes`.
    pub fn create_new_private(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let (place, _) = self.locate(path)?;
        self.guard(&place, WriteKind::Other)?;
        let mut file = Self::open_last(
            &place,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(0o600),
        )?;
        file.write_all(bytes)?;
        file.sync_all()
    }

    /// Opens a file for appending (created 0600 when missing; a link is refused).
    pub fn open_append(&self, path: &Path) -> std::io::Result<File> {
        let (place, _) = self.locate_nofollow(path)?;
        self.guard(&place, WriteKind::Other)?;
        Self::open_last(
            &place,
            OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT,
            Mode::from_bits_truncate(0o600),
        )
    }

    /// Opens a file for reading and writing, created 0600 when missing; a link is refused.
    pub fn open_read_write(&self, path: &Path) -> std::io::Result<File> {
        let (place, _) = self.locate_nofollow(path)?;
        self.guard(&place, WriteKind::Other)?;
        Self::open_last(
            &place,
            OFlag::O_RDWR | OFlag::O_CREAT,
            Mode::from_bits_truncate(0o600),
        )
    }

    /// Reads one of the tool's own state files: never through a link.
    pub fn read_state(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let (place, meta) = self.locate_nofollow(path)?;
        if meta.is_none() {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        Self::read_regular(&place)
    }

    /// Replaces one of the tool's own state files atomically; a link there is refused.
    pub fn replace_state(
        &self,
        path: &Path,
        contents: &[u8],
        ownership: Ownership,
    ) -> std::io::Result<()> {
        self.locate_nofollow(path)?;
        let dir = path.parent().unwrap_or(Path::new("/"));
        self.replace(path, dir, contents, Some(ownership))
    }

    /// The place of `path` itself: state files are never reached through a link.
    fn locate_nofollow(&self, path: &Path) -> std::io::Result<(Place, Option<Meta>)> {
        let place = self.place(&self.inner(path)?, &mut 0)?;
        let meta = self.last(&place)?;
        if meta.is_some_and(|m| m.kind == Kind::Symlink) {
            return Err(refused(
                &place.node_path,
                "a symbolic link where the tool keeps its own state: refused",
            ));
        }
        Ok((place, meta))
    }

    /// Creates `path` and its missing parents with `mode` (and `owner`, for a user's own
    /// directories). Existing directories are left as they are.
    pub fn create_dir_all(
        &self,
        path: &Path,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> std::io::Result<()> {
        let node_path = self.inner(path)?;
        let mut prefix = PathBuf::from("/");
        for component in node_path.components().skip(1) {
            prefix.push(component);
            let (place, meta) = self.locate(&self.host_path(&prefix))?;
            match meta {
                Some(m) if m.is_dir() => continue,
                Some(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!(
                            "{} exists and is not a directory",
                            place.node_path.display()
                        ),
                    ));
                }
                None => {
                    self.guard(&place, WriteKind::Other)?;
                    match nix::sys::stat::mkdirat(
                        &place.dir,
                        place.name.as_os_str(),
                        Mode::from_bits_truncate(mode),
                    ) {
                        Ok(()) | Err(nix::Error::EEXIST) => {}
                        Err(e) => return Err(named(&place.node_path, e)),
                    }
                    let made = nix::fcntl::openat(
                        &place.dir,
                        place.name.as_os_str(),
                        path_flags() | OFlag::O_DIRECTORY,
                        Mode::empty(),
                    )
                    .map_err(io_error)?;
                    let fd = Self::reopen_dir(&made)?;
                    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))
                        .map_err(io_error)?;
                    if let Some((uid, gid)) = owner {
                        nix::unistd::fchown(
                            &fd,
                            Some(Uid::from_raw(uid)),
                            Some(Gid::from_raw(gid)),
                        )
                        .map_err(io_error)?;
                    }
                    Self::sync(&place.dir)?;
                }
            }
        }
        Ok(())
    }

    /// Creates a directory (and parents) only root may enter, and makes an existing one so.
    /// Errors name the path: "File exists" alone does not tell an operator that
    /// `/etc/kubernetes/tmp` is a file.
    pub fn private_dir(&self, path: &Path) -> std::io::Result<()> {
        let made = (|| {
            self.create_dir_all(path, 0o700, None)?;
            let (fd, meta) = self.locate_dir(path)?;
            if meta.mode != 0o700 {
                let fd = Self::reopen_dir(&fd)?;
                nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o700)).map_err(io_error)?;
            }
            Ok(())
        })();
        made.map_err(|e: std::io::Error| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "{} must be a directory only its owner can enter: {e}",
                    path.display()
                ),
            )
        })
    }

    /// Removes a file (a link itself, never what it points at).
    pub fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        let place = self.place(&self.inner(path)?, &mut 0)?;
        nix::unistd::unlinkat(
            &place.dir,
            place.name.as_os_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )
        .map_err(io_error)
    }

    /// Removes a directory the tool made, and all it holds.
    pub fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.root
            .remove_all(self.inner(path)?)
            .map_err(pathrs_error)
    }

    /// Renames `from` to `to` (links themselves, never followed), on one filesystem. Into the
    /// manifest directory only under a static pod manifest's name.
    pub fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let source = self.place(&self.inner(from)?, &mut 0)?;
        let dest = self.place(&self.inner(to)?, &mut 0)?;
        self.guard(&dest, WriteKind::ManifestRename)?;
        nix::fcntl::renameat(
            &source.dir,
            source.name.as_os_str(),
            &dest.dir,
            dest.name.as_os_str(),
        )
        .map_err(io_error)?;
        Self::sync(&dest.dir)?;
        Self::sync(&source.dir)
    }
}

/// A temp file's name: the tool's prefix (so a killed run's leftovers are found) and randomness.
fn temp_name() -> OsString {
    use rand::Rng;
    let suffix: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(12)
        .map(char::from)
        .collect();
    OsString::from(format!("{TEMP_PREFIX}{suffix}"))
}

/// The prefix of every temp file the tool makes; what a killed run leaves behind has it.
pub const TEMP_PREFIX: &str = ".kubeadm-recover-";

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
    pub fn of(layout: &crate::node::NodeLayout, path: &std::path::Path) -> std::io::Result<Self> {
        Ok(layout.fs().metadata(path)?.ownership())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn node() -> (tempfile::TempDir, NodeFs) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/kubernetes/manifests")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc/kubernetes/tmp")).unwrap();
        let fs = NodeFs::open(dir.path()).unwrap();
        (dir, fs)
    }

    fn own(uid: u32) -> Ownership {
        Ownership {
            mode: 0o600,
            uid,
            gid: uid,
        }
    }

    #[test]
    fn absolute_links_and_dot_dot_stay_inside_the_root() {
        let (dir, fs) = node();
        let root = fs.host_root().to_path_buf();
        std::fs::write(root.join("etc/kubernetes/admin.conf"), "in root").unwrap();
        std::fs::create_dir_all(root.join("root/.kube")).unwrap();
        symlink("/etc/kubernetes/admin.conf", root.join("root/.kube/config")).unwrap();
        symlink("../../../../../../../../etc", root.join("root/up")).unwrap();
        assert_eq!(
            fs.read_to_string(&root.join("root/.kube/config")).unwrap(),
            "in root"
        );
        assert_eq!(
            fs.read_to_string(&root.join("root/up/kubernetes/admin.conf"))
                .unwrap(),
            "in root"
        );
        assert_eq!(
            fs.resolved(&root.join("root/.kube/config")).unwrap(),
            root.join("etc/kubernetes/admin.conf")
        );
        // Written through the link: the file in the root, the link kept.
        fs.replace(
            &root.join("root/.kube/config"),
            &root.join("etc/kubernetes/tmp"),
            b"new",
            None,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("etc/kubernetes/admin.conf")).unwrap(),
            "new"
        );
        assert!(
            std::fs::symlink_metadata(root.join("root/.kube/config"))
                .unwrap()
                .is_symlink()
        );
        // A host path outside the root is not a node path.
        assert!(fs.read(Path::new("/etc/passwd")).is_err());
        drop(dir);
    }

    #[test]
    fn in_a_directory_a_user_owns_no_link_is_followed_and_nothing_of_others_is_used() {
        let (_dir, fs) = node();
        let root = fs.host_root().to_path_buf();
        let home = root.join("home/alice");
        std::fs::create_dir_all(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(4242), Some(4242)).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        symlink("/etc/kubernetes/manifests", home.join(".kube")).unwrap();
        let err = fs.read(&home.join(".kube/config")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        std::fs::remove_file(home.join(".kube")).unwrap();
        std::fs::create_dir(home.join(".kube")).unwrap();
        std::fs::write(home.join(".kube/config"), "x").unwrap();
        std::os::unix::fs::chown(home.join(".kube/config"), Some(4343), None).unwrap();
        let err = fs.read(&home.join(".kube/config")).unwrap_err();
        assert!(err.to_string().contains("owned by uid 4343"), "{err}");
        std::os::unix::fs::chown(home.join(".kube/config"), Some(4242), None).unwrap();
        std::fs::set_permissions(
            home.join(".kube/config"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        let err = fs.read(&home.join(".kube/config")).unwrap_err();
        assert!(err.to_string().contains("writable by others"), "{err}");
        std::fs::set_permissions(
            home.join(".kube/config"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        assert_eq!(fs.read(&home.join(".kube/config")).unwrap(), b"x");
        // `..` out of a user's directory is refused rather than reasoned about.
        assert!(fs.read(&home.join(".kube/../.kube/config")).is_err());
    }

    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_a_static_pod_manifest_renamed_into_place_lands_in_the_manifest_directory() {
        let (_dir, fs) = node();
        let root = fs.host_root().to_path_buf();
        let manifests = root.join("etc/kubernetes/manifests");
        let tmp = root.join("etc/kubernetes/tmp");
        std::fs::write(manifests.join("kube-apiserver.yaml"), "old").unwrap();
        fs.replace(&manifests.join("kube-apiserver.yaml"), &tmp, b"new", None)
            .unwrap();
        assert_eq!(
            std::fs::read(manifests.join("kube-apiserver.yaml")).unwrap(),
            b"new"
        );
        for refused in [
            fs.create_new_private(&manifests.join("backup.yaml"), b"x")
                .err(),
            fs.replace(&manifests.join("config"), &tmp, b"x", Some(own(0)))
                .err(),
            fs.open_append(&manifests.join("audit.jsonl")).err(),
            fs.create_dir_all(&manifests.join("sub"), 0o700, None).err(),
        ] {
            let err = refused.expect("refused");
            assert!(err.to_string().contains("manifest directory"), "{err}");
        }
        // A link elsewhere that points into it is no way round.
        std::fs::create_dir_all(root.join("home/x")).unwrap();
        symlink(
            "/etc/kubernetes/manifests/pod.yaml",
            root.join("home/x/config"),
        )
        .unwrap();
        assert!(
            fs.replace(&root.join("home/x/config"), &tmp, b"x", Some(own(0)))
                .is_err()
        );
        // The temp file never goes beside the manifest, and a move out and back is allowed.
        std::fs::write(tmp.join("parked"), "p").unwrap();
        assert!(
            fs.rename(&tmp.join("parked"), &manifests.join("other.yaml"))
                .is_err()
        );
        fs.rename(&manifests.join("kube-apiserver.yaml"), &tmp.join("parked"))
            .unwrap();
        fs.rename(&tmp.join("parked"), &manifests.join("kube-apiserver.yaml"))
            .unwrap();
        let names: Vec<_> = std::fs::read_dir(&manifests)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("kube-apiserver.yaml")]);
    }
}
