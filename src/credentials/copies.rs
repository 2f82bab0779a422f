//! Copies of the admin credential that people made (`cp /etc/kubernetes/admin.conf ~/.kube/config`)
//! and where a user's kubeconfig belongs.
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::node::NodeLayout;

/// A user from the node's /etc/passwd.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

pub fn account(layout: &NodeLayout, name: &str) -> Option<Account> {
    let passwd = layout
        .fs()
        .read_to_string(&layout.path("/etc/passwd"))
        .ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 6 && fields[0] == name).then(|| Account {
            name: name.to_string(),
            uid: fields[2].parse().unwrap_or(0),
            gid: fields[3].parse().unwrap_or(0),
            home: fields[5].to_string(),
        })
    })
}

/// The home directory of `account`, where root may put a kubeconfig for them: it must exist,
/// not be `/` (a system account's), and be the user's own or root's. What lies below it is
/// checked on the way in by `node::fs` (no link followed, nothing writable by others).
pub fn home_of(layout: &NodeLayout, account: &Account) -> Result<PathBuf> {
    let refuse = |why: String| {
        Error::Refused(format!(
            "cannot install a kubeconfig for {}: {why}",
            account.name
        ))
    };
    let home = std::path::Path::new(&account.home);
    if !home.is_absolute() || home.components().count() < 2 {
        return Err(refuse(format!(
            "its home in /etc/passwd is {:?}, not a home directory of its own",
            account.home
        )));
    }
    let path = layout.path(&account.home);
    let meta = layout.fs().symlink_metadata(&path).map_err(|e| {
        refuse(format!(
            "its home {} cannot be used ({e}); create it for the user first (with their ownership), then rerun",
            account.home
        ))
    })?;
    if !meta.is_dir() {
        return Err(refuse(format!(
            "its home {} is not a directory (a symlink is not followed for another user)",
            account.home
        )));
    }
    if meta.uid != account.uid && meta.uid != 0 {
        return Err(refuse(format!(
            "its home {} belongs to uid {}, not to {} (uid {})",
            account.home, meta.uid, account.name, account.uid
        )));
    }
    Ok(path)
}

/// Kubeconfigs that may hold a copy: root's, every /home/*'s, SUDO_USER's, and the extra
/// node paths given. Existing files only, each once.
pub fn candidates(layout: &NodeLayout, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = vec![layout.path("/root/.kube/config")];
    if let Ok(homes) = layout.fs().read_dir(&layout.path("/home")) {
        let mut homes: Vec<PathBuf> = homes
            .into_iter()
            .map(|e| e.path.join(".kube/config"))
            .collect();
        homes.sort();
        out.extend(homes);
    }
    if let Some(sudo) = std::env::var("SUDO_USER")
        .ok()
        .and_then(|u| account(layout, &u))
    {
        out.push(layout.path(&format!("{}/.kube/config", sudo.home)));
    }
    out.extend(extra.iter().filter_map(|p| layout.given_path(p).ok()));
    let mut seen = std::collections::BTreeSet::new();
    // A copy root may not read (behind a user's link) is kept: the caller says why it is left.
    out.retain(|p| {
        (layout.fs().is_file(p) || layout.fs().symlink_metadata(p).is_ok())
            && seen.insert(p.clone())
    });
    out
}
