//! What this machine is, before anything is said about it: a kubeadm control-plane node, a
//! worker (a kubelet and its kubelet.conf, no control-plane manifests), or not a Kubernetes node
//! at all (a laptop, a disk not mounted where `--root` says). And the kubelet's own facts, the
//! same on both kinds of node: its client certificate, swap and its swap settings. Reads only.
use std::path::PathBuf;

use serde::Serialize;

use crate::node::NodeLayout;
use crate::node::fs::STATIC_POD_MANIFESTS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
    NotANode,
}

/// A control-plane node has a control-plane static pod manifest (or an apiserver manifest an
/// interrupted nudge parked), or kubeadm's control-plane files: admin.conf, super-admin.conf,
/// the CA's key (its manifests moved out, as kubeadm's own procedures do); a worker has the
/// kubelet's kubeconfig and none of them. What cannot be looked at (a person without root on
/// a node: the manifest directory is root's) is taken for a control plane, whose status then
/// says what it could not read, rather than for a worker or no node.
pub fn role(layout: &NodeLayout) -> Role {
    // `None`: there, but not to be looked at.
    let present = |path: PathBuf| match layout.fs().metadata(&path) {
        Ok(_) => Some(true),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => None,
        Err(_) => Some(false),
    };
    let manifests = layout.manifests_dir();
    let control_plane = STATIC_POD_MANIFESTS
        .iter()
        .map(|name| manifests.join(name))
        .chain([
            layout.parked_manifest(),
            layout.admin_conf(),
            layout.super_admin_conf(),
            layout.cluster_ca_key(),
        ])
        .any(|path| present(path) != Some(false));
    if control_plane {
        Role::ControlPlane
    } else if layout.fs().exists(&layout.kubeconfig("kubelet.conf"))
        || layout
            .fs()
            .exists(&layout.path("/var/lib/kubelet/config.yaml"))
    {
        Role::Worker
    } else {
        Role::NotANode
    }
}

/// The apiserver kubelet.conf talks to: where this worker's control plane is.
pub fn kubelet_server(layout: &NodeLayout) -> Option<String> {
    let text = layout
        .fs()
        .read_to_string(&layout.kubeconfig("kubelet.conf"))
        .ok()?;
    let config = kube::config::Kubeconfig::from_yaml(&text).ok()?;
    let context = config.current_context.as_deref()?;
    let cluster = &config
        .contexts
        .iter()
        .find(|c| c.name == context)?
        .context
        .as_ref()?
        .cluster;
    config
        .clusters
        .iter()
        .find(|c| &c.name == cluster)?
        .cluster
        .as_ref()?
        .server
        .clone()
}

/// The kubelet's client certificate, as kubelet.conf points at it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeletClient {
    pub path: String,
    #[serde(serialize_with = "rfc3339")]
    pub not_after: Option<i64>,
    /// Why its expiry cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

fn rfc3339<S: serde::Serializer>(unix: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match unix {
        Some(unix) => s.serialize_str(&crate::runtime::clock::rfc3339(*unix)),
        None => s.serialize_none(),
    }
}

impl KubeletClient {
    /// `EXPIRED 10d ago (...)`, `valid until ...`, or why it cannot be read.
    pub fn describe(&self, now: i64) -> String {
        use crate::runtime::clock::rfc3339;
        match (self.not_after, &self.problem) {
            (_, Some(problem)) => format!("UNREADABLE: {problem}"),
            (Some(n), None) if n <= now => format!(
                "EXPIRED {} ({})",
                crate::credentials::token::relative(n, now),
                rfc3339(n)
            ),
            (Some(n), None) => format!("valid until {}", rfc3339(n)),
            (None, None) => "expiry unknown".into(),
        }
    }
}

/// The kubelet's client certificate: kubeadm's rotating `kubelet-client-current.pem`.
pub fn kubelet_client(layout: &NodeLayout) -> Option<KubeletClient> {
    let path = layout.path("/var/lib/kubelet/pki/kubelet-client-current.pem");
    if !layout.fs().exists(&path) {
        return None;
    }
    let (not_after, problem) = match layout.fs().read(&path) {
        Ok(pem) => match crate::credentials::pem::not_after(&pem) {
            Ok(n) => (Some(n), None),
            Err(e) => (None, Some(e.to_string())),
        },
        Err(e) => (None, Some(e.to_string())),
    };
    Some(KubeletClient {
        path: layout.node_path(&path),
        not_after,
        problem,
    })
}

