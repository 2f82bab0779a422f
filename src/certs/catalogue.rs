//! The certificates a kubeadm control-plane node depends on, by kubeadm's names for them
//! (`kubeadm certs check-expiration`), with who uses each and how a running component picks up a
//! renewed one. Pure data: what the source of each component says, checked on the versions the
//! tests run (README "Certificates").
use serde::Serialize;

/// The three CAs kubeadm makes (ten years each). Never rotated by this tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Authority {
    /// `pki/ca.crt`: the cluster CA (apiserver, kubeconfigs, kubelets).
    Ca,
    /// `pki/etcd/ca.crt`.
    EtcdCa,
    /// `pki/front-proxy-ca.crt`: the aggregation layer's.
    FrontProxyCa,
}

impl Authority {
    pub const ALL: [Authority; 3] = [Authority::Ca, Authority::EtcdCa, Authority::FrontProxyCa];

    /// kubeadm's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Authority::Ca => "ca",
            Authority::EtcdCa => "etcd-ca",
            Authority::FrontProxyCa => "front-proxy-ca",
        }
    }

    /// Its files under `pki/`, without the extension.
    pub fn pki_stem(self) -> &'static str {
        match self {
            Authority::Ca => "ca",
            Authority::EtcdCa => "etcd/ca",
            Authority::FrontProxyCa => "front-proxy-ca",
        }
    }
}

/// A running component, as its process and static pod are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    KubeApiserver,
    Etcd,
    KubeControllerManager,
    KubeScheduler,
    Kubelet,
}

impl Component {
    pub fn name(self) -> &'static str {
        match self {
            Component::KubeApiserver => "kube-apiserver",
            Component::Etcd => "etcd",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
            Component::Kubelet => "kubelet",
        }
    }
}

/// A port a component presents a certificate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    /// `--secure-port` of the apiserver manifest (6443).
    Apiserver,
    /// etcd's `--listen-client-urls` (2379).
    EtcdClient,
    /// etcd's `--listen-peer-urls` (2380).
    EtcdPeer,
    /// The kubelet's port (10250).
    Kubelet,
}

