//! The rest of a kubeadm node's PKI (etcd's CA and certificates, the controller-manager's and
//! scheduler's kubeconfigs, the kubelet's files), and the expired-certificates lockout: every
//! leaf re-signed by its own CA with the same identity and key, but with dates in the past. The
//! expiry works on a real kubeadm node too (the real-node tier uses it on `/`).
use std::path::Path;

use base64::Engine;
use kubeadm_recover::certs::catalogue::{Authority, LEAVES, Location};
use kubeadm_recover::certs::reissue::reissue;
use kubeadm_recover::credentials::kubeconfig::edit::kubeadm_kubeconfig;
use kubeadm_recover::credentials::pki::{self, Key, KeyType, Profile, Request, YEAR};

use super::node::write;

/// What `build` lays out besides the apiserver's own PKI: kubeadm's etcd PKI, the two
/// component kubeconfigs, kubelet.conf pointing at the rotating client certificate, and a
/// self-signed kubelet serving certificate.
pub fn control_plane_pki(
    root: &Path,
    key_type: KeyType,
    server: &str,
    node_name: &str,
) -> Result<(), pki::Error> {
    let k8s = root.join("etc/kubernetes");
    let pki_dir = k8s.join("pki");
    let now = pki::now();
    let ca_pem = std::fs::read_to_string(pki_dir.join("ca.crt"))?;
    let ca_key = Key::from_pem(&std::fs::read_to_string(pki_dir.join("ca.key"))?)?;
    let request = |common_name, organizations, profile, validity| Request {
        common_name,
        organizations,
        profile,
        now,
        validity,
    };

    let etcd_key = Key::generate(key_type)?;
    let etcd_ca = pki::self_signed_ca(&etcd_key, &request("etcd-ca", &[], Profile::Ca, 10 * YEAR))?;
    write(&pki_dir.join("etcd/ca.crt"), &etcd_ca.pem, 0o644)?;
    write(&pki_dir.join("etcd/ca.key"), &etcd_key.pem, 0o600)?;
    let sans = vec![
        node_name.to_string(),
        "localhost".into(),
        "127.0.0.1".into(),
    ];
    let etcd_leaves: [(&str, &str, &[&str], Profile); 4] = [
        (
            "etcd/server",
            node_name,
            &[],
            Profile::Server { sans: &sans },
        ),
        ("etcd/peer", node_name, &[], Profile::Server { sans: &sans }),
        (
            "etcd/healthcheck-client",
            "kube-etcd-healthcheck-client",
            &[],
            Profile::Client,
        ),
        (
            "apiserver-etcd-client",
            "kube-apiserver-etcd-client",
            &[],
            Profile::Client,
        ),
    ];
    for (stem, cn, orgs, profile) in etcd_leaves {
        let key = Key::generate(key_type)?;
        let cert = pki::issue(
            &etcd_ca.pem,
            &etcd_key,
            &key,
            &request(cn, orgs, profile, YEAR),
        )?;
        write(&pki_dir.join(format!("{stem}.crt")), &cert.pem, 0o644)?;
        write(&pki_dir.join(format!("{stem}.key")), &key.pem, 0o600)?;
    }

    for (file, user) in [
        ("controller-manager.conf", "system:kube-controller-manager"),
        ("scheduler.conf", "system:kube-scheduler"),
    ] {
        let key = Key::generate(key_type)?;
        let cert = pki::issue(
            &ca_pem,
            &ca_key,
            &key,
            &request(user, &[], Profile::Client, YEAR),
        )?;
        write(
            &k8s.join(file),
            &kubeadm_kubeconfig(&ca_pem, server, user, &cert.pem, &key.pem),
            0o600,
        )?;
    }

    // The kubelet: its rotating client certificate behind a symlink, as the kubelet keeps it,
    // and kubelet.conf naming the link (kubeadm's layout since client rotation).
    let kubelet_pki = root.join("var/lib/kubelet/pki");
    let key = Key::generate(key_type)?;
    let user = format!("system:node:{node_name}");
    let client = pki::issue(
        &ca_pem,
        &ca_key,
        &key,
        &request(&user, &["system:nodes"], Profile::Client, YEAR),
    )?;
    let dated = kubelet_pki.join("kubelet-client-2026-01-01-00-00-00.pem");
    write(&dated, &format!("{}{}", client.pem, key.pem), 0o600)?;
    let link = kubelet_pki.join("kubelet-client-current.pem");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(
        "/var/lib/kubelet/pki/kubelet-client-2026-01-01-00-00-00.pem",
        &link,
    )?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    write(
        &k8s.join("kubelet.conf"),
        &format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: kubernetes\n\
             contexts:\n- context:\n    cluster: kubernetes\n    user: {user}\n  name: {user}@kubernetes\n\
             current-context: {user}@kubernetes\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n\
             \x20   client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n\
             \x20   client-key: /var/lib/kubelet/pki/kubelet-client-current.pem\n",
            b64(&ca_pem)
        ),
        0o600,
    )?;
    let serving_key = Key::generate(key_type)?;
    let serving = pki::self_signed_ca(
        &serving_key,
        &request(&format!("{node_name}@1700000000"), &[], Profile::Ca, YEAR),
    )?;
    write(&kubelet_pki.join("kubelet.crt"), &serving.pem, 0o644)?;
    write(&kubelet_pki.join("kubelet.key"), &serving_key.pem, 0o600)?;
    Ok(())
}

