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
    attempts_of(layout, "kube-apiserver")
}

/// The newest log of a control-plane component's newest pod (`etcd`, `kube-apiserver`).
pub fn newest_of(layout: &NodeLayout, component: &str) -> Option<PathBuf> {
    attempts_of(layout, component)
        .into_values()
        .max_by_key(|(_, log)| layout.fs().metadata(log).map(|m| m.modified).ok())
        .map(|(_, log)| log)
}

/// A static pod container's attempts, per pod directory.
fn attempts_of(layout: &NodeLayout, component: &str) -> Attempts {
    let pods = layout.path("/var/log/pods");
    let Ok(entries) = layout.fs().read_dir(&pods) else {
        return Attempts::new();
    };
    let prefix = format!("kube-system_{component}-");
    let mut newest = Attempts::new();
    for pod in entries
        .into_iter()
        .filter(|e| e.name.to_string_lossy().starts_with(&prefix))
    {
        let dir = pod.path.join(component);
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

/// The newest attempt the kubelet started during a wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub log: PathBuf,
    /// Its number: the kubelet's restart count for the pod. A pod the kubelet ran before under
    /// the same config hash (the same change tried again, after a rollback) keeps its count,
    /// and its back-off: the number then says nothing about this wait.
    pub number: u32,
    /// The first number this wait saw in that directory: logs below it are an earlier run's
    /// (the same change tried before) and never the reason for this one.
    pub first_of_wait: u32,
}

/// What the kubelet did since the wait began: how many attempts it started, and the newest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Since {
    pub started: usize,
    pub newest: Option<Attempt>,
}

/// Counts the attempts the kubelet starts during one wait, by their numbers. In a directory
/// that existed when the wait began, the numbers after its newest then; in a new one (a new
/// pod: a new config hash), the numbers from the first this wait saw there — not from 0: a pod
/// re-added under a hash the kubelet ran before continues its old count (measured: `3.log` as
/// the first file of a retried change, whose earlier run ended at `2.log`).
#[derive(Debug, Clone, Default)]
pub struct AttemptCounter {
    before: Attempts,
    first_seen: BTreeMap<PathBuf, u32>,
}

impl AttemptCounter {
    pub fn new(before: Attempts) -> Self {
        AttemptCounter {
            before,
            first_seen: BTreeMap::new(),
        }
    }

    /// The attempts started so far, given the directories as they are `now`.
    pub fn observe(&mut self, now: &Attempts) -> Since {
        let mut started = 0;
        let mut newest: Option<(usize, Attempt)> = None;
        for (dir, (number, log)) in now {
            let first_of_wait = match self.before.get(dir) {
                Some((old, _)) => old + 1,
                None => *self.first_seen.entry(dir.clone()).or_insert(*number),
            };
            let fresh = (number + 1).saturating_sub(first_of_wait) as usize;
            if fresh == 0 {
                continue;
            }
            started += fresh;
            // The directory with the most new attempts is the pod being tried.
            if newest.as_ref().is_none_or(|(n, _)| fresh > *n) {
                let attempt = Attempt {
                    log: log.clone(),
                    number: *number,
                    first_of_wait,
                };
                newest = Some((fresh, attempt));
            }
        }
        Since {
            started,
            newest: newest.map(|(_, attempt)| attempt),
        }
    }
}

/// The newest attempt of the newest apiserver pod: its restart count and its log.
pub fn latest(layout: &NodeLayout) -> Option<(u32, PathBuf)> {
    attempts(layout)
        .into_values()
        .max_by_key(|(_, log)| layout.fs().metadata(log).map(|m| m.modified).ok())
}

/// The log that says why `attempt` is failing: its own, or, while that is still empty (the
/// kubelet creates the file when it creates the container), the newest of this wait's earlier
/// attempts that the kubelet kept — never an earlier run's.
pub fn telling(layout: &NodeLayout, attempt: &Attempt) -> PathBuf {
    let log = &attempt.log;
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
        .filter(|(number, _)| *number >= attempt.first_of_wait)
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
        let mut counter = super::AttemptCounter::new(before.clone());
        assert_eq!(counter.observe(&before), super::Since::default());
        // The edit: a new pod (new hash), its first attempt.
        assert_eq!(
            counter
                .observe(&attempts(&[("old", 0), ("new", 0)]))
                .started,
            1
        );
        // A crash loop: the kubelet keeps only the newest file, 4.log, yet 5 attempts ran.
        let since = counter.observe(&attempts(&[("new", 4)]));
        assert_eq!(since.started, 5);
        let newest = since.newest.unwrap();
        assert_eq!(newest.log, PathBuf::from("new/4.log"));
        assert_eq!((newest.number, newest.first_of_wait), (4, 0));
        // Restarts of a pod whose directory existed count from its number then.
        let mut again = super::AttemptCounter::new(attempts(&[("same", 2)]));
        let since = again.observe(&attempts(&[("same", 3)]));
        assert_eq!(since.started, 1);
        assert_eq!(since.newest.unwrap().first_of_wait, 3);
    }

    #[test]
    fn a_retried_change_whose_old_directory_was_collected_counts_from_what_this_wait_saw() {
        // The same change tried again after a rollback: the kubelet continues the pod's old
        // count in a directory this wait never saw before. One attempt, not four.
        let mut counter = super::AttemptCounter::new(attempts(&[("old", 0)]));
        let since = counter.observe(&attempts(&[("old", 0), ("retried", 3)]));
        assert_eq!(since.started, 1);
        assert_eq!(counter.observe(&attempts(&[("retried", 5)])).started, 3);
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
        let attempt = |first_of_wait| super::Attempt {
            log: pod.join("4.log"),
            number: 4,
            first_of_wait,
        };
        assert_eq!(super::telling(&layout, &attempt(3)), pod.join("3.log"));
        // 3.log is an earlier run's (the same change tried before): not this one's reason.
        assert_eq!(super::telling(&layout, &attempt(4)), pod.join("4.log"));
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
