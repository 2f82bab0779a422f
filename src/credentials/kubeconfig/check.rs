//! `kubeconfig check`: why kubectl cannot talk to a cluster with this kubeconfig. The files are
//! read as kubectl reads them (`--kubeconfig`, else every file of `$KUBECONFIG` merged — the
//! first to set a name wins — else `~/.kube/config`), the context is chosen as kubectl chooses
//! it, and what is wrong is said in kubectl's own words: its "invalid configuration", an expired
//! credential, the server's certificate, the connection. [`analyse`] is pure (a loaded config
//! and a clock in); [`load`] reads through the node's confined filesystem.
use std::path::{Path, PathBuf};

use base64::Engine;
use kube::config::{AuthInfo, Cluster, Kubeconfig};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::credentials::kubeconfig::prune::refresh_command;
use crate::credentials::token::{self, Verdict};
use crate::error::{Error, Result};
use crate::node::NodeLayout;
use crate::ui::{Untrusted, command_line};

/// The files kubectl would read, merged.
#[derive(Debug)]
pub struct Loaded {
    /// Every file read, in kubectl's order (host paths).
    pub files: Vec<PathBuf>,
    pub config: Kubeconfig,
    /// Files of `$KUBECONFIG` that do not exist: kubectl skips them, and so does this.
    pub skipped: Vec<PathBuf>,
    /// A file kubectl cannot load (then kubectl loads none): its node path and why.
    pub unloadable: Option<(String, String)>,
    /// The first file's owner that is not root: root reads for that person only what they
    /// could read themselves.
    pub owner: Option<u32>,
}

/// The files kubectl would read: the flag's one file, else `$KUBECONFIG`'s, else `~/.kube/config`.
pub fn chosen_files(
    given: Option<PathBuf>,
    kubeconfig: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<(Vec<PathBuf>, bool)> {
    if let Some(path) = given {
        return Ok((vec![path], false));
    }
    if let Some(list) = kubeconfig.filter(|v| !v.is_empty()) {
        let mut files: Vec<PathBuf> = Vec::new();
        for path in std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()) {
            if !files.contains(&path) {
                files.push(path);
            }
        }
        return Ok((files, true));
    }
    let home =
        home.ok_or_else(|| Error::Usage("no --kubeconfig, no $KUBECONFIG and no $HOME".into()))?;
    Ok((vec![Path::new(&home).join(".kube/config")], false))
}

/// Reads and merges the kubeconfig files. A file that does not parse is kubectl's own error
/// ("error loading config file"), named with the parser's line.
pub fn load(layout: &NodeLayout, given: Option<PathBuf>) -> Result<Loaded> {
    let (chosen, from_env) = chosen_files(
        given,
        std::env::var_os("KUBECONFIG"),
        std::env::var_os("HOME"),
    )?;
    let mut loaded = Loaded {
        files: Vec::new(),
        config: Kubeconfig::default(),
        skipped: Vec::new(),
        unloadable: None,
        owner: None,
    };
    for given in chosen {
        let path = layout.given_path(&given)?;
        let text = match layout.fs().read_to_string(&path) {
            Ok(text) => text,
            Err(e) if from_env && e.kind() == std::io::ErrorKind::NotFound => {
                loaded.skipped.push(path);
                continue;
            }
            Err(e) => {
                return Err(Error::Usage(format!(
                    "{}: {e}\n  kubectl says: error loading config file {:?}\n  what to do: name an existing kubeconfig with --kubeconfig PATH",
                    path.display(),
                    given.display().to_string()
                )));
            }
        };
        if loaded.owner.is_none() {
            loaded.owner = layout
                .fs()
                .metadata(&path)
                .ok()
                .map(|m| m.uid)
                .filter(|uid| *uid != 0);
        }
        let node_path = layout.node_path(&path);
        let Ok(mut config) = Kubeconfig::from_yaml(&text) else {
            // Never the parser's own words: its snippet of the text could hold a token.
            loaded.unloadable = Some((node_path, super::unloadable(&text)));
            return Ok(loaded);
        };
        let dir = Path::new(&node_path).parent().unwrap_or(Path::new("/"));
        resolve_relative(&mut config, dir);
        // kubectl takes current-context from the first file that sets a non-empty one, and
        // does not compare kind or apiVersion across files.
        config.current_context = config.current_context.filter(|c| !c.is_empty());
        config.kind = None;
        config.api_version = None;
        let merged = std::mem::take(&mut loaded.config).merge(config);
        loaded.config = merged.map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        loaded.files.push(path);
    }
    Ok(loaded)
}