/// Re-signs the named leaves (kubeadm's names; all of kubeadm's when empty) with their own
/// identity and key, valid from two years ago to `ended_days_ago` days ago. Returns the names
/// re-signed. The kubelet's own files are left alone.
pub fn expire(root: &Path, names: &[String], ended_days_ago: i64) -> Result<Vec<String>, String> {
    let k8s = root.join("etc/kubernetes");
    let pki_dir = k8s.join("pki");
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let ca = |authority: Authority| -> Result<(String, Key), String> {
        let stem = authority.pki_stem();
        let pem = read(&pki_dir.join(format!("{stem}.crt")))?;
        let key = Key::from_pem(&read(&pki_dir.join(format!("{stem}.key")))?)
            .map_err(|e| e.to_string())?;
        Ok((pem, key))
    };
    let now = pki::now();
    let not_after = now - time::Duration::days(ended_days_ago);
    let not_before = not_after - time::Duration::days(365);
    let mut done = Vec::new();
    for entry in LEAVES.iter().filter(|e| e.kubeadm_renews) {
        if !names.is_empty() && !names.iter().any(|n| n == entry.name) {
            continue;
        }
        let file = match entry.location {
            Location::Pki(stem) => pki_dir.join(format!("{stem}.crt")),
            Location::Kubeconfig(file) => k8s.join(file),
            Location::Kubelet(_) => continue,
        };
        // Only what the node has: a node without etcd's PKI has no etcd certificates either.
        if !file.exists() {
            continue;
        }
        let (ca_pem, ca_key) = ca(entry.authority)?;
        match entry.location {
            Location::Pki(stem) => {
                let cert_path = file;
                let old = kubeadm_recover::credentials::pem::certificates(&read(&cert_path)?);
                let key = Key::from_pem(&read(&pki_dir.join(format!("{stem}.key")))?)
                    .map_err(|e| e.to_string())?;
                let new = reissue(&old[0], &key, &ca_pem, &ca_key, not_before, not_after)
                    .map_err(|e| format!("{}: {e}", entry.name))?;
                std::fs::write(&cert_path, new.pem).map_err(|e| e.to_string())?;
            }
            Location::Kubeconfig(file) => {
                let path = k8s.join(file);
                let text = read(&path)?;
                let users = kubeadm_recover::credentials::kubeconfig::edit::user_credentials(&text)
                    .map_err(|e| e.to_string())?;
                let Some(user) = users.into_iter().find(|u| u.cert_b64.is_some()) else {
                    continue;
                };
                let (old_b64, key_b64) = (
                    user.cert_b64.expect("filtered"),
                    user.key_b64.ok_or(format!("{file}: no embedded key"))?,
                );
                let decode = |b: &str| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .map_err(|e| e.to_string())
                };
                let old = kubeadm_recover::credentials::pem::certificates(&decode(&old_b64)?);
                let key = Key::from_pem(&decode(secrecy::ExposeSecret::expose_secret(&key_b64))?)
                    .map_err(|e| e.to_string())?;
                let new = reissue(&old[0], &key, &ca_pem, &ca_key, not_before, not_after)
                    .map_err(|e| format!("{}: {e}", entry.name))?;
                let new_b64 = base64::engine::general_purpose::STANDARD.encode(new.pem);
                std::fs::write(&path, text.replace(old_b64.trim(), &new_b64))
                    .map_err(|e| e.to_string())?;
            }
            Location::Kubelet(_) => continue,
        }
        done.push(entry.name.to_string());
    }
    // The kubelet's rotating client certificate, only when named (a node off for a year): the
    // file the link points at, certificate then key, re-signed with the same key. The link is
    // absolute, as the kubelet writes it: it is taken inside `root`.
    if names.iter().any(|n| n == "kubelet-client") {
        let link = root.join("var/lib/kubelet/pki/kubelet-client-current.pem");
        let target = std::fs::read_link(&link).map_err(|e| format!("{}: {e}", link.display()))?;
        let file = root.join(target.strip_prefix("/").unwrap_or(&target));
        let pair = read(&file)?;
        let old = kubeadm_recover::credentials::pem::certificates(&pair);
        // The key is the block after the certificate, to the end of the file.
        let key_pem = pair
            .match_indices("-----BEGIN")
            .map(|(i, _)| &pair[i..])
            .find(|block| !block.starts_with("-----BEGIN CERTIFICATE"))
            .ok_or(format!("{}: no key", file.display()))?;
        let key = Key::from_pem(key_pem).map_err(|e| e.to_string())?;
        let (ca_pem, ca_key) = ca(Authority::Ca)?;
        let new = reissue(&old[0], &key, &ca_pem, &ca_key, not_before, not_after)
            .map_err(|e| format!("kubelet-client: {e}"))?;
        std::fs::write(&file, format!("{}{}", new.pem, key.pem)).map_err(|e| e.to_string())?;
        done.push("kubelet-client".to_string());
    }
    Ok(done)
}