/// Swap as the kubelet meets it: what is on (`/proc/swaps` of the root) and what the kubelet's
/// configuration says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Swap {
    /// Active swap areas (`/swapfile (file)`).
    pub areas: Vec<String>,
    /// `--fail-swap-on` in the kubelet's flag files, else `failSwapOn` in
    /// /var/lib/kubelet/config.yaml (`None`: neither, the default true).
    pub fail_swap_on: Option<bool>,
    /// Where `fail_swap_on` was read.
    #[serde(skip)]
    pub fail_swap_on_from: String,
    /// `memorySwap.swapBehavior` (NoSwap, LimitedSwap).
    pub swap_behavior: Option<String>,
    /// `/etc/fstab` lines that turn swap on at boot.
    pub fstab: Vec<String>,
}

impl Swap {
    /// `off`, or `ON:` and the areas.
    pub fn describe(swap: Option<&Swap>) -> String {
        match swap {
            None => "off".into(),
            Some(swap) => format!("ON: {}", swap.areas.join(", ")),
        }
    }

    /// The kubelet refuses to start: swap on and `failSwapOn` not false.
    pub fn refused(&self) -> bool {
        !self.areas.is_empty() && self.fail_swap_on != Some(false)
    }
}

/// Swap on this machine, when any is on.
pub fn swap(layout: &NodeLayout) -> Option<Swap> {
    let text = layout
        .fs()
        .read_to_string(&layout.path("/proc/swaps"))
        .ok()?;
    let areas = swap_areas(&text);
    if areas.is_empty() {
        return None;
    }
    let config = layout
        .fs()
        .read_to_string(&layout.path("/var/lib/kubelet/config.yaml"))
        .ok()
        .and_then(|t| serde_saphyr::from_str::<serde_json::Value>(&t).ok());
    // The flag wins over the file; kubeadm's and the distributions' flag files carry it.
    let flag = [
        "/var/lib/kubelet/kubeadm-flags.env",
        "/etc/default/kubelet",
        "/etc/sysconfig/kubelet",
    ]
    .iter()
    .find_map(|file| {
        let text = layout.fs().read_to_string(&layout.path(file)).ok()?;
        let value = text
            .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .find_map(|word| word.strip_prefix("--fail-swap-on="))?;
        Some((value.parse::<bool>().ok()?, file.to_string()))
    });
    let (fail_swap_on, fail_swap_on_from) = match flag {
        Some((value, file)) => (Some(value), file),
        None => (
            config
                .as_ref()
                .and_then(|c| c.get("failSwapOn"))
                .and_then(serde_json::Value::as_bool),
            "/var/lib/kubelet/config.yaml".to_string(),
        ),
    };
    let fstab = layout
        .fs()
        .read_to_string(&layout.path("/etc/fstab"))
        .map(|t| fstab_swap_lines(&t))
        .unwrap_or_default();
    Some(Swap {
        areas,
        fail_swap_on,
        fail_swap_on_from,
        swap_behavior: config
            .as_ref()
            .and_then(|c| c.pointer("/memorySwap/swapBehavior"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string),
        fstab,
    })
}

/// `/proc/swaps`: a header, then `Filename Type Size Used Priority` per area.
fn swap_areas(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?;
            let kind = fields.next().unwrap_or("?");
            Some(format!("{} ({kind})", crate::ui::escape(name)))
        })
        .collect()
}

/// The uncommented fstab lines whose type is swap.
fn fstab_swap_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter(|l| l.split_whitespace().nth(2) == Some("swap"))
        .map(|l| crate::ui::escape(l.trim()).into_owned())
        .collect()
}

/// The newest log of a static pod's container (`/var/log/pods/kube-system_<name>-*/<name>/N.log`)
/// and its last lines.
pub fn newest_log(layout: &NodeLayout, component: &str) -> Option<(PathBuf, String)> {
    let log = crate::apiserver::logs::newest_of(layout, component)?;
    let tail = crate::apiserver::logs::tail(layout, &log, 200);
    Some((log, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_areas_are_the_rows_below_the_header() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swapfile                               file\t\t1048572\t\t0\t\t-2\n";
        assert_eq!(swap_areas(text), ["/swapfile (file)"]);
        assert!(swap_areas("Filename Type Size Used Priority\n").is_empty());
    }

    #[test]
    fn fstab_swap_lines_skip_comments_and_other_mounts() {
        let text =
            "UUID=1 / ext4 defaults 0 1\n#/swap.img none swap sw 0 0\n/swapfile none swap sw 0 0\n";
        assert_eq!(fstab_swap_lines(text), ["/swapfile none swap sw 0 0"]);
    }

    #[test]
    fn the_kubelet_refuses_swap_unless_fail_swap_on_is_false() {
        let swap = |fail_swap_on| Swap {
            areas: vec!["/swapfile (file)".into()],
            fail_swap_on,
            fail_swap_on_from: "/var/lib/kubelet/config.yaml".into(),
            swap_behavior: None,
            fstab: Vec::new(),
        };
        assert!(swap(None).refused(), "the default is true");
        assert!(swap(Some(true)).refused());
        assert!(!swap(Some(false)).refused());
    }
}
