//! A person's own machine: no root, no node. `kubeconfig check`, `prune-expired` and `revert`
//! work on the person's kubeconfig with the records in their own state directory, and nothing
//! appears under /etc or /var.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::harness::*;

/// `nobody`: a user without root, and without a home of its own.
const NOBODY: (u32, u32) = (65534, 65534);

fn jwt(exp: i64) -> String {
    unsigned_jwt(serde_json::json!({"iss": "https://idp.example", "sub": "alice", "exp": exp}))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A home directory in the real /tmp (sticky, world-writable: as on a laptop's /tmp), owned
/// by `owner`.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new(owner: (u32, u32)) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kubeadm-recover-home-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(dir.path(), Some(owner.0), Some(owner.1)).unwrap();
        Home { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `~/.kube/config`, owned like the home.
    fn kubeconfig(&self, text: &str) -> PathBuf {
        let meta = std::fs::metadata(self.path()).unwrap();
        let kube = self.path().join(".kube");
        std::fs::create_dir_all(&kube).unwrap();
        let file = kube.join("config");
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        for p in [&kube, &file] {
            use std::os::unix::fs::MetadataExt;
            std::os::unix::fs::chown(p, Some(meta.uid()), Some(meta.gid())).unwrap();
        }
        file
    }

    /// The tool as the home's owner, with only this home in its environment.
    fn run(&self, user: (u32, u32)) -> Run {
        Run::new()
            .user(user.0, user.1)
            .env("HOME", self.path().to_str().unwrap())
            .env("XDG_STATE_HOME", "")
            .env("KUBECONFIG", "")
            .env("NO_COLOR", "1")
    }
}

/// What exists of the node's own state directories: the same before and after.
fn node_state() -> Vec<(String, Option<Vec<String>>)> {
    [
        "/etc/kubernetes",
        "/etc/kubernetes/tmp",
        "/var/lib/kubeadm-recover",
        "/var/log/kubeadm-recover",
    ]
    .iter()
    .map(|d| {
        let listing = std::fs::read_dir(d).ok().map(|entries| {
            let mut names: Vec<String> = entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        });
        (d.to_string(), listing)
    })
    .collect()
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn oidc_and_static(server: &str, expired: i64) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: oidc\nclusters:\n- name: prod\n  cluster:\n    server: {server}\n\
         contexts:\n- name: oidc\n  context:\n    cluster: prod\n    user: alice\n- name: ci\n  context:\n    cluster: prod\n    user: ci\n\
         users:\n- name: alice\n  user:\n    auth-provider:\n      name: oidc\n      config:\n        client-id: kubernetes\n        idp-issuer-url: https://idp.example\n        id-token: {}\n        refresh-token: opaque-refresh\n\
         - name: ci\n  user:\n    token: {}\n",
        jwt(expired),
        jwt(expired)
    )
}

#[test]
fn a_person_without_root_checks_prunes_and_reverts_their_own_kubeconfig() {
    let before = node_state();
    let home = Home::new(NOBODY);
    let server = format!("https://127.0.0.1:{}", closed_port());
    let original = oidc_and_static(&server, now() - 3600);
    let file = home.kubeconfig(&original);

    // check: both expired credentials named, each in its context; exit 1.
    let oidc = home
        .run(NOBODY)
        .args(["kubeconfig", "check", "-o", "json"])
        .code(1)
        .json();
    let kinds = |doc: &serde_json::Value| -> Vec<String> {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(oidc["context"], "oidc");
    assert_eq!(
        kinds(&oidc),
        ["expiredToken", "connectionRefused"],
        "{oidc:#}"
    );
    assert_eq!(oidc["findings"][0]["field"], "auth-provider id-token");
    assert_eq!(oidc["works"], false);
    // The other context's expired token is named too: kubectl fails there next.
    let other = &oidc["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "otherContext")
        .unwrap_or_else(|| panic!("{oidc:#}"));
    assert_eq!(
        (other["context"].as_str(), other["what"].as_str()),
        (Some("ci"), Some("token"))
    );
    let ci = home
        .run(NOBODY)
        .args(["kubeconfig", "check", "--context", "ci"])
        .code(1);
    // The same file through a link of the person's own (a dotfiles directory), as kubectl
    // follows it: a person without root follows their own links.
    let dotfiles = home.path().join("dotfiles");
    std::fs::create_dir(&dotfiles).unwrap();
    std::os::unix::fs::chown(&dotfiles, Some(NOBODY.0), Some(NOBODY.1)).unwrap();
    std::os::unix::fs::symlink(&file, dotfiles.join("kubeconfig")).unwrap();
    let linked = home
        .run(NOBODY)
        .args(["kubeconfig", "check", "-o", "json", "--kubeconfig"])
        .arg(dotfiles.join("kubeconfig"))
        .code(1)
        .json();
    assert_eq!(kinds(&linked), kinds(&oidc));
    assert!(
        ci.stdout.contains("user ci: the token EXPIRED"),
        "{}",
        ci.stdout
    );
    assert!(
        ci.stdout
            .contains("kubectl says: error: You must be logged in"),
        "{}",
        ci.stdout
    );

    // prune-expired --yes: no root asked, the backup in the person's own state directory.
    let pruned = home
        .run(NOBODY)
        .args(["kubeconfig", "prune-expired", "--yes", "-o", "json"])
        .ok()
        .json();
    let state = home.path().join(".local/state/kubeadm-recover");
    let backup = pruned["backup"]["path"].as_str().unwrap();
    assert!(
        Path::new(backup).starts_with(state.join("backups")),
        "{backup}"
    );
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&state).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (NOBODY.0, 0o700));
    }
    let now_text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !now_text.contains("id-token:") && !now_text.contains("    token:"),
        "{now_text}"
    );
    let after = home
        .run(NOBODY)
        .args(["kubeconfig", "check", "-o", "json"])
        .code(1)
        .json();
    assert_eq!(
        kinds(&after),
        ["connectionRefused"],
        "only the server is left: {after:#}"
    );

    // revert --session, from the person's own journal.
    let journal = home
        .run(NOBODY)
        .args(["journal", "list", "-o", "json"])
        .ok()
        .json();
    let session = journal["sessions"][0]["id"].as_str().unwrap().to_string();
    home.run(NOBODY)
        .args(["revert", "--yes", "--session", &session])
        .ok();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);

    assert_eq!(
        node_state(),
        before,
        "nothing under /etc or /var was made or changed"
    );
}

