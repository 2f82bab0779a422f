//! The rehearsal's steps, in the order an operator takes them on a locked-out node: build the
//! node, start it, `status`, re-issue admin.conf, break glass and put it back, and a change the
//! apiserver rejects, which the tool must roll back by itself; then the certificates expire and
//! are renewed.
use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kubeadm_recover::cli::RehearseOptions;
use kubeadm_recover::error::{Error, Result};
use kubeadm_recover::ui::{self, Ui};

use super::product::{self, Product};
use super::report::{Rehearsal, Step, StepReport, Timings, median};
use super::sandbox::{self, Sandbox, Target, configure, read_manifest, simulate, simulate_in};

/// The rehearsal as it goes: each step is printed as it finishes and kept for the report.
pub struct Rehearsing<'a> {
    pub ui: &'a Ui,
    pub product: Product,
    pub target: Target,
    /// The real binaries to lay a new node out with.
    pub kube_bin: Option<PathBuf>,
    /// The node runs the real etcd and kube-apiserver (new with --kube-bin, or kept and served).
    pub real: bool,
    pub show_timings: bool,
    pub steps: Vec<Step>,
    pub noticed: Vec<i64>,
    pub overhead: Vec<i64>,
}

impl Rehearsing<'_> {
    fn record(&mut self, step: Step) {
        if !self.ui.json() {
            // A progress line: the report at the end says whether stdout took the result.
            let _ = ui::stdout_write(&format!("{}\n", step.line(self.show_timings)));
        }
        if let Some(t) = step.timings {
            self.noticed.extend(t.noticed_after_ready_ms);
            self.overhead.push(t.overhead_ms as i64);
        }
        self.steps.push(step);
    }

    fn timed(&mut self, name: String, started: Instant, detail: String) {
        self.record(Step {
            name,
            elapsed: started.elapsed(),
            detail,
            timings: None,
        });
    }

    fn status_doc(&self) -> Result<product::Outcome<product::Status>> {
        self.product.run(&self.target, &["status"])
    }

    fn wait_until_serving(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.status_doc()?.doc.healthy() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(Error::Failed("kube-apiserver did not come up".into()))
    }

    /// A change that restarts the apiserver, timed, with the product's proof of the restart or,
    /// when it exits 1, the reason it rolled back.
    fn change_step(&self, name: &str, args: &[&str], want: i32) -> Result<Step> {
        let started = Instant::now();
        let out = self.product.run::<product::Change>(&self.target, args)?;
        let elapsed = started.elapsed();
        product::expect(name, out.code, want, &out.stderr)?;
        let proof = out.doc.proof.unwrap_or_default();
        let timings = proof.waited_ms.map(|waited_ms| Timings {
            waited_ms,
            noticed_after_ready_ms: proof
                .noticed_unix_ms
                .zip(sandbox::ready_at_ms(&self.target.root))
                .map(|(n, r)| n - r),
            overhead_ms: (elapsed.as_millis() as u64).saturating_sub(waited_ms),
        });
        let detail = if out.code == 0 {
            format!(
                "proved: kube-apiserver pid {} runs the new manifest, healthy",
                product::number(proof.pid)
            )
        } else {
            rolled_back(out.code, out.doc.message.as_deref().unwrap_or_default())
        };
        Ok(Step {
            name: name.into(),
            elapsed,
            detail,
            timings,
        })
    }

    pub fn build_node(&mut self, options: &RehearseOptions) -> Result<()> {
        let started = Instant::now();
        let root = self.target.root.as_os_str();
        if let Some(bin) = &self.kube_bin {
            simulate(&[
                "node".as_ref(),
                "--root".as_ref(),
                root,
                "--kube-bin".as_ref(),
                bin.as_os_str(),
            ])?;
            self.timed(
                "lay the node out with the real kubeadm (init phase certs, kubeconfig, etcd, control-plane)".into(),
                started,
                String::new(),
            );
            return Ok(());
        }
        let key_type = clap::ValueEnum::to_possible_value(&options.key_type)
            .expect("every key type has a name")
            .get_name()
            .to_string();
        simulate(&[
            "node".as_ref(),
            "--root".as_ref(),
            root,
            "--kubernetes-version".as_ref(),
            options.kubernetes_version.as_ref(),
            "--key-type".as_ref(),
            key_type.as_ref(),
            "--admin-expired".as_ref(),
        ])?;
        self.timed(
            format!(
                "build a kubeadm v{} node (CA, certificates, kubeconfigs, manifest)",
                options.kubernetes_version
            ),
            started,
            String::new(),
        );
        Ok(())
    }

    pub fn start_kubelet(&mut self, sandbox: &mut Sandbox) -> Result<()> {
        let started = Instant::now();
        sandbox.kubelet = Some(sandbox::spawn_kubelet(&self.target)?);
        if !self.real {
            self.wait_until_serving(Duration::from_secs(30))?;
            self.timed(
                "start the simulated kubelet; kube-apiserver comes up".into(),
                started,
                String::new(),
            );
            return Ok(());
        }
        self.wait_until_serving(Duration::from_secs(120))?;
        let root: &OsStr = self.target.root.as_os_str();
        // What `kubeadm init` does next: kubeadm-config, and cluster-admin for admin.conf's group.
        simulate_in(
            Some(&self.target),
            &["upload-config".as_ref(), "--root".as_ref(), root],
        )?;
        // Locked out from here on, as the simulated node is from the start.
        simulate(&["expire-admin".as_ref(), "--root".as_ref(), root])?;
        self.timed(
            "start the simulated kubelet; the real etcd and kube-apiserver come up; admin.conf expires".into(),
            started,
            String::new(),
        );
        Ok(())
    }

    pub fn status(&mut self) -> Result<()> {
        let started = Instant::now();
        let out = self.status_doc()?;
        product::expect("status", out.code, 0, &out.stderr)?;
        let doc = out.doc;
        let expired = doc.credentials.first().and_then(|c| c.expired) == Some(true);
        let flag = doc
            .manifest
            .extend_token_expiration
            .as_ref()
            .and_then(|f| f.state.as_deref());
        self.timed(
            "status".into(),
            started,
            format!(
                "flag {}; kube-apiserver pid {} healthy: {}; admin.conf {}",
                flag.unwrap_or("?"),
                product::number(doc.pid()),
                doc.health().unwrap_or("?"),
                if expired { "EXPIRED" } else { "valid" }
            ),
        );
        Ok(())
    }

    /// The node starts locked out: admin.conf expired. Re-issue it and prove it.
    pub fn regenerate_admin(&mut self) -> Result<()> {
        let started = Instant::now();
        let out = self.product.run::<product::Regenerated>(
            &self.target,
            &["admin-conf", "regenerate", "--yes", "--reason", "rehearsal"],
        )?;
        product::expect("admin-conf regenerate", out.code, 0, &out.stderr)?;
        let who = out
            .doc
            .credentials
            .into_iter()
            .next()
            .and_then(|c| c.verified_as)
            .unwrap_or_default();
        self.timed(
            "admin-conf regenerate (admin.conf had expired)".into(),
            started,
            format!(
                "proved by SelfSubjectReview: {} in {}",
                who.username.as_deref().unwrap_or("?"),
                who.groups.join(", ")
            ),
        );
        Ok(())
    }

    /// Break glass, then, after the migration, put the node back exactly as it was.
    pub fn break_glass(&mut self, rounds: u32) -> Result<()> {
        for round in 0..rounds.max(1) {
            let suffix = if rounds > 1 {
                format!(" (round {})", round + 1)
            } else {
                String::new()
            };
            let before_round = read_manifest(&self.target.root)?;
            for (name, args) in [
                (
                    "extend-tokens enable",
                    &["extend-tokens", "enable", "--yes", "--reason", "rehearsal"][..],
                ),
                (
                    "revert (after the migration)",
                    &["revert", "--yes", "--stale-window", "0s"][..],
                ),
            ] {
                let step = self.change_step(&format!("{name}{suffix}"), args, 0)?;
                self.record(step);
            }
            if read_manifest(&self.target.root)? != before_round {
                return Err(Error::Failed(
                    "after revert the manifest differs from the original".into(),
                ));
            }
        }
        Ok(())
    }

    /// A change the apiserver refuses at start-up must be rolled back by the tool itself.
    pub fn rejected_change(&mut self) -> Result<()> {
        let before = read_manifest(&self.target.root)?;
        configure(
            &self.target.root,
            &[r#"rejectArgs=["--service-account-extend-token-expiration=true"]"#],
        )?;
        let step = self.change_step(
            "a change the new apiserver rejects is rolled back",
            &["extend-tokens", "enable", "--yes", "--timeout", "60s"],
            1,
        )?;
        configure(&self.target.root, &["rejectArgs=[]"])?;
        if read_manifest(&self.target.root)? != before {
            return Err(Error::Failed(
                "the rolled-back manifest differs from the original".into(),
            ));
        }
        self.record(step);
        if !self.status_doc()?.doc.healthy() {
            return Err(Error::Failed(
                "after the rollback the apiserver is not healthy".into(),
            ));
        }
        let backups = self
            .product
            .run::<product::Backups>(&self.target, &["backups", "list"])?;
        let count = backups.doc.backups.len();
        self.record(Step {
            name: "after the rollback: manifest byte-identical, apiserver healthy".into(),
            elapsed: Duration::ZERO,
            detail: format!("{count} backups, all with checksums"),
            timings: None,
        });
        Ok(())
    }

    /// The other lockout: the leaf certificates expired (re-signed into the past by the
    /// simulator). `certs check` names each; `certs renew all` brings them back, each component
    /// proved; `certs check` is clean again.
    pub fn expired_certificates(&mut self) -> Result<()> {
        let started = Instant::now();
        let root: &OsStr = self.target.root.as_os_str();
        simulate(&["expire-certs".as_ref(), "--root".as_ref(), root])?;
        let check = self
            .product
            .run::<product::Certificates>(&self.target, &["certs", "check"])?;
        product::expect("certs check", check.code, 1, &check.stderr)?;
        let expired = check
            .doc
            .problems
            .iter()
            .filter(|p| p.severity == "critical")
            .count();
        self.timed(
            "the leaf certificates expire; certs check".into(),
            started,
            format!("{expired} certificates named, each with its fix"),
        );
        let started = Instant::now();
        let renewed = self.product.run::<product::Renewal>(
            &self.target,
            &["certs", "renew", "all", "--yes", "--reason", "rehearsal"],
        )?;
        product::expect("certs renew all", renewed.code, 0, &renewed.stderr)?;
        let count: usize = renewed.doc.steps.iter().map(|s| s.renewed.len()).sum();
        let proofs: Vec<String> = renewed
            .doc
            .steps
            .iter()
            .flat_map(|s| &s.components)
            .filter(|c| c.proof != "not-running")
            .map(|c| format!("{} {}", c.component, c.proof))
            .collect();
        self.timed(
            "certs renew all, one component at a time".into(),
            started,
            format!(
                "{count} renewed in {} steps; proved: {}, admin.conf by SelfSubjectReview",
                renewed.doc.steps.len(),
                proofs.join(", ")
            ),
        );
        let after = self
            .product
            .run::<product::Certificates>(&self.target, &["certs", "check"])?;
        product::expect(
            "certs check after the renewal",
            after.code,
            0,
            &after.stderr,
        )?;
        Ok(())
    }

    pub fn report(mut self, kept: bool) -> Rehearsal {
        Rehearsal {
            root: self.target.root,
            kept,
            median_noticed_after_ready_ms: median(&mut self.noticed),
            median_overhead_ms: median(&mut self.overhead),
            steps: self.steps.iter().map(StepReport::from).collect(),
            timings: self.show_timings,
        }
    }
}