/// Reads a file a kubeconfig names. As root, for a kubeconfig a person owns, only what that
/// person could read themselves (their own file, or one anyone may read): a kubeconfig's
/// `tokenFile: /root/secret` must not have root read a secret and send it to the server the
/// kubeconfig names.
pub fn read_for(layout: &NodeLayout, owner: Option<u32>, named: &str) -> std::io::Result<Vec<u8>> {
    let path = layout.path(named);
    if let Some(owner) = owner.filter(|_| nix::unistd::geteuid().is_root()) {
        let meta = layout.fs().metadata(&path)?;
        if meta.uid != owner && meta.mode & 0o004 == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "permission denied (the kubeconfig's owner, uid {owner}, could not read it: root does not read it for them)"
                ),
            ));
        }
    }
    layout.fs().read(&path)
}

/// The analysis of kubeconfig files kubectl cannot load at all.
pub fn unloadable(file: &str, why: &str) -> Analysis {
    Analysis {
        target: None,
        context: None,
        problems: vec![Problem::invalid(
            &format!("{file}: {why}"),
            &format!("error: error loading config file \"{file}\": {why}"),
            "fix the file at that line (kubectl loads none of the files while one is broken), or put back its backup",
        )],
        notes: Vec::new(),
    }
}

/// A file a kubeconfig names relative to itself is relative to ITS directory (kubectl's rule);
/// made absolute here, before files from several directories are merged.
fn resolve_relative(config: &mut Kubeconfig, dir: &Path) {
    let fix = |named: &mut Option<String>| {
        if let Some(path) = named.as_mut()
            && !Path::new(path.as_str()).is_absolute()
        {
            *path = dir.join(&*path).display().to_string();
        }
    };
    for cluster in config
        .clusters
        .iter_mut()
        .filter_map(|c| c.cluster.as_mut())
    {
        fix(&mut cluster.certificate_authority);
    }
    for auth in config
        .auth_infos
        .iter_mut()
        .filter_map(|u| u.auth_info.as_mut())
    {
        fix(&mut auth.client_certificate);
        fix(&mut auth.client_key);
        fix(&mut auth.token_file);
    }
}

/// What stops kubectl, each with kubectl's own words and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Problem {
    /// kubectl refuses the configuration before it connects.
    InvalidConfiguration {
        reason: Untrusted,
        /// What kubectl prints for it (measured: kubectl v1.32).
        #[serde(skip)]
        said: String,
        #[serde(skip)]
        fix: String,
    },
    /// A token (bearer, OIDC id-token) whose `exp` has passed.
    ExpiredToken {
        user: Untrusted,
        field: String,
        expired: i64,
    },
    ExpiredClientCertificate {
        user: Untrusted,
        not_after: i64,
    },
    /// The exec plugin's program is not on PATH.
    ExecPluginNotFound {
        user: Untrusted,
        command: Untrusted,
        refresh: String,
    },
    ServerCertificateExpired {
        server: Untrusted,
        not_after: i64,
    },
    UnknownAuthority {
        server: Untrusted,
    },
    ConnectionRefused {
        server: Untrusted,
    },
    TimedOut {
        server: Untrusted,
    },
    Unreachable {
        server: Untrusted,
        error: Untrusted,
    },
    /// The server answered, and not with who we are (401: the credential; 403: allowed in,
    /// not allowed to ask).
    Rejected {
        server: Untrusted,
        status: u16,
        message: Untrusted,
    },
}

/// What kubectl prints when it has no server to go to: it falls back to localhost:8080.
const LOCALHOST_REFUSED: &str = "The connection to the server localhost:8080 was refused - did you specify the right host or port?";

