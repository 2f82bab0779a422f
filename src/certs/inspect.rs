//! Reading the node's certificates, and looking at what the running components use: the
//! certificate each port presents (one handshake), and for a certificate embedded in a
//! kubeconfig, whether the process started after the file last changed. Reads only.
use serde::Serialize;
use sha2::Digest;
use x509_parser::prelude::*;

use super::catalogue::{
    Authority, Component, Endpoint, Entry, KubeletFile, LEAVES, Location, Pickup,
};
use super::served::{self, ClientIdentity};
use crate::credentials::kubeconfig::edit as kubeconfig_edit;
use crate::node::NodeLayout;

/// What the node holds and what its components use, at one moment.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    pub certificates: Vec<Observed>,
    pub authorities: Vec<ObservedAuthority>,
    pub service_account_key: ServiceAccountKey,
}

/// `sa.key` and `sa.pub`: not certificates, but the apiserver cannot start without them.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountKey {
    pub key_present: bool,
    pub public_key_present: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    pub name: &'static str,
    /// Where it was read, as a node path.
    pub path: String,
    #[serde(flatten)]
    pub file: Reading,
    pub in_use: InUse,
    /// A PKI certificate whose key file beside it is not its key (said only when so).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub key_mismatch: bool,
    #[serde(skip)]
    pub entry: Entry,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedAuthority {
    pub name: &'static str,
    pub path: String,
    #[serde(flatten)]
    pub file: Reading,
    /// Its private key is on this node: certificates it signs can be renewed here.
    pub key_on_node: bool,
    #[serde(skip)]
    pub authority: Authority,
}

/// The file, read.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "file", rename_all = "kebab-case")]
pub enum Reading {
    Present(Certificate),
    Missing,
    Unreadable { problem: String },
}

impl Reading {
    pub fn certificate(&self) -> Option<&Certificate> {
        match self {
            Reading::Present(c) => Some(c),
            _ => None,
        }
    }
}

/// What a certificate says, never its key.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    #[serde(skip)]
    pub not_after_unix: i64,
    /// Who signed it: a CA by kubeadm's name, `self-signed`, `a CA in the same file` (the
    /// kubelet's own serving CA), or `unknown`.
    pub signed_by: String,
    pub sha256_fingerprint: String,
    #[serde(skip)]
    pub der: Vec<u8>,
}

/// Whether the component that uses the certificate uses THIS one, as far as can be seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum InUse {
    /// The port presents this very certificate.
    Presented {
        endpoint: String,
    },
    /// The port presents another one: renewed on disk but not in use (or the reverse).
    PresentsAnother {
        endpoint: String,
        serial: String,
        not_after: String,
        #[serde(skip)]
        not_after_unix: i64,
    },
    /// The port could not be asked.
    NoAnswer {
        endpoint: String,
        why: String,
    },
    /// The process started after the kubeconfig last changed: it holds this certificate.
    StartedAfterTheFile {
        component: Component,
        pid: i32,
        started: String,
    },
    /// The kubeconfig changed after the process started: the process holds the certificate it
    /// read at its start, which is not (or not proved to be) this one.
    StartedBeforeTheFile {
        component: Component,
        pid: i32,
        started: String,
        file_changed: String,
    },
    NotRunning {
        component: Component,
    },
    /// A file the component re-reads by itself: no restart needed, not visible from outside.
    ReloadsItself {
        component: Component,
    },
    /// Used by people and scripts, each use reading the file anew.
    NotAProcess,
    NotChecked {
        why: String,
    },
}

