//! The kubelet keeps a container's logs under
//! `/var/log/pods/<ns>_<pod>_<config hash>/<container>/<restart count>.log`. The number in the
//! name is the attempt: the real kubelet garbage-collects dead attempts down to ONE (during a
//! crash loop the directory holds only the newest file, `4.log`), so attempts are counted by
//! their numbers, never by how many files exist. Each line is in the CRI log format,
//! `<RFC3339Nano> <stdout|stderr> <F|P> <message>`; the operator is shown the messages.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::node::NodeLayout;

/// Per kube-apiserver container log directory: the newest attempt's number and its log.
pub type Attempts = BTreeMap<PathBuf, (u32, PathBuf)>;

/// The apiserver containers' attempts as the log directories show them now.
pub fn attempts(layout: &NodeLayout) -> Attempts {
    let pods = layout.path("/var/log/pods");
    let Ok(entries) = layout.fs().read_dir(&pods) else {
        return Attempts::new();
    };
    let mut newest = Attempts::new();
    for pod in entries.into_iter().filter(|e| {
        e.name
            .to_string_lossy()
            .starts_with("kube-system_kube-apiserver-")
    }) {
        let dir = pod.path.join("kube-apiserver");
        let Ok(files) = layout.fs().read_dir(&dir) else {
            continue;
        };
        for file in files {
            let Some(number) = attempt_number(&file.name) else {
                continue;
            };
            if newest.get(&dir).is_none_or(|(n, _)| number > *n) {
                newest.insert(dir.clone(), (number, file.path));
            }
        }
    }
    newest
}

/// `4.log` is attempt 4 (the kubelet's restart count); anything else is not an attempt's log.
fn attempt_number(name: &std::ffi::OsStr) -> Option<u32> {
    name.to_str()?.strip_suffix(".log")?.parse().ok()
}

/// What the kubelet did since `before`: how many attempts it started, and the newest's log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Since {
    pub started: usize,
    pub newest_log: Option<PathBuf>,
    /// The kubelet's restart count for the pod being tried (its newest attempt's number). A pod
    /// the kubelet ran before under the same config hash (the same change tried again) keeps
    /// its count and its back-off, which may by now be minutes: its number says how many times
    /// it has already exited when this wait sees only one new attempt.
    pub restart_count: Option<u32>,
}

/// The attempts started since `before`: in a directory that existed, the numbers after its
/// newest then; in a new one (a new pod: a new config hash), every number from 0.
pub fn since(before: &Attempts, now: &Attempts) -> Since {
    let mut started = 0;
    let mut newest_log = None;
    let mut newest_number = None;
    let mut restart_count = None;
    for (dir, (number, log)) in now {
        let fresh = match before.get(dir) {
            Some((old, _)) => number.saturating_sub(*old) as usize,
            None => *number as usize + 1,
        };
        if fresh > 0 {
            started += fresh;
            // The directory with the most new attempts is the pod being tried.
            if newest_number.is_none_or(|n| fresh > n) {
                newest_number = Some(fresh);
                newest_log = Some(log.clone());
                restart_count = Some(*number);
            }
        }
    }
    Since {
        started,
        newest_log,
        restart_count,
    }
}

/// The newest attempt of the newest apiserver pod: its restart count and its log.
pub fn latest(layout: &NodeLayout) -> Option<(u32, PathBuf)> {
    attempts(layout)
        .into_values()
        .max_by_key(|(_, log)| layout.fs().metadata(log).map(|m| m.modified).ok())
}

/// The log that says why attempt `log` is failing: that attempt's own, or, while it is still
/// empty (the kubelet creates the file when it creates the container), the one before it, which
/// the kubelet keeps.
pub fn telling(layout: &NodeLayout, log: &Path) -> PathBuf {
    let has_text = |p: &Path| layout.fs().metadata(p).is_ok_and(|m| m.size > 0);
    if has_text(log) {
        return log.to_path_buf();
    }
    let Some(dir) = log.parent() else {
        return log.to_path_buf();
    };
    let mut numbered: Vec<(u32, PathBuf)> = layout
        .fs()
        .read_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|f| Some((attempt_number(&f.name)?, f.path)))
        .collect();
    numbered.sort();
    numbered
        .into_iter()
        .rev()
        .map(|(_, p)| p)
        .find(|p| has_text(p))
        .unwrap_or_else(|| log.to_path_buf())
}

/// The restart count of pod `config_hash`'s apiserver container: its newest attempt's number.
pub fn restart_count(layout: &NodeLayout, config_hash: &str) -> Option<u32> {
    attempts(layout).into_iter().find_map(|(dir, (number, _))| {
        let pod = dir.parent()?.file_name()?.to_str()?;
        pod.ends_with(&format!("_{config_hash}")).then_some(number)
    })
}

