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

/// The last `lines` lines of a log, for telling the operator why the apiserver stopped. The log
/// is the apiserver's (and whatever it echoes of its input): each line shown escaped, one line
/// of the log one line of the tail, never a control sequence (`ui::text`).
pub fn tail(layout: &NodeLayout, path: &std::path::Path, lines: usize) -> String {
    let bytes = layout.fs().read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|line| crate::ui::escape(line))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tail_shows_a_hostile_log_line_by_line_and_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let layout = crate::node::NodeLayout::new(Some(dir.path().to_path_buf())).unwrap();
        let log = layout.path("/0.log");
        std::fs::write(
            &log,
            b"early\nE1201 flag: invalid value \"\x1b]52;c;cm0=\x07\"\r\nE1201 exit \xff\x1b[2J\n",
        )
        .unwrap();
        let tail = super::tail(&layout, &log, 2);
        assert_eq!(
            tail,
            "E1201 flag: invalid value \"\\x1b]52;c;cm0=\\x07\"\nE1201 exit \u{fffd}\\x1b[2J"
        );
    }
}