/// The whole inventory. `look` says whether to ask the running components (handshakes,
/// processes); without it every `inUse` is `not-checked`.
pub fn inventory(layout: &NodeLayout, look: bool) -> Inventory {
    let authorities: Vec<ObservedAuthority> = Authority::ALL
        .iter()
        .map(|&authority| {
            let path = layout.pki_certificate(authority.pki_stem());
            ObservedAuthority {
                name: authority.name(),
                path: layout.node_path(&path),
                file: read_pem_file(layout, &path, &[]),
                key_on_node: layout.fs().is_file(
                    &layout
                        .pki_dir()
                        .join(format!("{}.key", authority.pki_stem())),
                ),
                authority,
            }
        })
        .collect();
    let cas: Vec<(&'static str, Vec<u8>)> = authorities
        .iter()
        .filter_map(|a| a.file.certificate().map(|c| (a.name, c.der.clone())))
        .collect();
    let mut entries: Vec<Entry> = LEAVES.to_vec();
    if kubelet_conf_embeds(layout) {
        entries.push(super::catalogue::EMBEDDED_KUBELET_CONF);
    }
    let endpoints = Endpoints::of(layout);
    let certificates = entries
        .into_iter()
        .filter_map(|entry| {
            let path = path_of(layout, &entry);
            let file = read_entry(layout, &entry, &path, &cas);
            if matches!(file, Reading::Missing) && entry.optional {
                return None;
            }
            let in_use = match (&file, look) {
                (Reading::Present(cert), true) => in_use(layout, &entry, &path, cert, &endpoints),
                (Reading::Present(_), false) => InUse::NotChecked {
                    why: "not asked".into(),
                },
                _ => InUse::NotChecked {
                    why: "no certificate on disk".into(),
                },
            };
            let key_mismatch = match (&file, entry.location) {
                (Reading::Present(cert), Location::Pki(stem)) => !key_matches(
                    layout,
                    &layout.pki_dir().join(format!("{stem}.key")),
                    &cert.der,
                ),
                _ => false,
            };
            Some(Observed {
                name: entry.name,
                path: layout.node_path(&path),
                file,
                in_use,
                key_mismatch,
                entry,
            })
        })
        .collect();
    Inventory {
        certificates,
        authorities,
        service_account_key: ServiceAccountKey {
            key_present: layout.fs().is_file(&layout.pki_dir().join("sa.key")),
            public_key_present: layout.fs().is_file(&layout.pki_dir().join("sa.pub")),
        },
    }
}

/// Whether the key file (when there is one that parses) is the certificate's key. A missing
/// or unreadable key is not called a mismatch: it is not this check's to judge.
fn key_matches(layout: &NodeLayout, key: &std::path::Path, der: &[u8]) -> bool {
    let Ok(pem) = layout.fs().read_to_string(key) else {
        return true;
    };
    let Ok(key) = crate::credentials::pki::Key::from_pem(&pem) else {
        return true;
    };
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert.public_key().raw == key.public_key_der().as_slice())
        .unwrap_or(true)
}

fn kubelet_pki(layout: &NodeLayout, file: &str) -> std::path::PathBuf {
    layout.path("/var/lib/kubelet/pki").join(file)
}

/// The file an entry lives in.
pub fn path_of(layout: &NodeLayout, entry: &Entry) -> std::path::PathBuf {
    match entry.location {
        Location::Pki(stem) => layout.pki_certificate(stem),
        Location::Kubeconfig(file) => layout.kubeconfig(file),
        Location::Kubelet(KubeletFile::Client) => kubelet_pki(layout, "kubelet-client-current.pem"),
        Location::Kubelet(KubeletFile::Serving) => {
            let rotated = kubelet_pki(layout, "kubelet-server-current.pem");
            if layout.fs().exists(&rotated) {
                rotated
            } else {
                kubelet_pki(layout, "kubelet.crt")
            }
        }
    }
}

fn kubelet_conf_embeds(layout: &NodeLayout) -> bool {
    embedded_certificate(layout, &layout.kubeconfig("kubelet.conf")).is_some_and(|r| r.is_ok())
}

/// Why a kubeconfig's embedded certificate cannot be read.
#[derive(Debug, thiserror::Error)]
enum EmbeddedError {
    #[error("not a kubeconfig: {0}")]
    NotAKubeconfig(crate::manifest::ManifestError),
    #[error("client-certificate-data is not base64: {0}")]
    NotBase64(base64::DecodeError),
}

