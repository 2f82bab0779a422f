//! What is wrong with this node, in plain words: facts in, findings out, each with its severity,
//! its evidence and its fix. Pure — `diagnose`, `status` and (later) `guide` read the node and
//! hand the facts here, so every face says the same thing.
use serde::Serialize;

/// Within this many days an expiry is a warning.
pub const SOON_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The cluster does not answer its operators, or a change is half done.
    Critical,
    /// It will break, or something is off.
    Warning,
    /// Worth knowing now.
    Info,
}

impl Severity {
    /// How text output shows it: a critical finding stands out.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// A finding's stable name, which scripts key on (`-o json` gives it as `admin-expired`, ...)
/// and the guide matches on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FindingId {
    AdminConfInvalid,
    AdminConfUnreadable,
    AdminExpired,
    AdminExpiring,
    ApiserverCrashLooping,
    ApiserverNotRunning,
    ApiserverPortTaken,
    ApiserverUnhealthy,
    BackupChecksum,
    DependsOnTokenExtension,
    EtcdClusterIdMismatch,
    EtcdDown,
    JournalUnreadable,
    KubeconfigCopyStale,
    KubeletClientExpired,
    KubeletNotRunning,
    ManifestParked,
    ManifestUnreadable,
    NotANode,
    RestartPending,
    StrayManifest,
    SuperAdminExpired,
    SuperAdminExpiring,
    SwapOn,
    TokenExtensionOff,
    TokenExtensionOn,
    UnfinishedSession,
    WorkerNode,
    /// A control-plane certificate expired or expiring: `certificate-<name>`.
    Certificate(String),
    /// Renewed on disk but not in use by its component: `certificate-not-in-use-<name>`.
    CertificateNotInUse(String),
}

impl FindingId {
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed(match self {
            FindingId::AdminConfInvalid => "admin-conf-invalid",
            FindingId::AdminConfUnreadable => "admin-conf-unreadable",
            FindingId::AdminExpired => "admin-expired",
            FindingId::AdminExpiring => "admin-expiring",
            FindingId::ApiserverCrashLooping => "apiserver-crash-looping",
            FindingId::ApiserverNotRunning => "apiserver-not-running",
            FindingId::ApiserverPortTaken => "apiserver-port-taken",
            FindingId::ApiserverUnhealthy => "apiserver-unhealthy",
            FindingId::BackupChecksum => "backup-checksum",
            FindingId::DependsOnTokenExtension => "depends-on-token-extension",
            FindingId::EtcdClusterIdMismatch => "etcd-cluster-id-mismatch",
            FindingId::EtcdDown => "etcd-down",
            FindingId::JournalUnreadable => "journal-unreadable",
            FindingId::KubeconfigCopyStale => "kubeconfig-copy-stale",
            FindingId::KubeletClientExpired => "kubelet-client-expired",
            FindingId::KubeletNotRunning => "kubelet-not-running",
            FindingId::ManifestParked => "manifest-parked",
            FindingId::ManifestUnreadable => "manifest-unreadable",
            FindingId::NotANode => "not-a-node",
            FindingId::RestartPending => "restart-pending",
            FindingId::StrayManifest => "stray-manifest",
            FindingId::SuperAdminExpired => "super-admin-expired",
            FindingId::SuperAdminExpiring => "super-admin-expiring",
            FindingId::SwapOn => "swap-on",
            FindingId::TokenExtensionOff => "token-extension-off",
            FindingId::TokenExtensionOn => "token-extension-on",
            FindingId::UnfinishedSession => "unfinished-session",
            FindingId::WorkerNode => "worker-node",
            FindingId::Certificate(name) => {
                return std::borrow::Cow::Owned(format!("certificate-{name}"));
            }
            FindingId::CertificateNotInUse(name) => {
                return std::borrow::Cow::Owned(format!("certificate-not-in-use-{name}"));
            }
        })
    }

    /// Every finding with a fixed name (the certificates are named after each certificate).
    pub const FIXED: [FindingId; 28] = [
        FindingId::AdminConfInvalid,
        FindingId::AdminConfUnreadable,
        FindingId::AdminExpired,
        FindingId::AdminExpiring,
        FindingId::ApiserverCrashLooping,
        FindingId::ApiserverNotRunning,
        FindingId::ApiserverPortTaken,
        FindingId::ApiserverUnhealthy,
        FindingId::BackupChecksum,
        FindingId::DependsOnTokenExtension,
        FindingId::EtcdClusterIdMismatch,
        FindingId::EtcdDown,
        FindingId::JournalUnreadable,
        FindingId::KubeconfigCopyStale,
        FindingId::KubeletClientExpired,
        FindingId::KubeletNotRunning,
        FindingId::ManifestParked,
        FindingId::ManifestUnreadable,
        FindingId::NotANode,
        FindingId::RestartPending,
        FindingId::StrayManifest,
        FindingId::SuperAdminExpired,
        FindingId::SuperAdminExpiring,
        FindingId::SwapOn,
        FindingId::TokenExtensionOff,
        FindingId::TokenExtensionOn,
        FindingId::UnfinishedSession,
        FindingId::WorkerNode,
    ];

    /// The expiry of an admin credential, by the file it is in.
    fn credential(file: &str, expired: bool) -> FindingId {
        match (file == "super-admin.conf", expired) {
            (true, true) => FindingId::SuperAdminExpired,
            (true, false) => FindingId::SuperAdminExpiring,
            (false, true) => FindingId::AdminExpired,
            (false, false) => FindingId::AdminExpiring,
        }
    }
}