impl Problem {
    fn invalid(reason: &str, said: &str, fix: &str) -> Problem {
        Problem::InvalidConfiguration {
            reason: reason.into(),
            said: said.to_string(),
            fix: fix.to_string(),
        }
    }

    /// The line kubectl prints for it.
    pub fn kubectl_says(&self) -> String {
        match self {
            Problem::InvalidConfiguration { said, .. } => said.clone(),
            Problem::ExpiredToken { .. } | Problem::ExpiredClientCertificate { .. } => {
                "error: You must be logged in to the server (Unauthorized)".into()
            }
            Problem::ExecPluginNotFound { command, .. } => {
                format!("exec: executable {command} not found")
            }
            Problem::ServerCertificateExpired { .. } => {
                "tls: failed to verify certificate: x509: certificate has expired or is not yet valid".into()
            }
            Problem::UnknownAuthority { .. } => {
                "tls: failed to verify certificate: x509: certificate signed by unknown authority".into()
            }
            Problem::ConnectionRefused { server } => {
                format!("The connection to the server {server} was refused - did you specify the right host or port?")
            }
            Problem::TimedOut { server } => format!("Unable to connect to the server: dial tcp {server}: i/o timeout"),
            Problem::Unreachable { error, .. } => format!("Unable to connect to the server: {error}"),
            Problem::Rejected { status: 401, .. } => {
                "error: You must be logged in to the server (Unauthorized)".into()
            }
            Problem::Rejected { message, .. } => format!("Error from server: {message}"),
        }
    }

    /// What to do about it.
    pub fn fix(&self, tool: &dyn Fn(&[&str]) -> String) -> String {
        match self {
            Problem::InvalidConfiguration { fix, .. } => fix.clone(),
            Problem::ExpiredToken { .. } => format!(
                "remove the expired token so that kubectl logs in again: {} (backed up first)",
                tool(&["kubeconfig", "prune-expired"])
            ),
            Problem::ExpiredClientCertificate { .. } => "get a new certificate: on a control-plane node `kubeadm-recover admin-conf regenerate`, then copy admin.conf here (or `kubeadm kubeconfig user --client-name NAME`)".into(),
            Problem::ExecPluginNotFound { refresh, .. } => format!("install the plugin, then: {refresh}"),
            Problem::ServerCertificateExpired { .. } => "the apiserver's certificate has expired: on a control-plane node, `kubeadm-recover certs check` then `kubeadm-recover certs renew apiserver`".into(),
            Problem::UnknownAuthority { .. } => "the kubeconfig's certificate-authority-data is not the CA that signed the apiserver's certificate (a rebuilt cluster, or a kubeconfig of another): copy the cluster's ca.crt (/etc/kubernetes/pki/ca.crt) into the kubeconfig, or take a fresh admin.conf".into(),
            Problem::ConnectionRefused { .. } => "nothing listens there: the apiserver is down (on the node: `kubeadm-recover diagnose`), or the server address is wrong".into(),
            Problem::TimedOut { .. } | Problem::Unreachable { .. } => "the server does not answer from here: check the address, a VPN or firewall, and on the node `kubeadm-recover diagnose`".into(),
            Problem::Rejected { status: 401, .. } => format!(
                "the server does not accept this credential (revoked, expired, or of another cluster): {} shows what it holds",
                tool(&["token", "inspect", "--kubeconfig", "PATH"])
            ),
            Problem::Rejected { .. } => "the credential is accepted but may not ask who it is: RBAC".into(),
        }
    }
}

/// What only says how the check went, never a reason kubectl fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Note {
    /// An exec plugin makes the credential: not run here (it may prompt, or open a browser).
    ExecPlugin {
        user: Untrusted,
        command: Untrusted,
        refresh: String,
    },
    /// A token that is not a JWT: its expiry is the server's to say.
    OpaqueToken {
        user: Untrusted,
        field: String,
    },
    /// No credential at all: kubectl talks to the server as anonymous.
    Anonymous,
    InsecureSkipTlsVerify,
    /// `$KUBECONFIG` files that do not exist, skipped as kubectl skips them.
    Skipped {
        files: Vec<String>,
    },
    /// Another context of the file whose credential has expired: kubectl fails there too.
    OtherContext {
        context: Untrusted,
        user: Untrusted,
        /// `token`, `auth-provider id-token`, `client certificate`.
        what: String,
        expired: i64,
    },
}

