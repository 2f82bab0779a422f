//! `admin-conf regenerate`: re-issue admin.conf / super-admin.conf from the cluster CA on the
//! node, keeping the identity; the executor writes them, proves them with SelfSubjectReview and
//! fixes the copies (or puts everything back).
use secrecy::ExposeSecret;
use std::path::PathBuf;

use base64::Engine;
use serde::Serialize;

use super::{Context, change_settings};
use crate::change::executor::{self, BackupRef, Done, Ran, Unfinished};
use crate::change::plan::{self, CredentialCheck, Plan, PlannedWrite};
use crate::cli::{AdminConf, KeyTypeArg, Method, RegenerateOptions};
use crate::credentials::copies;
use crate::credentials::issue::{self, CertFacts, Kind, Subject};
use crate::credentials::kubeconfig::edit as kubeconfig_edit;
use crate::credentials::pki::KeyType;
use crate::credentials::verify::Verified;
use crate::error::{Error, ExitStatus, Result};
use crate::manifest::Manifest;
use crate::node::store::atomic::Ownership;
use crate::ui::Report;

pub fn run(ctx: &Context, action: AdminConf) -> Result<ExitStatus> {
    match action {
        AdminConf::Regenerate(options) => regenerate(ctx, &options),
    }
}

fn key_type_of(arg: KeyTypeArg) -> KeyType {
    match arg {
        KeyTypeArg::Rsa2048 => KeyType::Rsa2048,
        KeyTypeArg::EcdsaP256 => KeyType::EcdsaP256,
    }
}