impl std::fmt::Display for FindingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// A name that is no finding's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no finding is named {0:?}")]
pub struct UnknownFinding(String);

impl std::str::FromStr for FindingId {
    type Err = UnknownFinding;

    fn from_str(name: &str) -> Result<Self, UnknownFinding> {
        if let Some(cert) = name.strip_prefix("certificate-not-in-use-") {
            return Ok(FindingId::CertificateNotInUse(cert.to_string()));
        }
        if let Some(cert) = name.strip_prefix("certificate-") {
            return Ok(FindingId::Certificate(cert.to_string()));
        }
        FindingId::FIXED
            .into_iter()
            .find(|id| id.name() == name)
            .ok_or_else(|| UnknownFinding(name.to_string()))
    }
}

impl Serialize for FindingId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// A stable name scripts can key on, e.g. `admin-conf-expired`.
    pub id: FindingId,
    pub severity: Severity,
    pub summary: String,
    pub evidence: String,
    pub fix: String,
}

/// A certificate's expiry, by what it is.
#[derive(Debug, Clone, Default)]
pub struct Expiry {
    /// `admin.conf`, `apiserver`, `etcd/server`, ...
    pub name: String,
    /// Where it was read.
    pub path: String,
    pub not_after: Option<i64>,
    pub problem: Option<String>,
}

/// What `/livez` and `/readyz` said. Reports show it as `"ok"` or the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    Unhealthy(String),
}

impl Health {
    pub fn is_ok(&self) -> bool {
        matches!(self, Health::Ok)
    }
}

impl Serialize for Health {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Health::Ok => serializer.serialize_str("ok"),
            Health::Unhealthy(why) => serializer.serialize_str(why),
        }
    }
}

/// The apiserver as /proc and its health show it.
#[derive(Debug, Clone, Default)]
pub struct Apiserver {
    pub pid: Option<i32>,
    /// `None` when it was not asked.
    pub health: Option<Health>,
    pub matches_manifest: Option<bool>,
    /// The flag's effective value in its command line.
    pub extends_tokens: Option<bool>,
    /// Attempts that exited under /var/log/pods for the current manifest, with the last lines.
    pub crashed_attempts: usize,
    pub last_log: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub now: i64,
    /// admin.conf and super-admin.conf.
    pub credentials: Vec<Expiry>,
    /// Kubeconfig copies holding an older admin certificate than admin.conf's.
    pub stale_copies: Vec<String>,
    /// What is wrong with the control-plane certificates (`certs check`'s verdict).
    pub certificate_problems: Vec<crate::certs::verdict::Problem>,
    pub kubelet_running: bool,
    /// The node is a `--root` other than the host's `/`: the host's systemd does not run it.
    pub sandbox: bool,
    /// The manifest's problem, when it cannot be read.
    pub manifest_problem: Option<String>,
    /// The flag's effective value in the manifest (`None`: unknown).
    pub manifest_extends_tokens: Option<bool>,
    pub apiserver: Apiserver,
    /// `migrate check`'s line, when something depends on the extension.
    pub migration: Option<String>,
    /// (session id, what to do) of an unfinished session.
    pub unfinished: Option<(String, String)>,
    pub parked_manifest: Option<String>,
    pub strays: Vec<String>,
    pub bad_backups: Vec<String>,
    pub journal_problem: Option<String>,
    /// The kubelet's facts every node shares (swap).
    pub kubelet: KubeletFacts,
    /// Stacked etcd (an etcd manifest on this node), looked at when the apiserver is not healthy.
    pub etcd: Option<Etcd>,
    /// A process other than kube-apiserver listening on the apiserver's port: (pid, name).
    pub port_holder: Option<(i32, String)>,
    /// admin.conf as kubectl reads it: (what is wrong, what kubectl prints).
    pub admin_conf_invalid: Option<(String, String)>,
    /// The manifest's Kubernetes version, for advice that depends on it.
    pub version: Option<(u32, u32, u32)>,
}

