//! The node's facts, read once for `status`, `diagnose` and `guide`: the manifest, the running
//! apiserver and kubelet, the journal, the backups, the admin credentials and the certificates,
//! and the findings the pure `diagnose` module makes of them. Reads only.
use std::path::PathBuf;

use serde::Serialize;

use crate::apiserver::client::{ApiClient, Endpoint};
use crate::apiserver::process;
use crate::change::journal::{Journal, Session, State};
use crate::credentials::copies;
use crate::credentials::issue::Kind;
use crate::credentials::kubeconfig::edit as kubeconfig_edit;
use crate::credentials::kubeconfig::{CredentialInfo, credential_info};
use crate::manifest::{ExtendTokens, Manifest};
use crate::node::NodeLayout;
use crate::node::store::backup::{self, BackupFile};
use crate::node::store::strays;
use crate::survey::diagnose::{
    Apiserver, Etcd, Expiry, Facts, Finding, Health, KubeletFacts, WorkerFacts,
};
use crate::survey::machine::{self, KubeletClient, Role, Swap};

/// What the machine shows: a control-plane node's whole status, or what else it is.
#[derive(Debug)]
pub enum Survey {
    ControlPlane(Box<Status>),
    Worker(Box<WorkerStatus>),
    NotANode(NotANode),
}

impl Survey {
    pub fn into_findings(self) -> Vec<Finding> {
        match self {
            Survey::ControlPlane(status) => status.findings,
            Survey::Worker(worker) => worker.findings,
            Survey::NotANode(none) => none.findings,
        }
    }
}

/// A worker: what can be checked here, and where its control plane is.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    pub root: PathBuf,
    pub machine: Role,
    /// The apiserver kubelet.conf talks to.
    pub control_plane: Option<String>,
    pub kubelet_running: bool,
    pub kubelet_client: Option<KubeletClient>,
    /// The container runtime the kubelet is configured for.
    pub runtime_endpoint: Option<String>,
    pub swap: Option<Swap>,
    pub findings: Vec<Finding>,
}

/// A machine that is no Kubernetes node.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotANode {
    pub root: PathBuf,
    pub machine: Role,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub root: PathBuf,
    pub machine: Role,
    pub session: Option<SessionSummary>,
    /// The journal cannot be read: every change is refused until someone looks at it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_problem: Option<String>,
    pub manifest: ManifestStatus,
    /// The apiserver for the manifest's port; absent when the manifest cannot be read.
    pub apiserver: Option<ApiserverStatus>,
    pub kubelet_running: bool,
    pub strays: Vec<StrayEntry>,
    pub backups: Vec<BackupEntry>,
    pub credentials: Vec<CredentialInfo>,
    /// The control-plane certificates in one line each way (`certs check` has them all).
    pub certificates: CertificatesSummary,
    /// `migrate check`'s one line, when the apiserver answers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<String>,
    /// Every control-plane node of the cluster (an HA cluster has several), when the API answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane_nodes: Option<Vec<ControlPlaneNode>>,
    /// What is wrong, as `diagnose` says it (the same pure module, from the same facts).
    pub findings: Vec<Finding>,
}

/// The certificates, summed up: which have expired, which expire within 30 days, which are
/// renewed on disk but not in use, and the next to expire.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesSummary {
    pub expired: Vec<&'static str>,
    pub expiring: Vec<&'static str>,
    pub not_in_use: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_expiry: Option<NextExpiry>,
    #[serde(skip)]
    pub problems: Vec<crate::certs::verdict::Problem>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NextExpiry {
    pub name: &'static str,
    pub not_after: String,
    #[serde(skip)]
    pub not_after_unix: i64,
}

impl CertificatesSummary {
    fn of(inventory: &crate::certs::inspect::Inventory, now: i64) -> Self {
        use crate::certs::verdict::{Problem, Validity};
        let problems = crate::certs::verdict::problems(inventory, now);
        let named = |want: Validity| {
            problems
                .iter()
                .filter_map(|p| match p {
                    Problem::Ends { name, validity, .. } if *validity == want => Some(*name),
                    _ => None,
                })
                .collect()
        };
        CertificatesSummary {
            expired: named(Validity::Expired),
            expiring: named(Validity::Expiring),
            not_in_use: problems
                .iter()
                .filter_map(|p| match p {
                    Problem::NotInUse { name, .. } => Some(*name),
                    _ => None,
                })
                .collect(),
            next_expiry: inventory
                .certificates
                .iter()
                .filter_map(|c| c.file.certificate().map(|cert| (c.name, cert)))
                .filter(|(_, cert)| cert.not_after_unix > now)
                .min_by_key(|(_, cert)| cert.not_after_unix)
                .map(|(name, cert)| NextExpiry {
                    name,
                    not_after: cert.not_after.clone(),
                    not_after_unix: cert.not_after_unix,
                }),
            problems,
        }
    }
}