/// One credential to re-issue, planned.
struct Credential {
    kind: Kind,
    path: PathBuf,
    subject: Subject,
    subject_source: &'static str,
    key_type: KeyType,
    old_text: Option<String>,
    old_cert_b64: Option<String>,
    new_text: String,
    issued: Option<issue::Issued>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialResult {
    pub kind: Kind,
    pub path: String,
    pub subject: String,
    pub subject_from: &'static str,
    pub key_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capped_to_ca_expiry: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_as: Option<Verified>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminConfResult {
    pub method: &'static str,
    pub credentials: Vec<CredentialResult>,
    pub copies_updated: Vec<String>,
    pub installed: Option<String>,
    pub dry_run: bool,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupRef>,
    #[serde(skip)]
    plan: String,
    #[serde(skip)]
    installed_for: Option<String>,
}

impl Report for AdminConfResult {
    const KIND: &'static str = "AdminConfResult";

    fn text(&self) -> String {
        if self.dry_run {
            return format!("{}dry run: nothing was written\n", self.plan);
        }
        let mut out = String::new();
        for c in &self.credentials {
            match &c.certificate {
                Some(facts) => out.push_str(&format!(
                    "{} re-issued: {} serial {}, valid until {}\n",
                    c.path, c.subject, facts.serial, facts.not_after
                )),
                None => out.push_str(&format!("{} renewed by kubeadm\n", c.path)),
            }
        }
        if !self.verified {
            out.push_str(
                "  NOT verified (--no-verify): nothing was proved against the apiserver\n",
            );
        }
        for c in &self.credentials {
            if let Some(v) = &c.verified_as {
                out.push_str(&format!(
                    "  proved: the apiserver answers {} as user {} in groups {}\n",
                    c.kind.file_name(),
                    v.username,
                    v.groups.join(", ")
                ));
            }
        }
        for copy in &self.copies_updated {
            out.push_str(&format!("  updated copy {copy}\n"));
        }
        if let (Some(path), Some(user)) = (&self.installed, &self.installed_for) {
            out.push_str(&format!("  installed {path} for {user}\n"));
        }
        if let Some(backup) = &self.backup {
            out.push_str(&format!("  backup: {}\n", backup.path));
        }
        out
    }
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn resolve_method(ctx: &Context, method: Method) -> Result<Method> {
    let ca_key = ctx.layout.path("/etc/kubernetes/pki/ca.key");
    let kubeadm = crate::node::on_path("kubeadm").is_some();
    match method {
        Method::Auto if ctx.layout.fs().is_file(&ca_key) => Ok(Method::Native),
        Method::Auto if kubeadm => Ok(Method::Kubeadm),
        Method::Auto => Err(Error::Refused(format!(
            "{} is not on this node and kubeadm is not installed: run this on the control-plane node that holds the CA key",
            ca_key.display()
        ))),
        Method::Kubeadm if !kubeadm => Err(Error::Refused(
            "--method kubeadm needs `kubeadm` on PATH; it is not there. Use --method native (signs with the CA key on this node)".into(),
        )),
        other => Ok(other),
    }
}

/// What the apiserver manifest says about the cluster: 1.29 or later, and the server address.
fn cluster_facts(ctx: &Context) -> (bool, Option<String>) {
    let layout = &ctx.layout;
    let manifest_text = layout
        .fs()
        .read_to_string(&layout.apiserver_manifest())
        .ok();
    let manifest = manifest_text
        .as_deref()
        .and_then(|t| Manifest::parse(t).ok());
    let v129 = match manifest.as_ref().and_then(Manifest::version) {
        Some((major, minor, _)) => (major, minor) >= (1, 29),
        None => layout.fs().exists(&layout.super_admin_conf()),
    };
    let server = manifest.as_ref().map(|m| {
        let (host, port) = m.probe_endpoint();
        m.advertise_endpoint.clone().map_or_else(
            || format!("https://{host}:{port}"),
            |ep| format!("https://{ep}"),
        )
    });
    (v129, server)
}

fn kinds(options: &RegenerateOptions) -> Vec<Kind> {
    if options.only_super_admin {
        vec![Kind::SuperAdmin]
    } else if options.super_admin {
        vec![Kind::Admin, Kind::SuperAdmin]
    } else {
        vec![Kind::Admin]
    }
}

/// Kubeconfigs elsewhere on the node that hold the old admin certificate: only that user's
/// certificate and key change.
fn copy_writes(
    ctx: &Context,
    options: &RegenerateOptions,
    admin: &Credential,
) -> Result<Vec<PlannedWrite>> {
    let issued = admin.issued.as_ref().expect("native plans are issued");
    let Some(old_cert) = &admin.old_cert_b64 else {
        ctx.ui.warn("the old admin certificate is unreadable, so copies of it cannot be recognised; --update-copies did nothing");
        return Ok(Vec::new());
    };
    let ca = issue::cluster_ca_der(&ctx.layout);
    let mut writes = Vec::new();
    let admin_resolved = ctx.layout.fs().resolved(&admin.path).ok();
    for copy in copies::candidates(&ctx.layout, &options.copies) {
        // A link to admin.conf (the usual ~/.kube/config) IS admin.conf, not a copy of it.
        if copy == admin.path || ctx.layout.fs().resolved(&copy).ok() == admin_resolved {
            continue;
        }
        let text = match ctx.layout.fs().read_to_string(&copy) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                // A copy behind a user's symlink, or in a directory others may write: root
                // does not follow it, and says so.
                ctx.ui.warn(format!(
                    "--update-copies left {} alone: {e}",
                    copy.display()
                ));
                continue;
            }
            Err(_) => continue,
        };
        let Ok(users) = kubeconfig_edit::user_credentials(&text) else {
            continue;
        };
        let mut new_text = text.clone();
        // The admin credential of THIS cluster, by identity: also a copy of an older one (a
        // second regenerate, a kill between two writes), never another cluster's admin.
        // ...and only a copy that holds the certificate's own key: a certificate is public, so
        // an entry with a copied certificate and a made-up key must not be handed a new
        // admin key (root writing it into a user's file would give them cluster-admin).
        for user in users.iter().filter(|u| {
            u.cert_b64.as_deref().is_some_and(|c| {
                (c == old_cert.as_str()
                    || issue::is_admin_certificate(c, Kind::Admin, ca.as_deref()))
                    && u.key_b64
                        .as_ref()
                        .is_some_and(|k| issue::key_matches(c, k.expose_secret()))
            })
        }) {
            new_text = kubeconfig_edit::replace_credential(
                &new_text,
                &user.name,
                &b64(&issued.cert_pem),
                &b64(&issued.key_pem),
            )
            .map_err(|e| Error::Refused(format!("{}: {e}", copy.display())))?;
        }
        if new_text != text {
            writes.push(PlannedWrite {
                path: copy,
                old: Some(text.into_bytes()),
                new: new_text.into_bytes(),
                ownership: None,
            });
        }
    }
    Ok(writes)
}

/// `--install-for USER`: ~USER/.kube/config when it does not exist yet.
fn install_write(
    ctx: &Context,
    user: &str,
    admin: Option<&Credential>,
) -> Result<Option<(copies::Account, PlannedWrite)>> {
    let admin = admin.ok_or_else(|| {
        Error::Usage(
            "--install-for installs admin.conf: do not combine it with --only-super-admin".into(),
        )
    })?;
    let account = copies::account(&ctx.layout, user).ok_or_else(|| {
        Error::Usage(format!(
            "no user {user:?} in {}",
            ctx.layout.path("/etc/passwd").display()
        ))
    })?;
    let home = copies::home_of(&ctx.layout, &account)?;
    let target = home.join(".kube/config");
    match ctx.layout.fs().symlink_metadata(&target) {
        Ok(_) => {
            ctx.ui.warn(format!(
                "{} exists; --install-for leaves it alone (use --update-copies to update it)",
                target.display()
            ));
            return Ok(None);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // A link or a directory others may write on the way: never followed as root.
        Err(e) => {
            return Err(Error::Refused(format!(
                "cannot install a kubeconfig for {user}: {e}\n  what to do: make ~{user}/.kube a real directory of {user}'s own, or copy admin.conf by hand"
            )));
        }
    }
    let write = PlannedWrite {
        path: target,
        old: None,
        new: admin.new_text.clone().into_bytes(),
        ownership: Some(Ownership {
            mode: 0o600,
            uid: account.uid,
            gid: account.gid,
        }),
    };
    Ok(Some((account, write)))
}

fn checks(credentials: &[Credential], no_verify: bool) -> plan::Verify {
    if no_verify {
        return plan::Verify::Nothing;
    }
    plan::Verify::Credentials(
        credentials
            .iter()
            .map(|c| CredentialCheck {
                file: c.kind.file_name(),
                path: c.path.clone(),
                subject: c.subject.clone(),
            })
            .collect(),
    )
}

/// What the plan was built from, for the report.
struct Regeneration {
    credentials: Vec<Credential>,
    copies_updated: Vec<String>,
    installed: Option<(copies::Account, PathBuf)>,
    native: bool,
}

fn regenerate(ctx: &Context, options: &RegenerateOptions) -> Result<ExitStatus> {
    let settings = change_settings(&options.confirm, None, None);
    let ran = executor::run(&ctx.layout, &ctx.ui, &settings, Unfinished::Refuse, || {
        plan_regeneration(ctx, options)
    })?;
    let Done {
        plan,
        executed,
        facts: regeneration,
    } = match ran {
        Ran::Done(done) => done,
        Ran::Declined(declined) => return Ok(ExitStatus::Declined(declined)),
    };
    if executed.changed() {
        if options.no_verify {
            ctx.ui.warn("--no-verify: the new credentials were NOT checked against the apiserver; nothing was proved");
        }
        warn_system_masters(ctx, &regeneration.credentials);
    }
    ctx.ui.report(&result(ctx, regeneration, &plan, executed))?;
    Ok(ExitStatus::Success)
}

/// kubeadm's admin user in a kubeconfig, found by what it is: the user whose client
/// certificate is this cluster's `kind` credential, else the user with kubeadm's name for it.
/// Never simply the current context's user: that may be an OIDC or token user someone added.
fn admin_user(
    text: &str,
    kind: Kind,
    ca: Option<&[u8]>,
) -> Option<kubeconfig_edit::UserCredential> {
    let users = kubeconfig_edit::user_credentials(text).ok()?;
    let by_certificate = users.iter().position(|u| {
        u.cert_b64
            .as_deref()
            .is_some_and(|c| issue::is_admin_certificate(c, kind, ca))
    });
    let by_name = || users.iter().position(|u| u.name == kind.user_name());
    by_certificate.or_else(by_name).map(|i| users[i].clone())
}

fn user_names(text: &str) -> String {
    let names: Vec<String> = kubeconfig_edit::user_credentials(text)
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.name)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A credential shorter-lived than this would expire while the operator is still using it.
const SHORTEST_VALIDITY: std::time::Duration = std::time::Duration::from_secs(10 * 60);

fn check_validity(ctx: &Context, validity: std::time::Duration) -> Result<()> {
    if validity < SHORTEST_VALIDITY {
        return Err(Error::Usage(format!(
            "--validity {}s is too short to be of use: give at least 10m (e.g. 24h for a system:masters credential)",
            validity.as_secs()
        )));
    }
    if validity < std::time::Duration::from_secs(24 * 3600) {
        ctx.ui.warn(format!(
            "the new credential expires in {} minutes: plan to replace it before then",
            validity.as_secs() / 60
        ));
    }
    Ok(())
}

fn plan_regeneration(ctx: &Context, options: &RegenerateOptions) -> Result<(Plan, Regeneration)> {
    check_validity(ctx, options.validity)?;
    let native = resolve_method(ctx, options.method)? == Method::Native;
    let (v129, server) = cluster_facts(ctx);
    let credentials = kinds(options)
        .into_iter()
        .map(|kind| plan_credential(ctx, kind, options, v129, server.as_deref(), native))
        .collect::<Result<Vec<_>>>()?;
    let mut regeneration = Regeneration {
        credentials,
        copies_updated: Vec::new(),
        installed: None,
        native,
    };
    let verify = checks(&regeneration.credentials, options.no_verify);
    let mut plan = if native {
        let writes = native_writes(ctx, options, &mut regeneration)?;
        let mut plan = Plan::new(
            "admin-conf regenerate",
            "write the new credentials?",
            plan::Action::Write { writes, verify },
        );
        plan.steps = plan_steps(
            ctx,
            &regeneration.credentials,
            &regeneration.copies_updated,
            regeneration.installed.as_ref().map(|(_, p)| p),
        );
        plan
    } else {
        kubeadm_plan(ctx, &regeneration.credentials, verify)
    };
    plan.certificates = regeneration
        .credentials
        .iter()
        .filter_map(|c| c.issued.as_ref().map(|i| i.facts.clone()))
        .collect();
    Ok((plan, regeneration))
}

/// The credentials themselves, then the copies and the installed kubeconfig.
fn native_writes(
    ctx: &Context,
    options: &RegenerateOptions,
    regeneration: &mut Regeneration,
) -> Result<Vec<PlannedWrite>> {
    let mut writes: Vec<PlannedWrite> = regeneration
        .credentials
        .iter()
        .map(|c| PlannedWrite {
            path: c.path.clone(),
            old: c.old_text.clone().map(String::into_bytes),
            new: c.new_text.clone().into_bytes(),
            ownership: c.old_text.is_none().then_some(Ownership {
                mode: 0o600,
                uid: 0,
                gid: 0,
            }),
        })
        .collect();
    let admin = regeneration
        .credentials
        .iter()
        .find(|c| c.kind == Kind::Admin);
    if let (true, Some(admin)) = (options.update_copies, admin) {
        let copies = copy_writes(ctx, options, admin)?;
        regeneration.copies_updated = copies
            .iter()
            .map(|w| ctx.layout.node_path(&w.path))
            .collect();
        writes.extend(copies);
    }
    if let Some(user) = &options.install_for
        && let Some((account, write)) = install_write(ctx, user, admin)?
        && !writes.iter().any(|w| w.path == write.path)
    {
        regeneration.installed = Some((account, write.path.clone()));
        writes.push(write);
    }
    Ok(writes)
}

/// `kubeadm certs renew` for each file, backed up first and verified after.
fn kubeadm_plan(ctx: &Context, credentials: &[Credential], verify: plan::Verify) -> Plan {
    let layout = &ctx.layout;
    let files: Vec<&str> = credentials.iter().map(|c| c.kind.file_name()).collect();
    let command_line = format!("kubeadm certs renew {}", files.join(" "));
    // kubeadm has no flag for the kubeconfig directory (it is always /etc/kubernetes): on a
    // sandbox root it runs chrooted there, with --rootfs, as it would on that node.
    let programs = files
        .iter()
        .map(|file| {
            let mut program: Vec<String> = vec![
                "kubeadm".into(),
                "certs".into(),
                "renew".into(),
                file.to_string(),
            ];
            if !layout.is_host() {
                program.push(format!("--rootfs={}", layout.root().display()));
            }
            program
        })
        .collect();
    let files = credentials
        .iter()
        .map(|c| PlannedWrite {
            path: c.path.clone(),
            old: c.old_text.clone().map(String::into_bytes),
            new: Vec::new(),
            ownership: None,
        })
        .collect();
    Plan::new(
        "admin-conf regenerate --method kubeadm",
        format!("run {command_line}?"),
        plan::Action::External {
            programs,
            files,
            verify,
        },
    )
    .step(command_line)
}

fn result(
    ctx: &Context,
    regeneration: Regeneration,
    plan: &Plan,
    executed: executor::Executed,
) -> AdminConfResult {
    let mut verified = executed.verified().iter();
    let changed = executed.changed();
    AdminConfResult {
        method: if regeneration.native {
            "native"
        } else {
            "kubeadm"
        },
        credentials: regeneration
            .credentials
            .iter()
            .map(|c| CredentialResult {
                kind: c.kind,
                path: ctx.layout.node_path(&c.path),
                subject: c.subject.to_string(),
                subject_from: c.subject_source,
                key_type: format!("{:?}", c.key_type),
                certificate: c.issued.as_ref().map(|i| i.facts.clone()),
                capped_to_ca_expiry: c.issued.as_ref().map(|i| i.capped_to_ca),
                verified_as: changed.then(|| verified.next().cloned()).flatten(),
            })
            .collect(),
        copies_updated: regeneration.copies_updated,
        installed: regeneration
            .installed
            .as_ref()
            .map(|(_, p)| ctx.layout.node_path(p)),
        installed_for: regeneration.installed.map(|(a, _)| a.name),
        dry_run: executed.dry_run(),
        verified: !executed.verified().is_empty(),
        backup: executed.backup(),
        plan: plan.steps_text(),
    }
}

fn plan_credential(
    ctx: &Context,
    kind: Kind,
    options: &RegenerateOptions,
    v129: bool,
    server: Option<&str>,
    issue_now: bool,
) -> Result<Credential> {
    let layout = &ctx.layout;
    let path = layout.path(&format!("/etc/kubernetes/{}", kind.file_name()));
    let old_text = layout.fs().read_to_string(&path).ok();
    let ca = issue::cluster_ca_der(&ctx.layout);
    let admin = match old_text.as_deref() {
        Some(text) => Some(admin_user(text, kind, ca.as_deref()).ok_or_else(|| {
            Error::Refused(format!(
                "{} holds no kubeadm {} user (a client certificate for {} from this cluster's CA, or a user \
                 named {}): users {}. Nothing was changed; to have a new file written in kubeadm's shape, \
                 move this one aside first",
                path.display(),
                kind.file_name(),
                kind.user_name(),
                kind.user_name(),
                user_names(text)
            ))
        })?),
        None => None,
    };
    let user = admin
        .as_ref()
        .map_or_else(|| kind.user_name().to_string(), |u| u.name.clone());
    let old_cert_b64 = admin.and_then(|u| u.cert_b64);
    let old = old_cert_b64.as_deref().and_then(issue::read_certificate);
    let (subject, subject_source, old_key_type) = match &old {
        Some((subject, key_type, _)) => (subject.clone(), "the old certificate", Some(*key_type)),
        None => (
            kind.default_subject(v129),
            "kubeadm's defaults (the old certificate is unreadable or missing)",
            None,
        ),
    };
    let key_type = options
        .key_type
        .map(key_type_of)
        .or(old_key_type)
        .unwrap_or(KeyType::Rsa2048);
    if !issue_now {
        return Ok(Credential {
            kind,
            path,
            subject,
            subject_source,
            key_type,
            old_text,
            old_cert_b64,
            new_text: String::new(),
            issued: None,
        });
    }
    let issued = issue::issue(
        layout,
        &layout.path("/etc/kubernetes/pki"),
        &subject,
        key_type,
        options.validity,
    )
    .map_err(|e| Error::Refused(e.to_string()))?;
    let (cert_b64, key_b64) = (b64(&issued.cert_pem), b64(&issued.key_pem));
    let edited = old_text
        .as_deref()
        .filter(|_| old_cert_b64.is_some())
        .map(|t| kubeconfig_edit::replace_credential(t, &user, &cert_b64, &key_b64));
    let new_text = match edited {
        Some(Ok(text)) => text,
        Some(Err(e)) => return Err(Error::Refused(format!("{}: {e}", path.display()))),
        None => {
            // No usable old file: write one shaped exactly like kubeadm's.
            let ca = layout
                .fs()
                .read_to_string(&layout.path("/etc/kubernetes/pki/ca.crt"))
                .map_err(|e| {
                    Error::io("cannot read", &layout.path("/etc/kubernetes/pki/ca.crt"), e)
                })?;
            let server = server.ok_or_else(|| Error::Refused("no usable old kubeconfig and no apiserver manifest to take the server address from".into()))?;
            crate::credentials::kubeconfig::edit::kubeadm_kubeconfig(
                &ca,
                server,
                &user,
                &issued.cert_pem,
                &issued.key_pem,
            )
        }
    };
    Ok(Credential {
        kind,
        path,
        subject,
        subject_source,
        key_type,
        old_text,
        old_cert_b64,
        new_text,
        issued: Some(issued),
    })
}

fn plan_steps(
    ctx: &Context,
    credentials: &[Credential],
    copies: &[String],
    installed: Option<&PathBuf>,
) -> Vec<String> {
    let mut out = Vec::new();
    for c in credentials {
        let mut line = format!(
            "re-issue {} for {} (identity from {}), {:?} key",
            ctx.layout.node_path(&c.path),
            c.subject,
            c.subject_source,
            c.key_type
        );
        if let Some(i) = &c.issued {
            line.push_str(&format!(
                ", valid until {}{}",
                i.facts.not_after,
                if i.capped_to_ca {
                    " (the CA's own expiry)"
                } else {
                    ""
                }
            ));
        }
        out.push(line);
    }
    for c in copies {
        out.push(format!("update the copy in {c}"));
    }
    if let Some(path) = installed {
        out.push(format!("install {}", ctx.layout.node_path(path)));
    }
    out
}

fn warn_system_masters(ctx: &Context, plans: &[Credential]) {
    for p in plans {
        if let Some(i) = p.issued.as_ref().filter(|i| i.facts.system_masters) {
            let lifetime = crate::runtime::clock::parse_rfc3339(&i.facts.not_after)
                .zip(crate::runtime::clock::parse_rfc3339(&i.facts.not_before))
                .map(|(after, before)| after - before);
            // kubeadm back-dates not-before a little; a day plus that is "short-lived".
            let advice = if lifetime.is_some_and(|l| l <= 25 * 3600) {
                "Keep it offline"
            } else {
                "Keep it offline, or issue it short-lived (--validity 24h)"
            };
            ctx.ui.warn(format!(
                "{} is in system:masters: it bypasses RBAC and cannot be revoked before it expires ({}). {advice}",
                p.kind.file_name(),
                i.facts.not_after
            ));
        }
    }
}
