//! Copies of the admin credential that people made (`cp /etc/kubernetes/admin.conf ~/.kube/config`)
//! and where a user's kubeconfig belongs.
use std::path::PathBuf;

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
    let passwd = std::fs::read_to_string(layout.path("/etc/passwd")).ok()?;
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

/// Kubeconfigs that may hold a copy: root's, every /home/*'s, SUDO_USER's, and the extra
/// node paths given. Existing files only, each once.
pub fn candidates(layout: &NodeLayout, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = vec![layout.path("/root/.kube/config")];
    if let Ok(homes) = std::fs::read_dir(layout.path("/home")) {
        let mut homes: Vec<PathBuf> = homes
            .filter_map(|e| e.ok())
            .map(|e| e.path().join(".kube/config"))
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
    out.extend(extra.iter().map(|p| {
        if p.is_absolute() {
            layout.path(&p.to_string_lossy())
        } else {
            p.clone()
        }
    }));
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|p| p.is_file() && seen.insert(p.clone()));
    out
}