/// What a node's kubelet meets, on a control-plane node and a worker alike.
#[derive(Debug, Clone, Default)]
pub struct KubeletFacts {
    pub swap: Option<crate::survey::machine::Swap>,
}

/// A stacked etcd member, from its manifest, its port and its log.
#[derive(Debug, Clone, Default)]
pub struct Etcd {
    /// Where it serves clients (`127.0.0.1:2379`).
    pub client_endpoint: String,
    pub listening: bool,
    /// Its static pod manifest is in the manifest directory.
    pub manifest: bool,
    /// The last lines of its newest log.
    pub last_log: Option<String>,
    /// The newest log line that says "cluster ID mismatch", read.
    pub cluster_id_mismatch: Option<crate::survey::etcd_log::ClusterIdMismatch>,
}

/// A worker node's facts.
#[derive(Debug, Clone, Default)]
pub struct WorkerFacts {
    pub now: i64,
    pub sandbox: bool,
    /// The apiserver kubelet.conf talks to.
    pub server: Option<String>,
    pub kubelet_running: bool,
    pub kubelet_client: Option<crate::survey::machine::KubeletClient>,
    pub kubelet: KubeletFacts,
}

fn finding(
    id: FindingId,
    severity: Severity,
    summary: String,
    evidence: String,
    fix: String,
) -> Finding {
    Finding {
        id,
        severity,
        summary,
        evidence,
        fix,
    }
}

fn days(seconds: i64) -> String {
    match seconds.abs() / 86_400 {
        0 => "today".into(),
        1 => "1 day".into(),
        n => format!("{n} days"),
    }
}

fn credential_findings(facts: &Facts, out: &mut Vec<Finding>) {
    for c in &facts.credentials {
        let Some(not_after) = c.not_after else {
            if let Some(problem) = &c.problem
                && c.name == "admin.conf"
            {
                out.push(finding(
                    FindingId::AdminConfUnreadable,
                    Severity::Critical,
                    format!("{} cannot be used: {problem}", c.name),
                    c.path.clone(),
                    "kubeadm-recover admin-conf regenerate".into(),
                ));
            }
            continue;
        };
        // Copies are made of admin.conf only; super-admin.conf stays on the node.
        let flag = if c.name == "super-admin.conf" {
            " --only-super-admin"
        } else {
            " --update-copies"
        };
        let left = not_after - facts.now;
        if left <= 0 {
            out.push(finding(
                FindingId::credential(&c.name, true),
                Severity::Critical,
                format!(
                    "{} expired {} ago: kubectl with it cannot authenticate (401 Unauthorized)",
                    c.name,
                    days(left)
                ),
                format!(
                    "{}: not after {}",
                    c.path,
                    crate::runtime::clock::rfc3339(not_after)
                ),
                format!("kubeadm-recover admin-conf regenerate{flag}"),
            ));
        } else if left <= SOON_DAYS * 86_400 {
            out.push(finding(
                FindingId::credential(&c.name, false),
                Severity::Warning,
                format!("{} expires in {}", c.name, days(left)),
                format!(
                    "{}: not after {}",
                    c.path,
                    crate::runtime::clock::rfc3339(not_after)
                ),
                format!("kubeadm-recover admin-conf regenerate{flag}"),
            ));
        }
    }
    for copy in &facts.stale_copies {
        out.push(finding(
            FindingId::KubeconfigCopyStale,
            Severity::Warning,
            format!("{copy} holds an older admin certificate than admin.conf"),
            copy.clone(),
            format!("kubeadm-recover admin-conf regenerate --update-copies --copy {copy}"),
        ));
    }
}

/// `certs check`'s verdict, but for admin.conf and super-admin.conf, whose expiry the credential
/// findings report (with this tool's own fix).
fn certificate_findings(facts: &Facts, out: &mut Vec<Finding>) {
    use crate::certs::verdict::{Level, Problem};
    for problem in &facts.certificate_problems {
        let name = problem.subject();
        let id = match problem {
            Problem::Ends { .. } if ["admin.conf", "super-admin.conf"].contains(&name) => continue,
            Problem::AuthorityKeyAbsent { .. } => continue,
            Problem::NotInUse { .. } => FindingId::CertificateNotInUse(name.into()),
            _ => FindingId::Certificate(name.into()),
        };
        let severity = match problem.level() {
            Level::Critical => Severity::Critical,
            Level::Warning => Severity::Warning,
            Level::Info => Severity::Info,
        };
        out.push(finding(
            id,
            severity,
            problem.summary(),
            problem.evidence(),
            problem.fix(),
        ));
    }
}

