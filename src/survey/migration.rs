//! Before token extension is turned off: who still uses stale tokens? The apiserver counts them
//! in `serviceaccount_stale_tokens_total` and, when it has an audit log, annotates each use with
//! `authentication.k8s.io/stale-token: "subject: <sub>, seconds after warning threshold: <n>"`.
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use k8s_openapi::api::core::v1::{Pod, Secret};

use crate::apiserver::admin::Admin;
use crate::apiserver::client::{ApiClient, Endpoint};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::node::NodeLayout;
use crate::ui::Ui;

pub const ANNOTATION: &str = "authentication.k8s.io/stale-token";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StaleUser {
    /// namespace/serviceaccount (or the raw subject when it is not a service account).
    pub subject: String,
    pub count: u64,
    pub last_seen: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub metric_at_start: Option<u64>,
    pub metric_before_window: Option<u64>,
    pub metric_now: Option<u64>,
    pub audit_log: Option<String>,
    pub users: Vec<StaleUser>,
    pub in_use: bool,
}

fn endpoint(manifest: &Manifest) -> Endpoint {
    let (host, port) = manifest.probe_endpoint();
    Endpoint { host, port }
}

/// The apiserver's `serviceaccount_stale_tokens_total`, when it answers.
pub fn stale_tokens_total(layout: &NodeLayout, manifest: &Manifest) -> Option<u64> {
    // Ask only an apiserver that is there: no connection to an address nothing serves.
    crate::apiserver::process::find_apiserver(manifest.secure_port())?;
    crate::apiserver::runtime().block_on(async {
        let client = ApiClient::new(layout, &endpoint(manifest)).ok()?;
        let metrics = client.get("/metrics").await.ok()?;
        parse_metric(&metrics, "serviceaccount_stale_tokens_total")
    })
}

/// Sums a counter over its label sets in Prometheus text format.
pub fn parse_metric(text: &str, name: &str) -> Option<u64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next()?.parse::<f64>().ok()?;
        *found.get_or_insert(0) += value as u64;
    }
    found
}

/// Stale-token uses in the audit log since `since` (Unix seconds), by subject.
pub fn audit_users(log: &str, since: i64) -> Vec<StaleUser> {
    let mut users: BTreeMap<String, StaleUser> = BTreeMap::new();
    for line in log.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(note) = event["annotations"][ANNOTATION].as_str() else {
            continue;
        };
        let when = event["stageTimestamp"]
            .as_str()
            .or(event["requestReceivedTimestamp"].as_str())
            .unwrap_or_default();
        if crate::runtime::clock::parse_rfc3339(when).is_some_and(|t| t < since) {
            continue;
        }
        let subject = note
            .strip_prefix("subject: ")
            .and_then(|s| s.split(',').next())
            .unwrap_or(note)
            .trim();
        let subject = match subject.strip_prefix("system:serviceaccount:") {
            Some(sa) => sa.replacen(':', "/", 1),
            None => subject.to_string(),
        };
        let entry = users.entry(subject.clone()).or_insert(StaleUser {
            subject,
            count: 0,
            last_seen: String::new(),
        });
        entry.count += 1;
        if when > entry.last_seen.as_str() {
            entry.last_seen = when.to_string();
        }
    }
    let mut list: Vec<StaleUser> = users.into_values().collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then(a.subject.cmp(&b.subject)));
    list
}

