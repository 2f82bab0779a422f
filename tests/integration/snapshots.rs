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
            r#""(waitedMs|noticedUnixMs|startTicks|ageSeconds|ms|overheadMs|noticedAfterReadyMs|medianNoticedAfterReadyMs|medianOverheadMs|size|startedUnix|residualSeconds)": -?\d+"#,
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
        (
            r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+",
            "[TOKEN]",
        ),
        (
            r"kubeadm-recover-revert-[0-9A-Za-z.-]+",
            "kubeadm-recover-revert-[SESSION]",
        ),
        (r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]"),
        (r"<redacted sha256:[0-9a-f]{8}>", "<redacted sha256:[FP]>"),
        (r#""deadlineUnix": \d+"#, r#""deadlineUnix": "[N]""#),
        // `certs check`'s RESIDUAL column: time left on a certificate issued this very second
        // is a whole year (or ten); a second later it is a day less: the same, for a snapshot.
        (r"  365d(  +)", "  364d$1"),
        // The seconds a TokenRequest granted, from its expiry against the clock at the answer:
        // the request may straddle a second.
        (r#""grantedSeconds": 3601"#, r#""grantedSeconds": 3600"#),
        (r"  3650d(  +)", "  3649d$1"),
    ];
    s.add_filter(&escape(&root.display().to_string()), "[ROOT]");
    for (regex, replacement) in filters {
        s.add_filter(regex, *replacement);
    }
    s
}

/// Pins a command's stdout as text and as JSON (and stderr where it carries the message).
pub fn pin(node: &dyn Sandbox, name: &str, args: &[&str], code: i32) {
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

/// Pins text and JSON of a command run with the test clock at `now`.
fn pin_at(node: &dyn Sandbox, name: &str, now: i64, args: &[&str], code: i32) {
    let now = now.to_string();
    let text = node
        .run()
        .args(args)
        .env("KUBEADM_RECOVER_NOW", &now)
        .code(code);
    let json = node
        .run()
        .args(args)
        .args(["-o", "json"])
        .env("KUBEADM_RECOVER_NOW", &now)
        .code(code);
    settings(node.root()).bind(|| {
        insta::assert_snapshot!(format!("{name}.txt"), text.stdout);
        insta::assert_snapshot!(format!("{name}.json"), json.stdout);
    });
}

#[test]
#[cfg_attr(
    not(feature = "test-clock"),
    ignore = "needs the test clock: run tests/run.sh (--features test-clock)"
)]
fn the_migration_toolkit_and_the_diagnosis() {
    const NOW: i64 = 1_800_000_000;
    let node = Node::new();
    let stale = unsigned_jwt(serde_json::json!({
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": "system:serviceaccount:web:frontend",
        "aud": ["https://kubernetes.default.svc.cluster.local"],
        "iat": NOW - 7200, "nbf": NOW - 7200, "exp": NOW + 365 * 86_400,
        "kubernetes.io": {"namespace": "web", "serviceaccount": {"name": "frontend", "uid": "u1"},
                          "pod": {"name": "web-1", "uid": "u2"}, "node": {"name": "cp-1", "uid": "u3"},
                          "warnafter": NOW - 3593},
    }));
    let token_file = node.path("/srv/token");
    std::fs::create_dir_all(token_file.parent().unwrap()).unwrap();
    std::fs::write(&token_file, &stale).unwrap();
    let token_arg = token_file.to_str().unwrap();
    pin_at(
        &node,
        "token-inspect-stale",
        NOW,
        &["token", "inspect", token_arg],
        0,
    );

    let expired = unsigned_jwt(serde_json::json!({"sub": "alice", "exp": NOW - 3600}));
    let kubeconfig = node.path("/home/alice/.kube/config");
    std::fs::create_dir_all(kubeconfig.parent().unwrap()).unwrap();
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: alice\n  user:\n    auth-provider:\n      name: oidc\n      config:\n        id-token: {expired}\n        refresh-token: r\n\
             - name: eks\n  user:\n    exec:\n      command: aws\n      args: [eks, get-token, --cluster-name, prod]\n"
        ),
    )
    .unwrap();
    let kubeconfig_arg = "/home/alice/.kube/config";
    pin_at(
        &node,
        "kubeconfig-prune-expired-dry-run",
        NOW,
        &[
            "kubeconfig",
            "prune-expired",
            "--dry-run",
            "--kubeconfig",
            kubeconfig_arg,
        ],
        0,
    );

    let sim = SimNode::start();
    pin(&sim, "diagnose-live", &["diagnose"], 0);
    crate::migrate::legacy_token_in_use(|args| sim.kubectl("/etc/kubernetes/admin.conf", args));
    pin(&sim, "migrate-check", &["migrate", "check"], 1);
}