#[test]
fn as_root_a_state_directory_another_user_controls_is_refused_and_nothing_changes() {
    let home = Home::new(NOBODY);
    let server = format!("https://127.0.0.1:{}", closed_port());
    let original = oidc_and_static(&server, now() - 3600);
    let file = home.kubeconfig(&original);
    // `sudo -E`: root, with the person's $HOME.
    let out = Run::new()
        .env("HOME", home.path().to_str().unwrap())
        .env("XDG_STATE_HOME", "")
        .args(["kubeconfig", "prune-expired", "--yes", "--kubeconfig"])
        .arg(&file)
        .code(3);
    assert!(
        out.stderr.contains("another user controls"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("sudo -H"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    assert!(!home.path().join(".local").exists());
}

/// Writes a kubeconfig derived from the node's admin.conf by `edit`, in a private directory.
fn variant(dir: &Path, name: &str, text: String) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn replace_line(text: &str, key: &str, value: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with(&format!("{key}:")) {
                let indent = &l[..l.len() - l.trim_start().len()];
                format!("{indent}{key}: {value}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Another CA's certificate, base64 PEM (real openssl).
fn another_ca(dir: &Path) -> String {
    use base64::Engine;
    let (key, crt) = (dir.join("other.key"), dir.join("other.crt"));
    bash_ok([
        "-c",
        &format!(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=other-ca -keyout {} -out {} 2>/dev/null",
            key.display(),
            crt.display()
        ),
    ]);
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(crt).unwrap())
}

#[test]
fn kubeconfig_check_says_what_kubectl_says_and_agrees_on_whether_it_works() {
    let sim = SimNode::start();
    let admin = std::fs::read_to_string(sim.path("/etc/kubernetes/admin.conf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let closed = format!("https://127.0.0.1:{}", closed_port());
    let cases: Vec<(&str, PathBuf, Option<&str>)> = vec![
        ("works", variant(dir.path(), "works", admin.clone()), None),
        (
            "missing user",
            variant(
                dir.path(),
                "user",
                admin.replace("user: kubernetes-admin", "user: ghost"),
            ),
            Some("invalidConfiguration"),
        ),
        (
            "unreadable CA",
            variant(
                dir.path(),
                "ca",
                replace_line(
                    &admin,
                    "certificate-authority-data",
                    "bm90IGEgY2VydGlmaWNhdGU=",
                ),
            ),
            Some("invalidConfiguration"),
        ),
        (
            "another CA",
            variant(
                dir.path(),
                "other",
                replace_line(
                    &admin,
                    "certificate-authority-data",
                    &another_ca(dir.path()),
                ),
            ),
            Some("unknownAuthority"),
        ),
        (
            "refused",
            variant(
                dir.path(),
                "refused",
                replace_line(&admin, "server", &closed),
            ),
            Some("connectionRefused"),
        ),
    ];
    for (name, path, expected) in cases {
        let kubectl = std::process::Command::new("kubectl")
            .args([
                "auth",
                "whoami",
                "-o",
                "json",
                "--request-timeout",
                "10s",
                "--kubeconfig",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let ours = Run::new()
            .args(["kubeconfig", "check", "-o", "json", "--kubeconfig"])
            .arg(&path)
            .output();
        let doc = ours.json();
        assert_eq!(
            (kubectl.status.success(), ours.code),
            (expected.is_none(), if expected.is_none() { 0 } else { 1 }),
            "{name}: kubectl {}\n{doc:#}",
            String::from_utf8_lossy(&kubectl.stderr)
        );
        match expected {
            None => {
                assert_eq!(
                    doc["identity"]["username"], "kubernetes-admin",
                    "{name}: {doc:#}"
                );
                assert_eq!(doc["works"], true);
            }
            Some(kind) => {
                assert_eq!(doc["findings"][0]["kind"], kind, "{name}: {doc:#}");
                // kubectl's own words for it, as kubectl printed them.
                let said = doc["findings"][0]["kubectlSays"].as_str().unwrap();
                let stderr = String::from_utf8_lossy(&kubectl.stderr);
                let key = match (kind, name) {
                    ("unknownAuthority", _) => "certificate signed by unknown authority",
                    ("connectionRefused", _) => "was refused",
                    (_, "missing user") => "error: EOF",
                    _ => "unable to load root certificates",
                };
                assert!(
                    said.contains(key) && stderr.contains(key),
                    "{name}: ours {said:?}, kubectl {stderr:?}"
                );
            }
        }
    }
}

#[test]
fn set_token_on_a_workstation_asks_with_the_persons_own_kubeconfig() {
    use base64::Engine;
    let sim = SimNode::start();
    let home = Home::new(NOBODY);
    // The person's own admin kubeconfig (a copy of the node's), and a CI kubeconfig.
    let admin = home.path().join("admin.conf");
    std::fs::copy(sim.path("/etc/kubernetes/admin.conf"), &admin).unwrap();
    std::os::unix::fs::chown(&admin, Some(NOBODY.0), Some(NOBODY.1)).unwrap();
    let ca = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(sim.path("/etc/kubernetes/pki/ca.crt")).unwrap());
    let ci = home.kubeconfig(&format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: https://127.0.0.1:{}\n  name: k\n\
         contexts:\n- context:\n    cluster: k\n    user: ci\n  name: ci\ncurrent-context: ci\n\
         users:\n- name: ci\n  user:\n    token: a-long-lived-secret-token\n",
        sim.port
    ));
    let before = node_state();
    // Without --using, on a machine with no admin.conf: the error says what to give.
    let set_token = || {
        home.run(NOBODY).args([
            "kubeconfig",
            "set-token",
            "--user",
            "ci",
            "--from",
            "deployer",
            "-n",
            "ci",
            "--yes",
        ])
    };
    let out = set_token().output();
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("admin.conf"), "{}", out.stderr);
    set_token().arg("--using").arg(&admin).ok();
    assert!(
        !std::fs::read_to_string(&ci)
            .unwrap()
            .contains("a-long-lived-secret-token")
    );
    let check = home
        .run(NOBODY)
        .args(["kubeconfig", "check", "-o", "json"])
        .ok()
        .json();
    assert_eq!(
        check["identity"]["username"], "system:serviceaccount:ci:deployer",
        "{check:#}"
    );
    assert_eq!(node_state(), before, "nothing under /etc or /var");
}

#[test]
fn kubeconfig_files_merge_as_kubectl_merges_them() {
    let sim = SimNode::start();
    let admin = std::fs::read_to_string(sim.path("/etc/kubernetes/admin.conf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // kubectl writes `current-context: ""` into files it creates; the next file's counts.
    let extra = dir.path().join("extra");
    std::fs::write(
        &extra,
        "apiVersion: v1\nkind: Config\ncurrent-context: \"\"\nclusters:\n- name: other\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: other\n  context:\n    cluster: other\n    user: other\nusers:\n- name: other\n  user:\n    token: abc\n",
    )
    .unwrap();
    let admin_copy = dir.path().join("admin");
    std::fs::write(&admin_copy, &admin).unwrap();
    let list = format!(
        "{}:{}:{}",
        extra.display(),
        dir.path().join("missing").display(),
        admin_copy.display()
    );
    let kubectl = std::process::Command::new("kubectl")
        .args(["auth", "whoami", "-o", "json"])
        .env("KUBECONFIG", &list)
        .output()
        .unwrap();
    assert!(
        kubectl.status.success(),
        "{}",
        String::from_utf8_lossy(&kubectl.stderr)
    );
    let ours = Run::new()
        .env("KUBECONFIG", &list)
        .args(["kubeconfig", "check", "-o", "json"])
        .ok()
        .json();
    assert_eq!(ours["identity"]["username"], "kubernetes-admin", "{ours:#}");
    assert_eq!(ours["files"].as_array().unwrap().len(), 2, "{ours:#}");
    assert!(
        ours["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "skipped"),
        "{ours:#}"
    );
}

#[test]
fn a_kubeconfig_that_does_not_parse_is_exit_1_and_never_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "s3cr3t-static-token-value-that-must-not-leak";
    let broken = dir.path().join("broken");
    std::fs::write(
        &broken,
        format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user:\n    token: \"{secret}\n"
        ),
    )
    .unwrap();
    for format in ["text", "json"] {
        let out = Run::new()
            .args(["kubeconfig", "check", "-o", format, "--kubeconfig"])
            .arg(&broken)
            .code(1);
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{}{}",
            out.stdout,
            out.stderr
        );
        assert!(out.stdout.contains("line"), "{}", out.stdout);
    }
}

#[test]
fn as_root_a_persons_kubeconfig_cannot_make_root_read_what_they_could_not() {
    let home = Home::new(NOBODY);
    // A secret only root may read, named by a kubeconfig the person wrote.
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("token");
    std::fs::write(&secret, "root-only-secret-token").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = home.kubeconfig(&format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    tokenFile: {}\n",
        closed_port(),
        secret.display()
    ));
    let doc = Run::new()
        .args(["kubeconfig", "check", "-o", "json", "--kubeconfig"])
        .arg(&file)
        .code(1)
        .json();
    assert_eq!(
        doc["findings"][0]["kind"], "invalidConfiguration",
        "{doc:#}"
    );
    assert!(
        doc["findings"][0]["kubectlSays"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{doc:#}"
    );
}