/// A CRI log line's message: `<time> <stream> <F|P> <message>`; a line in another format (a
/// runtime that writes plain text) is its own message. `P` marks a partial line, continued by
/// the next entry of the same stream.
fn cri_entry(line: &str) -> (Option<bool>, &str) {
    let mut fields = line.splitn(4, ' ');
    let (Some(time), Some(stream), Some(tag)) = (fields.next(), fields.next(), fields.next())
    else {
        return (None, line);
    };
    let is_time = time.len() >= 20 && time.as_bytes()[0].is_ascii_digit() && time.contains('T');
    if !is_time || !matches!(stream, "stdout" | "stderr") {
        return (None, line);
    }
    match tag {
        "F" => (Some(true), fields.next().unwrap_or("")),
        "P" => (Some(false), fields.next().unwrap_or("")),
        _ => (None, line),
    }
}

/// The log's messages, partial lines joined.
pub fn messages(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut partial = String::new();
    for line in text.lines() {
        match cri_entry(line) {
            (Some(false), message) => partial.push_str(message),
            (Some(true), message) => {
                partial.push_str(message);
                out.push(std::mem::take(&mut partial));
            }
            (None, message) => out.push(message.to_string()),
        }
    }
    if !partial.is_empty() {
        out.push(partial);
    }
    out
}

/// The last `lines` lines of a log, for telling the operator why the apiserver stopped. The log
/// is the apiserver's (and whatever it echoes of its input): each line shown escaped, one line
/// of the log one line of the tail, never a control sequence (`ui::text`).
pub fn tail(layout: &NodeLayout, path: &Path, lines: usize) -> String {
    let bytes = layout.fs().read(path).unwrap_or_default();
    let all = messages(&String::from_utf8_lossy(&bytes));
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|line| crate::ui::escape(line))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    fn attempts(entries: &[(&str, u32)]) -> super::Attempts {
        entries
            .iter()
            .map(|(dir, n)| {
                let dir = PathBuf::from(dir);
                (dir.clone(), (*n, dir.join(format!("{n}.log"))))
            })
            .collect()
    }

    #[test]
    fn attempts_are_counted_by_their_numbers_not_by_files() {
        let before = attempts(&[("old", 0)]);
        // The edit: a new pod (new hash), its first attempt.
        assert_eq!(
            super::since(&before, &attempts(&[("old", 0), ("new", 0)])).started,
            1
        );
        // A crash loop: the kubelet keeps only the newest file, 4.log, yet 5 attempts ran.
        let now = attempts(&[("new", 4)]);
        let since = super::since(&before, &now);
        assert_eq!(since.started, 5);
        assert_eq!(since.newest_log, Some(PathBuf::from("new/4.log")));
        assert_eq!(since.restart_count, Some(4));
        // Restarts of a pod that existed before count from its number then; its restart
        // count says how often it has exited in all.
        let again = super::since(&attempts(&[("same", 2)]), &attempts(&[("same", 3)]));
        assert_eq!((again.started, again.restart_count), (1, Some(3)));
        assert_eq!(super::since(&before, &before), super::Since::default());
    }

    #[test]
    fn cri_log_lines_become_their_messages_with_partial_lines_joined() {
        let log = "2026-12-02T01:23:38.123456789Z stderr F Error: invalid argument \"x\"\n\
                   2026-12-02T01:23:38.2Z stdout P first half, \n\
                   2026-12-02T01:23:38.3Z stdout F second half\n\
                   plain text from another runtime\n";
        assert_eq!(
            super::messages(log),
            [
                "Error: invalid argument \"x\"",
                "first half, second half",
                "plain text from another runtime"
            ]
        );
    }

    #[test]
    fn the_telling_log_is_the_dead_attempts_while_the_new_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let layout = crate::node::NodeLayout::new(Some(dir.path().to_path_buf())).unwrap();
        let pod = layout.path("/var/log/pods/kube-system_kube-apiserver-n_abc/kube-apiserver");
        std::fs::create_dir_all(&pod).unwrap();
        std::fs::write(
            pod.join("3.log"),
            "2026-12-02T01:23:38Z stderr F Error: no\n",
        )
        .unwrap();
        std::fs::write(pod.join("4.log"), "").unwrap();
        assert_eq!(
            super::telling(&layout, &pod.join("4.log")),
            pod.join("3.log")
        );
        assert_eq!(super::tail(&layout, &pod.join("3.log"), 5), "Error: no");
        assert_eq!(super::restart_count(&layout, "abc"), Some(4));
        assert_eq!(super::latest(&layout).map(|(n, _)| n), Some(4));
    }

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