/// Where the certificate is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// `pki/<stem>.crt` beside `pki/<stem>.key`.
    Pki(&'static str),
    /// `client-certificate-data` embedded in `/etc/kubernetes/<file>`.
    Kubeconfig(&'static str),
    /// A file of the kubelet's own under `/var/lib/kubelet/pki`.
    Kubelet(KubeletFile),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeletFile {
    /// `kubelet-client-current.pem`: the kubelet rotates it itself.
    Client,
    /// `kubelet-server-current.pem` when serving certificates are bootstrapped, else the
    /// self-signed `kubelet.crt`.
    Serving,
}

/// How the component that uses a certificate picks up a renewed one: the question of whether a
/// renewal needs a restart, answered per certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pickup {
    /// Served on a port and re-read from the file by the component (the apiserver's file watch
    /// and one-minute recheck; etcd at each new handshake): provable by a handshake.
    Serves(Component, Endpoint),
    /// Embedded in a kubeconfig the component read once at start: only a restart picks up a new
    /// one (client-go reloads file-referenced certificates only).
    ReadAtStart(Component),
    /// A client certificate the component re-reads from its file (the apiserver's to the kubelets,
    /// to etcd and the front proxy; the kubelet's own client certificate): no restart, and not
    /// visible from outside.
    Reloads(Component),
    /// Used by people and scripts (admin.conf, the etcd health check): each new use reads it.
    People,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// kubeadm's name (`kubeadm certs renew <name>`), or ours for the kubelet's files.
    pub name: &'static str,
    pub location: Location,
    /// The CA that signs it on a kubeadm node (the kubelet's serving certificate may be
    /// self-signed instead).
    pub authority: Authority,
    pub pickup: Pickup,
    /// kubeadm renews it (`kubeadm certs renew`); the kubelet's are the kubelet's.
    pub kubeadm_renews: bool,
    /// Not on every control-plane node (super-admin.conf is on the first one, from 1.29).
    pub optional: bool,
}

const fn pki(name: &'static str, authority: Authority, pickup: Pickup) -> Entry {
    Entry {
        name,
        location: Location::Pki(pki_stem(name)),
        authority,
        pickup,
        kubeadm_renews: true,
        optional: false,
    }
}

const fn pki_stem(name: &'static str) -> &'static str {
    match name.as_bytes() {
        b"etcd-server" => "etcd/server",
        b"etcd-peer" => "etcd/peer",
        b"etcd-healthcheck-client" => "etcd/healthcheck-client",
        _ => name,
    }
}

const fn kubeconfig(name: &'static str, pickup: Pickup, optional: bool) -> Entry {
    Entry {
        name,
        location: Location::Kubeconfig(name),
        authority: Authority::Ca,
        pickup,
        kubeadm_renews: true,
        optional,
    }
}

/// Every leaf certificate, in `kubeadm certs check-expiration`'s order, then the kubelet's.
pub const LEAVES: [Entry; 13] = [
    kubeconfig("admin.conf", Pickup::People, false),
    pki(
        "apiserver",
        Authority::Ca,
        Pickup::Serves(Component::KubeApiserver, Endpoint::Apiserver),
    ),
    pki(
        "apiserver-etcd-client",
        Authority::EtcdCa,
        Pickup::Reloads(Component::KubeApiserver),
    ),
    pki(
        "apiserver-kubelet-client",
        Authority::Ca,
        Pickup::Reloads(Component::KubeApiserver),
    ),
    kubeconfig(
        "controller-manager.conf",
        Pickup::ReadAtStart(Component::KubeControllerManager),
        false,
    ),
    pki("etcd-healthcheck-client", Authority::EtcdCa, Pickup::People),
    pki(
        "etcd-peer",
        Authority::EtcdCa,
        Pickup::Serves(Component::Etcd, Endpoint::EtcdPeer),
    ),
    pki(
        "etcd-server",
        Authority::EtcdCa,
        Pickup::Serves(Component::Etcd, Endpoint::EtcdClient),
    ),
    pki(
        "front-proxy-client",
        Authority::FrontProxyCa,
        Pickup::Reloads(Component::KubeApiserver),
    ),
    kubeconfig(
        "scheduler.conf",
        Pickup::ReadAtStart(Component::KubeScheduler),
        false,
    ),
    kubeconfig("super-admin.conf", Pickup::People, true),
    Entry {
        name: "kubelet-client",
        location: Location::Kubelet(KubeletFile::Client),
        authority: Authority::Ca,
        pickup: Pickup::Reloads(Component::Kubelet),
        kubeadm_renews: false,
        optional: false,
    },
    Entry {
        name: "kubelet-serving",
        location: Location::Kubelet(KubeletFile::Serving),
        authority: Authority::Ca,
        pickup: Pickup::Serves(Component::Kubelet, Endpoint::Kubelet),
        kubeadm_renews: false,
        optional: false,
    },
];

/// `kubelet.conf` when it embeds its client certificate (clusters from before client
/// rotation, or a kubelet.conf rewritten by hand): read at the kubelet's start.
pub const EMBEDDED_KUBELET_CONF: Entry = Entry {
    name: "kubelet.conf",
    location: Location::Kubeconfig("kubelet.conf"),
    authority: Authority::Ca,
    pickup: Pickup::ReadAtStart(Component::Kubelet),
    kubeadm_renews: false,
    optional: true,
};

/// A leaf by its kubeadm name.
pub fn leaf(name: &str) -> Option<&'static Entry> {
    LEAVES.iter().find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kubeadms_and_unique_and_etcd_lives_under_etcd() {
        let mut names: Vec<&str> = LEAVES.iter().map(|e| e.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), LEAVES.len());
        assert_eq!(
            leaf("etcd-server").unwrap().location,
            Location::Pki("etcd/server")
        );
        assert_eq!(
            leaf("apiserver").unwrap().location,
            Location::Pki("apiserver")
        );
    }

    #[test]
    fn only_the_embedded_client_certificates_need_a_restart() {
        let restart: Vec<&str> = LEAVES
            .iter()
            .filter(|e| matches!(e.pickup, Pickup::ReadAtStart(_)))
            .map(|e| e.name)
            .collect();
        assert_eq!(restart, ["controller-manager.conf", "scheduler.conf"]);
    }
}