/// A change's detail when it exited `code` and rolled back: the first line of the `Error`
/// document's `message`, shown as the `error:` line on stderr shows it (terminal-safe), up to
/// the excerpt of the apiserver's log.
fn rolled_back(code: i32, message: &str) -> String {
    let message = ui::text::terminal_safe(message);
    let why = message.lines().next().unwrap_or("failed");
    let why = why.split("; its log").next().unwrap_or(why);
    let close = if why.matches('(').count() > why.matches(')').count() {
        ")"
    } else {
        ""
    };
    format!("exit {code}, rolled back: {why}{close}")
}

#[cfg(test)]
mod tests {
    use super::rolled_back;

    #[test]
    fn a_rollback_is_told_by_the_first_line_of_its_message() {
        let message = "the new apiserver keeps exiting (3 attempts exited; its log \
                       /tmp/x/var/log/pods/kube-system_kube-apiserver-sim-cp-1_f1/kube-apiserver/2.log ends:\n\
                       Error: invalid argument \"--x=true\": rejected by this simulated apiserver).\n  \
                       Rolled back: the original files are in place and the old kube-apiserver is healthy again";
        assert_eq!(
            rolled_back(1, message),
            "exit 1, rolled back: the new apiserver keeps exiting (3 attempts exited)"
        );
        assert_eq!(rolled_back(1, ""), "exit 1, rolled back: failed");
        // Shown as the terminal would be shown it: a control character stays escaped.
        assert_eq!(
            rolled_back(1, "timed out\x1b[2J"),
            "exit 1, rolled back: timed out\\x1b[2J"
        );
    }
}