/// The context chosen, and what kubectl would use to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub context: String,
    pub cluster: String,
    pub user: Option<String>,
    pub server: String,
    /// PEM of the CA the server must be signed by; `None`: the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure: bool,
    pub tls_server_name: Option<String>,
    pub credential: Credential,
}

/// How the user authenticates, as far as this check can use it.
#[derive(Debug, Clone)]
pub enum Credential {
    None,
    Token(secrecy::SecretString),
    ClientCertificate {
        certificate_pem: Vec<u8>,
        key_pem: secrecy::SecretString,
    },
    Basic,
    /// Made by a program this check does not run.
    Plugin,
}

/// The analysis of one context: what kubectl would connect to, and what already stops it.
#[derive(Debug)]
pub struct Analysis {
    /// `None` when the configuration is invalid before any connection.
    pub target: Option<Target>,
    /// The context's names even when invalid (for the report).
    pub context: Option<String>,
    pub problems: Vec<Problem>,
    pub notes: Vec<Note>,
}

/// Reads a file a kubeconfig names (confined to the node's root).
pub type ReadFile<'a> = &'a dyn Fn(&str) -> std::io::Result<Vec<u8>>;

/// A configuration kubectl refuses, as the line kubectl prints for it.
#[derive(Debug)]
struct KubectlSays(String);