/// A control-plane node as the API lists it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneNode {
    pub name: String,
    pub ready: bool,
}

impl ControlPlaneNode {
    /// `control plane  3 nodes: cp1 (Ready), ...` (nothing when the API listed none).
    pub fn line(nodes: &[ControlPlaneNode]) -> String {
        if nodes.is_empty() {
            return String::new();
        }
        let names: Vec<String> = nodes
            .iter()
            .map(|n| {
                format!(
                    "{} ({})",
                    crate::ui::escape(&n.name),
                    if n.ready { "Ready" } else { "NOT Ready" }
                )
            })
            .collect();
        format!(
            "control plane  {} node{}: {}\n",
            nodes.len(),
            if nodes.len() == 1 { "" } else { "s" },
            names.join(", ")
        )
    }
}

/// The cluster's control-plane nodes (label `node-role.kubernetes.io/control-plane`), asked with
/// admin.conf; `None` when the API does not answer that.
fn control_plane_nodes(layout: &NodeLayout) -> Option<Vec<ControlPlaneNode>> {
    use k8s_openapi::api::core::v1::Node;
    let admin = crate::apiserver::admin::Admin::connect(layout, &layout.admin_conf()).ok()?;
    let list: k8s_openapi::List<Node> = admin
        .get("/api/v1/nodes?labelSelector=node-role.kubernetes.io%2Fcontrol-plane")
        .ok()?;
    Some(
        list.items
            .into_iter()
            .map(|node| ControlPlaneNode {
                ready: node
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True"),
                name: node.metadata.name.unwrap_or_default(),
            })
            .collect(),
    )
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub id: String,
    pub command: String,
    pub state: State,
    pub step: String,
    pub started: String,
    pub age_seconds: i64,
    pub uid: u32,
    pub sudo_user: Option<String>,
    pub reason: Option<String>,
    pub unfinished: bool,
    pub credentials_issued: Vec<String>,
    pub message: String,
    /// `--revert-after`: when it is to be reverted, and by what.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert_after: Option<crate::change::journal::RevertSchedule>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestStatus {
    pub path: String,
    #[serde(flatten)]
    pub read: ManifestRead,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ManifestRead {
    #[serde(rename_all = "camelCase")]
    Parsed {
        container: Option<String>,
        image: Option<String>,
        version: Option<String>,
        secure_port: Option<String>,
        extend_token_expiration: ExtendTokens,
    },
    Problem {
        error: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        column: Option<usize>,
    },
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiserverStatus {
    pub port: u16,
    /// None: no `kube-apiserver` process serves the port.
    pub pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// `"ok"`, or why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extend_token_expiration: Option<ExtendTokens>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches_manifest: Option<bool>,
    /// The pod the process runs in, as the runtime and the kubelet's files say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodStatus>,
}

/// The apiserver's static pod on this node: what the runtime runs (the process's cgroup,
/// crictl), the kubelet's attempt logs, and the mirror pod in the API, which right after an
/// outage can still show the previous pod for about a minute.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub config_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The container's restart count: the number of its newest attempt's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<u32>,
    /// The mirror pod's `kubernetes.io/config.hash`, where the API answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror_config_hash: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StrayEntry {
    pub path: String,
    pub why: String,
}

/// One backup as the tool reports it, with its checksum state.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase", untagged)]
pub enum BackupEntry {
    #[serde(rename_all = "camelCase")]
    Readable {
        id: String,
        created: String,
        operation: String,
        reason: Option<String>,
        path: String,
        files: Vec<BackupFile>,
        checksums_ok: bool,
        problems: Vec<String>,
    },
    Unreadable {
        path: String,
        error: String,
    },
}

/// Every backup under the node's tmp directory, oldest first.
pub fn backup_entries(layout: &NodeLayout) -> Vec<BackupEntry> {
    backup::list(layout)
        .into_iter()
        .map(|entry| match entry {
            Ok(b) => {
                let problems = b.verify(layout);
                BackupEntry::Readable {
                    path: layout.node_path(&b.dir),
                    checksums_ok: problems.is_empty(),
                    id: b.id,
                    created: b.created,
                    operation: b.operation,
                    reason: b.reason,
                    files: b.files,
                    problems,
                }
            }
            Err((dir, error)) => BackupEntry::Unreadable {
                path: layout.node_path(&dir),
                error,
            },
        })
        .collect()
}

/// What the machine is, and what it shows.
pub fn survey(layout: &NodeLayout) -> Survey {
    match machine::role(layout) {
        Role::ControlPlane => Survey::ControlPlane(Box::new(control_plane(layout))),
        Role::Worker => Survey::Worker(Box::new(worker(layout))),
        Role::NotANode => Survey::NotANode(NotANode {
            root: layout.root().to_path_buf(),
            machine: Role::NotANode,
            findings: crate::survey::diagnose::diagnose_not_a_node(!layout.is_host()),
        }),
    }
}

fn worker(layout: &NodeLayout) -> WorkerStatus {
    let facts = WorkerFacts {
        now: crate::runtime::clock::now_unix(),
        sandbox: !layout.is_host(),
        server: machine::kubelet_server(layout),
        kubelet_running: process::kubelet_running(layout),
        kubelet_client: machine::kubelet_client(layout),
        kubelet: KubeletFacts {
            swap: machine::swap(layout),
        },
    };
    WorkerStatus {
        root: layout.root().to_path_buf(),
        machine: Role::Worker,
        findings: crate::survey::diagnose::diagnose_worker(&facts),
        control_plane: facts.server,
        kubelet_running: facts.kubelet_running,
        kubelet_client: facts.kubelet_client,
        runtime_endpoint: process::kubelet_runtime_endpoint(layout),
        swap: facts.kubelet.swap,
    }
}

/// What a control-plane node shows: its manifest, apiserver, kubelet, journal, backups and
/// credentials, and what is wrong with them (the findings).
fn control_plane(layout: &NodeLayout) -> Status {
    let path = layout.apiserver_manifest();
    let now = crate::runtime::clock::now_unix();
    let mut apiserver = None;
    let read = match crate::node::read_apiserver_manifest(layout) {
        Err(e) => ManifestRead::Problem {
            error: e.to_string(),
            hint: None,
            line: None,
            column: None,
        },
        Ok(text) => match Manifest::parse(&text) {
            Err(e) => ManifestRead::Problem {
                error: e.to_string(),
                hint: Some(e.hint().to_string()),
                line: e.line,
                column: e.col,
            },
            Ok(m) => {
                apiserver = Some(running_apiserver(layout, &m));
                ManifestRead::Parsed {
                    container: m.container_name.clone(),
                    image: m.image.clone(),
                    version: m.version().map(|(a, b, c)| format!("{a}.{b}.{c}")),
                    secure_port: m.flag("secure-port"),
                    extend_token_expiration: m.extend_tokens(),
                }
            }
        },
    };
    let (journal, journal_problem) = match Journal::load(layout) {
        Ok(j) => (j, None),
        Err(e) => (Journal::default(), Some(e.to_string())),
    };
    let session = journal
        .unfinished()
        .map(|s| (s, true))
        .or_else(|| journal.revertable().map(|s| (s, false)))
        .map(|(s, unfinished)| summary(layout, s, unfinished, now));
    // Only an apiserver that is there and healthy is asked (no waiting on one that is not).
    let healthy = apiserver
        .as_ref()
        .is_some_and(|a| a.health.as_ref().is_some_and(Health::is_ok));
    let migration = healthy
        .then(|| crate::survey::migration::inspect(layout, std::time::Duration::ZERO, None).ok())
        .flatten()
        .map(|check| check.summary());
    let control_plane_nodes = healthy.then(|| control_plane_nodes(layout)).flatten();
    let mut status = Status {
        root: layout.root().to_path_buf(),
        machine: Role::ControlPlane,
        migration,
        control_plane_nodes,
        findings: Vec::new(),
        session,
        journal_problem,
        manifest: ManifestStatus {
            path: layout.node_path(&path),
            read,
        },
        apiserver,
        kubelet_running: process::kubelet_running(layout),
        strays: strays::find(layout)
            .into_iter()
            .map(|s| StrayEntry {
                path: layout.node_path(&s.path),
                why: s.why,
            })
            .collect(),
        backups: backup_entries(layout),
        credentials: [layout.admin_conf(), layout.super_admin_conf()]
            .iter()
            .map(|p| credential_info(layout, p, now))
            .collect(),
        certificates: CertificatesSummary::of(&crate::certs::inspect::inventory(layout, true), now),
    };
    // What is wrong, from what was just read (and what only the diagnosis reads).
    status.findings = crate::survey::diagnose::diagnose(&facts(layout, &status));
    status
}

fn summary(layout: &NodeLayout, s: &Session, unfinished: bool, now: i64) -> SessionSummary {
    SessionSummary {
        id: s.id.clone(),
        command: s.command.clone(),
        state: s.state,
        step: s.step.clone(),
        started: s.started.clone(),
        age_seconds: now - s.started_unix,
        uid: s.uid,
        sudo_user: s.sudo_user.clone(),
        reason: s.reason.clone(),
        unfinished,
        credentials_issued: s.credentials_issued.clone(),
        revert_after: s
            .revert_after
            .as_ref()
            .map(|r| crate::change::schedule::live(layout, r)),
        message: if unfinished {
            crate::change::journal::unfinished_message(layout, s)
        } else {
            describe_session(layout, s, now)
        },
    }
}

/// The running apiserver for this manifest: pid, start, health, and the flag in its command line.
fn running_apiserver(layout: &NodeLayout, manifest: &Manifest) -> ApiserverStatus {
    let port = manifest.secure_port();
    let Some(found) = process::find_apiserver(port) else {
        return ApiserverStatus {
            port,
            pid: None,
            started: None,
            health: None,
            extend_token_expiration: None,
            matches_manifest: None,
            pod: None,
        };
    };
    let args = found.args.get(1..).unwrap_or_default();
    let (host, probe_port) = manifest.probe_endpoint();
    let (health, mirror_config_hash) = crate::apiserver::runtime().block_on(async {
        let client = match ApiClient::new(
            layout,
            &Endpoint {
                host,
                port: probe_port,
            },
        ) {
            Ok(client) => client,
            Err(e) => return (Err(e.to_string()), None),
        };
        let health = client.healthy().await.map_err(|e| e.to_string());
        let mirror = match health {
            Ok(()) => {
                client
                    .mirror_config_hash(manifest.advertise_endpoint.as_deref())
                    .await
            }
            Err(_) => None,
        };
        (health, mirror)
    });
    let in_pod = process::pod_of(found.identity.pid);
    let pod = in_pod.map(|in_pod| PodStatus {
        restart_count: crate::apiserver::logs::restart_count(layout, &in_pod.uid),
        container_id: process::crictl_container_id(layout).or(Some(in_pod.container_id)),
        config_hash: in_pod.uid,
        mirror_config_hash,
    });
    ApiserverStatus {
        port,
        pid: Some(found.identity.pid),
        started: process::started_unix(&found.identity).map(crate::runtime::clock::rfc3339),
        health: Some(match health {
            Ok(()) => Health::Ok,
            Err(why) => Health::Unhealthy(why),
        }),
        extend_token_expiration: Some(crate::manifest::extend_tokens_of_process(
            args,
            manifest.version(),
        )),
        matches_manifest: Some(args == manifest.argument_values().as_slice()),
        pod,
    }
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} seconds"),
        s if s < 2 * 3600 => format!("{} minutes", s / 60),
        s if s < 2 * 86_400 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// "token extension enabled 3 days ago by root (sudo alice), reason: ...; revert with: ..."
fn describe_session(layout: &crate::node::NodeLayout, s: &Session, now: i64) -> String {
    let what = match s.command.as_str() {
        "extend-tokens enable" => "token extension enabled".to_string(),
        "extend-tokens disable" => "token extension disabled".to_string(),
        other => other.to_string(),
    };
    let who = match (&s.sudo_user, s.uid) {
        (Some(user), _) => format!("{user} (via sudo)"),
        (None, 0) => "root".to_string(),
        (None, uid) => format!("uid {uid}"),
    };
    let reason = s
        .reason
        .as_deref()
        .map(|r| format!(", reason: {}", crate::ui::escape(r)))
        .unwrap_or_default();
    format!(
        "{what} {} ago by {}{reason}; revert with: {}",
        age(now - s.started_unix),
        crate::ui::escape(&who),
        layout.tool_command(&["revert"])
    )
}

/// Kubeconfig copies whose admin certificate (this cluster's) is not admin.conf's current one.
fn stale_copies(layout: &NodeLayout) -> Vec<String> {
    let admin = layout.fs().read_to_string(&layout.admin_conf()).ok();
    let current = admin
        .as_deref()
        .and_then(|t| kubeconfig_edit::user_credentials(t).ok())
        .and_then(|users| users.into_iter().find_map(|u| u.cert_b64));
    let Some(current) = current else {
        return Vec::new();
    };
    let ca = crate::credentials::issue::cluster_ca_der(layout);
    copies::candidates(layout, &[])
        .into_iter()
        .filter(|copy| *copy != layout.admin_conf())
        .filter(|copy| {
            layout
                .fs()
                .read_to_string(copy)
                .ok()
                .and_then(|t| kubeconfig_edit::user_credentials(&t).ok())
                .is_some_and(|users| {
                    users.iter().any(|u| {
                        u.cert_b64.as_deref().is_some_and(|c| {
                            c != current
                                && crate::credentials::issue::is_admin_certificate(
                                    c,
                                    Kind::Admin,
                                    ca.as_deref(),
                                )
                        })
                    })
                })
        })
        .map(|copy| layout.node_path(&copy))
        .collect()
}

/// The newest apiserver pod's restart count (the number of its newest attempt's log: the real
/// kubelet keeps only one dead attempt's file), and the last lines of that attempt.
fn crash_attempts(layout: &NodeLayout) -> (usize, Option<String>) {
    match crate::apiserver::logs::latest(layout) {
        Some((number, log)) => (
            number as usize,
            Some(crate::apiserver::logs::tail(layout, &log, 5)),
        ),
        None => (0, None),
    }
}

/// The facts: a survey just read, and what only the diagnosis reads.
fn facts(layout: &NodeLayout, status: &Status) -> Facts {
    let now = crate::runtime::clock::now_unix();
    let (manifest_problem, manifest_extends_tokens) = match &status.manifest.read {
        ManifestRead::Parsed {
            extend_token_expiration,
            ..
        } => (None, extend_token_expiration.state.effective()),
        ManifestRead::Problem { error, .. } => (Some(error.clone()), None),
    };
    let mut apiserver = Apiserver::default();
    if let Some(a) = &status.apiserver {
        apiserver.pid = a.pid;
        apiserver.health = a.health.clone();
        apiserver.matches_manifest = a.matches_manifest;
        apiserver.extends_tokens = a
            .extend_token_expiration
            .as_ref()
            .and_then(|e| e.state.effective());
    }
    let apiserver_ok = apiserver.health.as_ref().is_some_and(Health::is_ok);
    if !apiserver_ok {
        (apiserver.crashed_attempts, apiserver.last_log) = crash_attempts(layout);
    }
    let version = match &status.manifest.read {
        ManifestRead::Parsed { version, .. } => version.as_deref().and_then(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??, parts.next()??))
        }),
        ManifestRead::Problem { .. } => None,
    };
    let parked = layout.parked_manifest();
    Facts {
        now,
        sandbox: !layout.is_host(),
        credentials: status
            .credentials
            .iter()
            .map(|c| Expiry {
                name: c.path.rsplit('/').next().unwrap_or_default().to_string(),
                path: c.path.clone(),
                not_after: c
                    .not_after
                    .as_deref()
                    .and_then(crate::runtime::clock::parse_rfc3339),
                problem: c.problem.clone(),
            })
            .collect(),
        stale_copies: stale_copies(layout),
        certificate_problems: status.certificates.problems.clone(),
        kubelet_running: status.kubelet_running,
        manifest_problem,
        manifest_extends_tokens,
        apiserver,
        migration: status
            .migration
            .clone()
            .filter(|m| m != crate::survey::migration::NOTHING_DEPENDS),
        unfinished: status
            .session
            .as_ref()
            .filter(|s| s.unfinished)
            .map(|s| (s.id.clone(), s.message.clone())),
        parked_manifest: layout
            .fs()
            .exists(&parked)
            .then(|| layout.node_path(&parked)),
        strays: status.strays.iter().map(|s| s.path.clone()).collect(),
        bad_backups: status
            .backups
            .iter()
            .filter_map(|b| match b {
                BackupEntry::Readable {
                    checksums_ok: false,
                    path,
                    ..
                } => Some(path.clone()),
                BackupEntry::Unreadable { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect(),
        journal_problem: status.journal_problem.clone(),
        kubelet: KubeletFacts {
            swap: crate::survey::machine::swap(layout),
        },
        etcd: (!apiserver_ok).then(|| etcd(layout)).flatten(),
        // The host's sockets are the node's only where its kubelet runs here (a disk mounted
        // under --root has none).
        port_holder: status
            .apiserver
            .as_ref()
            .filter(|a| a.pid.is_none() && status.kubelet_running)
            .and_then(|a| process::port_holder(a.port, bind_address(layout)))
            .filter(|(_, name)| name != "kube-apiserver"),
        admin_conf_invalid: status
            .credentials
            .iter()
            .find(|c| c.path.ends_with("/admin.conf") && c.not_after.is_some())
            .and_then(|_| admin_conf_invalid(layout, now)),
        version,
    }
}

/// The apiserver's `--bind-address` (`None`: unset, every address).
fn bind_address(layout: &NodeLayout) -> Option<std::net::IpAddr> {
    let text = crate::node::read_apiserver_manifest(layout).ok()?;
    Manifest::parse(&text)
        .ok()?
        .flag("bind-address")?
        .parse()
        .ok()
}

/// admin.conf as kubectl would read it: the first thing that stops kubectl (what is wrong,
/// what kubectl prints), before any connection.
fn admin_conf_invalid(layout: &NodeLayout, now: i64) -> Option<(String, String)> {
    use crate::credentials::kubeconfig::check::{Problem, analyse};
    let path = layout.admin_conf();
    let text = layout.fs().read_to_string(&path).ok()?;
    let config = match kube::config::Kubeconfig::from_yaml(&text) {
        Ok(config) => config,
        Err(_) => {
            return Some((
                crate::credentials::kubeconfig::unloadable(&text),
                format!("error loading config file \"{}\"", layout.node_path(&path)),
            ));
        }
    };
    let read = |named: &str| layout.fs().read(&layout.path(named));
    analyse(&config, None, now, &read)
        .problems
        .into_iter()
        .find_map(|p| match &p {
            Problem::InvalidConfiguration { reason, .. } => {
                Some((reason.to_string(), p.kubectl_says()))
            }
            _ => None,
        })
}

/// The etcd this apiserver stores in, when it is this node's: a stacked member (its manifest
/// here, and where it serves clients), or, on the host, the apiserver's `--etcd-servers` on
/// loopback with no manifest left (moved out, deleted). Whether its client port answers, and
/// what its newest log says.
fn etcd(layout: &NodeLayout) -> Option<Etcd> {
    let manifest = layout
        .fs()
        .read_to_string(&layout.manifests_dir().join("etcd.yaml"))
        .ok();
    let flag = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.trim().trim_start_matches("- ").strip_prefix(name))
            .and_then(|urls| urls.split(',').next())
            .and_then(crate::credentials::kubeconfig::check::host_port)
    };
    let endpoint = match &manifest {
        Some(text) => {
            flag(text, "--listen-client-urls=").unwrap_or_else(|| ("127.0.0.1".into(), 2379))
        }
        // A sandbox's etcd is only ever its own manifest's: the host's loopback is not its.
        None if !layout.is_host() => return None,
        None => crate::node::read_apiserver_manifest(layout)
            .ok()
            .and_then(|text| flag(&text, "--etcd-servers="))
            .filter(|(host, _)| ["127.0.0.1", "localhost", "::1"].contains(&host.as_str()))?,
    };
    // An address, never a name to resolve (that would be a wait with no deadline).
    let ip: std::net::IpAddr = match endpoint.0.as_str() {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        other => other.parse().ok()?,
    };
    let address = std::net::SocketAddr::new(ip, endpoint.1);
    let listening =
        std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(1)).is_ok();
    let log = crate::survey::machine::newest_log(layout, "etcd");
    let cluster_id_mismatch = log
        .as_ref()
        .and_then(|(_, tail)| crate::survey::etcd_log::cluster_id_mismatch(tail));
    Some(Etcd {
        client_endpoint: format!("{}:{}", endpoint.0, endpoint.1),
        listening,
        manifest: manifest.is_some(),
        last_log: log.map(|(path, tail)| {
            let last: Vec<&str> = tail.lines().rev().take(5).collect();
            format!(
                "{}:\n{}",
                layout.node_path(&path),
                last.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        }),
        cluster_id_mismatch,
    })
}
