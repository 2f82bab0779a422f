//! From findings to a recovery plan: which of this tool's commands to run, in which order, and
//! what is left for a person to do by hand. Pure — `guide` asks about each step, `diagnose`
//! shows the same steps to scripts, which run them with `--yes`.
use serde::Serialize;

use crate::survey::diagnose::{Finding, FindingId, Severity};

/// The validity proposed for a new super-admin.conf: it is `system:masters`, which RBAC cannot
/// restrict and nothing can revoke short of rotating the CA, so it should not outlive the
/// emergency.
pub const SUPER_ADMIN_VALIDITY: &str = "24h";

/// How long token extension is proposed to stay on before it is reverted by itself.
pub const REVERT_AFTER: &str = "7d";

/// One step: a command of this tool, as a script would run it (plus `--reason` and `--yes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// What it does, for people.
    pub title: String,
    /// The command (`-o json` gives its arguments after `kubeadm-recover`, as `args`).
    #[serde(rename = "args", serialize_with = "serialize_args")]
    pub command: StepCommand,
    /// The findings it answers.
    pub answers: Vec<FindingId>,
    /// What a person should know before saying yes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The commands the guide proposes. Each is one of this tool's commands with its flags: the
/// guide runs it as the operator would type it (`args`), and a test parses every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepCommand {
    /// `resume`: finish the interrupted change and prove it.
    Resume { move_strays: bool },
    /// `admin-conf regenerate --update-copies`.
    RegenerateAdmin { no_verify: bool },
    /// `admin-conf regenerate --only-super-admin --validity 24h`.
    RegenerateSuperAdmin { no_verify: bool },
    /// `extend-tokens enable --revert-after 7d`.
    EnableTokenExtension { move_strays: bool },
    /// `certs renew all`: the control-plane certificates, one component at a time, proved.
    RenewCertificates,
}

impl StepCommand {
    /// Every command the guide can propose, with every combination of its flags.
    pub const ALL: [StepCommand; 9] = [
        StepCommand::RenewCertificates,
        StepCommand::Resume { move_strays: false },
        StepCommand::Resume { move_strays: true },
        StepCommand::RegenerateAdmin { no_verify: false },
        StepCommand::RegenerateAdmin { no_verify: true },
        StepCommand::RegenerateSuperAdmin { no_verify: false },
        StepCommand::RegenerateSuperAdmin { no_verify: true },
        StepCommand::EnableTokenExtension { move_strays: false },
        StepCommand::EnableTokenExtension { move_strays: true },
    ];

    /// The arguments after `kubeadm-recover` (no `--root`, `--reason` or `--yes`).
    pub fn args(self) -> Vec<&'static str> {
        let (mut words, flag): (Vec<&str>, Option<&str>) = match self {
            StepCommand::Resume { move_strays } => {
                (vec!["resume"], move_strays.then_some("--move-strays"))
            }
            StepCommand::RegenerateAdmin { no_verify } => (
                vec!["admin-conf", "regenerate", "--update-copies"],
                no_verify.then_some("--no-verify"),
            ),
            StepCommand::RegenerateSuperAdmin { no_verify } => (
                vec![
                    "admin-conf",
                    "regenerate",
                    "--only-super-admin",
                    "--validity",
                    SUPER_ADMIN_VALIDITY,
                ],
                no_verify.then_some("--no-verify"),
            ),
            StepCommand::EnableTokenExtension { move_strays } => (
                vec!["extend-tokens", "enable", "--revert-after", REVERT_AFTER],
                move_strays.then_some("--move-strays"),
            ),
            StepCommand::RenewCertificates => (vec!["certs", "renew", "all"], None),
        };
        words.extend(flag);
        words
    }

    /// A step that restarts the apiserver moves the strays itself.
    fn moves_strays(self) -> bool {
        matches!(
            self,
            StepCommand::Resume { move_strays: true }
                | StepCommand::EnableTokenExtension { move_strays: true }
        )
    }
}

fn serialize_args<S: serde::Serializer>(
    command: &StepCommand,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(command.args())
}

impl Step {
    /// The command line, as typed.
    pub fn command_line(&self) -> String {
        crate::ui::command_line(std::iter::once("kubeadm-recover").chain(self.command.args()))
    }
}

/// What to do about the findings: this tool's steps in order, and what only a person can do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Guidance {
    pub steps: Vec<Step>,
    /// Fixes this tool does not make (start the kubelet, renew other certificates, ...).
    pub by_hand: Vec<String>,
}

/// An expired or expiring certificate that `certs renew` renews (not a CA, not the kubelet's).
fn renewable(id: &FindingId) -> bool {
    matches!(id, FindingId::Certificate(name)
        if crate::certs::catalogue::leaf(name).is_some_and(|e| e.kubeadm_renews))
}

fn has(findings: &[Finding], id: &FindingId) -> bool {
    findings.iter().any(|f| f.id == *id)
}

