//! The product under rehearsal: each step runs the `kubeadm-recover` binary against the sandbox
//! as an operator's script would (`--root <sandbox> ... -o json --non-interactive`), and reads
//! its JSON document through the typed views below: only the fields a step reports, each
//! optional, so that a document without them (an `Error` document) reads as "not there".
use std::path::PathBuf;
use std::process::{Command, Stdio};

use kubeadm_recover::error::{Error, Result};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::sandbox::Target;

/// The `kubeadm-recover` binary to rehearse (`kubeadm-recover rehearse` hands over its own path).
pub struct Product {
    pub exe: PathBuf,
}

/// One run of the product: its exit code, its document, and its stderr. Stderr is read only
/// for the message when a step exits other than it must ([`expect`]): there the product's
/// progress lines, warnings and `error:` line are the account of what went wrong, and the JSON
/// document carries only the last of them. Everything else a step reports comes from the
/// document.
pub struct Outcome<T> {
    pub code: i32,
    pub doc: T,
    pub stderr: String,
}

impl Product {
    /// Runs the product against the sandbox with `-o json`. A document that does not parse as
    /// `T` (none at all, or another shape) reads as `T::default()`: every field "not there".
    pub fn run<T: DeserializeOwned + Default>(
        &self,
        target: &Target,
        args: &[&str],
    ) -> Result<Outcome<T>> {
        let mut command = Command::new(&self.exe);
        command
            .arg("--root")
            .arg(&target.root)
            .args(args)
            .args(["-o", "json", "--non-interactive"])
            .env_remove("KUBEADM_RECOVER_ROOT")
            .stdin(Stdio::null());
        target.enter(&mut command);
        let out = command
            .output()
            .map_err(|e| Error::Failed(format!("cannot run kubeadm-recover: {e}")))?;
        Ok(Outcome {
            code: out.status.code().unwrap_or(-1),
            doc: serde_json::from_slice(&out.stdout).unwrap_or_default(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// A step's exit code is the one it must have; else the rehearsal fails with the product's own
/// stderr (its progress and its `error:` line), which says why.
pub fn expect(step: &str, code: i32, want: i32, stderr: &str) -> Result<()> {
    if code == want {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "rehearsal step {step:?} exited {code}, expected {want}:\n{stderr}"
        )))
    }
}

/// A JSON number as the step details show it: the number, or `null` when there is none.
pub fn number(value: Option<i64>) -> String {
    value.map_or_else(|| "null".into(), |n| n.to_string())
}

/// What a rehearsal reads of `status` (the `Status` document).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Status {
    pub manifest: Manifest,
    pub apiserver: Option<Apiserver>,
    pub credentials: Vec<Credential>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Manifest {
    pub extend_token_expiration: Option<Flag>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Flag {
    pub state: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Apiserver {
    pub pid: Option<i64>,
    pub health: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Credential {
    pub expired: Option<bool>,
}

impl Status {
    /// The apiserver answers `/livez` and `/readyz`.
    pub fn healthy(&self) -> bool {
        self.health() == Some("ok")
    }

    pub fn health(&self) -> Option<&str> {
        self.apiserver.as_ref()?.health.as_deref()
    }

    pub fn pid(&self) -> Option<i64> {
        self.apiserver.as_ref()?.pid
    }
}

/// What a rehearsal reads of a change that restarts the apiserver: its `proof` when it
/// succeeded, the `Error` document's `message` when it did not.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Change {
    pub proof: Option<Proof>,
    pub message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Proof {
    pub pid: Option<i64>,
    pub waited_ms: Option<u64>,
    pub noticed_unix_ms: Option<i64>,
}

/// What a rehearsal reads of `admin-conf regenerate` (the `AdminConfResult` document).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Regenerated {
    pub credentials: Vec<Regenerate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Regenerate {
    pub verified_as: Option<Verified>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Verified {
    pub username: Option<String>,
    pub groups: Vec<String>,
}

/// What a rehearsal reads of `backups list` (the `BackupList` document): how many.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Backups {
    pub backups: Vec<serde::de::IgnoredAny>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: DeserializeOwned + Default>(json: &str) -> T {
        serde_json::from_str(json).unwrap_or_default()
    }

    #[test]
    fn a_proof_reads_as_the_product_writes_it() {
        #[derive(serde::Serialize)]
        struct Result {
            proof: kubeadm_recover::change::restart::Proof,
        }
        let written = serde_json::to_string(&Result {
            proof: kubeadm_recover::change::restart::Proof {
                pid: 4242,
                started: None,
                container_id: None,
                config_hash: None,
                waited_ms: 1200,
                noticed_unix_ms: 1_700_000_000_123,
                nudged: false,
                shutdown_grace_skipped: false,
            },
        })
        .unwrap();
        let proof = read::<Change>(&written).proof.unwrap();
        assert_eq!(proof.pid, Some(4242));
        assert_eq!(proof.waited_ms, Some(1200));
        assert_eq!(proof.noticed_unix_ms, Some(1_700_000_000_123));
    }

    #[test]
    fn an_error_document_reads_as_its_message() {
        let written = kubeadm_recover::ui::to_json(&kubeadm_recover::ui::ErrorReport {
            reason: "Failed",
            exit_code: 1,
            message: "the new apiserver keeps exiting".into(),
        });
        let change = read::<Change>(&written);
        assert!(change.proof.is_none());
        assert_eq!(
            change.message.as_deref(),
            Some("the new apiserver keeps exiting")
        );
        // Any other document, or none, reads as "not there".
        let status = read::<Status>(&written);
        assert!(!status.healthy());
        assert_eq!(number(status.pid()), "null");
        assert!(read::<Backups>("").backups.is_empty());
    }

    #[test]
    fn a_status_document_reads_as_pinned() {
        // The shape of tests/integration/snapshots/status-live.json.snap.
        let status = read::<Status>(
            r#"{"apiVersion": "kubeadm-recover/v1", "kind": "Status", "root": "/tmp/x",
                "session": null,
                "manifest": {"path": "/etc/kubernetes/manifests/kube-apiserver.yaml",
                             "extendTokenExpiration": {"state": "absent", "default": true, "occurrences": []}},
                "apiserver": {"port": 6443, "pid": 14280, "health": "ok"},
                "credentials": [{"path": "/etc/kubernetes/admin.conf", "expired": true, "problem": null},
                                {"path": "/etc/kubernetes/super-admin.conf", "expired": false}],
                "findings": []}"#,
        );
        assert!(status.healthy());
        assert_eq!(number(status.pid()), "14280");
        let flag = status.manifest.extend_token_expiration.unwrap();
        assert_eq!(flag.state.as_deref(), Some("absent"));
        assert_eq!(status.credentials[0].expired, Some(true));
        // No apiserver process serves the port: no pid, and not healthy.
        let down = read::<Status>(r#"{"apiserver": {"port": 6443, "pid": null}}"#);
        assert_eq!(number(down.pid()), "null");
        assert!(!down.healthy());
    }

    #[test]
    fn a_regenerated_credential_reads_as_proved() {
        let regenerated = read::<Regenerated>(
            r#"{"kind": "AdminConfResult", "credentials": [{"kind": "admin",
                "verifiedAs": {"username": "kubernetes-admin",
                               "groups": ["kubeadm:cluster-admins", "system:authenticated"]}}]}"#,
        );
        let who = regenerated.credentials[0].verified_as.as_ref().unwrap();
        assert_eq!(who.username.as_deref(), Some("kubernetes-admin"));
        assert_eq!(
            who.groups.join(", "),
            "kubeadm:cluster-admins, system:authenticated"
        );
        let backups =
            read::<Backups>(r#"{"kind": "BackupList", "backups": [{"id": "a"}, {"id": "b"}]}"#);
        assert_eq!(backups.backups.len(), 2);
    }
}

/// What a rehearsal reads of `certs check` (the `Certificates` document).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Certificates {
    pub problems: Vec<CertificateProblem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CertificateProblem {
    pub certificate: String,
    pub severity: String,
}

/// What a rehearsal reads of `certs renew` (the `CertificateRenewal` document).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Renewal {
    pub steps: Vec<RenewalStep>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RenewalStep {
    pub title: String,
    pub renewed: Vec<serde_json::Value>,
    pub components: Vec<RenewalProof>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RenewalProof {
    pub component: String,
    pub proof: String,
}
