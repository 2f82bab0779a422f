//! A dry run changes no byte under the root, journal and audit log included, whatever state the
//! node is in: fresh, or in the middle of an unfinished change.
use crate::harness::*;

/// Every mutating command, as a dry run that a script would type.
fn dry_runs(backup: Option<&str>) -> Vec<Vec<String>> {
    let mut runs: Vec<Vec<&str>> = vec![
        vec!["extend-tokens", "enable", "--dry-run", "--yes"],
        vec!["extend-tokens", "disable", "--dry-run", "--yes"],
        vec!["revert", "--dry-run", "--yes"],
        vec!["resume", "--dry-run", "--yes"],
        vec!["admin-conf", "regenerate", "--dry-run", "--yes"],
    ];
    if let Some(id) = backup {
        runs.push(vec!["backups", "restore", id, "--dry-run", "--yes"]);
    }
    runs.into_iter()
        .map(|r| r.into_iter().map(str::to_string).collect())
        .collect()
}

#[test]
fn on_a_fresh_node_no_dry_run_writes_anything() {
    let node = Node::new();
    let before = node.snapshot();
    for args in dry_runs(None) {
        let out = node.run().args(&args).output();
        assert!(
            [0, 2].contains(&out.code),
            "{args:?}: exit {}\n{}",
            out.code,
            out.stderr
        );
        assert_eq!(node.snapshot(), before, "{args:?} changed the node");
    }
}

#[test]
fn with_an_unfinished_change_no_dry_run_writes_anything_and_resume_does_not_finish_it() {
    let sim = SimNode::start();
    sim.killed_mid_change();
    let backup = sim.backup_dirs().pop().unwrap();
    let id = backup
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("kubeadm-recover-backup-")
        .to_string();
    let before = sim.snapshot();
    for args in dry_runs(Some(&id)) {
        let out = sim.run().args(&args).output();
        assert!(
            [0, 2].contains(&out.code),
            "{args:?}: exit {}\n{}",
            out.code,
            out.stderr
        );
        assert_eq!(sim.snapshot(), before, "{args:?} changed the node");
    }
    let out = sim.run().args(["resume", "--dry-run", "--yes"]).ok();
    assert!(
        out.stdout.contains("dry run: nothing was written"),
        "{}",
        out.stdout
    );
    let out = sim
        .run()
        .args(["extend-tokens", "enable", "--dry-run"])
        .ok();
    assert!(
        out.stderr
            .contains("a real run will refuse: an earlier change did not finish"),
        "{}",
        out.stderr
    );
    // The unfinished change is still there to be finished for real.
    assert_eq!(
        sim.status()["session"]["unfinished"],
        true,
        "{}",
        sim.status()
    );
    sim.configure(|c| c.frozen = false);
    sim.run().args(["resume", "--yes"]).ok();
}
