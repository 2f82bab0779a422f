use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use expectrl::Expect;
use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession as Session;

pub use kubeadm_recover_sim::config::SimConfig;
pub use kubeadm_recover_sim::node::NodeOptions;

pub const FLAG: &str = "service-account-extend-token-expiration";

/// The simulator binary, built beside the product binary by `cargo test` (a workspace member).
pub fn simulator() -> PathBuf {
    let path =
        Path::new(env!("CARGO_BIN_EXE_kubeadm-recover")).with_file_name("kubeadm-recover-sim");
    assert!(
        path.is_file(),
        "{} is missing: run the tests from the workspace root (`cargo test`), which builds it",
        path.display()
    );
    path
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/manifests")
        .join(name)
}

/// Paths under a sandbox root that the simulation writes on its own.
const SIMULATION_OWNED: &[&str] = &[
    "var/lib/kubeadm-recover-sim",
    "var/log/pods",
    "var/log/kubernetes",
    // a real node's etcd data
    "var/lib/etcd",
];

/// What every sandbox node offers: its files under a temp dir, and the binary pointed at it.
pub trait Sandbox {
    fn root(&self) -> &Path;

    fn path(&self, node_path: &str) -> PathBuf {
        self.root().join(node_path.trim_start_matches('/'))
    }

    /// The node's own name for a file under the root: what `--kubeconfig` takes under `--root`.
    fn node_path(&self, host: &Path) -> String {
        format!("/{}", host.strip_prefix(self.root()).unwrap().display())
    }

    /// A temp dir inside the node, for files a test hands the tool by their node path.
    fn node_tempdir(&self) -> tempfile::TempDir {
        tempfile::tempdir_in(self.root()).unwrap()
    }

    fn manifest_path(&self) -> PathBuf {
        self.path("/etc/kubernetes/manifests/kube-apiserver.yaml")
    }

    fn manifest(&self) -> String {
        std::fs::read_to_string(self.manifest_path()).unwrap()
    }

    /// The names in the manifest directory: the kubelet reads every one of them.
    fn manifest_dir_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path("/etc/kubernetes/manifests"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Every file and directory under the root with a hash of its content and its mode:
    /// "nothing changed" is two snapshots being equal. What the simulated kubelet and apiserver write (their own state, pod logs, audit log)
    /// is not the tool's doing and is left out.
    fn snapshot(&self) -> Snapshot {
        fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, (String, u32)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                if SIMULATION_OWNED.iter().any(|p| rel.starts_with(p)) {
                    continue;
                }
                if meta.is_dir() {
                    out.insert(rel, (String::new(), meta.mode()));
                    walk(&path, root, out);
                } else if meta.is_symlink() {
                    let target = std::fs::read_link(&path).unwrap();
                    let hash = kubeadm_recover::node::store::sha256_hex(
                        target.as_os_str().as_encoded_bytes(),
                    );
                    out.insert(rel, (hash, meta.mode()));
                } else {
                    let hash =
                        kubeadm_recover::node::store::sha256_hex(&std::fs::read(&path).unwrap());
                    out.insert(rel, (hash, meta.mode()));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.root(), self.root(), &mut out);
        Snapshot(out)
    }

    fn backup_dirs(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.path("/etc/kubernetes/tmp")) else {
            return Vec::new();
        };
        let mut dirs: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("kubeadm-recover-backup-")
            })
            .collect();
        dirs.sort();
        dirs
    }

    /// The audit log's records, oldest first.
    fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("/var/log/kubeadm-recover/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The binary with `--root` pointing here.
    fn run(&self) -> Run {
        Run::new().arg("--root").arg(self.root().to_str().unwrap())
    }
}

impl Sandbox for Node {
    fn root(&self) -> &Path {
        self.dir.path()
    }
}

impl Sandbox for SimNode {
    fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// A sandbox kubeadm node in its own temp dir (parallel-safe).
pub struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    pub fn new() -> Self {
        Self::with_fixture("kubeadm-1.30.yaml")
    }

    pub fn with_fixture(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sandbox-node.sh"))
            .arg(dir.path())
            .arg(fixture(name))
            .status()
            .unwrap();
        assert!(status.success(), "sandbox-node.sh failed");
        Node { dir }
    }

