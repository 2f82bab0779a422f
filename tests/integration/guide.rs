//! `guide` driven through a pseudo-terminal (expectrl), as a person at an SSH session drives it.
use std::time::Duration;

use kubeadm_recover_sim::node::NodeOptions;

use crate::harness::{Answer, Running, Sandbox, SimNode, Snapshot, Terminal};

/// The expired admin credentials and token extension off: the three break-glass steps.
fn locked_out() -> SimNode {
    SimNode::with(NodeOptions {
        admin_expired: true,
        extra_args: vec!["--service-account-extend-token-expiration=false".into()],
        ..Default::default()
    })
}

/// Token extension off, nothing else wrong: one step, which restarts the apiserver.
fn extension_off() -> SimNode {
    SimNode::with(NodeOptions {
        extra_args: vec!["--service-account-extend-token-expiration=false".into()],
        ..Default::default()
    })
}

/// The node as a person could tell: every file the tool may touch, and the journal.
fn node_state(node: &SimNode) -> Snapshot {
    node.snapshot()
}

#[test]
fn the_happy_path_gets_a_working_admin_conf_and_token_extension_on() {
    let sim = locked_out();
    let mut t = Terminal::run(&sim, &[]);
    let overview = t.expect("Why are you doing this?");
    assert!(
        overview.contains("[CRITICAL] admin.conf expired"),
        "{overview}"
    );
    assert!(overview.contains("Proposed steps"), "{overview}");
    t.send("locked out at 3am\r");
    let first = t.answer(1, Answer::Details);
    assert!(
        first.contains("the same, scripted: kubeadm-recover admin-conf regenerate --update-copies"),
        "{first}"
    );
    let details = t.expect("runs: kubeadm-recover admin-conf regenerate");
    assert!(details.contains("evidence:"), "details shown: {details}");
    t.expect("quit");
    std::thread::sleep(Duration::from_millis(200));
    t.send("\r"); // do it, after the details
    let second = t.answer(2, Answer::DoIt);
    assert!(second.contains("admin.conf"), "{second}");
    assert!(second.contains("--validity 24h"), "{second}");
    let third = t.answer(3, Answer::DoIt);
    assert!(third.contains("super-admin.conf"), "{third}");
    let (code, screen) = t.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("Summary:"), "{screen}");
    assert!(
        screen.contains("undo: kubeadm-recover revert --session"),
        "{screen}"
    );
    assert!(screen.contains("migrate check"), "{screen}");

    let whoami = sim.kubectl(
        "/etc/kubernetes/admin.conf",
        &["auth", "whoami", "-o", "json"],
    );
    assert_eq!(
        whoami.code, 0,
        "the real kubectl authenticates: {}",
        whoami.stderr
    );
    assert!(
        whoami.stdout.contains("kubernetes-admin"),
        "{}",
        whoami.stdout
    );
    let status = sim.status();
    assert_eq!(
        status["apiserver"]["extendTokenExpiration"]["value"], true,
        "{status}"
    );
    let reasons: Vec<String> =
        std::fs::read_to_string(sim.path("/var/log/kubeadm-recover/audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"].to_string())
            .collect();
    assert!(
        reasons.iter().all(|r| r == "\"locked out at 3am\""),
        "the reason, asked once, is on every record: {reasons:?}"
    );
}