fn apiserver_findings(facts: &Facts, out: &mut Vec<Finding>) {
    if !facts.kubelet_running {
        out.push(finding(
            FindingId::KubeletNotRunning,
            Severity::Critical,
            "the kubelet is not running: nothing restarts the control-plane pods".into(),
            "no kubelet process for this node".into(),
            if facts.sandbox {
                "start the kubelet that runs this root's manifests (the host's systemctl does not: this is not the host's own node)".into()
            } else {
                "systemctl start kubelet (and journalctl -u kubelet for why it stopped)".into()
            },
        ));
    }
    let a = &facts.apiserver;
    if a.crashed_attempts >= 2 {
        out.push(finding(
            FindingId::ApiserverCrashLooping,
            Severity::Critical,
            format!(
                "kube-apiserver keeps exiting ({} attempts under /var/log/pods)",
                a.crashed_attempts
            ),
            a.last_log.clone().unwrap_or_default(),
            "read the last attempt's log; `kubeadm-recover revert` puts back the last change this tool made".into(),
        ));
    }
    match (a.pid, &a.health) {
        (None, _) if facts.manifest_problem.is_none() => out.push(finding(
            FindingId::ApiserverNotRunning,
            Severity::Critical,
            "no kube-apiserver process serves the manifest's port: kubectl gets \"The connection to the server ... was refused\"".into(),
            "/proc".into(),
            "check the kubelet and the apiserver's pod logs under /var/log/pods".into(),
        )),
        (Some(pid), Some(Health::Unhealthy(why))) => out.push(finding(
            FindingId::ApiserverUnhealthy,
            Severity::Critical,
            format!("kube-apiserver (pid {pid}) is not healthy"),
            why.clone(),
            "wait for it to finish starting; if it does not, read its log under /var/log/pods"
                .into(),
        )),
        _ => {}
    }
    if a.matches_manifest == Some(false) {
        out.push(finding(
            FindingId::RestartPending,
            Severity::Warning,
            "the running kube-apiserver's command line differs from the manifest: a restart is pending".into(),
            format!("pid {}", a.pid.unwrap_or_default()),
            "wait for the kubelet (up to its 20 s relist), or see `kubeadm-recover status`".into(),
        ));
    }
}

fn extension_findings(facts: &Facts, out: &mut Vec<Finding>) {
    let running = facts.apiserver.extends_tokens;
    let state = match (facts.manifest_extends_tokens, running) {
        (Some(true), Some(true)) | (Some(true), None) => Some(true),
        (Some(false), Some(false)) | (Some(false), None) => Some(false),
        _ => None,
    };
    match state {
        Some(true) => out.push(finding(
            FindingId::TokenExtensionOn,
            Severity::Info,
            "token extension is on: projected service-account tokens live a year, stale clients keep working".into(),
            "--service-account-extend-token-expiration (manifest and running process)".into(),
            "migrate the clients (kubeadm-recover migrate check), then turn it off: kubeadm-recover revert, or extend-tokens disable".into(),
        )),
        Some(false) => out.push(finding(
            FindingId::TokenExtensionOff,
            Severity::Info,
            "token extension is off: tokens die at their real expiry; clients with old tokens get 401 'invalid bearer token'".into(),
            "--service-account-extend-token-expiration=false".into(),
            "if clients are locked out: kubeadm-recover extend-tokens enable --revert-after 7d".into(),
        )),
        None => {}
    }
    if let Some(migration) = &facts.migration {
        out.push(finding(
            FindingId::DependsOnTokenExtension,
            Severity::Warning,
            "workloads still depend on long-lived or stale tokens".into(),
            migration.clone(),
            "kubeadm-recover migrate check (it shows what to change)".into(),
        ));
    }
}