    pub fn with_manifest_text(text: &str) -> Self {
        let node = Self::new();
        node.write_manifest(text);
        node
    }

    pub fn write_manifest(&self, text: &str) {
        std::fs::write(self.manifest_path(), text).unwrap();
    }
}

#[derive(PartialEq, Eq)]
pub struct Snapshot(BTreeMap<PathBuf, (String, u32)>);

impl Snapshot {
    /// The snapshot without `dir` and everything under it.
    pub fn without(mut self, dir: &str) -> Snapshot {
        self.0.retain(|path, _| !path.starts_with(dir));
        self
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (path, (hash, mode)) in &self.0 {
            writeln!(
                f,
                "{:o} {} {}",
                mode,
                &hash.get(..12).unwrap_or("dir"),
                path.display()
            )?;
        }
        Ok(())
    }
}

/// `bash ARGS`, which must succeed (its stderr is the failure message): its stdout.
pub fn bash_ok<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(args: I) -> String {
    let out = Command::new("bash").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes `command` join the network namespace of `netns` before it runs.
pub fn enter_on_exec(command: &mut Command, netns: &std::fs::File) {
    kubeadm_recover_sim::netns::join(command, netns);
}

/// A fluent builder over the built binary (just-style).
pub struct Run {
    command: Command,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new() -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubeadm-recover"));
        command
            .env_remove("KUBEADM_RECOVER_ROOT")
            .stdin(Stdio::null());
        Run { command }
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, args: I) -> Self {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.command.env(key, value);
        self
    }

    /// Runs as this user and group (no supplementary groups): a person without root.
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        use std::os::unix::process::CommandExt;
        // std drops root's supplementary groups when it changes the uid as root.
        self.command.uid(uid).gid(gid);
        self
    }

    /// Runs in the network namespace `netns` (an open /proc/PID/ns/net) names.
    pub fn in_network_namespace(mut self, netns: &std::fs::File) -> Self {
        enter_on_exec(&mut self.command, netns);
        self
    }

    pub fn spawn(mut self) -> std::process::Child {
        self.command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    pub fn output(mut self) -> Output {
        self.command.output().unwrap().into()
    }

    /// Runs and asserts the exit code, showing both streams when it differs.
    pub fn code(self, expected: i32) -> Output {
        let out = self.output();
        assert_eq!(
            out.code, expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            out.stdout, out.stderr
        );
        out
    }

    pub fn ok(self) -> Output {
        self.code(0)
    }
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Self {
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// A line with every item of the flag cut out (`, "--flag=x"` in flow lists); a block-list line
/// that is the flag's own item (`- --flag=x  # why`) becomes empty.
fn without_flag_items(line: &str) -> String {
    let spellings = [FLAG.to_string(), FLAG.replace('-', "_")];
    if line.trim_start().starts_with('-')
        && spellings.iter().any(|f| line.contains(f.as_str()))
        && !line.contains('[')
    {
        return String::new();
    }
    let mut out = line.to_string();
    for spelling in &spellings {
        while let Some(at) = out.find(&format!("--{spelling}")) {
            let mut start = at;
            let bytes = out.as_bytes();
            if start > 0 && matches!(bytes[start - 1], b'"' | b'\'') {
                start -= 1;
            }
            let mut end = at + 2 + spelling.len();
            while end < out.len()
                && !matches!(out.as_bytes()[end], b',' | b']' | b'"' | b'\'' | b' ')
            {
                end += 1;
            }
            if end < out.len() && matches!(out.as_bytes()[end], b'"' | b'\'') {
                end += 1;
            }
            let before = out[..start].trim_end();
            if let Some(stripped) = before.strip_suffix(',') {
                start = stripped.len();
            } else if out[end..].trim_start().starts_with(',') {
                end += out[end..].find(',').unwrap() + 1;
                end += out[end..].len() - out[end..].trim_start().len();
            }
            out.replace_range(start..end, "");
        }
    }
    out
}

/// Asserts that the edit changed nothing but the flag's own list items.
pub fn assert_only_flag_changed(old: &str, new: &str, context: &str) {
    let diff = similar::TextDiff::from_lines(old, new);
    let mut removed: Vec<String> = Vec::new();
    let mut added: Vec<String> = Vec::new();
    for change in diff.iter_all_changes() {
        let line = without_flag_items(change.value());
        if line.trim().is_empty() {
            continue;
        }
        match change.tag() {
            similar::ChangeTag::Delete => removed.push(line),
            similar::ChangeTag::Insert => added.push(line),
            similar::ChangeTag::Equal => {}
        }
    }
    assert_eq!(
        removed,
        added,
        "{context}: more than the flag changed\n{}",
        diff.unified_diff()
    );
}

/// A simulated node with its kubelet (and so its apiserver) running; stopped on drop.
pub struct SimNode {
    dir: tempfile::TempDir,
    kubelet: Option<std::process::Child>,
    pub port: u16,
}

impl SimNode {
    pub fn start() -> Self {
        Self::with(NodeOptions::default())
    }

    pub fn with(options: NodeOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let node = kubeadm_recover_sim::node::build(dir.path(), &options).unwrap();
        let kubelet = Command::new(simulator())
            .args(["kubelet", "--root"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let sim = SimNode {
            dir,
            kubelet: Some(kubelet),
            port: node.port,
        };
        sim.wait_healthy();
        sim
    }
}

impl SimNode {
    /// The real kubectl with one of the node's kubeconfigs.
    pub fn kubectl(&self, kubeconfig: &str, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.path(kubeconfig))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into()
    }
}

/// A sandbox whose simulated kubelet runs: its knobs can be turned while it does.
pub trait Running: Sandbox {
    fn status(&self) -> serde_json::Value {
        self.run().args(["status", "-o", "json"]).ok().json()
    }

    /// Waits (bounded) until the apiserver answers healthy.
    fn wait_healthy(&self) {
        // Bounded, generously: a real apiserver on a busy 2-core machine takes seconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while std::time::Instant::now() < deadline {
            if self.status()["apiserver"]["health"] == "ok" {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the apiserver did not come up:\n{}", self.status());
    }

    /// A change killed (SIGKILL) while it waits for a kubelet that never acts: the journal says
    /// in-progress and the manifest holds the new version.
    fn killed_mid_change(&self) {
        self.configure(|c| c.frozen = true);
        let mut child = self
            .run()
            .args([
                "extend-tokens",
                "disable",
                "--yes",
                "--stale-window",
                "0s",
                "--nudge-after",
                "10m",
                "--timeout",
                "10m",
            ])
            .spawn();
        let journal = self.path("/var/lib/kubeadm-recover/journal.json");
        for _ in 0..200 {
            if std::fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"step\": \"waiting\""))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let text = std::fs::read_to_string(&journal).unwrap();
        assert!(text.contains("in-progress"), "{text}");
    }

    /// Changes the simulation's knobs while it runs.
    fn configure(&self, change: impl FnOnce(&mut SimConfig)) {
        let mut config = SimConfig::load(self.root());
        change(&mut config);
        config.save(self.root()).unwrap();
    }

    fn audit_outcomes(&self) -> Vec<String> {
        self.audit_lines()
            .iter()
            .map(|record| record["outcome"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Running for SimNode {}

/// Stops a node's kubelet the way a node shuts down (SIGTERM: it stops its pods first).
fn stop_kubelet(kubelet: &mut Option<std::process::Child>) {
    if let Some(mut kubelet) = kubelet.take() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(kubelet.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = kubelet.wait();
    }
}

impl Drop for SimNode {
    fn drop(&mut self) {
        stop_kubelet(&mut self.kubelet);
    }
}

/// The real upstream binaries (kubeadm, kube-apiserver, etcd) for the upstream tier, from
/// `KUBEADM_RECOVER_KUBE_BIN` (tests/run.sh sets it after tests/upstream/build.sh). The tier's
/// tests are `#[ignore]`d, so a run without the binaries reports them as ignored, never as
/// passed; run explicitly (`--ignored`) without them, a test fails and says what to do.
pub fn kube_bin() -> PathBuf {
    match std::env::var_os("KUBEADM_RECOVER_KUBE_BIN").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => panic!(
            "the upstream tier needs KUBEADM_RECOVER_KUBE_BIN: build the binaries with \
             tests/upstream/build.sh (or run tests/run.sh, which does)"
        ),
    }
}

/// A node laid out by the real kubeadm, whose simulated kubelet runs the real etcd and
/// kube-apiserver, in a network namespace of its own (kubeadm's fixed ports and its non-loopback
/// advertise address, 192.0.2.10). Everything a test runs against it runs in that namespace.
pub struct RealNode {
    dir: tempfile::TempDir,
    holder: std::process::Child,
    netns: std::fs::File,
    kubelet: Option<std::process::Child>,
}

impl Sandbox for RealNode {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self) -> Run {
        Run::new()
            .in_network_namespace(&self.netns)
            .arg("--root")
            .arg(self.root().to_str().unwrap())
    }
}

impl Running for RealNode {}

impl RealNode {
    pub fn start() -> Self {
        Self::with(false)
    }

    pub fn with(admin_expired: bool) -> Self {
        let bin = kube_bin();
        let dir = tempfile::tempdir().unwrap();
        let mut node = Command::new(simulator());
        node.args(["node", "--root"])
            .arg(dir.path())
            .arg("--kube-bin")
            .arg(&bin);
        let out = node.output().unwrap();
        assert!(
            out.status.success(),
            "kubeadm layout failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut holder = Command::new(simulator())
            .arg("netns")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
            &mut ready,
        )
        .unwrap();
        assert_eq!(ready.trim(), "ready", "the network namespace holder failed");
        let netns = std::fs::File::open(format!("/proc/{}/ns/net", holder.id())).unwrap();
        let mut kubelet = Command::new(simulator());
        kubelet
            .args(["kubelet", "--root"])
            .arg(dir.path())
            .stdin(Stdio::null());
        enter_on_exec(&mut kubelet, &netns);
        let kubelet = kubelet.spawn().unwrap();
        let node = RealNode {
            dir,
            holder,
            netns,
            kubelet: Some(kubelet),
        };
        node.wait_healthy();
        let mut upload = Command::new(simulator());
        upload.args(["upload-config", "--root"]).arg(node.root());
        enter_on_exec(&mut upload, &node.netns);
        let out = upload.output().unwrap();
        assert!(
            out.status.success(),
            "kubeadm init phase upload-config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if admin_expired {
            kubeadm_recover_sim::kubeadm::expire_admin_credentials(node.root()).unwrap();
        }
        node
    }

    /// The real kubectl with one of the node's kubeconfigs, in the node's network namespace.
    pub fn kubectl(&self, kubeconfig: &str, args: &[&str]) -> Output {
        let path = self.path(kubeconfig);
        self.kubectl_raw(&[&["--kubeconfig", path.to_str().unwrap()], args].concat())
    }

    /// The real kubectl with a bearer token and no kubeconfig.
    pub fn kubectl_with_token(&self, token: &str, args: &[&str]) -> Output {
        let ca = self.path("/etc/kubernetes/pki/ca.crt");
        let server = format!(
            "https://{}:{}",
            kubeadm_recover_sim::netns::ADDRESS,
            kubeadm_recover_sim::kubeadm::APISERVER_PORT
        );
        self.kubectl_raw(
            &[
                &[
                    "--kubeconfig=/dev/null",
                    "--server",
                    &server,
                    "--certificate-authority",
                    ca.to_str().unwrap(),
                    "--token",
                    token,
                ],
                args,
            ]
            .concat(),
        )
    }

    fn kubectl_raw(&self, args: &[&str]) -> Output {
        let mut command = Command::new("kubectl");
        command.args(args).stdin(Stdio::null());
        enter_on_exec(&mut command, &self.netns);
        command.output().unwrap().into()
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        stop_kubelet(&mut self.kubelet);
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A JWT with fixed claims (its signature is not checked offline).
pub fn unsigned_jwt(claims: serde_json::Value) -> String {
    use base64::Engine;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(&serde_json::json!({"alg": "RS256", "kid": "k-2026"})),
        b64(&claims)
    )
}

/// A person at a terminal: the tool on a pseudo-terminal of its own (expectrl), as over SSH.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    DoIt,
    Skip,
    Details,
    Quit,
    CtrlC,
}

/// The tool on a terminal of its own (it is the session leader; the pty is its controlling
/// terminal, as over SSH).
pub struct Terminal {
    session: Session,
    seen: String,
}

impl Terminal {
    /// `kubeadm-recover --root NODE ARGS` on a new pseudo-terminal.
    pub fn run(node: &(impl Sandbox + ?Sized), args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubeadm-recover"));
        command
            .env_remove("KUBEADM_RECOVER_ROOT")
            .env("NO_COLOR", "1")
            .env("TERM", "xterm")
            .arg("--root")
            .arg(node.root())
            .args(args);
        let mut session = Session::spawn(command).expect("spawn on a pty");
        // The restart under a busy test run takes seconds; a hang still fails.
        session.set_expect_timeout(Some(Duration::from_secs(120)));
        Terminal {
            session,
            seen: String::new(),
        }
    }

    /// Waits for `text` on the screen; returns what came before it.
    pub fn expect(&mut self, text: &str) -> String {
        match self.session.expect(text) {
            Ok(found) => {
                let before = String::from_utf8_lossy(found.before()).into_owned();
                self.seen.push_str(&before);
                self.seen.push_str(text);
                before
            }
            Err(e) => panic!("waiting for {text:?}: {e}\nscreen so far:\n{}", self.seen),
        }
    }

    pub fn send(&mut self, keys: &str) {
        self.session.send(keys).unwrap();
    }

    /// Sends `signal` to the tool (as `kill` from another session would).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        // expectrl's pid is its own nix version's: by number.
        let pid = nix::unistd::Pid::from_raw(self.session.get_process().pid().as_raw());
        nix::sys::signal::kill(pid, signal).unwrap();
    }

    /// Waits for step `n`'s question (after its plan) and answers it; returns what the screen
    /// showed since the last answer (the previous step's result, this step's plan).
    pub fn answer(&mut self, n: usize, answer: Answer) -> String {
        let mut before = self.expect(&format!("== step {n}/"));
        before.push_str(&self.expect("quit"));
        // Let the question start reading keys.
        std::thread::sleep(Duration::from_millis(200));
        const DOWN: &str = "\x1b[B";
        let keys = match answer {
            Answer::DoIt => "\r".to_string(),
            Answer::Skip => format!("{DOWN}\r"),
            Answer::Details => format!("{DOWN}{DOWN}\r"),
            Answer::Quit => format!("{DOWN}{DOWN}{DOWN}\r"),
            Answer::CtrlC => "\x03".to_string(),
        };
        self.send(&keys);
        before
    }

    /// Everything until the tool exits, and its exit code.
    pub fn finish(mut self) -> (i32, String) {
        let rest = self.expect_eof();
        self.seen.push_str(&rest);
        let status = self.session.get_process().wait().unwrap();
        let code = match status {
            WaitStatus::Exited(_, code) => code,
            other => panic!("not a normal exit: {other:?}\n{}", self.seen),
        };
        (code, self.seen)
    }

    fn expect_eof(&mut self) -> String {
        match self.session.expect(expectrl::Eof) {
            Ok(found) => {
                let mut rest = String::from_utf8_lossy(found.before()).into_owned();
                for m in found.matches() {
                    rest.push_str(&String::from_utf8_lossy(m));
                }
                rest
            }
            Err(e) => panic!("waiting for the end: {e}\nscreen so far:\n{}", self.seen),
        }
    }
}

/// The simulator's `expire-certs`: re-signs the named certificates of the node under `root`
/// (all kubeadm's when `names` is empty; the kubelet's client pair by its name) to have ended
/// `days_ago` days ago (negative: to end in the future).
pub fn expire_certs(root: &Path, days_ago: i64, names: &[&str]) {
    let out = Command::new(simulator())
        .args([
            "expire-certs",
            &format!("--ended-days-ago={days_ago}"),
            "--root",
        ])
        .arg(root)
        .args(names)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The step titled `title` of a `certs renew` report.
pub fn renew_step<'a>(doc: &'a serde_json::Value, title: &str) -> &'a serde_json::Value {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["title"] == title)
        .unwrap_or_else(|| panic!("no step {title} in {doc}"))
}

/// (component, proof) of each component a `certs renew` report proved, in order.
pub fn component_proofs(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["components"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            (
                c["component"].as_str().unwrap().to_string(),
                c["proof"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
