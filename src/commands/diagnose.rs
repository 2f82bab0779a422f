//! `diagnose`: reads the node (what `status` reads, plus the control-plane certificates, the
//! kubeconfig copies and the apiserver's attempt logs) and hands the facts to the pure
//! `diagnose` module.
use serde::Serialize;

use super::Context;
use crate::error::{ExitStatus, Result};
use crate::survey::diagnose::Finding;
use crate::survey::facts::survey;
use crate::survey::guide::Guidance;
use crate::ui::Report;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    pub findings: Vec<Finding>,
    /// What `guide` would propose: this tool's steps in order, and what is left to a person.
    #[serde(flatten)]
    pub guidance: Guidance,
}

impl Report for Diagnosis {
    const KIND: &'static str = "Diagnosis";

    fn text(&self) -> String {
        let mut out = String::new();
        for (i, f) in self.findings.iter().enumerate() {
            let severity = f.severity.label();
            out.push_str(&format!(
                "{}. [{severity}] {}\n   evidence: {}\n   fix: {}\n",
                i + 1,
                f.summary,
                f.evidence.replace('\n', "\n             "),
                f.fix
            ));
        }
        if self.findings.is_empty() {
            out.push_str("nothing wrong found\n");
        }
        if !self.guidance.steps.is_empty() {
            out.push_str(
                "\nsteps (`kubeadm-recover guide` asks about each; scripts add --reason and --yes):\n",
            );
            for (i, step) in self.guidance.steps.iter().enumerate() {
                out.push_str(&format!(
                    "{}. {}\n   {}\n",
                    i + 1,
                    step.title,
                    step.command_line()
                ));
            }
        }
        out
    }
}

pub fn run(ctx: &Context) -> Result<ExitStatus> {
    let findings = survey(&ctx.layout).into_findings();
    ctx.ui.report(&Diagnosis {
        guidance: crate::survey::guide::plan(&findings),
        findings,
    })?;
    Ok(ExitStatus::Success)
}