fn node_findings(facts: &Facts, out: &mut Vec<Finding>) {
    if let Some(problem) = &facts.manifest_problem {
        out.push(finding(
            FindingId::ManifestUnreadable,
            Severity::Critical,
            "the apiserver manifest cannot be read as a pod".into(),
            problem.clone(),
            "fix the file (the message names the line), or kubeadm-recover backups restore".into(),
        ));
    }
    if let Some((id, what)) = &facts.unfinished {
        out.push(finding(
            FindingId::UnfinishedSession,
            Severity::Critical,
            format!("a change was interrupted (session {id})"),
            what.clone(),
            "kubeadm-recover resume, or kubeadm-recover revert".into(),
        ));
    }
    if let Some(problem) = &facts.journal_problem {
        out.push(finding(
            FindingId::JournalUnreadable,
            Severity::Critical,
            "the recovery journal cannot be read: every change is refused".into(),
            problem.clone(),
            "look at /var/lib/kubeadm-recover/journal.json".into(),
        ));
    }
    if let Some(parked) = &facts.parked_manifest {
        out.push(finding(
            FindingId::ManifestParked,
            Severity::Critical,
            "the apiserver manifest is parked outside the manifest directory by an interrupted nudge".into(),
            parked.clone(),
            "any kubeadm-recover change puts it back first; or move it back by hand".into(),
        ));
    }
    for stray in &facts.strays {
        out.push(finding(
            FindingId::StrayManifest,
            Severity::Warning,
            "a stray file in the manifest directory: the kubelet runs it too".into(),
            stray.clone(),
            "move it out of /etc/kubernetes/manifests (or pass --move-strays to the next change)"
                .into(),
        ));
    }
    for backup in &facts.bad_backups {
        out.push(finding(
            FindingId::BackupChecksum,
            Severity::Warning,
            "a backup fails its checksums: it cannot be restored".into(),
            backup.clone(),
            "keep it for inspection; make a new backup with the next change".into(),
        ));
    }
}

/// Swap on while the kubelet refuses it: "running with swap on is not supported" in its log,
/// and it exits. Only while the kubelet is down: a kubelet that runs with swap on accepted it
/// (a flag, a setting this tool does not see), and is not told otherwise.
fn swap_findings(
    kubelet: &KubeletFacts,
    kubelet_running: bool,
    version: Option<(u32, u32, u32)>,
    out: &mut Vec<Finding>,
) {
    let Some(swap) = kubelet
        .swap
        .as_ref()
        .filter(|s| s.refused() && !kubelet_running)
    else {
        return;
    };
    let setting = match swap.fail_swap_on {
        None => "/var/lib/kubelet/config.yaml: failSwapOn not set (the default, true)".to_string(),
        Some(v) => format!("{}: fail-swap-on {v}", swap.fail_swap_on_from),
    };
    let fstab = match swap.fstab.as_slice() {
        [] => "check /etc/fstab and systemd swap units so that it stays off after a reboot"
            .to_string(),
        lines => format!(
            "comment out the swap line in /etc/fstab ({}) so that it stays off after a reboot",
            lines.join("; ")
        ),
    };
    // NodeSwap: beta (on by default, LimitedSwap) from 1.28, GA in 1.34.
    let swap_supported = version.is_none_or(|(major, minor, _)| (major, minor) >= (1, 28));
    let alternative = if swap_supported {
        "; or keep swap and let the kubelet use it (NodeSwap, Kubernetes 1.28 and later): failSwapOn: false and memorySwap: {swapBehavior: LimitedSwap} in /var/lib/kubelet/config.yaml (and the kubelet-config ConfigMap, for the next kubeadm upgrade)"
    } else {
        " (this version's kubelet cannot run with swap: NodeSwap needs 1.28 or later)"
    };
    out.push(finding(
        FindingId::SwapOn,
        Severity::Critical,
        "swap is on and the kubelet refuses it: \"running with swap on is not supported\" (why it does not start)".into(),
        format!("/proc/swaps: {}; {setting}", swap.areas.join(", ")),
        format!("swapoff -a, then {fstab}{alternative}; then systemctl restart kubelet"),
    ));
}

