//! The kubelet's own client certificate. The kubelet rotates it while it is valid; once it has
//! expired (a node off for a year) the kubelet cannot authenticate to rotate it and does not
//! start. kubeadm's documented fix is by hand: a new credential for `system:node:<name>`, a
//! `kubelet.conf` that points at the rotating `kubelet-client-current.pem`, a kubelet restart.
//! Here: the pair re-issued from the cluster CA in place (the link kept), `kubelet.conf` in
//! kubeadm's shape where it embeds its credential, the kubelet restarted through systemd, and
//! proved by the node's Lease renewing and the node Ready.
use super::{Current, PlannedWrite};
use crate::error::{Error, Result};
use crate::node::NodeLayout;

/// Where the kubelet keeps its rotating pair: what kubelet.conf must name.
pub const CURRENT_PAIR: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

/// Why `certs renew` leaves the kubelet's certificate alone, if it does: still valid (the
/// kubelet rotates it itself), `--method kubeadm` (kubeadm does not renew it), or a kubelet this
/// tool cannot restart. Asked for by name, the last two are refused instead.
pub(super) fn left_alone(
    layout: &NodeLayout,
    current: &Current,
    named: bool,
    kubeadm_method: bool,
) -> Result<Option<String>> {
    if kubeadm_method {
        let why = "kubeadm does not renew the kubelet's certificate: `kubeadm-recover certs renew kubelet-client` (the native method) does";
        return if named {
            Err(Error::Usage(format!(
                "kubelet-client with --method kubeadm: {why}"
            )))
        } else {
            Ok(Some(why.into()))
        };
    }
    let ends = crate::runtime::clock::parse_rfc3339(&current.not_after).unwrap_or(0);
    if !named && ends > crate::runtime::clock::now_unix() {
        return Ok(Some(format!(
            "valid until {}: the kubelet renews it itself while it is valid",
            current.not_after
        )));
    }
    if let Err(why) = restartable(layout) {
        let why = format!(
            "{why}. Renew it by hand (kubeadm's \"kubelet client certificate rotation fails\" steps), then restart the kubelet the way it is run"
        );
        return if named {
            Err(Error::Refused(format!("kubelet-client: {why}")))
        } else {
            Ok(Some(why))
        };
    }
    Ok(None)
}

/// Why the kubelet cannot be restarted by this tool.
#[derive(Debug, thiserror::Error)]
pub enum NotRestartable {
    #[error("the kubelet is not a systemd unit here (systemctl show kubelet: LoadState={})", crate::ui::escape(.0))]
    NotAUnit(String),
    #[error("systemctl cannot be asked about the kubelet: {0}")]
    NoSystemctl(crate::runtime::interrupt::Stopped),
}

/// Whether this tool can restart the kubelet: on the host, where systemd has a kubelet unit
/// (loaded, whatever its state: a kubelet on an expired certificate is "activating" or
/// "failed" between its restarts, which is when it needs this). The kubelet of a `--root`
/// sandbox is never the host's, and nothing is restarted there.
pub fn restartable(layout: &NodeLayout) -> std::result::Result<(), NotRestartable> {
    if !layout.is_host() {
        return Ok(());
    }
    let out = crate::runtime::interrupt::run(
        duct::cmd(
            "systemctl",
            ["show", "--property=LoadState", "--value", "kubelet"],
        )
        .stderr_null()
        .stdout_capture(),
        std::time::Duration::from_secs(10),
        true,
    )
    .map_err(NotRestartable::NoSystemctl)?;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && said == "loaded" {
        Ok(())
    } else {
        Err(NotRestartable::NotAUnit(said))
    }
}

/// The node a kubelet client certificate is for: `CN=system:node:<name>`.
pub fn node_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let common_name = cert.subject().iter_common_name().next()?.as_str().ok()?;
    common_name
        .strip_prefix("system:node:")
        .filter(|name| !name.is_empty())
        .map(str::to_string)
}

/// kubelet.conf in kubeadm's shape (its user naming the rotating pair), where it does not name
/// it already: a kubelet.conf that embeds its credential would keep the expired one.
pub(super) fn conf_write(layout: &NodeLayout) -> Result<Vec<PlannedWrite>> {
    let path = layout.kubeconfig("kubelet.conf");
    let by_hand = |why: String| {
        Error::Refused(format!(
            "{}: {why}; write it by hand as kubeadm does (its user's client-certificate and client-key: {CURRENT_PAIR})",
            path.display()
        ))
    };
    let text = layout
        .fs()
        .read_to_string(&path)
        .map_err(|e| by_hand(e.to_string()))?;
    let config: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| by_hand(format!("not a kubeconfig: {e}")))?;
    let user = config
        .pointer("/users/0")
        .ok_or_else(|| by_hand("no user".into()))?;
    if user
        .pointer("/user/client-certificate")
        .and_then(|c| c.as_str())
        == Some(CURRENT_PAIR)
        && user.pointer("/user/client-key").and_then(|c| c.as_str()) == Some(CURRENT_PAIR)
    {
        return Ok(Vec::new());
    }
    let field = |pointer: &str| {
        config
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| by_hand(format!("no {pointer}")))
    };
    let user_name = field("/users/0/name")?;
    let new = rotating(
        &field("/clusters/0/name")?,
        &field("/clusters/0/cluster/server")?,
        &field("/clusters/0/cluster/certificate-authority-data")?,
        &user_name,
    );
    Ok(vec![PlannedWrite {
        path,
        old: Some(text.into_bytes()),
        new: new.into_bytes(),
        ownership: None,
    }])
}

/// kubeadm's kubelet.conf once client rotation is on (`kubeadm init phase kubelet-finalize`).
fn rotating(cluster: &str, server: &str, ca_data: &str, user: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca_data}\n    server: {server}\n  name: {cluster}\n\
         contexts:\n- context:\n    cluster: {cluster}\n    user: {user}\n  name: {user}@{cluster}\n\
         current-context: {user}@{cluster}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n\
         \x20   client-certificate: {CURRENT_PAIR}\n    client-key: {CURRENT_PAIR}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_conf_is_written_in_kubeadms_rotating_shape_and_reads_back() {
        let text = rotating(
            "kubernetes",
            "https://198.51.100.10:6443",
            "Q0E=",
            "system:node:realnode",
        );
        let config: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(
            config.pointer("/users/0/user/client-certificate").unwrap(),
            CURRENT_PAIR
        );
        assert_eq!(
            config.pointer("/users/0/user/client-key").unwrap(),
            CURRENT_PAIR
        );
        assert_eq!(config["current-context"], "system:node:realnode@kubernetes");
        assert_eq!(
            config.pointer("/clusters/0/cluster/server").unwrap(),
            "https://198.51.100.10:6443"
        );
    }
}
