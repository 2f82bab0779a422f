//! `token inspect|review|create` on the simulator (the upstream tier repeats the API ones
//! against the real apiserver).
use crate::harness::*;

/// `token create` through the tool: (token, stderr).
pub fn create_token(node: &impl Sandbox, args: &[&str]) -> (String, String) {
    let out = node.run().args(["token", "create"]).args(args).ok();
    let token = out.stdout.trim().to_string();
    assert_eq!(
        token.split('.').count(),
        3,
        "only the token on stdout: {}",
        out.stdout
    );
    (token, out.stderr)
}

/// `token inspect -` on `token`, as JSON.
pub fn inspect(node: &impl Sandbox, token: &str) -> serde_json::Value {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), token).unwrap();
    node.run()
        .args(["token", "inspect", "-o", "json"])
        .arg(file.path())
        .ok()
        .json()
}

/// Seconds from now to the token's exp.
pub fn lifetime(doc: &serde_json::Value) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    doc["tokens"][0]["expires"].as_i64().unwrap() - now
}

/// `token review` of `token`: (exit code, JSON).
pub fn review(node: &impl Sandbox, token: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), token).unwrap();
    let out = node
        .run()
        .args(["token", "review", "-o", "json"])
        .arg(file.path())
        .args(extra)
        .output();
    (out.code, out.json())
}

#[test]
fn a_created_token_inspects_to_its_lifetime_and_reviews_as_authenticated() {
    let sim = SimNode::start();
    let (token, stderr) = create_token(&sim, &["deployer", "-n", "ci", "--duration", "1h"]);
    assert!(stderr.contains("expires"), "{stderr}");
    assert!(!stderr.contains(&token), "the token only on stdout");
    let doc = inspect(&sim, &token);
    assert!((3500..=3600).contains(&lifetime(&doc)), "{doc}");
    assert_eq!(
        doc["tokens"][0]["subject"],
        "system:serviceaccount:ci:deployer"
    );
    assert_eq!(doc["tokens"][0]["verdict"], "valid");
    assert!(
        !doc.to_string().contains(&token),
        "inspect never prints the token"
    );

    let (code, doc) = review(&sim, &token, &[]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["authenticated"], true);
    assert_eq!(doc["username"], "system:serviceaccount:ci:deployer");
}

#[test]
fn a_pod_bound_3607_second_token_gets_a_year_only_with_extension_on() {
    let sim = SimNode::start();
    let bound = [
        "frontend",
        "-n",
        "web",
        "--bound-pod",
        "web-1",
        "--duration",
        "3607s",
    ];
    let (token, _) = create_token(&sim, &bound);
    let doc = inspect(&sim, &token);
    assert!(
        lifetime(&doc) > 300 * 86_400,
        "one year with extension on: {doc}"
    );
    assert!(doc["tokens"][0]["kubernetes"]["warnAfter"].is_number());
    assert_eq!(doc["tokens"][0]["kubernetes"]["pod"]["name"], "web-1");

    sim.run()
        .args(["extend-tokens", "disable", "--yes", "--accept-stale-tokens"])
        .ok();
    let (token, _) = create_token(&sim, &bound);
    let doc = inspect(&sim, &token);
    assert!(
        (3500..=3607).contains(&lifetime(&doc)),
        "3607 s with it off: {doc}"
    );
}

#[test]
fn an_expired_token_reviews_as_not_authenticated_with_exit_1() {
    let sim = SimNode::start();
    let (token, _) = create_token(&sim, &["deployer", "-n", "ci", "--duration", "10m"]);
    sim.configure(|c| c.clock_offset_seconds = 3600);
    let (code, doc) = review(&sim, &token, &[]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(
        doc["kind"], "TokenReview",
        "the review is the document, not an error"
    );
    assert_eq!(doc["authenticated"], false);
}

#[test]
fn malformed_tokens_are_usage_errors_that_never_echo_the_text() {
    let node = Node::new();
    for text in ["not-a-token", "aGVsbG8.d29ybGQ.c2ln", ""] {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        let out = node
            .run()
            .args(["token", "inspect"])
            .arg(file.path())
            .code(2);
        assert!(
            out.stderr.contains("does not hold a readable token"),
            "{}",
            out.stderr
        );
        if !text.is_empty() {
            assert!(!out.stderr.contains(text), "{}", out.stderr);
        }
    }
}

#[test]
fn inspect_reads_the_tokens_a_kubeconfig_holds() {
    let sim = SimNode::start();
    let (token, _) = create_token(&sim, &["deployer", "-n", "ci", "--duration", "1h"]);
    let dir = sim.node_tempdir();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: ci\ncontexts:\n- name: ci\n  context: {{cluster: k, user: deployer}}\n\
             users:\n- name: deployer\n  user:\n    token: {token}\n\
             - name: oidc\n  user:\n    auth-provider:\n      name: oidc\n      config:\n        id-token: {token}\n        refresh-token: r\n"
        ),
    )
    .unwrap();
    let doc = sim
        .run()
        .args(["token", "inspect", "-o", "json", "--kubeconfig"])
        .arg(sim.node_path(&kubeconfig))
        .ok()
        .json();
    let tokens = doc["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1, "the current context's user: {doc}");
    assert_eq!(tokens[0]["user"], "deployer");
    assert_eq!(tokens[0]["field"], "token");
    let doc = sim
        .run()
        .args([
            "token",
            "inspect",
            "-o",
            "json",
            "--user",
            "oidc",
            "--kubeconfig",
        ])
        .arg(sim.node_path(&kubeconfig))
        .ok()
        .json();
    assert_eq!(doc["tokens"][0]["field"], "auth-provider id-token");
    let out = sim
        .run()
        .args(["token", "inspect", "--user", "nobody", "--kubeconfig"])
        .arg(sim.node_path(&kubeconfig))
        .code(2);
    assert!(
        out.stderr.contains("it has: deployer, oidc"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_lifetime_the_apiserver_shortens_or_refuses_is_reported_in_its_words() {
    let sim = SimNode::with(NodeOptions {
        extra_args: vec!["--service-account-max-token-expiration=2h".into()],
        ..Default::default()
    });
    let (token, stderr) = create_token(&sim, &["deployer", "-n", "ci", "--duration", "48h"]);
    assert!(stderr.contains("shortened"), "{stderr}");
    assert!((7000..=7200).contains(&lifetime(&inspect(&sim, &token))));
    let out = sim
        .run()
        .args([
            "token",
            "create",
            "deployer",
            "-n",
            "ci",
            "--duration",
            "5m",
        ])
        .code(1);
    assert!(
        out.stderr
            .contains("may not specify a duration less than 10 minutes"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "no token: {}", out.stdout);
}