/// Why the apiserver does not answer, beyond its own process: another process on its port, a
/// stacked etcd that is down or belongs to another cluster.
fn connection_refused_findings(facts: &Facts, out: &mut Vec<Finding>) {
    let a = &facts.apiserver;
    if let Some((pid, name)) = &facts.port_holder
        && a.pid.is_none()
    {
        out.push(finding(
            FindingId::ApiserverPortTaken,
            Severity::Critical,
            format!(
                "another process holds the apiserver's port: kube-apiserver cannot bind it (\"bind: address already in use\"), so kubectl's connection is refused or reaches {}",
                crate::ui::escape(name)
            ),
            format!("pid {pid} ({}) listens on the manifest's port", crate::ui::escape(name)),
            "stop that process or move it to another port; the kubelet's next attempt binds the port".into(),
        ));
    }
    let Some(etcd) = &facts.etcd else {
        return;
    };
    if let Some(mismatch) = &etcd.cluster_id_mismatch {
        let (summary, fix) = cluster_id_mismatch_said(mismatch);
        out.push(finding(
            FindingId::EtcdClusterIdMismatch,
            Severity::Critical,
            summary,
            mismatch.line().to_string(),
            fix,
        ));
    }
    let apiserver_down =
        a.pid.is_none() || a.crashed_attempts >= 2 || a.health.as_ref().is_some_and(|h| !h.is_ok());
    if apiserver_down && !etcd.listening && etcd.cluster_id_mismatch.is_none() {
        out.push(finding(
            FindingId::EtcdDown,
            Severity::Critical,
            format!(
                "etcd is not serving ({} does not answer): the apiserver cannot serve without its storage",
                etcd.client_endpoint
            ),
            if etcd.manifest {
                etcd.last_log
                    .clone()
                    .unwrap_or_else(|| "no etcd log under /var/log/pods".into())
            } else {
                "the apiserver's --etcd-servers is this node, and /etc/kubernetes/manifests has no etcd.yaml (moved out or deleted: the kubelet stopped etcd)".into()
            },
            if etcd.manifest {
                "read etcd's log (/var/log/pods/kube-system_etcd-*, or crictl logs): a full disk (df /var/lib/etcd), an expired etcd certificate (`kubeadm-recover certs check`), or a data directory that does not load are the usual causes; the kubelet restarts etcd by itself once the cause is gone".into()
            } else {
                "if kubeadm's etcd static pod was moved out, put etcd.yaml back into /etc/kubernetes/manifests (the kubelet starts etcd within seconds); if etcd runs as a service here instead, `systemctl status etcd` and its journal".into()
            },
        ));
    }
}

/// What a cluster-ID mismatch means and what to do. Never automatic, and never a member named
/// as the stranger: which end logs what does not tell which member holds another cluster's data
/// (see `etcd_log`), so the fix starts with the check that decides it, then backups, then the
/// removal, with `--force-new-cluster` only on the one member whose data is kept.
fn cluster_id_mismatch_said(
    mismatch: &crate::survey::etcd_log::ClusterIdMismatch,
) -> (String, String) {
    use crate::survey::etcd_log::ClusterIdMismatch;
    let (who, ids) = match mismatch {
        ClusterIdMismatch::PeerAnswersAsAnotherCluster {
            peer_id,
            peer_url,
            peer_cluster,
            own_cluster,
            ..
        } => (
            format!(
                "this member lists member {}{} as a peer, and it answers as another cluster",
                crate::ui::escape(peer_id),
                peer_url
                    .as_deref()
                    .map(|url| format!(" at {}", crate::ui::escape(url)))
                    .unwrap_or_default()
            ),
            format!(
                " ({} there, {} here)",
                crate::ui::escape(peer_cluster),
                crate::ui::escape(own_cluster)
            ),
        ),
        ClusterIdMismatch::PeerSentAsAnotherCluster {
            peer_cluster,
            own_cluster,
            ..
        } => (
            "a peer sends to this member as another cluster".to_string(),
            format!(
                " ({} there, {} here)",
                crate::ui::escape(peer_cluster),
                crate::ui::escape(own_cluster)
            ),
        ),
        ClusterIdMismatch::Unread { .. } => (
            "this member and a peer belong to different clusters".to_string(),
            String::new(),
        ),
    };
    (
        format!(
            "etcd: cluster ID mismatch: {who}{ids}: one of the two holds another cluster's data (a machine reused without `kubeadm reset`, a wiped member rejoining, a member added by mistake); where the stranger counts as a voter the cluster may have lost quorum, and then the apiserver has no storage"
        ),
        "never automatic, and never by deleting data on a guess: the member that logs this is not necessarily the healthy one. First decide which member holds this cluster's data: on each, with etcdctl (in the etcd container, with the certificates under /etc/kubernetes/pki/etcd), `etcdctl endpoint status -w table` (cluster ID, revision, size) and `etcdctl get /registry/namespaces/kube-system --keys-only --consistency=s` (this Kubernetes cluster's data answers). Copy /var/lib/etcd and /etc/kubernetes/pki of every member aside before changing anything. Then take the stranger out: on its machine move its etcd.yaml out of /etc/kubernetes/manifests (its etcd stops) and its /var/lib/etcd aside; from a member with quorum, `etcdctl member list --consistency=s` and `etcdctl member remove ID`. Where the cluster lost quorum to it (the stranger was the second of two voters): on the one member whose data you keep, add --force-new-cluster to etcd's command in etcd.yaml once (the kubelet restarts etcd; it keeps that member's data and forgets every other member), remove the flag once etcd answers, and reset and rejoin every other member. Rejoin the stranger's machine with `kubeadm reset` and `kubeadm join --control-plane`; a single-member cluster with no good data left: restore a snapshot (`etcdutl snapshot restore`)".into(),
    )
}