#[test]
fn skip_or_quit_at_each_question_leaves_the_node_as_it_was_before_that_step() {
    let sim = locked_out();
    let start = node_state(&sim);

    // Ctrl-C at the reason: nothing.
    let mut t = Terminal::run(&sim, &["guide"]);
    t.expect("Why are you doing this?");
    std::thread::sleep(Duration::from_millis(200));
    t.send("\x03");
    let (code, screen) = t.finish();
    assert_eq!(code, 130, "{screen}");
    assert!(screen.contains("nothing of it was changed"), "{screen}");
    assert_eq!(node_state(&sim), start);

    // Each step in turn: skip the ones before it (nothing changes), then quit or Ctrl-C at it.
    for step in 1..=3 {
        for (answer, expected) in [(Answer::Quit, 2), (Answer::CtrlC, 130)] {
            let mut t = Terminal::run(&sim, &["guide", "--reason", "drill"]);
            for earlier in 1..step {
                t.answer(earlier, Answer::Skip);
            }
            t.answer(step, answer);
            let (code, screen) = t.finish();
            assert_eq!(code, expected, "{answer:?} at step {step}: {screen}");
            assert!(
                screen.contains(&format!("at step {step}"))
                    || screen.contains(&format!("(step {step})")),
                "says where it stopped: {screen}"
            );
            assert!(
                screen.contains("nothing on the node was changed"),
                "{screen}"
            );
            assert_eq!(node_state(&sim), start, "{answer:?} at step {step}");
        }
    }

    // Do a step, then quit at the next: the node is as that step left it.
    let mut t = Terminal::run(&sim, &["guide", "--reason", "drill"]);
    t.answer(1, Answer::DoIt);
    t.expect("step 2/");
    let after_first = node_state(&sim);
    assert_ne!(after_first, start, "step 1 wrote admin.conf");
    t.expect("quit");
    std::thread::sleep(Duration::from_millis(200));
    t.send("\x1b[B\x1b[B\x1b[B\r");
    let (code, screen) = t.finish();
    assert_eq!(code, 2, "{screen}");
    assert!(screen.contains("1. regenerate admin.conf"), "{screen}");
    assert!(screen.contains(": done"), "{screen}");
    assert_eq!(node_state(&sim), after_first);
}

#[test]
fn ctrl_c_while_the_apiserver_restarts_rolls_back() {
    let sim = extension_off();
    let original = sim.manifest();
    sim.configure(|c| c.frozen = true);
    let mut t = Terminal::run(&sim, &["guide", "--reason", "drill"]);
    t.answer(1, Answer::DoIt);
    t.expect("waiting");
    t.send("\x03");
    let (code, screen) = t.finish();
    assert_eq!(code, 130, "{screen}");
    assert!(screen.contains("not done"), "the summary says so: {screen}");
    assert_eq!(sim.manifest(), original, "rolled back");
    assert!(
        screen.contains("extend-tokens enable): rolled-back"),
        "{screen}"
    );
    assert!(!screen.contains("undo:"), "nothing to undo: {screen}");
    assert!(!screen.contains("next:"), "{screen}");
    assert_eq!(
        sim.status()["manifest"]["extendTokenExpiration"]["value"],
        false
    );
}

#[test]
fn without_a_terminal_the_guide_refuses_at_once_with_the_advice() {
    let sim = extension_off();
    for args in [&[][..], &["guide"][..]] {
        let out = sim.run().args(args).code(2);
        assert!(out.stderr.contains("--yes"), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("kubeadm-recover diagnose"),
            "{}",
            out.stderr
        );
    }
    let out = sim.run().args(["guide", "-o", "json"]).code(2);
    assert_eq!(out.json()["reason"], "Usage");
}

#[test]
fn a_journal_broken_while_the_guide_asks_is_said_not_taken_for_no_change() {
    let sim = locked_out();
    let admin = std::fs::read(sim.path("/etc/kubernetes/admin.conf")).unwrap();
    let mut t = Terminal::run(&sim, &["guide", "--reason", "drill"]);
    t.expect("== step 1/");
    t.expect("quit");
    // Someone breaks the journal while the question waits.
    let journal = sim.path("/var/lib/kubeadm-recover/journal.json");
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    std::fs::write(&journal, "{ garbage").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    t.send("\r");
    let (code, screen) = t.finish();
    assert_eq!(code, 4, "the journal needs a person: {screen}");
    assert!(screen.contains("The files are as before"), "{screen}");
    assert!(!screen.contains("still lists"), "it cannot tell: {screen}");
    assert!(screen.contains("what changed cannot be told"), "{screen}");
    assert!(
        !screen.contains("nothing on the node was changed"),
        "{screen}"
    );
    assert_eq!(
        std::fs::read(sim.path("/etc/kubernetes/admin.conf")).unwrap(),
        admin,
        "admin.conf is as before"
    );
    assert!(sim.backup_dirs().is_empty(), "no backup was made");
}
