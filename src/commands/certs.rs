//! `certs check`: the node's certificates, one line each, with what the running components use,
//! and what is wrong. Reads only.
use serde::Serialize;

use super::Context;
use crate::certs::inspect::{self, InUse, Inventory, Reading};
use crate::certs::verdict::{self, Level, Problem, Validity};
use crate::error::{ExitStatus, Result};
use crate::runtime::clock::now_unix;
use crate::ui::Report;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CertsReport {
    #[serde(flatten)]
    inventory: Inventory,
    /// Per certificate and CA, by name: valid, expiring or expired now, and the time left.
    validity: Vec<ValidityLine>,
    problems: Vec<ProblemLine>,
    #[serde(skip)]
    now: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ValidityLine {
    name: &'static str,
    validity: Validity,
    residual_seconds: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProblemLine {
    certificate: &'static str,
    severity: &'static str,
    summary: String,
    evidence: String,
    fix: String,
}

fn severity(level: Level) -> &'static str {
    match level {
        Level::Critical => "critical",
        Level::Warning => "warning",
        Level::Info => "info",
    }
}

pub fn check(ctx: &Context) -> Result<ExitStatus> {
    let now = now_unix();
    let inventory = inspect::inventory(&ctx.layout, true);
    let problems = verdict::problems(&inventory, now);
    let failing = problems.iter().any(|p| {
        matches!(
            p,
            Problem::Ends {
                validity: Validity::Expired,
                ..
            } | Problem::NotInUse { .. }
                | Problem::Unreadable { .. }
                | Problem::KeyMismatch { .. }
        )
    });
    let validity = inventory
        .authorities
        .iter()
        .map(|a| (a.name, &a.file))
        .chain(inventory.certificates.iter().map(|c| (c.name, &c.file)))
        .filter_map(|(name, file)| {
            let cert = file.certificate()?;
            Some(ValidityLine {
                name,
                validity: verdict::validity(cert.not_after_unix, now),
                residual_seconds: cert.not_after_unix - now,
            })
        })
        .collect();
    let report = CertsReport {
        problems: problems
            .iter()
            .map(|p| ProblemLine {
                certificate: p.subject(),
                severity: severity(p.level()),
                summary: p.summary(),
                evidence: p.evidence(),
                fix: p.fix(),
            })
            .collect(),
        validity,
        inventory,
        now,
    };
    ctx.ui.report(&report)?;
    Ok(if failing {
        ExitStatus::Negative(format!(
            "{} certificate problem(s): {}",
            problems.len(),
            problems
                .iter()
                .map(|p| format!("{} ({})", p.subject(), severity(p.level())))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else {
        ExitStatus::Success
    })
}

/// "362d", "5h", "expired 3d ago".
fn residual(seconds: i64) -> String {
    let amount = |s: i64| match s {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s => format!("{}m", s / 60),
    };
    if seconds <= 0 {
        format!("expired {} ago", amount(-seconds))
    } else {
        amount(seconds)
    }
}

fn in_use_text(in_use: &InUse) -> String {
    match in_use {
        InUse::Presented { endpoint } => format!("presented on {endpoint}"),
        InUse::PresentsAnother {
            endpoint, serial, ..
        } => format!("NOT IN USE: {endpoint} presents serial {serial}"),
        InUse::NoAnswer { endpoint, why } => format!("{endpoint}: {why}"),
        InUse::StartedAfterTheFile { component, pid, .. } => {
            format!("held by {} (pid {pid})", component.name())
        }
        InUse::StartedBeforeTheFile { component, .. } => format!(
            "NOT IN USE: {} started before the file changed",
            component.name()
        ),
        InUse::NotRunning { component } => format!("{} is not running", component.name()),
        InUse::ReloadsItself { component } => format!("{} re-reads it", component.name()),
        InUse::NotAProcess => "read at each use".into(),
        InUse::NotChecked { why } => format!("not checked: {why}"),
    }
}

impl Report for CertsReport {
    const KIND: &'static str = "Certificates";

    fn text(&self) -> String {
        let mut rows: Vec<[String; 5]> = vec![[
            "CERTIFICATE".into(),
            "EXPIRES".into(),
            "RESIDUAL".into(),
            "SIGNED BY".into(),
            "IN USE".into(),
        ]];
        let describe = |file: &Reading| match file {
            Reading::Present(c) => (
                c.not_after.clone(),
                residual(c.not_after_unix - self.now),
                c.signed_by.clone(),
            ),
            Reading::Missing => ("-".into(), "missing".into(), "-".into()),
            Reading::Unreadable { .. } => ("-".into(), "unreadable".into(), "-".into()),
        };
        for c in &self.inventory.certificates {
            let (expires, left, signer) = describe(&c.file);
            rows.push([c.name.into(), expires, left, signer, in_use_text(&c.in_use)]);
        }
        rows.push(Default::default());
        rows.push([
            "CERTIFICATE AUTHORITY".into(),
            "EXPIRES".into(),
            "RESIDUAL".into(),
            "KEY ON NODE".into(),
            String::new(),
        ]);
        for a in &self.inventory.authorities {
            let (expires, left, _) = describe(&a.file);
            let key = if a.key_on_node { "yes" } else { "no" };
            rows.push([a.name.into(), expires, left, key.into(), String::new()]);
        }
        let sa = &self.inventory.service_account_key;
        let widths: Vec<usize> = (0..5)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in &rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out.push_str(&format!(
            "\nsa.key: {}, sa.pub: {}\n",
            if sa.key_present { "present" } else { "MISSING" },
            if sa.public_key_present {
                "present"
            } else {
                "MISSING"
            }
        ));
        if self.problems.is_empty() {
            out.push_str("\nno certificate problem found\n");
        }
        for (i, p) in self.problems.iter().enumerate() {
            out.push_str(&format!(
                "\n{}. [{}] {}\n   evidence: {}\n   fix: {}",
                i + 1,
                p.severity,
                p.summary,
                p.evidence,
                p.fix
            ));
        }
        if !self.problems.is_empty() {
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::residual;

    #[test]
    fn residual_time_reads_like_kubeadms() {
        assert_eq!(residual(400 * 86_400), "400d");
        assert_eq!(residual(5 * 3_600 + 10), "5h");
        assert_eq!(residual(-3 * 86_400), "expired 3d ago");
        assert_eq!(residual(0), "expired 0m ago");
    }
}
