//! The rehearsal's verdict, rendered by the product's `ui` like every report of the tool: the
//! JSON document (`kind: Rehearsal`) and the text are those `kubeadm-recover rehearse` has always
//! printed (tests/integration/snapshots/rehearse.*.snap).
use std::path::PathBuf;
use std::time::Duration;

use kubeadm_recover::ui::{self, Report};
use serde::Serialize;

/// One finished step, as the rehearsal keeps it.
pub struct Step {
    pub name: String,
    pub elapsed: Duration,
    pub detail: String,
    pub timings: Option<Timings>,
}

/// How a restart's wait went (from the product's proof and the simulation's own log).
#[derive(Clone, Copy)]
pub struct Timings {
    pub waited_ms: u64,
    pub noticed_after_ready_ms: Option<i64>,
    pub overhead_ms: u64,
}

impl Step {
    /// The step's progress line, printed as it finishes (text output only).
    pub fn line(&self, show_timings: bool) -> String {
        let mut line = format!(
            "  ok  {:<58} {:>6.2}s  {}",
            self.name,
            self.elapsed.as_secs_f64(),
            self.detail
        );
        if let (true, Some(t)) = (show_timings, self.timings) {
            line.push_str(&format!(
                "\n      wait {} ms; noticed {} after the apiserver was ready; tool overhead {} ms",
                t.waited_ms,
                t.noticed_after_ready_ms
                    .map_or("?".into(), |ms| format!("{ms} ms")),
                t.overhead_ms
            ));
        }
        line
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rehearsal {
    pub root: PathBuf,
    pub kept: bool,
    pub steps: Vec<StepReport>,
    pub median_noticed_after_ready_ms: Option<i64>,
    pub median_overhead_ms: Option<i64>,
    #[serde(skip)]
    pub timings: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub name: String,
    pub ms: u64,
    pub detail: String,
    pub waited_ms: Option<u64>,
    pub noticed_after_ready_ms: Option<i64>,
    pub overhead_ms: Option<u64>,
}

impl From<&Step> for StepReport {
    fn from(s: &Step) -> Self {
        StepReport {
            name: s.name.clone(),
            ms: s.elapsed.as_millis() as u64,
            detail: s.detail.clone(),
            waited_ms: s.timings.map(|t| t.waited_ms),
            noticed_after_ready_ms: s.timings.and_then(|t| t.noticed_after_ready_ms),
            overhead_ms: s.timings.map(|t| t.overhead_ms),
        }
    }
}

impl Report for Rehearsal {
    const KIND: &'static str = "Rehearsal";

    /// The steps were printed as they ran; this is the verdict.
    fn text(&self) -> String {
        let mut out = String::from("rehearsal passed.\n");
        if self.timings {
            let ms = |m: Option<i64>| m.map_or("?".into(), |m| format!("{m} ms"));
            out.push_str(&format!(
                "timings: median {} from the apiserver being ready to the tool noticing; median tool overhead {} (target: < 300 ms to notice)\n",
                ms(self.median_noticed_after_ready_ms),
                ms(self.median_overhead_ms),
            ));
        }
        if self.kept {
            let root = self.root.display().to_string();
            out.push_str(&format!(
                "sandbox kept: {}\n  (run its kubelet and apiserver again with: {})\n",
                ui::command_line(["kubeadm-recover", "--root", &root, "status"]),
                ui::command_line(["kubeadm-recover", "rehearse", "--dir", &root, "--serve"])
            ));
        } else {
            out.push_str("sandbox removed; no process left behind\n");
        }
        out
    }
}

pub fn median(values: &mut [i64]) -> Option<i64> {
    values.sort();
    values.get(values.len() / 2).copied()
}
