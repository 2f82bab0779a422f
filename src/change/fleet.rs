//! The fleet rule for changes nobody watches (a revert run by a timer): at most one
//! control-plane apiserver restarting at a time, and none while another is unhealthy. The
//! cluster's own coordination is used, not a home-made one: a `coordination.k8s.io/v1` Lease
//! in kube-system, taken through the API (optimistic concurrency on its resourceVersion)
//! before anything restarts and released after the proof; and a `/readyz` of every other
//! apiserver the kube-apiserver mirror pods name. Held, or another unhealthy: refused, and the
//! timer tries again an hour later.
use std::time::Duration;

use serde_json::{Value, json};

use crate::apiserver::admin::{Admin, CallError};
use crate::apiserver::client::{ApiClient, Endpoint};
use crate::change::plan::ChangeSettings;
use crate::error::{Error, Result};
use crate::node::{NodeLayout, read_apiserver_manifest};

pub const LEASE_NAME: &str = "kubeadm-recover-apiserver-restart";
const NAMESPACE: &str = "kube-system";
const ADVERTISE: &str = "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint";

fn lease_path() -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{LEASE_NAME}")
}

/// `metav1.MicroTime`: the apiserver parses exactly six fractional digits.
fn micro_time(unix: i64) -> String {
    crate::runtime::clock::rfc3339(unix).replace('Z', ".000000Z")
}

fn parse_time(text: &str) -> Option<i64> {
    crate::runtime::clock::parse_rfc3339(text)
}

/// Who holds the lease, as the other nodes read it: the node and the session.
pub fn holder_identity(layout: &NodeLayout, session: &str) -> String {
    let host = layout
        .fs()
        .read_to_string(&layout.path("/etc/hostname"))
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-node".into());
    format!("{host}/{session}")
}

/// The lease, held until released (or until it expires by itself, if this process dies).
pub struct Held {
    admin: Admin,
    holder: String,
}

fn refused(why: String) -> Error {
    Error::Refused(format!(
        "{why}; nothing was changed, and a scheduled revert tries again in an hour"
    ))
}

fn unreachable(e: CallError) -> Error {
    refused(format!(
        "the fleet lease {NAMESPACE}/{LEASE_NAME} cannot be taken through the API ({e}): without it, no unattended restart"
    ))
}

/// What the lease says now: `Ok(None)` when there is none.
fn current(admin: &Admin) -> Result<Option<Value>> {
    match admin.get::<Value>(&lease_path()) {
        Ok(lease) => Ok(Some(lease)),
        Err(CallError::Status { code: 404, .. }) => Ok(None),
        Err(e) => Err(unreachable(e)),
    }
}

/// Checks that every OTHER apiserver of the cluster answers `/readyz` (the mirror pods name
/// them by their advertise endpoint), then takes the lease for `duration`.
pub fn acquire(
    layout: &NodeLayout,
    own_endpoint: Option<&str>,
    session: &str,
    duration: Duration,
) -> Result<Held> {
    let admin = Admin::connect(layout, &layout.admin_conf())?;
    others_healthy(layout, &admin, own_endpoint)?;
    let holder = holder_identity(layout, session);
    let now = crate::runtime::clock::now_unix();
    let seconds = i64::try_from(duration.as_secs())
        .unwrap_or(i64::MAX)
        .max(60);
    let spec = json!({
        "holderIdentity": holder,
        "leaseDurationSeconds": seconds,
        "acquireTime": micro_time(now),
        "renewTime": micro_time(now),
    });
    match current(&admin)? {
        None => {
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": LEASE_NAME, "namespace": NAMESPACE},
                "spec": spec,
            });
            admin
                .post::<Value>(
                    &format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"),
                    &lease,
                )
                .map_err(|e| match e {
                    CallError::Status { code: 409, .. } => {
                        refused("another node took the fleet lease at the same moment".into())
                    }
                    other => unreachable(other),
                })?;
        }
        Some(mut lease) => {
            let other = lease["spec"]["holderIdentity"].as_str().unwrap_or_default();
            let renewed = lease["spec"]["renewTime"]
                .as_str()
                .and_then(parse_time)
                .unwrap_or(0);
            let lasts = lease["spec"]["leaseDurationSeconds"].as_i64().unwrap_or(0);
            let until = renewed.saturating_add(lasts);
            if !other.is_empty() && other != holder && until > now {
                return Err(refused(format!(
                    "{other} holds the fleet lease {NAMESPACE}/{LEASE_NAME} until {} (another control-plane apiserver is being restarted)",
                    crate::runtime::clock::rfc3339(until)
                )));
            }
            lease["spec"] = spec;
            admin
                .put::<Value>(&lease_path(), &lease)
                .map_err(|e| match e {
                    CallError::Status { code: 409, .. } => {
                        refused("another node took the fleet lease at the same moment".into())
                    }
                    other => unreachable(other),
                })?;
        }
    }
    // Checked again with the lease held: an apiserver that went down meanwhile stops us here.
    let held = Held { admin, holder };
    if let Err(e) = others_healthy(layout, &held.admin, own_endpoint) {
        let _ = held.release();
        return Err(e);
    }
    Ok(held)
}