/// Reads the metric (against the value at the session's start, and over `window`) and the
/// audit log named by `--audit-log-path` (since the session started, else the last 24 h).
pub fn check(
    layout: &NodeLayout,
    manifest: &Manifest,
    session: Option<(i64, Option<u64>)>,
    window: Duration,
) -> Check {
    let before = stale_tokens_total(layout, manifest);
    // Watched in small steps, so that a signal stops the check at once.
    let until = std::time::Instant::now() + window;
    while std::time::Instant::now() < until && !crate::runtime::interrupt::interrupted() {
        std::thread::sleep(
            Duration::from_millis(50)
                .min(until.saturating_duration_since(std::time::Instant::now())),
        );
    }
    let now = stale_tokens_total(layout, manifest);
    let since = session.map_or(
        crate::runtime::clock::now_unix() - 24 * 3600,
        |(started, _)| started,
    );
    let audit_path = manifest.flag("audit-log-path").filter(|p| p != "-");
    let users = audit_path
        .as_deref()
        .and_then(|p| layout.fs().read_to_string(&layout.path(p)).ok())
        .map(|log| audit_users(&log, since))
        .unwrap_or_default();
    let at_start = session.and_then(|(_, n)| n);
    let grew = |a: Option<u64>, b: Option<u64>| a.zip(b).is_some_and(|(a, b)| b > a);
    // Without a session's baseline, the counter's own start is the baseline: it counts from 0
    // when the apiserver process starts. A kubeadm node has no audit log by default, so a stale
    // token used a minute ago shows only here (found on the real node).
    let since_start = at_start.is_none() && now.is_some_and(|n| n > 0);
    Check {
        in_use: !users.is_empty() || grew(before, now) || grew(at_start, now) || since_start,
        metric_at_start: at_start,
        metric_before_window: before,
        metric_now: now,
        audit_log: audit_path,
        users,
    }
}

fn describe(check: &Check) -> String {
    let mut out = String::from("stale service-account tokens are still in use:\n");
    for user in &check.users {
        out.push_str(&format!(
            "  {:<40} {:>6} uses, last {}\n",
            user.subject, user.count, user.last_seen
        ));
    }
    if let (Some(start), Some(now)) = (check.metric_at_start, check.metric_now) {
        out.push_str(&format!(
            "  serviceaccount_stale_tokens_total: {start} when the change was made, {now} now\n"
        ));
    }
    if let (None, Some(now)) = (check.metric_at_start, check.metric_now)
        && now > 0
    {
        out.push_str(&format!(
            "  serviceaccount_stale_tokens_total: {now} since the running apiserver started\n"
        ));
    }
    if let (Some(before), Some(now)) = (check.metric_before_window, check.metric_now)
        && now > before
    {
        out.push_str(&format!(
            "  serviceaccount_stale_tokens_total rose from {before} to {now} while watching\n"
        ));
    }
    if check.users.is_empty() && check.audit_log.is_none() {
        out.push_str("  (no --audit-log-path in the manifest, so the users cannot be named)\n");
    }
    out.push_str("  Turning extension off makes their tokens expire (401 'invalid bearer token'): restart those pods first");
    out
}

/// Stale tokens in use: a person decides; a script gets exit 3 unless `--accept-stale-tokens`.
pub fn confirm_or_refuse(ui: &Ui, check: &Check, accept: bool) -> Result<()> {
    if !check.in_use {
        ui.info("migration check: no stale service-account tokens in use");
        return Ok(());
    }
    let text = describe(check);
    if accept {
        ui.warn(format!("{text}\n  --accept-stale-tokens: going ahead"));
        return Ok(());
    }
    ui.decide(&format!("{text}\nturn token extension off anyway?"), || {
        Error::Refused(format!(
            "{text}.\n  what to do: migrate them, or pass --accept-stale-tokens"
        ))
    })
}

/// A `kubernetes.io/service-account-token` Secret: a long-lived token that never expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenSecret {
    pub namespace: String,
    pub name: String,
    pub service_account: Option<String>,
    /// namespace/pod of every pod that mounts it.
    pub mounted_by: Vec<String>,
}

/// A pod that mounts a service-account token from a Secret volume instead of a projected one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretMount {
    pub namespace: String,
    pub pod: String,
    pub volume: String,
    pub secret: String,
    /// The projected volume to use instead.
    pub projected_volume: String,
}

/// The volume that replaces a secret-mounted service-account token: a token the kubelet
/// requests for the pod, rotates, and that expires.
pub fn projected_volume(volume: &str, audience: Option<&str>) -> String {
    let audience = audience.map_or(String::new(), |a| format!("\n        audience: {a}"));
    format!(
        "- name: {volume}\n  projected:\n    sources:\n    - serviceAccountToken:\n        path: token\n        expirationSeconds: 3607{audience}\n    - configMap:\n        name: kube-root-ca.crt\n        items:\n        - key: ca.crt\n          path: ca.crt\n"
    )
}