/// admin.conf as kubectl reads it: a file that is there but that kubectl cannot use.
fn admin_conf_findings(facts: &Facts, out: &mut Vec<Finding>) {
    if let Some((reason, said)) = &facts.admin_conf_invalid {
        out.push(finding(
            FindingId::AdminConfInvalid,
            Severity::Critical,
            format!(
                "admin.conf is not a kubeconfig kubectl can use: {}",
                crate::ui::escape(reason)
            ),
            format!("kubectl says: {}", crate::ui::escape(said)),
            "kubeadm-recover admin-conf regenerate (writes it afresh from the cluster CA); `kubeadm-recover kubeconfig check --kubeconfig /etc/kubernetes/admin.conf` explains it".into(),
        ));
    }
}

/// A worker's findings: what can be checked on it (the kubelet, its client certificate, swap),
/// and where the control plane is for the rest. Never a fix that needs the control plane's files.
pub fn diagnose_worker(facts: &WorkerFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let server = facts
        .server
        .clone()
        .unwrap_or_else(|| "the server in /etc/kubernetes/kubelet.conf".into());
    out.push(finding(
        FindingId::WorkerNode,
        Severity::Info,
        format!("this is a worker node; the control plane is at {}", crate::ui::escape(&server)),
        "a kubelet.conf and no control-plane static pod manifest".into(),
        "the control plane's checks and fixes (its manifests, admin.conf, its certificates, token extension) run on a control-plane node: ssh there and run `kubeadm-recover diagnose`; from here, `kubeadm-recover kubeconfig check` checks a kubeconfig".into(),
    ));
    if !facts.kubelet_running {
        out.push(finding(
            FindingId::KubeletNotRunning,
            Severity::Critical,
            "the kubelet is not running: this node's pods are not managed and the node goes NotReady".into(),
            "no kubelet process for this node".into(),
            if facts.sandbox {
                "start the kubelet that runs this root (the host's systemctl does not)".into()
            } else {
                "systemctl start kubelet (and journalctl -u kubelet for why it stopped)".into()
            },
        ));
    }
    swap_findings(&facts.kubelet, facts.kubelet_running, None, &mut out);
    if let Some(client) = &facts.kubelet_client {
        let expired = client.not_after.is_some_and(|n| n <= facts.now);
        if expired || client.problem.is_some() {
            out.push(finding(
                FindingId::KubeletClientExpired,
                Severity::Critical,
                match client.not_after {
                    Some(n) if expired => format!(
                        "the kubelet's client certificate expired {} ago: the apiserver refuses the kubelet (\"Unauthorized\"), the node goes NotReady",
                        days(facts.now - n)
                    ),
                    _ => "the kubelet's client certificate cannot be read".into(),
                },
                match &client.problem {
                    Some(problem) => format!("{}: {problem}", client.path),
                    None => client.path.clone(),
                },
                "the CA's key is on a control-plane node, not here. There: `kubeadm kubeconfig user --org system:nodes --client-name system:node:NODE > kubelet.conf`; copy it here as /etc/kubernetes/kubelet.conf (keep the old one), systemctl restart kubelet, and once /var/lib/kubelet/pki/kubelet-client-current.pem is made again, point kubelet.conf's client-certificate and client-key at it (kubeadm's troubleshooting: kubelet client certificate rotation fails)".into(),
            ));
        }
    }
    out.sort_by_key(|f| f.severity);
    out
}

/// The one finding of a machine that is no Kubernetes node.
pub fn diagnose_not_a_node(sandbox: bool) -> Vec<Finding> {
    vec![finding(
        FindingId::NotANode,
        Severity::Info,
        if sandbox {
            "the filesystem --root names is not a Kubernetes node's".into()
        } else {
            "this machine is not a Kubernetes node".into()
        },
        "no control-plane static pod manifest under /etc/kubernetes/manifests and no /etc/kubernetes/kubelet.conf".into(),
        if sandbox {
            "--root points at no node's filesystem: give the directory where the node's disk is mounted".into()
        } else {
            "run kubeadm-recover on a control-plane node (over ssh); to look at a node's disk mounted here: `kubeadm-recover --root /mnt/node diagnose`; for a kubeconfig on this machine: `kubeadm-recover kubeconfig check`".into()
        },
    )]
}