/// The fleet rule for an unattended revert of session `wanted` (the holder names it, or
/// `revert`): the lease, held long enough for the restart and a rollback, and every other
/// apiserver ready. This node's own apiserver is recognised by its manifest's advertise
/// endpoint.
pub fn acquire_for_revert(
    layout: &NodeLayout,
    wanted: Option<&str>,
    settings: &ChangeSettings,
) -> Result<Held> {
    let own = read_apiserver_manifest(layout).ok().and_then(|text| {
        crate::manifest::Manifest::parse(&text)
            .ok()
            .and_then(|m| m.advertise_endpoint.clone())
    });
    // Long enough for the restart and a rollback; it expires by itself if this run dies.
    let lasts = settings
        .wait
        .map(|w| w.timeout + w.rollback_timeout)
        .unwrap_or_default()
        + Duration::from_secs(120);
    acquire(layout, own.as_deref(), wanted.unwrap_or("revert"), lasts)
}

/// Every other apiserver must answer `/readyz` before this one may restart.
fn others_healthy(layout: &NodeLayout, admin: &Admin, own_endpoint: Option<&str>) -> Result<()> {
    let pods: Value = admin
        .get(&format!(
            "/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=component%3Dkube-apiserver"
        ))
        .map_err(unreachable)?;
    let empty = Vec::new();
    for pod in pods["items"].as_array().unwrap_or(&empty) {
        if pod["metadata"]["labels"]["component"] != "kube-apiserver" {
            continue;
        }
        let name = pod["metadata"]["name"].as_str().unwrap_or("kube-apiserver");
        // An apiserver that cannot be checked does not count as healthy.
        let Some(endpoint) = pod["metadata"]["annotations"][ADVERTISE].as_str() else {
            return Err(refused(format!(
                "the apiserver pod {} names no {ADVERTISE}: where it serves cannot be checked",
                crate::ui::escape(name)
            )));
        };
        if Some(endpoint) == own_endpoint {
            continue;
        }
        let Some((host, port)) = endpoint
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        else {
            return Err(refused(format!(
                "the apiserver pod {} names {ADVERTISE} {:?}, not host:port: it cannot be checked",
                crate::ui::escape(name),
                crate::ui::escape(endpoint)
            )));
        };
        let target = Endpoint {
            host: host.trim_matches(['[', ']']).to_string(),
            port,
        };
        // The client's connector needs the runtime it runs on.
        let answer = crate::apiserver::runtime().block_on(async {
            let health = ApiClient::new(layout, &target).map_err(|e| e.to_string())?;
            health.ready().await.map_err(|e| e.to_string())
        });
        if let Err(e) = answer {
            return Err(refused(format!(
                "the apiserver {name} at {endpoint} is not ready ({e}): no second apiserver restarts while another is unhealthy"
            )));
        }
    }
    Ok(())
}

impl Held {
    /// Gives the lease back (after the proof). Failing to is a warning: it expires by itself.
    pub fn release(self) -> Result<()> {
        match current(&self.admin)? {
            Some(lease) if lease["spec"]["holderIdentity"] == self.holder.as_str() => self
                .admin
                .delete::<Value>(&lease_path())
                .map(|_| ())
                .map_err(|e| Error::Failed(e.to_string())),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lease_times_are_micro_times() {
        assert_eq!(
            super::micro_time(1_800_000_000),
            "2027-01-15T08:00:00.000000Z"
        );
        assert_eq!(
            super::parse_time("2027-01-15T08:00:00.000000Z"),
            Some(1_800_000_000)
        );
    }
}