/// The context kubectl would use (`--context`, else `current-context`), and what stops kubectl
/// before and apart from the server.
/// The expired credentials of every context but `chosen`, as notes: the check is about the
/// context kubectl uses, and a person switching to another one meets these next.
pub fn other_contexts(config: &Kubeconfig, chosen: &str, now: i64, read: ReadFile) -> Vec<Note> {
    config
        .contexts
        .iter()
        .filter(|c| c.name != chosen)
        .flat_map(|c| {
            analyse(config, Some(&c.name), now, read)
                .problems
                .into_iter()
                .filter_map(|p| match p {
                    Problem::ExpiredToken {
                        user,
                        field,
                        expired,
                    } => Some((user, field, expired)),
                    Problem::ExpiredClientCertificate { user, not_after } => {
                        Some((user, "client certificate".to_string(), not_after))
                    }
                    _ => None,
                })
                .map(|(user, what, expired)| Note::OtherContext {
                    context: c.name.as_str().into(),
                    user,
                    what,
                    expired,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn analyse(config: &Kubeconfig, context: Option<&str>, now: i64, read: ReadFile) -> Analysis {
    let mut analysis = Analysis {
        target: None,
        context: None,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let name = match context
        .or(config.current_context.as_deref())
        .filter(|c| !c.is_empty())
    {
        Some(name) => name.to_string(),
        None => {
            analysis.problems.push(Problem::invalid(
                "no context: current-context is not set (kubectl then tries localhost:8080)",
                LOCALHOST_REFUSED,
                "choose a context: `kubectl config get-contexts`, then `kubectl config use-context NAME`",
            ));
            return analysis;
        }
    };
    analysis.context = Some(name.clone());
    let Some(ctx) = config
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.clone())
    else {
        analysis.problems.push(Problem::invalid(
            &format!("context was not found for specified context: {name}"),
            &format!("error: context was not found for specified context: {name}"),
            "name a context the file has (`kubectl config get-contexts`), or copy the context in",
        ));
        return analysis;
    };
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .map(|c| c.cluster.clone().unwrap_or_default());
    if cluster.is_none() {
        analysis.problems.push(Problem::invalid(
            &format!("cluster {:?} was not found for context {name:?} (kubectl then tries localhost:8080)", ctx.cluster),
            LOCALHOST_REFUSED,
            "the context names a cluster the file does not have: fix the context's cluster, or copy the cluster entry in",
        ));
    }
    let user = ctx.user.clone().filter(|u| !u.is_empty());
    let auth = match &user {
        Some(u) => match config.auth_infos.iter().find(|a| &a.name == u) {
            Some(a) => a.auth_info.clone().unwrap_or_default(),
            None => {
                analysis.problems.push(Problem::invalid(
                    &format!("user {u:?} was not found for context {name:?} (kubectl then asks for a user name and password)"),
                    "Please enter Username: error: EOF",
                    "the context names a user the file does not have: fix the context's user, or copy the user entry in",
                ));
                AuthInfo::default()
            }
        },
        None => AuthInfo::default(),
    };
    let cluster = cluster.unwrap_or_default();
    let server = cluster.server.clone().unwrap_or_default();
    if cluster_present(config, &ctx.cluster) && server.is_empty() {
        analysis.problems.push(Problem::invalid(
            &format!("no server found for cluster {:?} (kubectl then tries localhost:8080)", ctx.cluster),
            LOCALHOST_REFUSED,
            "set the cluster's server: `kubectl config set-cluster NAME --server https://HOST:6443`",
        ));
    }
    let ca_pem = match ca(&cluster, &ctx.cluster, read) {
        Ok(ca) => ca,
        Err(KubectlSays(said)) => {
            analysis.problems.push(Problem::invalid(
                said.trim_start_matches("error: "),
                &said,
                "fix certificate-authority(-data): the cluster CA's PEM (ca.crt), base64-encoded in -data",
            ));
            None
        }
    };
    let credential = match credential(
        user.as_deref().unwrap_or(""),
        &auth,
        now,
        read,
        &mut analysis,
    ) {
        Ok(c) => c,
        Err(KubectlSays(said)) => {
            analysis.problems.push(Problem::invalid(
                said.trim_start_matches("error: "),
                &said,
                "fix the user's client-certificate/client-key (their PEM, base64-encoded in the -data fields)",
            ));
            Credential::None
        }
    };
    if !analysis
        .problems
        .iter()
        .any(|p| matches!(p, Problem::InvalidConfiguration { .. }))
    {
        if cluster.insecure_skip_tls_verify == Some(true) {
            analysis.notes.push(Note::InsecureSkipTlsVerify);
        }
        analysis.target = Some(Target {
            context: name,
            cluster: ctx.cluster.clone(),
            user,
            server,
            ca_pem,
            insecure: cluster.insecure_skip_tls_verify == Some(true),
            tls_server_name: cluster.tls_server_name.clone(),
            credential,
        });
    }
    analysis
}

/// An I/O error as Go words it (`no such file or directory`), which is what kubectl prints.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn cluster_present(config: &Kubeconfig, name: &str) -> bool {
    config.clusters.iter().any(|c| c.name == name)
}

fn b64(data: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(data.split_whitespace().collect::<String>())
        .ok()
}

/// The CA's PEM; an error is the line kubectl prints for it.
fn ca(cluster: &Cluster, name: &str, read: ReadFile) -> Result<Option<Vec<u8>>, KubectlSays> {
    let not_pem = || {
        KubectlSays(
            "error: unable to load root certificates: unable to parse bytes as PEM block".into(),
        )
    };
    let pem = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => b64(data).ok_or_else(not_pem)?,
        (None, Some(file)) => read(file).map_err(|e| {
            KubectlSays(format!(
                "error: unable to read certificate-authority {file} for {name} due to open {file}: {}",
                io_reason(&e)
            ))
        })?,
        (None, None) => return Ok(None),
    };
    if crate::credentials::pem::certificates(&String::from_utf8_lossy(&pem)).is_empty() {
        return Err(not_pem());
    }
    Ok(Some(pem))
}

fn credential(
    user: &str,
    auth: &AuthInfo,
    now: i64,
    read: ReadFile,
    analysis: &mut Analysis,
) -> Result<Credential, KubectlSays> {
    let user_name = Untrusted::from(user);
    if let Some(exec) = &auth.exec {
        let command = exec.command.clone().unwrap_or_default();
        let refresh = refresh_command(&command, exec.args.as_deref().unwrap_or(&[]));
        let found = Path::new(&command).is_absolute() && Path::new(&command).is_file()
            || crate::node::on_path(&command).is_some();
        if found {
            analysis.notes.push(Note::ExecPlugin {
                user: user_name,
                command: command.into(),
                refresh,
            });
        } else {
            analysis.problems.push(Problem::ExecPluginNotFound {
                user: user_name,
                command: command.into(),
                refresh,
            });
        }
        return Ok(Credential::Plugin);
    }
    let mut token_check = |field: &str, value: &str| -> Option<Credential> {
        match token::inspect(value, now).map(|facts| (facts.verdict, facts.expires)) {
            Ok((Verdict::Expired, Some(expired))) => {
                analysis.problems.push(Problem::ExpiredToken {
                    user: user_name.clone(),
                    field: field.to_string(),
                    expired,
                });
                None
            }
            Ok(_) => Some(Credential::Token(value.to_string().into())),
            Err(_) => {
                analysis.notes.push(Note::OpaqueToken {
                    user: user_name.clone(),
                    field: field.to_string(),
                });
                Some(Credential::Token(value.to_string().into()))
            }
        }
    };
    if let Some(provider) = &auth.auth_provider {
        if let Some(id_token) = provider.config.get("id-token") {
            return Ok(token_check("auth-provider id-token", id_token).unwrap_or(Credential::None));
        }
        return Ok(Credential::Plugin);
    }
    if let Some(value) = &auth.token {
        return Ok(token_check("token", value.expose_secret()).unwrap_or(Credential::None));
    }
    if let Some(file) = &auth.token_file {
        let bytes = read(file)
            .map_err(|e| KubectlSays(format!("error: open {file}: {}", io_reason(&e))))?;
        let value = String::from_utf8_lossy(&bytes).trim().to_string();
        return Ok(token_check("tokenFile", &value).unwrap_or(Credential::None));
    }
    let certificate = match (&auth.client_certificate_data, &auth.client_certificate) {
        (Some(data), _) => Some(b64(data).ok_or_else(|| {
            KubectlSays(format!(
                "error: client-certificate-data for {user} is not base64"
            ))
        })?),
        (None, Some(file)) => Some(read(file).map_err(|e| {
            KubectlSays(format!(
                "error: unable to read client-cert {file} for {user} due to open {file}: {}",
                io_reason(&e)
            ))
        })?),
        (None, None) => None,
    };
    let key = match (&auth.client_key_data, &auth.client_key) {
        (Some(data), _) => Some(b64(data.expose_secret()).ok_or_else(|| {
            KubectlSays(format!("error: client-key-data for {user} is not base64"))
        })?),
        (None, Some(file)) => Some(read(file).map_err(|e| {
            KubectlSays(format!(
                "error: unable to read client-key {file} for {user} due to open {file}: {}",
                io_reason(&e)
            ))
        })?),
        (None, None) => None,
    };
    match (certificate, key) {
        (Some(certificate_pem), Some(key_pem)) => {
            let not_after = crate::credentials::pem::not_after(&certificate_pem).map_err(|_| {
                KubectlSays("error: tls: failed to find any PEM data in certificate input".into())
            })?;
            if not_after <= now {
                analysis.problems.push(Problem::ExpiredClientCertificate {
                    user: user_name,
                    not_after,
                });
                return Ok(Credential::None);
            }
            Ok(Credential::ClientCertificate {
                certificate_pem,
                key_pem: String::from_utf8_lossy(&key_pem).into_owned().into(),
            })
        }
        (Some(_), None) => Err(KubectlSays(format!(
            "error: client-key-data or client-key must be specified for {user} to use the clientCert authentication method."
        ))),
        (None, Some(_)) => Err(KubectlSays(format!(
            "error: client-cert-data or client-cert must be specified for {user} to use the clientCert authentication method."
        ))),
        (None, None) if auth.username.is_some() => Ok(Credential::Basic),
        (None, None) => {
            analysis.notes.push(Note::Anonymous);
            Ok(Credential::None)
        }
    }
}

/// A kubeconfig for one request with the target's credential: every file already read, no
/// program to run (what the probe hands to the client library).
pub fn probe_kubeconfig(target: &Target) -> Option<String> {
    let enc = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut cluster = serde_json::json!({ "server": target.server });
    if let Some(ca) = &target.ca_pem {
        cluster["certificate-authority-data"] = enc(ca).into();
    }
    if target.insecure {
        cluster["insecure-skip-tls-verify"] = true.into();
    }
    if let Some(name) = &target.tls_server_name {
        cluster["tls-server-name"] = name.clone().into();
    }
    let user = match &target.credential {
        Credential::Token(token) => serde_json::json!({ "token": token.expose_secret() }),
        Credential::ClientCertificate {
            certificate_pem,
            key_pem,
        } => serde_json::json!({
            "client-certificate-data": enc(certificate_pem),
            "client-key-data": enc(key_pem.expose_secret().as_bytes()),
        }),
        Credential::None => serde_json::json!({}),
        Credential::Basic | Credential::Plugin => return None,
    };
    Some(
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "c", "cluster": cluster }],
            "users": [{ "name": "u", "user": user }],
            "contexts": [{ "name": "x", "context": { "cluster": "c", "user": "u" } }],
            "current-context": "x",
        })
        .to_string(),
    )
}