/// The findings, most severe first (within a severity, in the order a person fixes them).
pub fn diagnose(facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    node_findings(facts, &mut out);
    apiserver_findings(facts, &mut out);
    swap_findings(
        &facts.kubelet,
        facts.kubelet_running,
        facts.version,
        &mut out,
    );
    connection_refused_findings(facts, &mut out);
    admin_conf_findings(facts, &mut out);
    credential_findings(facts, &mut out);
    certificate_findings(facts, &mut out);
    extension_findings(facts, &mut out);
    out.sort_by_key(|f| f.severity);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn healthy() -> Facts {
        Facts {
            sandbox: false,
            now: NOW,
            credentials: vec![Expiry {
                name: "admin.conf".into(),
                path: "/etc/kubernetes/admin.conf".into(),
                not_after: Some(NOW + 300 * 86_400),
                problem: None,
            }],
            kubelet_running: true,
            manifest_extends_tokens: Some(true),
            apiserver: Apiserver {
                pid: Some(42),
                health: Some(Health::Ok),
                matches_manifest: Some(true),
                extends_tokens: Some(true),
                ..Apiserver::default()
            },
            ..Facts::default()
        }
    }

    #[test]
    fn every_finding_id_is_named_once_and_reads_back() {
        let mut names = std::collections::BTreeSet::new();
        for id in FindingId::FIXED {
            assert_eq!(id.name().parse::<FindingId>(), Ok(id.clone()));
            assert_eq!(serde_json::to_value(&id).unwrap(), id.name().as_ref());
            assert!(names.insert(id.name()), "{id} is named twice");
        }
        let cert = FindingId::Certificate("etcd-server".into());
        assert_eq!(cert.to_string(), "certificate-etcd-server");
        assert_eq!("certificate-etcd-server".parse::<FindingId>(), Ok(cert));
        assert!("no-such-finding".parse::<FindingId>().is_err());
    }

    fn ids(facts: &Facts) -> Vec<String> {
        diagnose(facts)
            .into_iter()
            .map(|f| f.id.to_string())
            .collect()
    }

    #[test]
    fn a_healthy_node_only_says_what_the_extension_means() {
        assert_eq!(ids(&healthy()), ["token-extension-on"]);
    }

    #[test]
    fn each_problem_is_one_finding_with_its_fix_most_severe_first() {
        let mut facts = healthy();
        facts.credentials[0].not_after = Some(NOW - 3 * 86_400);
        facts.credentials.push(Expiry {
            name: "super-admin.conf".into(),
            path: "/etc/kubernetes/super-admin.conf".into(),
            not_after: Some(NOW + 10 * 86_400),
            problem: None,
        });
        facts
            .certificate_problems
            .push(crate::certs::verdict::Problem::Ends {
                name: "etcd-server",
                validity: crate::certs::verdict::Validity::Expired,
                not_after: crate::runtime::clock::rfc3339(NOW - 86_400),
                path: "/etc/kubernetes/pki/etcd/server.crt".into(),
                is_authority: false,
                pickup: Some(crate::certs::catalogue::leaf("etcd-server").unwrap().pickup),
            });
        facts.kubelet_running = false;
        facts.apiserver.matches_manifest = Some(false);
        facts
            .strays
            .push("/etc/kubernetes/manifests/kube-apiserver.yaml.bak".into());
        facts.unfinished = Some(("s1".into(), "resume or revert".into()));
        facts.migration = Some("1 service-account-token secret(s)".into());
        let found = diagnose(&facts);
        let ids: Vec<String> = found.iter().map(|f| f.id.to_string()).collect();
        assert_eq!(
            ids,
            [
                "unfinished-session",
                "kubelet-not-running",
                "admin-expired",
                "certificate-etcd-server",
                "stray-manifest",
                "restart-pending",
                "super-admin-expiring",
                "depends-on-token-extension",
                "token-extension-on"
            ]
        );
        let admin = &found[2];
        assert_eq!(
            admin.summary,
            "admin.conf expired 3 days ago: kubectl with it cannot authenticate (401 Unauthorized)"
        );
        assert_eq!(
            admin.fix,
            "kubeadm-recover admin-conf regenerate --update-copies"
        );
        assert!(
            found[3]
                .fix
                .starts_with("kubeadm-recover certs renew etcd-server")
        );
        assert_eq!(
            found[6].fix,
            "kubeadm-recover admin-conf regenerate --only-super-admin"
        );
    }

    #[test]
    fn a_crash_loop_and_a_missing_apiserver_are_critical() {
        let mut facts = healthy();
        facts.apiserver = Apiserver {
            crashed_attempts: 3,
            last_log: Some("Error: invalid argument".into()),
            ..Apiserver::default()
        };
        assert_eq!(
            ids(&facts),
            [
                "apiserver-crash-looping",
                "apiserver-not-running",
                "token-extension-on"
            ]
        );
    }
}
