//! `admin-conf regenerate`: re-issue admin.conf / super-admin.conf from the cluster CA on the
//! node, keep the identity, prove the new credential with SelfSubjectReview, fix the copies.
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use base64::Engine;
use serde_json::{Value, json};

use super::Context;
use crate::change::{self, PlannedWrite};
use crate::cli::{AdminConf, Method, RegenerateOptions};
use crate::credentials::issue::{self, Kind, Subject};
use crate::credentials::verify::{self, Verified};
use crate::credentials::{copies, kubeconfig_edit};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::pki::KeyType;
use crate::store::atomic::Ownership;
use crate::store::{audit, lock};

pub fn run(ctx: &Context, action: AdminConf) -> Result<()> {
    match action {
        AdminConf::Regenerate(options) => regenerate(ctx, &options),
    }
}

/// One credential to re-issue, planned.
struct Plan {
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

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn resolve_method(ctx: &Context, method: Method) -> Result<Method> {
    let ca_key = ctx.layout.path("/etc/kubernetes/pki/ca.key");
    let kubeadm = which("kubeadm");
    match method {
        Method::Auto if ca_key.is_file() => Ok(Method::Native),
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

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn regenerate(ctx: &Context, options: &RegenerateOptions) -> Result<()> {
    let (ui, layout) = (&ctx.ui, &ctx.layout);
    if !options.dry_run {
        layout.require_privileges()?;
        crate::restart::unpark_manifest(layout, ui)?;
        crate::journal::refuse_if_unfinished(layout)?;
    }
    let kinds: Vec<Kind> = if options.only_super_admin {
        vec![Kind::SuperAdmin]
    } else if options.super_admin {
        vec![Kind::Admin, Kind::SuperAdmin]
    } else {
        vec![Kind::Admin]
    };
    let method = resolve_method(ctx, options.method)?;
    let manifest_text = std::fs::read_to_string(layout.apiserver_manifest()).ok();
    let manifest = manifest_text
        .as_deref()
        .and_then(|t| Manifest::parse(t).ok());
    let v129 = match manifest.as_ref().and_then(Manifest::version) {
        Some((major, minor, _)) => (major, minor) >= (1, 29),
        None => layout.super_admin_conf().exists(),
    };
    let server = manifest.as_ref().map(|m| {
        let (host, port) = m.probe_endpoint();
        m.advertise_endpoint.clone().map_or_else(
            || format!("https://{host}:{port}"),
            |ep| format!("https://{ep}"),
        )
    });

    let mut plans = Vec::new();
    for kind in kinds {
        plans.push(plan(
            ctx,
            kind,
            options,
            v129,
            server.as_deref(),
            method == Method::Native,
        )?);
    }

    if method == Method::Kubeadm {
        return run_kubeadm(ctx, options, plans);
    }

    // Copies of the old admin credential, and a kubeconfig for a user who has none.
    let mut writes: Vec<PlannedWrite> = Vec::new();
    let mut copies_updated = Vec::new();
    for p in &plans {
        writes.push(PlannedWrite {
            path: p.path.clone(),
            old: p.old_text.clone().map(String::into_bytes),
            new: p.new_text.clone().into_bytes(),
            ownership: if p.old_text.is_some() {
                None
            } else {
                Some(Ownership {
                    mode: 0o600,
                    uid: 0,
                    gid: 0,
                })
            },
        });
    }
    let admin = plans.iter().find(|p| p.kind == Kind::Admin);
    if let (true, Some(admin)) = (options.update_copies, admin) {
        let issued = admin.issued.as_ref().expect("native plans are issued");
        if let Some(old_cert) = &admin.old_cert_b64 {
            for copy in copies::candidates(layout, &options.copies) {
                if copy == admin.path {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&copy) else {
                    continue;
                };
                let Ok(users) = kubeconfig_edit::user_credentials(&text) else {
                    continue;
                };
                let mut new_text = text.clone();
                for user in users
                    .iter()
                    .filter(|u| u.cert_b64.as_deref() == Some(old_cert.as_str()))
                {
                    new_text = kubeconfig_edit::replace_credential(
                        &new_text,
                        &user.name,
                        &b64(&issued.cert_pem),
                        &b64(&issued.key_pem),
                    )
                    .map_err(|e| Error::Refused(format!("{}: {e}", copy.display())))?;
                }
                if new_text != text {
                    copies_updated.push(layout.node_path(&copy));
                    writes.push(PlannedWrite {
                        path: copy,
                        old: Some(text.into_bytes()),
                        new: new_text.into_bytes(),
                        ownership: None,
                    });
                }
            }
        } else {
            ui.warn("the old admin certificate is unreadable, so copies of it cannot be recognised; --update-copies did nothing");
        }
    }
    let mut installed = None;
    if let Some(user) = &options.install_for {
        let admin = admin.ok_or_else(|| {
            Error::Usage(
                "--install-for installs admin.conf: do not combine it with --only-super-admin"
                    .into(),
            )
        })?;
        let account = copies::account(layout, user).ok_or_else(|| {
            Error::Usage(format!(
                "no user {user:?} in {}",
                layout.path("/etc/passwd").display()
            ))
        })?;
        let target = layout.path(&format!("{}/.kube/config", account.home));
        if target.exists() {
            ui.warn(format!(
                "{} exists; --install-for leaves it alone (use --update-copies to update it)",
                target.display()
            ));
        } else if !writes.iter().any(|w| w.path == target) {
            installed = Some((account, target.clone()));
            writes.push(PlannedWrite {
                path: target,
                old: None,
                new: admin.new_text.clone().into_bytes(),
                ownership: Some(Ownership {
                    mode: 0o600,
                    uid: installed.as_ref().unwrap().0.uid,
                    gid: installed.as_ref().unwrap().0.gid,
                }),
            });
        }
    }

    let describe = |p: &Plan| -> Value {
        json!({
            "kind": p.kind, "path": layout.node_path(&p.path), "subject": p.subject.to_string(),
            "subjectFrom": p.subject_source, "keyType": format!("{:?}", p.key_type),
            "certificate": p.issued.as_ref().map(|i| &i.facts),
            "cappedToCaExpiry": p.issued.as_ref().map(|i| i.capped_to_ca),
        })
    };
    let mut document = json!({
        "method": "native",
        "credentials": plans.iter().map(describe).collect::<Vec<_>>(),
        "copiesUpdated": copies_updated,
        "installed": installed.as_ref().map(|(_, p)| layout.node_path(p)),
        "dryRun": options.dry_run,
    });
    let plan_text = plan_summary(
        ctx,
        &plans,
        &copies_updated,
        installed.as_ref().map(|(_, p)| p),
    );
    if options.dry_run {
        ui.report("AdminConfResult", document, || {
            format!("{plan_text}dry run: nothing was written\n")
        });
        return Ok(());
    }
    ui.info(&plan_text);
    ui.confirm("write the new credentials?")?;
    let _lock = lock::acquire(&layout.lock_file())?;
    if let Some((account, target)) = &installed
        && let Some(dir) = target.parent().filter(|d| !d.exists())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("cannot create", dir, e))?;
        nix::unistd::chown(
            dir,
            Some(nix::unistd::Uid::from_raw(account.uid)),
            Some(nix::unistd::Gid::from_raw(account.gid)),
        )
        .map_err(|e| Error::io("cannot chown", dir, e.into()))?;
    }
    let applied = change::apply(
        layout,
        ui,
        "admin-conf regenerate",
        ctx.reason.as_deref(),
        &writes,
        &[],
    )?;
    let mut record = audit::Record::new("admin-conf regenerate", ctx.reason.as_deref(), "issued");
    record.backup = Some(layout.node_path(&applied.backup.dir));
    record.certificates = plans
        .iter()
        .filter_map(|p| p.issued.as_ref().map(|i| i.facts.clone()))
        .collect();
    let _ = audit::append(&layout.audit_log(), &record);
    // A break-glass session in effect remembers the credentials issued during it.
    if let Some(session) = crate::journal::Journal::load(layout)
        .ok()
        .and_then(|j| j.revertable().map(|s| s.id.clone()))
    {
        let serials: Vec<String> = record
            .certificates
            .iter()
            .map(|c| c.serial.clone())
            .collect();
        let _ = crate::journal::Recorder::attach(layout, &session)
            .update(|s| s.credentials_issued.extend(serials));
    }
    document["backup"] =
        json!({ "id": applied.backup.id, "path": layout.node_path(&applied.backup.dir) });

    let verified = verify_all(ctx, options, &plans, &writes)?;
    document["verified"] = json!(verified.is_some());
    if let Some(verified) = &verified {
        for (entry, v) in document["credentials"]
            .as_array_mut()
            .expect("array")
            .iter_mut()
            .zip(verified)
        {
            entry["verifiedAs"] = json!(v);
        }
    }
    warn_system_masters(ctx, &plans);
    let backup_path = layout.node_path(&applied.backup.dir);
    ui.report("AdminConfResult", document, || {
        let mut out = String::new();
        for p in &plans {
            let facts = &p.issued.as_ref().expect("issued").facts;
            out.push_str(&format!(
                "{} re-issued: {} serial {}, valid until {}\n",
                layout.node_path(&p.path),
                p.subject,
                facts.serial,
                facts.not_after
            ));
        }
        match &verified {
            Some(v) => {
                for (p, v) in plans.iter().zip(v) {
                    out.push_str(&format!(
                        "  proved: the apiserver answers {} as user {} in groups {}\n",
                        p.kind.file_name(),
                        v.username,
                        v.groups.join(", ")
                    ));
                }
            }
            None => out.push_str(
                "  NOT verified (--no-verify): nothing was proved against the apiserver\n",
            ),
        }
        for copy in &copies_updated {
            out.push_str(&format!("  updated copy {copy}\n"));
        }
        if let Some((account, path)) = &installed {
            out.push_str(&format!(
                "  installed {} for {}\n",
                layout.node_path(path),
                account.name
            ));
        }
        out.push_str(&format!("  backup: {backup_path}\n"));
        out
    });
    Ok(())
}

fn plan(
    ctx: &Context,
    kind: Kind,
    options: &RegenerateOptions,
    v129: bool,
    server: Option<&str>,
    issue_now: bool,
) -> Result<Plan> {
    let layout = &ctx.layout;
    let path = layout.path(&format!("/etc/kubernetes/{}", kind.file_name()));
    let old_text = std::fs::read_to_string(&path).ok();
    let user = old_text
        .as_deref()
        .and_then(kubeconfig_edit::current_user)
        .unwrap_or_else(|| kind.user_name().to_string());
    let old_cert_b64 = old_text
        .as_deref()
        .and_then(|t| kubeconfig_edit::user_credentials(t).ok())
        .and_then(|users| users.into_iter().find(|u| u.name == user))
        .and_then(|u| u.cert_b64);
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
        .map(Into::into)
        .or(old_key_type)
        .unwrap_or(KeyType::Rsa2048);
    if !issue_now {
        return Ok(Plan {
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
        &layout.path("/etc/kubernetes/pki"),
        &subject,
        key_type,
        options.validity,
    )
    .map_err(Error::Refused)?;
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
            let ca = std::fs::read_to_string(layout.path("/etc/kubernetes/pki/ca.crt")).map_err(
                |e| Error::io("cannot read", &layout.path("/etc/kubernetes/pki/ca.crt"), e),
            )?;
            let server = server.ok_or_else(|| Error::Refused("no usable old kubeconfig and no apiserver manifest to take the server address from".into()))?;
            crate::credentials::kubeconfig_edit::kubeadm_kubeconfig(
                &ca,
                server,
                &user,
                &issued.cert_pem,
                &issued.key_pem,
            )
        }
    };
    Ok(Plan {
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

fn plan_summary(
    ctx: &Context,
    plans: &[Plan],
    copies: &[String],
    installed: Option<&PathBuf>,
) -> String {
    let mut out = String::new();
    for p in plans {
        out.push_str(&format!(
            "plan: re-issue {} for {} (identity from {}), {:?} key",
            ctx.layout.node_path(&p.path),
            p.subject,
            p.subject_source,
            p.key_type
        ));
        if let Some(i) = &p.issued {
            out.push_str(&format!(
                ", valid until {}{}",
                i.facts.not_after,
                if i.capped_to_ca {
                    " (the CA's own expiry)"
                } else {
                    ""
                }
            ));
        }
        out.push('\n');
    }
    for c in copies {
        out.push_str(&format!("plan: update the copy in {c}\n"));
    }
    if let Some(path) = installed {
        out.push_str(&format!("plan: install {}\n", ctx.layout.node_path(path)));
    }
    out
}

/// Proves every new credential; on failure puts every written file back (exit 1).
fn verify_all(
    ctx: &Context,
    options: &RegenerateOptions,
    plans: &[Plan],
    writes: &[PlannedWrite],
) -> Result<Option<Vec<Verified>>> {
    if options.no_verify {
        ctx.ui.warn("--no-verify: the new credentials were NOT checked against the apiserver; nothing was proved");
        return Ok(None);
    }
    let mut verified = Vec::new();
    for p in plans {
        let text =
            std::fs::read_to_string(&p.path).map_err(|e| Error::io("cannot read", &p.path, e))?;
        match verify::verify(&text, &p.subject) {
            Ok(v) => verified.push(v),
            Err(why) => {
                let failed = change::put_back(&ctx.layout, writes);
                let mut record = audit::Record::new(
                    "admin-conf regenerate",
                    ctx.reason.as_deref(),
                    "verification failed; restored",
                );
                record.files = Vec::new();
                let _ = audit::append(&ctx.layout.audit_log(), &record);
                if !failed.is_empty() {
                    return Err(Error::ManualActionNeeded(format!(
                        "{} did not verify ({why}), and putting the previous files back failed: {}",
                        p.kind.file_name(),
                        failed.join("; ")
                    )));
                }
                return Err(Error::Failed(format!(
                    "{} did not verify: {why}.\n  The previous files are back in place; the node is as before.\n  \
                     If the apiserver is down, regenerate with --no-verify and check again once it is up.",
                    p.kind.file_name()
                )));
            }
        }
    }
    Ok(Some(verified))
}

fn warn_system_masters(ctx: &Context, plans: &[Plan]) {
    for p in plans {
        if let Some(i) = p.issued.as_ref().filter(|i| i.facts.system_masters) {
            ctx.ui.warn(format!(
                "{} is in system:masters: it bypasses RBAC and cannot be revoked before it expires ({}). \
                 Keep it offline, or issue it short-lived (--validity 24h)",
                p.kind.file_name(),
                i.facts.not_after
            ));
        }
    }
}

/// `kubeadm certs renew`, backed up first and verified after, output shown.
fn run_kubeadm(ctx: &Context, options: &RegenerateOptions, plans: Vec<Plan>) -> Result<()> {
    let (ui, layout) = (&ctx.ui, &ctx.layout);
    let files: Vec<&str> = plans.iter().map(|p| p.kind.file_name()).collect();
    if options.dry_run {
        ui.report(
            "AdminConfResult",
            json!({"method": "kubeadm", "files": files, "dryRun": true}),
            || {
                format!(
                    "plan: kubeadm certs renew {}\ndry run: nothing was run\n",
                    files.join(" ")
                )
            },
        );
        return Ok(());
    }
    ui.confirm(&format!("run kubeadm certs renew {}?", files.join(" ")))?;
    let _lock = lock::acquire(&layout.lock_file())?;
    let sources: Vec<crate::store::backup::Source> = plans
        .iter()
        .filter(|p| p.path.exists())
        .map(|p| crate::store::backup::Source {
            path: &p.path,
            restorable: true,
        })
        .collect();
    let backup = crate::store::backup::create(
        layout,
        "admin-conf-regenerate",
        ctx.reason.as_deref(),
        &sources,
    )
    .map_err(|e| {
        Error::Failed(format!(
            "could not make the backup, nothing was changed: {e}"
        ))
    })?;
    let writes: Vec<PlannedWrite> = plans
        .iter()
        .map(|p| PlannedWrite {
            path: p.path.clone(),
            old: p.old_text.clone().map(String::into_bytes),
            new: Vec::new(),
            ownership: None,
        })
        .collect();
    for file in &files {
        let out = duct::cmd(
            "kubeadm",
            [
                "certs".to_string(),
                "renew".to_string(),
                file.to_string(),
                format!(
                    "--cert-dir={}",
                    layout.path("/etc/kubernetes/pki").display()
                ),
                format!(
                    "--kubeconfig-dir={}",
                    layout.path("/etc/kubernetes").display()
                ),
            ],
        )
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .map_err(|e| Error::Failed(format!("cannot run kubeadm: {e}")))?;
        ui.info(String::from_utf8_lossy(&out.stdout).trim_end());
        if !out.status.success() {
            let failed = change::put_back(layout, &writes);
            if !failed.is_empty() {
                return Err(Error::ManualActionNeeded(format!(
                    "kubeadm failed and the backup {} could not be put back: {}",
                    backup.dir.display(),
                    failed.join("; ")
                )));
            }
            return Err(Error::Failed(format!(
                "kubeadm certs renew {file} failed ({}); the previous files are back in place",
                out.status
            )));
        }
    }
    let mut record = audit::Record::new(
        "admin-conf regenerate --method kubeadm",
        ctx.reason.as_deref(),
        "renewed by kubeadm",
    );
    record.backup = Some(layout.node_path(&backup.dir));
    let _ = audit::append(&layout.audit_log(), &record);
    let verified = verify_all(ctx, options, &plans, &writes)?;
    ui.report("AdminConfResult", json!({"method": "kubeadm", "files": files, "verified": verified.is_some(), "verifiedAs": verified, "backup": {"id": backup.id, "path": layout.node_path(&backup.dir)}}), || {
        format!("kubeadm renewed {}{}\n  backup: {}\n", files.join(" "), if verified.is_some() { " and it is proved against the apiserver" } else { " (not verified)" }, layout.node_path(&backup.dir))
    });
    Ok(())
}
