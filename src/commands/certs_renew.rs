//! `certs renew`: the planner (`change::renew`) makes one step per component; each runs through
//! the executor as its own journaled change with its own proof, in order, stopping at the first
//! that fails. The report says, per certificate, the old and new serial, and per component how it
//! was proved (reloaded by itself, restarted, or not running).
use std::time::Duration;

use serde::Serialize;

use super::{Context, change_settings};
use crate::change::executor::{self, ChangeReport, Done, Ran, Unfinished};
use crate::change::renew::{self, Renewal, Request, Skipped, ValiditySource};
use crate::cli::ConfirmOptions;
use crate::error::{ExitStatus, Result};
use crate::ui::Report;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StepReport {
    title: String,
    renewed: Vec<Renewal>,
    #[serde(flatten)]
    change: Option<ChangeReport>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RenewReport {
    dry_run: bool,
    validity: String,
    validity_source: ValiditySource,
    steps: Vec<StepReport>,
    /// Steps not run because an earlier one failed (or was declined).
    not_run: Vec<String>,
    /// Certificates `all` left alone (an external CA's), and why.
    skipped: Vec<Skipped>,
    /// The certificate that ends first once this is done, of every one on the node.
    next_expiry: Option<NextExpiry>,
    /// The CAs, reported and never rotated: (name, not after).
    authorities: Vec<Authority>,
    #[serde(skip)]
    plans: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NextExpiry {
    certificate: &'static str,
    not_after: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Authority {
    name: &'static str,
    not_after: String,
}

impl Report for RenewReport {
    const KIND: &'static str = "CertificateRenewal";

    fn text(&self) -> String {
        let mut out = format!(
            "validity {} ({})\n",
            self.validity,
            self.validity_source.describe()
        );
        if self.dry_run {
            out.push_str(&self.plans);
            out.push_str("dry run: nothing was written\n");
            return out;
        }
        for step in &self.steps {
            out.push_str(&format!("{}:\n", step.title));
            for r in &step.renewed {
                let (serial, until) = r
                    .new
                    .as_ref()
                    .map_or(("?", "?"), |n| (n.serial.as_str(), n.not_after.as_str()));
                out.push_str(&format!(
                    "  {}: serial {} -> {serial}, valid until {until}{}\n",
                    r.name,
                    r.old_serial,
                    if r.capped_to_ca {
                        " (the CA's end)"
                    } else {
                        ""
                    }
                ));
            }
            if let Some(change) = &step.change {
                for v in &change.verified {
                    out.push_str(&format!(
                        "  proved: the apiserver answers as {} in groups {}\n",
                        v.username,
                        v.groups.join(", ")
                    ));
                }
                for c in &change.components {
                    out.push_str(&format!("  {}\n", c.describe()));
                }
                if let Some(backup) = &change.backup {
                    out.push_str(&format!("  backup: {}\n", backup.path));
                }
            }
        }
        for step in &self.not_run {
            out.push_str(&format!("not run: {step}\n"));
        }
        for skipped in &self.skipped {
            out.push_str(&format!("skipped: {}: {}\n", skipped.name, skipped.why));
        }
        if let Some(next) = &self.next_expiry {
            out.push_str(&format!(
                "next expiry: {} on {}\n",
                next.certificate, next.not_after
            ));
        }
        for a in &self.authorities {
            out.push_str(&format!(
                "CA {} ends {} (reported, never rotated by this command)\n",
                a.name, a.not_after
            ));
        }
        out
    }
}

/// The certificate on the node that ends first, now (the leaves and the CAs alike).
fn next_expiry(layout: &crate::node::NodeLayout) -> Option<NextExpiry> {
    let inventory = crate::certs::inspect::inventory(layout, false);
    inventory
        .certificates
        .iter()
        .map(|c| (c.name, &c.file))
        .chain(inventory.authorities.iter().map(|a| (a.name, &a.file)))
        .filter_map(|(name, file)| Some((name, file.certificate()?)))
        .min_by_key(|(_, cert)| cert.not_after_unix)
        .map(|(name, cert)| NextExpiry {
            certificate: name,
            not_after: cert.not_after.clone(),
        })
}

/// As Go prints a duration (and kubeadm's configuration writes one): `8760h0m0s`.
fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}h{}m{}s", s / 3600, s % 3600 / 60, s % 60)
}

pub fn run(ctx: &Context, request: Request, confirm: &ConfirmOptions) -> Result<ExitStatus> {
    let settings = change_settings(confirm, None, None);
    if !settings.dry_run {
        ctx.layout.require_privileges()?;
    }
    let renewals = renew::plan(&ctx.layout, &ctx.ui, &request)?;
    let mut report = RenewReport {
        dry_run: settings.dry_run,
        validity: go_duration(renewals.validity),
        validity_source: renewals.validity_source,
        steps: Vec::new(),
        not_run: Vec::new(),
        skipped: renewals.skipped,
        next_expiry: None,
        authorities: renewals
            .authorities
            .into_iter()
            .map(|(name, not_after)| Authority { name, not_after })
            .collect(),
        plans: String::new(),
    };
    // kubeadm's configuration, when it is the cluster's, in place for the run (and only then).
    let _configuration = match (&renewals.kubeadm, settings.dry_run) {
        (Some(configuration), false) => Some(configuration.in_place(&ctx.layout)?),
        _ => None,
    };
    let mut steps = renewals.steps.into_iter();
    let mut ending = Ok(ExitStatus::Success);
    for step in steps.by_ref() {
        let title = step.title.clone();
        let ran = executor::run(&ctx.layout, &ctx.ui, &settings, Unfinished::Refuse, || {
            step.planned_now(&ctx.layout)
        });
        match ran {
            Ok(Ran::Done(Done {
                plan,
                executed,
                mut facts,
            })) => {
                if !settings.dry_run {
                    // What is on disk now: kubeadm's certificate, or this tool's.
                    facts
                        .iter_mut()
                        .for_each(|renewal| renewal.read_back(&ctx.layout));
                }
                report
                    .plans
                    .push_str(&format!("{title}:\n{}", plan.describe()));
                report.steps.push(StepReport {
                    title,
                    renewed: facts,
                    change: executed.report().cloned(),
                });
            }
            Ok(Ran::Declined(declined)) => {
                report.not_run.push(title);
                ending = Ok(ExitStatus::Declined(declined));
                break;
            }
            Err(e) => {
                report
                    .not_run
                    .push(format!("{title} (failed: see the message)"));
                ending = Err(e);
                break;
            }
        }
    }
    report.not_run.extend(steps.map(|s| s.title));
    if !settings.dry_run {
        report.next_expiry = next_expiry(&ctx.layout);
    }
    // With -o json a failure's document is the Error one (the contract of every command): what
    // went through before it is said on stderr, and in the journal.
    if ending.is_err() && ctx.ui.json() {
        for step in &report.steps {
            ctx.ui.warn(format!(
                "renewed and proved before the failure: {} (session {})",
                step.title,
                step.change
                    .as_ref()
                    .and_then(|c| c.session.clone())
                    .unwrap_or_default()
            ));
        }
    } else {
        ctx.ui.report(&report)?;
    }
    ending
}