fn ids(findings: &[Finding], wanted: &[FindingId]) -> Vec<FindingId> {
    findings
        .iter()
        .filter(|f| wanted.contains(&f.id))
        .map(|f| f.id.clone())
        .collect()
}

/// The plan for `findings` (as `diagnose` orders them): finish an interrupted change first,
/// then the credentials, then token extension.
pub fn plan(findings: &[Finding]) -> Guidance {
    let mut guidance = Guidance::default();
    use FindingId as Id;
    let mut by_hand: Vec<(&FindingId, String)> = Vec::new();
    for f in findings {
        // Fixes that are not ours, most severe first; ours are steps.
        let ours = renewable(&f.id)
            || matches!(
                f.id,
                Id::UnfinishedSession
                    | Id::ManifestParked
                    | Id::AdminExpired
                    | Id::AdminExpiring
                    | Id::AdminConfUnreadable
                    | Id::AdminConfInvalid
                    | Id::KubeconfigCopyStale
                    | Id::SuperAdminExpired
                    | Id::SuperAdminExpiring
                    | Id::TokenExtensionOff
            );
        let informational = matches!(f.id, Id::TokenExtensionOn | Id::DependsOnTokenExtension);
        if !ours && !informational && f.severity != Severity::Info {
            by_hand.push((&f.id, format!("{}: {}", f.summary, f.fix)));
        }
    }
    // An unreadable journal refuses every change; so does a manifest that is not a pod.
    if has(findings, &Id::JournalUnreadable) || has(findings, &Id::ManifestUnreadable) {
        guidance.by_hand = by_hand.into_iter().map(|(_, text)| text).collect();
        return guidance;
    }
    let move_strays = has(findings, &Id::StrayManifest);
    let no_verify = [
        Id::ApiserverNotRunning,
        Id::ApiserverUnhealthy,
        Id::ApiserverCrashLooping,
    ]
    .iter()
    .any(|id| has(findings, id));

    let interrupted = ids(findings, &[Id::UnfinishedSession, Id::ManifestParked]);
    if !interrupted.is_empty() {
        guidance.steps.push(Step {
            title: "finish the interrupted change (resume), and prove it".into(),
            command: StepCommand::Resume { move_strays },
            answers: interrupted,
            note: Some(
                "to undo it instead, skip this step and run `kubeadm-recover revert`".into(),
            ),
        });
    }

    // Before the admin credentials: an expired serving certificate fails every client, and the
    // admin credential's proof with it.
    let certificates: Vec<FindingId> = findings
        .iter()
        .filter(|f| renewable(&f.id))
        .map(|f| f.id.clone())
        .collect();
    if !certificates.is_empty() {
        guidance.steps.push(Step {
            title: "renew the control-plane certificates, one component at a time, each proved"
                .into(),
            command: StepCommand::RenewCertificates,
            answers: certificates,
            note: Some(
                "etcd and the apiserver re-read theirs (no restart); the controller-manager and \
                 the scheduler are restarted; a component that does not come back is put back"
                    .into(),
            ),
        });
    }

    let admin = ids(
        findings,
        &[
            Id::AdminExpired,
            Id::AdminExpiring,
            Id::AdminConfUnreadable,
            Id::AdminConfInvalid,
            Id::KubeconfigCopyStale,
        ],
    );
    let not_verified = "the apiserver is not answering, so the new credential is checked against \
                        ca.crt only, not with SelfSubjectReview";
    if !admin.is_empty() {
        guidance.steps.push(Step {
            title: "regenerate admin.conf from the cluster CA and update the copies that hold the old one".into(),
            command: StepCommand::RegenerateAdmin { no_verify },
            answers: admin,
            note: no_verify.then(|| not_verified.to_string()),
        });
    }

    let super_admin = ids(findings, &[Id::SuperAdminExpired, Id::SuperAdminExpiring]);
    if !super_admin.is_empty() {
        guidance.steps.push(Step {
            title: format!("regenerate super-admin.conf, valid {SUPER_ADMIN_VALIDITY} only"),
            command: StepCommand::RegenerateSuperAdmin { no_verify },
            answers: super_admin,
            note: Some(format!(
                "super-admin.conf is system:masters: RBAC cannot restrict it and nothing revokes it, \
                 so it is issued for {SUPER_ADMIN_VALIDITY}; skip this step and run the command with \
                 another --validity if you need longer"
            )),
        });
    }

    // Turning extension on restarts the apiserver: only with a kubelet to do it and an
    // apiserver to restart; otherwise those come first, by hand.
    if has(findings, &Id::TokenExtensionOff)
        && !has(findings, &Id::KubeletNotRunning)
        && !has(findings, &Id::ApiserverNotRunning)
    {
        guidance.steps.push(Step {
            title: format!(
                "turn token extension on, so that clients with expired service-account tokens \
                 work again; reverted by itself in {REVERT_AFTER}"
            ),
            command: StepCommand::EnableTokenExtension { move_strays },
            answers: ids(findings, &[Id::TokenExtensionOff, Id::StrayManifest]),
            note: Some(
                "the apiserver restarts (the kubelet does it); if the new one is not healthy, \
                 the change is rolled back. Skip this step if no client fails with \
                 'invalid bearer token'"
                    .into(),
            ),
        });
    }
    // A step that restarts the apiserver moves the strays itself.
    let moved = guidance.steps.iter().any(|s| s.command.moves_strays());
    guidance.by_hand = by_hand
        .into_iter()
        .filter(|(id, _)| !(moved && **id == Id::StrayManifest))
        .map(|(_, text)| text)
        .collect();
    guidance
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &str, severity: Severity) -> Finding {
        Finding {
            id: id.parse().unwrap(),
            severity,
            summary: format!("{id} summary"),
            evidence: String::new(),
            fix: format!("{id} fix"),
        }
    }

    fn commands(guidance: &Guidance) -> Vec<String> {
        guidance.steps.iter().map(Step::command_line).collect()
    }

    #[test]
    fn expired_control_plane_certificates_are_renewed_first_and_the_kubelets_are_by_hand() {
        let found = [
            finding("certificate-apiserver", Severity::Critical),
            finding("certificate-scheduler.conf", Severity::Critical),
            finding("admin-expired", Severity::Critical),
            finding("certificate-kubelet-client", Severity::Critical),
        ];
        let guidance = plan(&found);
        assert_eq!(guidance.steps[0].command, StepCommand::RenewCertificates);
        assert_eq!(
            guidance.steps[0].command_line(),
            "kubeadm-recover certs renew all"
        );
        assert_eq!(
            guidance.steps[0].answers,
            [
                FindingId::Certificate("apiserver".into()),
                FindingId::Certificate("scheduler.conf".into())
            ]
        );
        assert_eq!(
            guidance.steps[1].command,
            StepCommand::RegenerateAdmin { no_verify: false }
        );
        assert_eq!(
            guidance.by_hand,
            ["certificate-kubelet-client summary: certificate-kubelet-client fix"]
        );
    }

    #[test]
    fn the_break_glass_order_session_then_credentials_then_extension() {
        let findings = [
            finding("unfinished-session", Severity::Critical),
            finding("admin-expired", Severity::Critical),
            finding("kubeconfig-copy-stale", Severity::Warning),
            finding("super-admin-expired", Severity::Critical),
            finding("token-extension-off", Severity::Info),
        ];
        let guidance = plan(&findings);
        assert_eq!(
            commands(&guidance),
            [
                "kubeadm-recover resume",
                "kubeadm-recover admin-conf regenerate --update-copies",
                "kubeadm-recover admin-conf regenerate --only-super-admin --validity 24h",
                "kubeadm-recover extend-tokens enable --revert-after 7d",
            ]
        );
        assert_eq!(
            guidance.steps[1].answers,
            [FindingId::AdminExpired, FindingId::KubeconfigCopyStale]
        );
        assert!(guidance.by_hand.is_empty());
    }

    #[test]
    fn a_healthy_node_needs_nothing() {
        let guidance = plan(&[
            finding("token-extension-on", Severity::Info),
            finding("depends-on-token-extension", Severity::Warning),
        ]);
        assert_eq!(guidance, Guidance::default());
    }

    #[test]
    fn without_a_kubelet_or_an_apiserver_extension_waits_and_credentials_are_not_verified_online() {
        let guidance = plan(&[
            finding("kubelet-not-running", Severity::Critical),
            finding("apiserver-not-running", Severity::Critical),
            finding("admin-expired", Severity::Critical),
            finding("token-extension-off", Severity::Info),
        ]);
        assert_eq!(
            commands(&guidance),
            ["kubeadm-recover admin-conf regenerate --update-copies --no-verify"]
        );
        assert_eq!(
            guidance.by_hand,
            [
                "kubelet-not-running summary: kubelet-not-running fix",
                "apiserver-not-running summary: apiserver-not-running fix"
            ]
        );
    }

    #[test]
    fn strays_are_moved_by_the_step_that_restarts_and_an_unreadable_journal_stops_everything() {
        let guidance = plan(&[
            finding("stray-manifest", Severity::Warning),
            finding("token-extension-off", Severity::Info),
        ]);
        assert_eq!(
            commands(&guidance),
            ["kubeadm-recover extend-tokens enable --revert-after 7d --move-strays"]
        );
        assert!(guidance.by_hand.is_empty(), "the step moves them");
        let blocked = plan(&[
            finding("journal-unreadable", Severity::Critical),
            finding("admin-expired", Severity::Critical),
        ]);
        assert!(blocked.steps.is_empty());
        assert_eq!(blocked.by_hand.len(), 1);
    }
}