/// One run with `env` set: (stdout, stderr), with the expected exit code.
fn run_with(node: &dyn Sandbox, env: &[(&str, &str)], args: &[&str], code: i32) -> Output {
    let mut run = node.run().args(args);
    for (key, value) in env {
        run = run.env(key, value);
    }
    run.code(code)
}

#[test]
fn the_token_api_set_token_and_the_revert_deadline() {
    let sim = SimNode::start();
    let create = [
        "token",
        "create",
        "deployer",
        "-n",
        "ci",
        "--duration",
        "1h",
    ];
    let created = run_with(&sim, &[], &create, 0);
    let created_json = run_with(&sim, &[], &[&create[..], &["-o", "json"]].concat(), 0);
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), created.stdout.trim()).unwrap();
    let token = token_file.path().to_str().unwrap();
    let review = run_with(&sim, &[], &["token", "review", token], 0);
    let review_json = run_with(&sim, &[], &["token", "review", token, "-o", "json"], 0);
    let forged = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(forged.path(), "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln").unwrap();
    let forged = forged.path().to_str().unwrap();
    let rejected = run_with(&sim, &[], &["token", "review", forged], 1);
    let rejected_json = run_with(&sim, &[], &["token", "review", forged, "-o", "json"], 1);

    let kubeconfig = sim.path("/etc/ci/ci.conf");
    std::fs::create_dir_all(kubeconfig.parent().unwrap()).unwrap();
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user:\n    token: a-long-lived-secret-token\n",
    )
    .unwrap();
    // A node path: under --root, every path the tool is given is the node's.
    let kubeconfig = "/etc/ci/ci.conf";
    let set_token = [
        "kubeconfig",
        "set-token",
        "--kubeconfig",
        kubeconfig,
        "--user",
        "ci",
        "--from",
        "deployer",
        "-n",
        "ci",
    ];
    let set_dry = run_with(
        &sim,
        &[],
        &[&set_token[..], &["--duration", "1h", "--dry-run"]].concat(),
        0,
    );
    let set_text = run_with(
        &sim,
        &[],
        &[&set_token[..], &["--duration", "1h", "--yes"]].concat(),
        0,
    );
    // Another lifetime: the same request in the same second is the same token.
    let set_json = run_with(
        &sim,
        &[],
        &[&set_token[..], &["--yes", "--duration", "2h", "-o", "json"]].concat(),
        0,
    );

    let systemd = crate::schedule::FakeSystemd::new();
    let path = systemd.path_env();
    let env = [
        ("PATH", path.as_str()),
        (crate::schedule::SANDBOX_SYSTEMD, "1"),
    ];
    let enable = ["extend-tokens", "enable", "--yes", "--revert-after", "2d"];
    let enable_text = run_with(&sim, &env, &enable, 0);
    run_with(&sim, &env, &["revert", "--yes", "--stale-window", "0s"], 0);
    let enable_json = run_with(&sim, &env, &[&enable[..], &["-o", "json"]].concat(), 0);

    for secret in ["a-long-lived-secret-token", created.stdout.trim()] {
        for out in [&set_dry, &set_text, &set_json] {
            assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
        }
    }
    settings(sim.root()).bind(|| {
        insta::assert_snapshot!("token-create.stderr", created.stderr);
        insta::assert_snapshot!("token-create.json", created_json.stdout);
        insta::assert_snapshot!("token-review.txt", review.stdout);
        insta::assert_snapshot!("token-review.json", review_json.stdout);
        insta::assert_snapshot!("token-review-rejected.txt", rejected.stdout);
        insta::assert_snapshot!("token-review-rejected.json", rejected_json.stdout);
        insta::assert_snapshot!("kubeconfig-set-token-dry-run.txt", set_dry.stdout);
        insta::assert_snapshot!("kubeconfig-set-token.txt", set_text.stdout);
        insta::assert_snapshot!("kubeconfig-set-token.json", set_json.stdout);
        insta::assert_snapshot!("extend-tokens-enable-revert-after.txt", enable_text.stdout);
        insta::assert_snapshot!("extend-tokens-enable-revert-after.json", enable_json.stdout);
    });
}

#[test]
fn an_interrupted_change_resumed_and_one_abandoned() {
    let sim = SimNode::start();
    sim.killed_mid_change();
    sim.configure(|c| c.frozen = false);
    pin_once(&sim, "resume.json", &["resume", "--yes", "-o", "json"]);
    let sim = SimNode::start();
    sim.killed_mid_change();
    let session = sim.status()["session"]["id"].as_str().unwrap().to_string();
    pin_once(
        &sim,
        "journal-abandon.json",
        &[
            "journal",
            "abandon",
            "--session",
            &session,
            "--yes",
            "--reason",
            "edited by hand",
            "-o",
            "json",
        ],
    );
}