/// `host` and `port` of an `https://` server URL (443 by default).
pub fn host_port(server: &str) -> Option<(String, u16)> {
    let uri: http::Uri = server.parse().ok()?;
    let host = uri
        .host()?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("http") => 80,
        _ => 443,
    });
    Some((host, port))
}

/// What the server's certificate says against the kubeconfig's CA: expired, or signed by
/// another CA (`None`: fine, or not checkable here).
pub fn server_certificate(der: &[u8], ca_pem: Option<&[u8]>, now: i64) -> Option<ServerCert> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    if not_after <= now || cert.validity().not_before.timestamp() > now {
        return Some(ServerCert::Expired { not_after });
    }
    let ca_pem = ca_pem?;
    let signed = crate::credentials::pem::certificates(&String::from_utf8_lossy(ca_pem))
        .iter()
        .any(|ca_der| {
            X509Certificate::from_der(ca_der).is_ok_and(|(_, ca)| {
                ca.subject() == cert.issuer()
                    && cert.verify_signature(Some(ca.public_key())).is_ok()
            })
        });
    (!signed).then_some(ServerCert::UnknownAuthority)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCert {
    Expired { not_after: i64 },
    UnknownAuthority,
}

/// The command line a person runs to use this tool on the same kubeconfig.
pub fn quoted(words: &[&str]) -> String {
    command_line(words.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn config(text: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(text).unwrap()
    }

    fn no_files(_: &str) -> std::io::Result<Vec<u8>> {
        Err(std::io::ErrorKind::NotFound.into())
    }

    fn jwt(exp: i64) -> String {
        let b = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.c2ln",
            b(serde_json::json!({"alg": "RS256"})),
            b(serde_json::json!({"exp": exp, "sub": "x"}))
        )
    }

    fn with_user(user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\n\
             contexts:\n- name: a\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n{user}"
        )
    }

    fn kinds(analysis: &Analysis) -> Vec<String> {
        analysis
            .problems
            .iter()
            .map(|p| {
                serde_json::to_value(p).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn the_files_are_the_flag_else_every_file_of_kubeconfig_else_home() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(
            chosen_files(Some("/a".into()), os("/b:/c"), os("/h")).unwrap(),
            (vec![PathBuf::from("/a")], false)
        );
        assert_eq!(
            chosen_files(None, os("/b::/c:/b"), os("/h")).unwrap(),
            (vec![PathBuf::from("/b"), PathBuf::from("/c")], true),
            "empty entries and repeats dropped, kubectl's order kept"
        );
        assert_eq!(
            chosen_files(None, os(""), os("/h")).unwrap().0,
            vec![PathBuf::from("/h/.kube/config")]
        );
        assert!(chosen_files(None, None, None).is_err());
    }

    #[test]
    fn a_context_naming_what_the_file_lacks_is_kubectls_own_failure() {
        let text = "apiVersion: v1\nkind: Config\ncurrent-context: a\ncontexts:\n- name: a\n  context:\n    cluster: gone\n    user: ghost\n";
        let analysis = analyse(&config(text), None, NOW, &no_files);
        assert_eq!(
            kinds(&analysis),
            ["invalidConfiguration", "invalidConfiguration"]
        );
        assert_eq!(analysis.problems[0].kubectl_says(), LOCALHOST_REFUSED);
        assert!(analysis.target.is_none(), "nothing to connect to");
        let missing = analyse(&config(text), Some("zz"), NOW, &no_files);
        assert_eq!(
            missing.problems[0].kubectl_says(),
            "error: context was not found for specified context: zz"
        );
        let empty = analyse(
            &config("apiVersion: v1\nkind: Config\n"),
            None,
            NOW,
            &no_files,
        );
        assert_eq!(empty.problems[0].kubectl_says(), LOCALHOST_REFUSED);
    }

    #[test]
    fn an_expired_token_or_id_token_is_named_and_a_valid_one_is_used() {
        let expired = analyse(
            &config(&with_user(&format!("    token: {}\n", jwt(NOW - 60)))),
            None,
            NOW,
            &no_files,
        );
        assert_eq!(kinds(&expired), ["expiredToken"]);
        let oidc = with_user(&format!(
            "    auth-provider:\n      name: oidc\n      config:\n        id-token: {}\n",
            jwt(NOW - 60)
        ));
        let analysis = analyse(&config(&oidc), None, NOW, &no_files);
        assert!(
            matches!(&analysis.problems[0], Problem::ExpiredToken { field, .. } if field == "auth-provider id-token")
        );
        let valid = analyse(
            &config(&with_user(&format!("    token: {}\n", jwt(NOW + 60)))),
            None,
            NOW,
            &no_files,
        );
        assert!(valid.problems.is_empty());
        assert!(matches!(
            valid.target.unwrap().credential,
            Credential::Token(_)
        ));
    }

    #[test]
    fn an_exec_plugin_not_installed_is_kubectls_failure_and_an_installed_one_a_note() {
        let text = |command: &str| {
            with_user(&format!(
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {command}\n      args: [eks, get-token, --cluster-name, prod]\n"
            ))
        };
        let missing = analyse(&config(&text("no-such-plugin-here")), None, NOW, &no_files);
        assert_eq!(kinds(&missing), ["execPluginNotFound"]);
        assert_eq!(
            missing.problems[0].kubectl_says(),
            "exec: executable no-such-plugin-here not found"
        );
        let installed = analyse(&config(&text("sh")), None, NOW, &no_files);
        assert!(installed.problems.is_empty());
        assert!(matches!(installed.notes[0], Note::ExecPlugin { .. }));
        assert!(
            probe_kubeconfig(&installed.target.unwrap()).is_none(),
            "a plugin is never run"
        );
    }

    #[test]
    fn an_unreadable_ca_and_a_certificate_without_its_key_are_said_as_kubectl_says_them() {
        let text = "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: c\n  cluster:\n    server: https://h:6443\n    certificate-authority: /gone/ca.crt\n\
                    contexts:\n- name: a\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    client-certificate-data: Zm9v\n";
        let analysis = analyse(&config(text), None, NOW, &no_files);
        let said: Vec<String> = analysis
            .problems
            .iter()
            .map(Problem::kubectl_says)
            .collect();
        assert_eq!(
            said,
            [
                "error: unable to read certificate-authority /gone/ca.crt for c due to open /gone/ca.crt: no such file or directory",
                "error: client-key-data or client-key must be specified for u to use the clientCert authentication method."
            ]
        );
    }

    #[test]
    fn an_expired_client_certificate_is_named() {
        let mut params = rcgen::CertificateParams::new(vec!["admin".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let enc = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
        let text = with_user(&format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            enc(cert.pem()),
            enc(key.serialize_pem())
        ));
        let analysis = analyse(&config(&text), None, NOW, &no_files);
        assert_eq!(kinds(&analysis), ["expiredClientCertificate"]);
    }

    #[test]
    fn the_server_url_gives_host_and_port() {
        assert_eq!(
            host_port("https://10.0.0.1:6443"),
            Some(("10.0.0.1".into(), 6443))
        );
        assert_eq!(host_port("https://[::1]:6443"), Some(("::1".into(), 6443)));
        assert_eq!(
            host_port("https://api.example"),
            Some(("api.example".into(), 443))
        );
        assert_eq!(host_port("not a url"), None);
    }
}
