//! Lays out a kubeadm control-plane node in a directory: certificates made the way kubeadm makes
//! them, kubeconfigs shaped like kubeadm's, and a kubeadm-shaped apiserver manifest on a free
//! loopback port.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::config::SimConfig;
use kubeadm_recover::credentials::pki::{self, Key, KeyType, Profile, Request, YEAR};

#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Kubernetes version in the image tag, e.g. "1.30.2".
    pub version: String,
    pub key_type: KeyType,
    /// admin.conf (and super-admin.conf) expired a year ago.
    pub admin_expired: bool,
    /// Extra apiserver flags for the manifest, e.g. `--audit-log-path=/var/log/kubernetes/audit.log`.
    pub extra_args: Vec<String>,
    pub config: SimConfig,
    /// The whole control-plane PKI: etcd's, controller-manager.conf, scheduler.conf and the
    /// kubelet's files too (off by default: RSA keys are slow to make).
    pub full_pki: bool,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            version: "1.30.2".into(),
            key_type: KeyType::Rsa2048,
            admin_expired: false,
            extra_args: Vec::new(),
            config: SimConfig::default(),
            full_pki: false,
        }
    }
}

pub struct SimNode {
    pub root: PathBuf,
    pub port: u16,
}

/// Writes a node file with its mode, making its directory.
pub(crate) fn write(path: &Path, contents: &str, mode: u32) -> Result<(), pki::Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, contents)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// (major, minor) from "1.30.2".
fn minor(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(1), parts.next().unwrap_or(0))
}

pub fn build(root: &Path, options: &NodeOptions) -> Result<SimNode, pki::Error> {
    let k8s = root.join("etc/kubernetes");
    let pki_dir = k8s.join("pki");
    std::fs::create_dir_all(k8s.join("manifests"))?;
    std::fs::create_dir_all(&pki_dir)?;
    let now = pki::now();
    let port = free_port()?;
    let key = || Key::generate(options.key_type);

    // The CA predates everything, as on a node that has run for a while.
    let ca_key = key()?;
    let ca = pki::self_signed_ca(
        &ca_key,
        &Request {
            common_name: "kubernetes",
            organizations: &[],
            profile: Profile::Ca,
            now: now - time::Duration::days(3 * 365),
            validity: 10 * YEAR,
        },
    )?;
    write(&pki_dir.join("ca.crt"), &ca.pem, 0o644)?;
    write(&pki_dir.join("ca.key"), &ca_key.pem, 0o600)?;

    let issue = |cn: &str,
                 orgs: &[&str],
                 profile: Profile,
                 name: &str,
                 when: time::OffsetDateTime|
     -> Result<(String, String), pki::Error> {
        let k = key()?;
        let cert = pki::issue(
            &ca.pem,
            &ca_key,
            &k,
            &Request {
                common_name: cn,
                organizations: orgs,
                profile,
                now: when,
                validity: YEAR,
            },
        )?;
        if !name.is_empty() {
            write(&pki_dir.join(format!("{name}.crt")), &cert.pem, 0o644)?;
            write(&pki_dir.join(format!("{name}.key")), &k.pem, 0o600)?;
        }
        Ok((cert.pem, k.pem))
    };

    let node_name = options.config.node_name.clone();
    let sans: Vec<String> = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        node_name.as_str(),
        "10.96.0.1",
        "127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    issue(
        "kube-apiserver",
        &[],
        Profile::Server { sans: &sans },
        "apiserver",
        now,
    )?;
    let (major, minor_version) = minor(&options.version);
    let admin_group = if (major, minor_version) >= (1, 29) {
        "kubeadm:cluster-admins"
    } else {
        "system:masters"
    };
    issue(
        "kube-apiserver-kubelet-client",
        &[admin_group],
        Profile::Client,
        "apiserver-kubelet-client",
        now,
    )?;

    let fp_key = key()?;
    let fp_ca = pki::self_signed_ca(
        &fp_key,
        &Request {
            common_name: "front-proxy-ca",
            organizations: &[],
            profile: Profile::Ca,
            now,
            validity: 10 * YEAR,
        },
    )?;
    write(&pki_dir.join("front-proxy-ca.crt"), &fp_ca.pem, 0o644)?;
    write(&pki_dir.join("front-proxy-ca.key"), &fp_key.pem, 0o600)?;
    let fp_client_key = key()?;
    let fp_client = pki::issue(
        &fp_ca.pem,
        &fp_key,
        &fp_client_key,
        &Request {
            common_name: "front-proxy-client",
            organizations: &[],
            profile: Profile::Client,
            now,
            validity: YEAR,
        },
    )?;
    write(
        &pki_dir.join("front-proxy-client.crt"),
        &fp_client.pem,
        0o644,
    )?;
    write(
        &pki_dir.join("front-proxy-client.key"),
        &fp_client_key.pem,
        0o600,
    )?;

    // Service-account tokens are signed RS256 here, whatever the certificate key type.
    let sa = Key::generate(KeyType::Rsa2048)?;
    write(&pki_dir.join("sa.key"), &sa.pem, 0o600)?;
    write(&pki_dir.join("sa.pub"), &sa.public_pem(), 0o644)?;

    let admin_time = if options.admin_expired {
        now - time::Duration::days(2 * 365)
    } else {
        now
    };
    let server = format!("https://127.0.0.1:{port}");
    let (cert, key_pem) = issue(
        "kubernetes-admin",
        &[admin_group],
        Profile::Client,
        "",
        admin_time,
    )?;
    write(
        &k8s.join("admin.conf"),
        &kubeadm_recover::credentials::kubeconfig::edit::kubeadm_kubeconfig(
            &ca.pem,
            &server,
            "kubernetes-admin",
            &cert,
            &key_pem,
        ),
        0o600,
    )?;
    if (major, minor_version) >= (1, 29) {
        let (cert, key_pem) = issue(
            "kubernetes-super-admin",
            &["system:masters"],
            Profile::Client,
            "",
            admin_time,
        )?;
        write(
            &k8s.join("super-admin.conf"),
            &kubeadm_recover::credentials::kubeconfig::edit::kubeadm_kubeconfig(
                &ca.pem,
                &server,
                "kubernetes-super-admin",
                &cert,
                &key_pem,
            ),
            0o600,
        )?;
    }

    if options.full_pki {
        super::certs::control_plane_pki(root, options.key_type, &server, &node_name)?;
    }

    let extra: String = options
        .extra_args
        .iter()
        .map(|a| format!("    - {a}\n"))
        .collect();
    let manifest = include_str!("manifest.yaml")
        .replace("{{PORT}}", &port.to_string())
        .replace("{{VERSION}}", &options.version)
        .replace(
            "    - --advertise-address=127.0.0.1\n",
            &format!("    - --advertise-address=127.0.0.1\n{extra}"),
        );
    write(&k8s.join("manifests/kube-apiserver.yaml"), &manifest, 0o600)?;
    options.config.save(root)?;
    Ok(SimNode {
        root: root.to_path_buf(),
        port,
    })
}
