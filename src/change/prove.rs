//! What proves a change once its files are written, and what proves the node as before once it
//! is rolled back. The transaction runs the proofs in order and stops at the first that fails;
//! only the proofs differ from one change to the next (a restarted static pod, a credential).
use crate::certs::prove::{ComponentCheck, ComponentFailure, ComponentProved};
use crate::change::plan::{CredentialCheck, OnInterrupt};
use crate::change::restart::{self, Before, Expected, Proof, WaitFailure, WaitOptions};
use crate::credentials::verify::{self, NotVerified, Verified};
use crate::node::NodeLayout;
use crate::runtime::interrupt;
use crate::ui::Ui;

/// One proof a transaction runs after the write.
pub enum Prove {
    /// The kubelet restarts the static pod from the new manifest: the new kube-apiserver is
    /// proved running and healthy; a rollback proves the old one healthy again.
    StaticPodRestart(Box<StaticPodRestart>),
    /// Each new credential answers SelfSubjectReview with its own identity.
    Credentials(Vec<CredentialCheck>),
    /// A control-plane component uses its renewed certificate (presented on its port, or read
    /// by a restarted process); a rollback proves it as before.
    Component(ComponentCheck),
}

pub struct StaticPodRestart {
    /// What the new manifest says must run.
    pub new: Expected,
    /// What the old one said (`None`: it described no apiserver to wait for).
    pub old: Option<Expected>,
    /// The process the new one must replace.
    pub before: Before,
    /// `None`: written with `--no-wait`, the restart is left to the kubelet, unproved.
    pub wait: Option<WaitOptions>,
    pub on_interrupt: OnInterrupt,
}

/// What a proof established.
pub enum Proved {
    Restarted {
        before: Before,
        proof: Proof,
    },
    /// `--no-wait`: nothing was waited for.
    RestartPending,
    Credentials(Vec<Verified>),
    Component(ComponentProved),
}

/// Why a proof failed.
pub enum NotProved {
    Restart(WaitFailure),
    Credential {
        file: &'static str,
        why: NotVerified,
    },
    Component {
        check: Box<ComponentCheck>,
        why: ComponentFailure,
    },
}

impl NotProved {
    pub fn interrupted(&self) -> bool {
        matches!(
            self,
            NotProved::Restart(WaitFailure::Interrupted)
                | NotProved::Credential {
                    why: NotVerified::Interrupted,
                    ..
                }
                | NotProved::Component {
                    why: ComponentFailure::Interrupted,
                    ..
                }
        )
    }
}

impl Prove {
    pub fn run(&self, layout: &NodeLayout, ui: &Ui) -> Result<Proved, NotProved> {
        match self {
            Prove::StaticPodRestart(restart) => restart.prove(layout, ui),
            Prove::Credentials(checks) => prove_credentials(layout, checks),
            Prove::Component(check) => {
                check
                    .prove(layout, ui)
                    .map(Proved::Component)
                    .map_err(|why| NotProved::Component {
                        check: Box::new(check.clone()),
                        why,
                    })
            }
        }
    }

    /// The restart this proof waits for, when there is one to wait for again after a rollback.
    pub fn restart(&self) -> Option<&StaticPodRestart> {
        match self {
            Prove::StaticPodRestart(restart) => Some(restart),
            Prove::Credentials(_) | Prove::Component(_) => None,
        }
    }
}

impl StaticPodRestart {
    fn prove(&self, layout: &NodeLayout, ui: &Ui) -> Result<Proved, NotProved> {
        let Some(options) = self.wait else {
            return Ok(Proved::RestartPending);
        };
        ui.info("waiting for the kubelet to restart kube-apiserver with the new manifest");
        let replacing = self.before.process.as_ref();
        let mut result = restart::wait_for(layout, ui, &self.new, replacing, options, true);
        while matches!(result, Err(WaitFailure::Interrupted))
            && self.on_interrupt == OnInterrupt::Continue
        {
            ui.warn("interrupted: finishing the change first (--on-interrupt continue)");
            interrupt::clear();
            result = restart::wait_for(layout, ui, &self.new, replacing, options, true);
        }
        let proof = result.map_err(NotProved::Restart)?;
        if interrupt::interrupted() && self.on_interrupt == OnInterrupt::Continue {
            ui.warn("the change was finished and proved before stopping");
        }
        Ok(Proved::Restarted {
            before: self.before.clone(),
            proof,
        })
    }

    /// After the files are put back: the old apiserver healthy again (not interruptible: the
    /// rollback is how an interrupt is handled). `None` when nothing is to be waited for.
    pub fn prove_old(&self, layout: &NodeLayout, ui: &Ui) -> Option<Result<(), RollbackNotProved>> {
        let options = self.wait?;
        let Some(old) = &self.old else {
            return Some(Err(RollbackNotProved::NoOldApiserver));
        };
        Some(
            restart::wait_for(layout, ui, old, None, options.for_rollback(), false)
                .map(|_| ())
                .map_err(RollbackNotProved::Unhealthy),
        )
    }
}

/// Why the node as before could not be proved after a rollback.
pub enum RollbackNotProved {
    NoOldApiserver,
    Unhealthy(WaitFailure),
}

fn prove_credentials(layout: &NodeLayout, checks: &[CredentialCheck]) -> Result<Proved, NotProved> {
    let mut verified = Vec::new();
    for check in checks {
        let proved = layout
            .fs()
            .read_to_string(&check.path)
            .map_err(|e| NotVerified::Failed(format!("cannot read {}: {e}", check.path.display())))
            .and_then(|text| verify::verify(&text, &check.subject));
        match proved {
            Ok(v) => verified.push(v),
            Err(why) => {
                return Err(NotProved::Credential {
                    file: check.file,
                    why,
                });
            }
        }
    }
    Ok(Proved::Credentials(verified))
}