/// What still depends on long-lived tokens, from the API's secrets and pods. `audience` is the
/// apiserver's own (its `--api-audiences`, else its issuer), for the projected volume.
pub fn dependents(
    secrets: &[k8s_openapi::api::core::v1::Secret],
    pods: &[k8s_openapi::api::core::v1::Pod],
    audience: Option<&str>,
) -> (Vec<TokenSecret>, Vec<SecretMount>) {
    let mut token_secrets: Vec<TokenSecret> = secrets
        .iter()
        .filter(|s| s.type_.as_deref() == Some("kubernetes.io/service-account-token"))
        .map(|s| TokenSecret {
            namespace: s.metadata.namespace.clone().unwrap_or_default(),
            name: s.metadata.name.clone().unwrap_or_default(),
            service_account: s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name").cloned()),
            mounted_by: Vec::new(),
        })
        .collect();
    let mut mounts = Vec::new();
    for pod in pods {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
        for volume in volumes.into_iter().flatten() {
            let Some(secret) = volume.secret.as_ref().and_then(|s| s.secret_name.as_ref()) else {
                continue;
            };
            let Some(token) = token_secrets
                .iter_mut()
                .find(|t| t.namespace == namespace && &t.name == secret)
            else {
                continue;
            };
            token.mounted_by.push(format!("{namespace}/{name}"));
            mounts.push(SecretMount {
                namespace: namespace.clone(),
                pod: name.clone(),
                volume: volume.name.clone(),
                secret: secret.clone(),
                projected_volume: projected_volume(&volume.name, audience),
            });
        }
    }
    token_secrets.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    (token_secrets, mounts)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationCheck {
    pub token_secrets: Vec<TokenSecret>,
    pub secret_mounts: Vec<SecretMount>,
    pub stale_token_users: Vec<StaleUser>,
    /// serviceaccount_stale_tokens_total now, when the apiserver answers.
    pub stale_tokens_total: Option<u64>,
    /// Where the users of stale tokens were read from (none: they cannot be named).
    pub audit_log: Option<String>,
    pub depends_on_extension: bool,
}

/// `status`'s migration line when nothing depends on token extension.
pub const NOTHING_DEPENDS: &str = "nothing depends on long-lived or stale tokens";

impl MigrationCheck {
    /// One line for `status`.
    pub fn summary(&self) -> String {
        if !self.depends_on_extension {
            return NOTHING_DEPENDS.into();
        }
        format!(
            "{} service-account-token secret(s), {} pod(s) mounting one, {} stale-token user(s) (kubeadm-recover migrate check)",
            self.token_secrets.len(),
            self.secret_mounts.len(),
            self.stale_token_users.len()
        )
    }
}

/// Runs the check; `Err` when the API cannot be asked.
pub fn inspect(
    layout: &NodeLayout,
    stale_window: Duration,
    kubeconfig: Option<&std::path::Path>,
) -> Result<MigrationCheck> {
    let path = match kubeconfig {
        Some(given) => layout.given_path(given)?,
        None => layout.admin_conf(),
    };
    let admin = Admin::connect(layout, &path)?;
    let failed = |what: &str, e| Error::Failed(format!("listing {what}: {e}"));
    let secrets: k8s_openapi::List<Secret> = admin
        .get("/api/v1/secrets?fieldSelector=type%3Dkubernetes.io%2Fservice-account-token")
        .map_err(|e| failed("secrets", e))?;
    let pods: k8s_openapi::List<Pod> = admin.get("/api/v1/pods").map_err(|e| failed("pods", e))?;
    let manifest_text = layout
        .fs()
        .read_to_string(&layout.apiserver_manifest())
        .ok();
    let manifest = manifest_text
        .as_deref()
        .and_then(|t| Manifest::parse(t).ok());
    let audience = manifest.as_ref().and_then(|m| {
        m.flag("api-audiences")
            .and_then(|a| a.split(',').next().map(str::to_string))
            .or_else(|| m.flag("service-account-issuer"))
    });
    let (token_secrets, secret_mounts) =
        dependents(&secrets.items, &pods.items, audience.as_deref());
    let stale = manifest
        .as_ref()
        .map(|m| check(layout, m, None, stale_window));
    let (stale_token_users, stale_tokens_total, audit_log, stale_in_use) = match stale {
        Some(c) => (c.users, c.metric_now, c.audit_log, c.in_use),
        None => (Vec::new(), None, None, false),
    };
    Ok(MigrationCheck {
        depends_on_extension: !token_secrets.is_empty()
            || !secret_mounts.is_empty()
            || !stale_token_users.is_empty()
            || stale_in_use,
        token_secrets,
        secret_mounts,
        stale_token_users,
        stale_tokens_total,
        audit_log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_secrets_and_the_pods_that_mount_them_are_found() {
        let secrets: Vec<k8s_openapi::api::core::v1::Secret> = serde_json::from_value(serde_json::json!([
            {"metadata": {"namespace": "ci", "name": "deployer-token", "annotations": {"kubernetes.io/service-account.name": "deployer"}}, "type": "kubernetes.io/service-account-token"},
            {"metadata": {"namespace": "ci", "name": "tls"}, "type": "kubernetes.io/tls"},
            {"metadata": {"namespace": "web", "name": "deployer-token"}, "type": "kubernetes.io/service-account-token"},
        ])).unwrap();
        let pods: Vec<k8s_openapi::api::core::v1::Pod> = serde_json::from_value(serde_json::json!([
            {"metadata": {"namespace": "ci", "name": "runner"}, "spec": {"containers": [], "volumes": [
                {"name": "sa", "secret": {"secretName": "deployer-token"}},
                {"name": "certs", "secret": {"secretName": "tls"}},
                {"name": "p", "projected": {"sources": []}}]}},
            {"metadata": {"namespace": "other", "name": "x"}, "spec": {"containers": [], "volumes": [
                {"name": "sa", "secret": {"secretName": "deployer-token"}}]}},
        ])).unwrap();
        let (secrets, mounts) = dependents(&secrets, &pods, Some("https://kubernetes.default.svc"));
        assert_eq!(secrets.len(), 2);
        assert_eq!(secrets[0].mounted_by, ["ci/runner"]);
        assert_eq!(secrets[0].service_account.as_deref(), Some("deployer"));
        assert!(
            secrets[1].mounted_by.is_empty(),
            "another namespace's secret of that name"
        );
        assert_eq!(mounts.len(), 1);
        assert_eq!(
            (mounts[0].pod.as_str(), mounts[0].volume.as_str()),
            ("runner", "sa")
        );
        assert!(mounts[0].projected_volume.contains(
            "serviceAccountToken:\n        path: token\n        expirationSeconds: 3607"
        ));
    }

    #[test]
    fn counters_are_summed_and_other_metrics_ignored() {
        let text = "# HELP x\nserviceaccount_stale_tokens_total 3\nserviceaccount_stale_tokens_total_x 9\nserviceaccount_stale_tokens_total{a=\"b\"} 2\n";
        assert_eq!(
            parse_metric(text, "serviceaccount_stale_tokens_total"),
            Some(5)
        );
        assert_eq!(
            parse_metric("up 1\n", "serviceaccount_stale_tokens_total"),
            None
        );
    }

    #[test]
    fn audit_annotations_are_grouped_by_service_account() {
        let line = |sub: &str, at: &str| {
            format!(
                "{{\"stageTimestamp\":\"{at}\",\"annotations\":{{\"{ANNOTATION}\":\"subject: {sub}, seconds after warning threshold: 10\"}}}}\n"
            )
        };
        let log = line("system:serviceaccount:web:frontend", "2026-11-28T10:00:00Z")
            + &line(
                "system:serviceaccount:web:frontend",
                "2026-11-28T11:00:00.5Z",
            )
            + &line("system:serviceaccount:ops:bot", "2026-11-27T09:00:00Z")
            + "{\"annotations\":{}}\nnot json\n";
        let since = crate::runtime::clock::parse_rfc3339("2026-11-28T00:00:00Z").unwrap();
        let users = audit_users(&log, since);
        assert_eq!(users.len(), 1);
        assert_eq!(
            (users[0].subject.as_str(), users[0].count),
            ("web/frontend", 2)
        );
        assert_eq!(users[0].last_seen, "2026-11-28T11:00:00.5Z");
    }
}