/// The client certificate embedded in a kubeconfig (its first user that has one), as PEM.
fn embedded_certificate(
    layout: &NodeLayout,
    path: &std::path::Path,
) -> Option<Result<String, EmbeddedError>> {
    let text = layout.fs().read_to_string(path).ok()?;
    let users = match kubeconfig_edit::user_credentials(&text) {
        Ok(users) => users,
        Err(e) => return Some(Err(EmbeddedError::NotAKubeconfig(e))),
    };
    let b64 = users.into_iter().find_map(|u| u.cert_b64)?;
    Some(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64.trim())
            .map(|pem| String::from_utf8_lossy(&pem).into_owned())
            .map_err(EmbeddedError::NotBase64),
    )
}

fn read_entry(
    layout: &NodeLayout,
    entry: &Entry,
    path: &std::path::Path,
    cas: &[(&'static str, Vec<u8>)],
) -> Reading {
    match entry.location {
        Location::Kubeconfig(_) => {
            if !layout.fs().exists(path) {
                return Reading::Missing;
            }
            match embedded_certificate(layout, path) {
                Some(Ok(pem)) => parse(pem.as_bytes(), cas),
                Some(Err(problem)) => Reading::Unreadable {
                    problem: problem.to_string(),
                },
                None => Reading::Unreadable {
                    problem: "no embedded client certificate (client-certificate-data)".into(),
                },
            }
        }
        _ => read_pem_file(layout, path, cas),
    }
}

fn read_pem_file(
    layout: &NodeLayout,
    path: &std::path::Path,
    cas: &[(&'static str, Vec<u8>)],
) -> Reading {
    match layout.fs().read(path) {
        Ok(bytes) => parse(&bytes, cas),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Reading::Missing,
        Err(e) => Reading::Unreadable {
            problem: e.to_string(),
        },
    }
}

/// The first certificate of a PEM text, and who signed it.
fn parse(pem: &[u8], cas: &[(&'static str, Vec<u8>)]) -> Reading {
    let blocks = crate::credentials::pem::certificates(&String::from_utf8_lossy(pem));
    let Some((der, others)) = blocks.split_first() else {
        return Reading::Unreadable {
            problem: "no PEM CERTIFICATE block".into(),
        };
    };
    describe(der, others, cas)
}

/// A certificate (DER), with the others of its file, and who signed it.
fn describe(der: &[u8], others: &[Vec<u8>], cas: &[(&'static str, Vec<u8>)]) -> Reading {
    let cert = match X509Certificate::from_der(der) {
        Ok((_, cert)) => cert,
        Err(e) => {
            return Reading::Unreadable {
                problem: format!("not an X.509 certificate: {e}"),
            };
        }
    };
    let signed_by = cas
        .iter()
        .find(|(_, ca)| crate::credentials::issue::signed_by(der, ca))
        .map(|(name, _)| (*name).to_string())
        .unwrap_or_else(|| {
            if crate::credentials::issue::signed_by(der, der) {
                "self-signed".into()
            } else if others
                .iter()
                .any(|other| crate::credentials::issue::signed_by(der, other))
            {
                "a CA in the same file".into()
            } else {
                "unknown".into()
            }
        });
    let not_after_unix = cert.validity().not_after.timestamp();
    Reading::Present(Certificate {
        subject: crate::ui::escape(&cert.subject().to_string()).into_owned(),
        issuer: crate::ui::escape(&cert.issuer().to_string()).into_owned(),
        serial: cert.raw_serial_as_string(),
        not_before: crate::runtime::clock::rfc3339(cert.validity().not_before.timestamp()),
        not_after: crate::runtime::clock::rfc3339(not_after_unix),
        not_after_unix,
        signed_by,
        sha256_fingerprint: fingerprint(der),
        der: der.to_vec(),
    })
}

fn fingerprint(der: &[u8]) -> String {
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Where each component serves, from its own manifest or configuration, or why it is not asked.
struct Endpoints {
    apiserver: Result<(String, u16), Unasked>,
    etcd_client: Result<(String, u16), Unasked>,
    etcd_peer: Result<(String, u16), Unasked>,
    kubelet: Result<(String, u16), Unasked>,
}

#[derive(Debug, Clone, thiserror::Error)]
enum Unasked {
    #[error("a --root sandbox: only the host's own components are asked")]
    Sandbox,
    #[error("no etcd manifest on this node (external etcd?)")]
    NoEtcdManifest,
    #[error("the apiserver manifest: {0}")]
    ApiserverManifest(String),
}

const SANDBOX: Unasked = Unasked::Sandbox;

impl Endpoints {
    fn of(layout: &NodeLayout) -> Endpoints {
        let apiserver = layout
            .fs()
            .read_to_string(&layout.apiserver_manifest())
            .map_err(|e| Unasked::ApiserverManifest(e.to_string()))
            .and_then(|text| {
                crate::manifest::Manifest::parse(&text)
                    .map(|m| m.probe_endpoint())
                    .map_err(|e| Unasked::ApiserverManifest(e.to_string()))
            });
        if !layout.is_host() {
            // The sandbox's apiserver serves on its own port; etcd and kubelet ports there would
            // be the host's.
            return Endpoints {
                apiserver,
                etcd_client: Err(SANDBOX),
                etcd_peer: Err(SANDBOX),
                kubelet: Err(SANDBOX),
            };
        }
        let etcd = layout
            .fs()
            .read_to_string(&layout.manifests_dir().join("etcd.yaml"))
            .map_err(|_| Unasked::NoEtcdManifest);
        let url = |flag: &str, default: u16| {
            etcd.clone()
                .map(|text| flag_urls(&text, flag).unwrap_or(("127.0.0.1".into(), default)))
        };
        Endpoints {
            apiserver,
            etcd_client: url("listen-client-urls", 2379),
            etcd_peer: url("listen-peer-urls", 2380),
            kubelet: Ok(kubelet_address(layout)),
        }
    }

    fn get(&self, endpoint: Endpoint) -> &Result<(String, u16), Unasked> {
        match endpoint {
            Endpoint::Apiserver => &self.apiserver,
            Endpoint::EtcdClient => &self.etcd_client,
            Endpoint::EtcdPeer => &self.etcd_peer,
            Endpoint::Kubelet => &self.kubelet,
        }
    }
}

/// Where `endpoint` is served on this node, when it may be asked (never a sandbox's etcd or
/// kubelet: those ports would be the host's).
pub fn endpoint(layout: &NodeLayout, endpoint: Endpoint) -> Option<(String, u16)> {
    Endpoints::of(layout).get(endpoint).as_ref().ok().cloned()
}

/// The first `https://` address of an etcd URL-list flag in its manifest, loopback first.
fn flag_urls(manifest: &str, flag: &str) -> Option<(String, u16)> {
    let prefix = format!("--{flag}=");
    let value = manifest
        .lines()
        .rev()
        .find_map(|l| {
            l.trim()
                .trim_start_matches("- ")
                .trim()
                .strip_prefix(&prefix)
        })?
        .trim_matches(['"', '\'']);
    let addresses: Vec<(String, u16)> = value
        .split(',')
        .filter_map(|url| url.trim().strip_prefix("https://"))
        .filter_map(|hostport| {
            let (host, port) = hostport.trim_end_matches('/').rsplit_once(':')?;
            Some((
                host.trim_matches(['[', ']']).to_string(),
                port.parse().ok()?,
            ))
        })
        .collect();
    addresses
        .iter()
        .find(|(host, _)| host == "127.0.0.1" || host == "::1")
        .or(addresses.first())
        .cloned()
}

/// The kubelet's `address:` and `port:` in its configuration, else 127.0.0.1 (it listens on
/// every address by default) and 10250.
fn kubelet_address(layout: &NodeLayout) -> (String, u16) {
    let text = layout
        .fs()
        .read_to_string(&layout.path("/var/lib/kubelet/config.yaml"))
        .unwrap_or_default();
    let value = |key: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(key)
                .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        })
    };
    let host = value("address:")
        .filter(|a| !a.is_empty() && a != "0.0.0.0" && a != "::")
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = value("port:").and_then(|p| p.parse().ok()).unwrap_or(10250);
    (host, port)
}

/// The client certificate a look at `endpoint` offers: what the component's own probes use.
fn client_identity(layout: &NodeLayout, endpoint: Endpoint) -> Option<ClientIdentity> {
    let stem = match endpoint {
        Endpoint::EtcdClient => "etcd/healthcheck-client",
        Endpoint::EtcdPeer => "etcd/peer",
        Endpoint::Apiserver | Endpoint::Kubelet => return None,
    };
    let certificate_pem = layout
        .fs()
        .read_to_string(&layout.pki_certificate(stem))
        .ok()?;
    let key_pem = layout
        .fs()
        .read_to_string(&layout.pki_dir().join(format!("{stem}.key")))
        .ok()?;
    Some(ClientIdentity {
        certificate_pem,
        key_pem: key_pem.into(),
    })
}

fn in_use(
    layout: &NodeLayout,
    entry: &Entry,
    path: &std::path::Path,
    cert: &Certificate,
    endpoints: &Endpoints,
) -> InUse {
    match entry.pickup {
        Pickup::Serves(_, endpoint) => {
            let (host, port) = match endpoints.get(endpoint) {
                Ok(address) => address.clone(),
                Err(why) => {
                    return InUse::NotChecked {
                        why: why.to_string(),
                    };
                }
            };
            let shown = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            match served::presented(&host, port, client_identity(layout, endpoint).as_ref()) {
                Ok(der) if der == cert.der => InUse::Presented { endpoint: shown },
                Ok(der) => match describe(&der, &[], &[]) {
                    Reading::Present(other) => InUse::PresentsAnother {
                        endpoint: shown,
                        serial: other.serial,
                        not_after: other.not_after,
                        not_after_unix: other.not_after_unix,
                    },
                    _ => InUse::NoAnswer {
                        endpoint: shown,
                        why: "it presented a certificate that does not parse".into(),
                    },
                },
                Err(e) => InUse::NoAnswer {
                    endpoint: shown,
                    why: e.to_string(),
                },
            }
        }
        Pickup::ReadAtStart(component) => {
            if !layout.is_host() {
                return InUse::NotChecked {
                    why: SANDBOX.to_string(),
                };
            }
            started_against_file(layout, component, path)
        }
        Pickup::Reloads(component) => InUse::ReloadsItself { component },
        Pickup::People => InUse::NotAProcess,
    }
}

fn started_against_file(
    layout: &NodeLayout,
    component: Component,
    path: &std::path::Path,
) -> InUse {
    let Some(process) = crate::apiserver::process::find_node_component(layout, component.name())
    else {
        return InUse::NotRunning { component };
    };
    let changed = match layout.fs().metadata(path) {
        Ok(meta) => meta.changed,
        Err(e) => return InUse::NotChecked { why: e.to_string() },
    };
    let (Some(since), Some(started_unix)) = (
        crate::apiserver::process::started_since(&process, changed),
        crate::apiserver::process::started_unix(&process),
    ) else {
        return InUse::NotChecked {
            why: format!("the start time of pid {} cannot be read", process.pid),
        };
    };
    let started = crate::runtime::clock::rfc3339(started_unix);
    if since {
        InUse::StartedAfterTheFile {
            component,
            pid: process.pid,
            started,
        }
    } else {
        InUse::StartedBeforeTheFile {
            component,
            pid: process.pid,
            started,
            file_changed: crate::runtime::clock::rfc3339(
                changed
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_urls_prefer_loopback_and_take_the_last_flag() {
        let manifest = "    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.5:2379\n    - --listen-peer-urls=https://10.0.0.5:2380\n";
        assert_eq!(
            flag_urls(manifest, "listen-client-urls"),
            Some(("127.0.0.1".into(), 2379))
        );
        assert_eq!(
            flag_urls(manifest, "listen-peer-urls"),
            Some(("10.0.0.5".into(), 2380))
        );
        assert_eq!(flag_urls(manifest, "listen-metrics-urls"), None);
        assert_eq!(
            flag_urls(
                "- --listen-peer-urls=http://10.0.0.5:2380\n",
                "listen-peer-urls"
            ),
            None,
            "plain http presents no certificate"
        );
    }
}
