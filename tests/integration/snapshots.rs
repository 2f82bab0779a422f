//! Every command's text and JSON output, pinned (insta). Filters replace what differs from run to
//! run: the sandbox root, pids, ports, times, backup ids, serials and hashes. The README's console
//! examples are these. Review a change with `cargo insta review` (or `INSTA_UPDATE=always`).
use crate::harness::*;

fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

pub fn settings(root: &std::path::Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.set_snapshot_path("snapshots");
    let filters: &[(&str, &str)] = &[
        (r"\d{8}T\d{6}\.\d{3}Z", "[STAMP]"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TIME]"),
        (r"(?i)([0-9a-f]{2}:){7,}[0-9a-f]{2}", "[SERIAL]"),
        (r"\b[0-9a-f]{64}\b", "[SHA256]"),
        (r#""configHash": "[0-9a-f]+""#, r#""configHash": "[HASH]""#),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
        (r"(--secure-port=|port[\s=]+|port: )\d+", "${1}[PORT]"),
        (r#""(port|securePort)": "?\d+"?"#, r#""$1": "[PORT]""#),
        (r"pid \d+", "pid [PID]"),
        (r#""pid": \d+"#, r#""pid": "[PID]""#),
        (
            r#""(waitedMs|noticedUnixMs|startTicks|ageSeconds|ms|overheadMs|noticedAfterReadyMs|medianNoticedAfterReadyMs|medianOverheadMs|size|startedUnix)": -?\d+"#,
            r#""$1": "[N]""#,
        ),
        (r"\(\d+\.\ds", "([SECONDS]s"),
        (r"expires in \d+ days", "expires in [N] days"),
        (r#""daysLeft": -?\d+"#, r#""daysLeft": "[N]""#),
        (r"\d+ (seconds|minutes) ago", "[AGE] ago"),
        (r"started [^,]+, ", "started [TIME], "),
        (
            r#"[^\s"]*/kubeadm-recover-rehearse-[A-Za-z0-9]+"#,
            "[REHEARSAL]",
        ),
        (r"\b\d+\.\d\ds\b", "[SECONDS]s"),
        (r"\d+ backups", "[N] backups"),
    ];
    s.add_filter(&escape(&root.display().to_string()), "[ROOT]");
    for (regex, replacement) in filters {
        s.add_filter(regex, *replacement);
    }
    s
}

/// Pins a command's stdout as text and as JSON (and stderr where it carries the message).
fn pin(node: &dyn Sandbox, name: &str, args: &[&str], code: i32) {
    let text = node.run().args(args).code(code);
    let json = node.run().args(args).args(["-o", "json"]).code(code);
    settings(node.root()).bind(|| {
        insta::assert_snapshot!(format!("{name}.txt"), text.stdout);
        insta::assert_snapshot!(format!("{name}.json"), json.stdout);
        if code != 0 {
            insta::assert_snapshot!(format!("{name}.stderr"), text.stderr);
        }
    });
}

/// Pins one run of a command that changes the node (its text, or its JSON).
fn pin_once(node: &dyn Sandbox, name: &str, args: &[&str]) {
    let out = node.run().args(args).ok();
    settings(node.root()).bind(|| insta::assert_snapshot!(name.to_string(), out.stdout));
}

#[test]
fn read_only_commands_and_plans_on_a_sandbox_node() {
    let node = Node::new();
    pin(&node, "status-fresh", &["status"], 0);
    pin(&node, "backups-list-empty", &["backups", "list"], 0);
    pin(&node, "journal-list-empty", &["journal", "list"], 0);
    pin(
        &node,
        "extend-tokens-enable-dry-run",
        &["extend-tokens", "enable", "--dry-run"],
        0,
    );
    pin(
        &node,
        "admin-conf-regenerate-dry-run",
        &["admin-conf", "regenerate", "--dry-run", "--validity", "24h"],
        0,
    );
    pin(&node, "revert-nothing", &["revert", "--yes"], 2);
    pin(&node, "resume-nothing", &["resume", "--yes"], 2);
    pin(
        &node,
        "usage-error",
        &["extend-tokens", "enable", "--bogus"],
        2,
    );
    pin(
        &node,
        "needs-yes",
        &["extend-tokens", "enable", "--no-wait"],
        2,
    );
    pin_once(
        &node,
        "admin-conf-regenerate-no-verify.txt",
        &["admin-conf", "regenerate", "--yes", "--no-verify"],
    );
    pin_once(
        &node,
        "admin-conf-regenerate-no-verify.json",
        &[
            "admin-conf",
            "regenerate",
            "--yes",
            "--no-verify",
            "-o",
            "json",
        ],
    );
}

#[test]
fn a_break_glass_session_on_a_live_simulated_node() {
    let sim = SimNode::start();
    pin(&sim, "status-live", &["status"], 0);
    pin_once(
        &sim,
        "extend-tokens-enable.txt",
        &["extend-tokens", "enable", "--yes", "--reason", "INC-1"],
    );
    pin(
        &sim,
        "extend-tokens-enable-again",
        &["extend-tokens", "enable", "--yes"],
        0,
    );
    pin(&sim, "status-session", &["status"], 0);
    pin_once(
        &sim,
        "revert.json",
        &["revert", "--yes", "--stale-window", "0s", "-o", "json"],
    );
    pin_once(
        &sim,
        "extend-tokens-disable.json",
        &[
            "extend-tokens",
            "disable",
            "--yes",
            "--stale-window",
            "0s",
            "-o",
            "json",
        ],
    );
    pin(&sim, "backups-list", &["backups", "list"], 0);
    pin(&sim, "journal-list", &["journal", "list"], 0);
    let first = sim.backup_dirs()[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("kubeadm-recover-backup-")
        .to_string();
    pin(
        &sim,
        "backups-restore-dry-run",
        &["backups", "restore", &first, "--dry-run"],
        0,
    );
    pin(&sim, "revert-dry-run", &["revert", "--dry-run"], 0);
    pin_once(&sim, "revert.txt", &["revert", "--yes"]);
    pin_once(
        &sim,
        "backups-restore.json",
        &["backups", "restore", &first, "--yes", "-o", "json"],
    );
    pin_once(
        &sim,
        "admin-conf-regenerate.txt",
        &["admin-conf", "regenerate", "--yes", "--validity", "24h"],
    );
    pin_once(
        &sim,
        "admin-conf-regenerate.json",
        &[
            "admin-conf",
            "regenerate",
            "--yes",
            "--validity",
            "24h",
            "-o",
            "json",
        ],
    );
}

#[test]
fn the_rehearsal_tells_the_break_glass_story() {
    let out = Run::new().arg("rehearse").ok();
    settings(std::path::Path::new("/nonexistent"))
        .bind(|| insta::assert_snapshot!("rehearse.txt", out.stdout));
}
