//! The kubelet keeps each container attempt's log in its own file under
//! `/var/log/pods/<ns>_<pod>_<uid>/<container>/<attempt>.log`. New files after a change are new
//! attempts: three without a healthy apiserver is a crash loop, and the newest one says why.
use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::node::NodeLayout;

pub fn attempt_files(layout: &NodeLayout) -> BTreeSet<PathBuf> {
    let pods = layout.path("/var/log/pods");
    let Ok(entries) = layout.fs().read_dir(&pods) else {
        return BTreeSet::new();
    };
    entries
        .into_iter()
        .filter(|e| {
            e.name
                .to_string_lossy()
                .starts_with("kube-system_kube-apiserver-")
        })
        .filter_map(|e| layout.fs().read_dir(&e.path.join("kube-apiserver")).ok())
        .flat_map(|dir| dir.into_iter().map(|f| f.path))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect()
}

/// Attempt logs that did not exist in `before`, oldest first (by modification time).
pub fn new_attempts(layout: &NodeLayout, before: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    let mut fresh: Vec<(std::time::SystemTime, PathBuf)> = attempt_files(layout)
        .into_iter()
        .filter(|p| !before.contains(p))
        .filter_map(|p| Some((layout.fs().metadata(&p).ok()?.modified, p)))
        .collect();
    fresh.sort();
    fresh.into_iter().map(|(_, p)| p).collect()
}

/// The last `lines` lines of a log, for telling the operator why the apiserver stopped.
pub fn tail(layout: &NodeLayout, path: &std::path::Path, lines: usize) -> String {
    let text = layout.fs().read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
