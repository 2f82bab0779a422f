//! The rules of the wait, as a pure function: given what the node shows right now, is the
//! change proved, still under way, stuck (nudge the kubelet), crash-looping, out of time, or
//! interrupted? No I/O here, so every rule is table-tested.
use std::time::Duration;

/// The apiserver process serving the manifest's port, as the wait sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Serving {
    pub pid: i32,
    /// It is the very process that ran before the change (no restart yet).
    pub is_old: bool,
    /// Its command line is exactly the expected manifest's.
    pub matches: bool,
    /// Something listens on the port. The old apiserver stops listening the moment it gets
    /// SIGTERM, then lives on for up to the pod's grace period: not listening is the kubelet
    /// at work, never a reason to nudge.
    pub listening: bool,
}

/// One look at the node.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub elapsed: Duration,
    pub interrupted: bool,
    pub serving: Option<Serving>,
    /// `/livez` + `/readyz`, asked only when [`should_probe`] said so.
    pub health: Option<Result<(), crate::apiserver::client::ProbeError>>,
    /// Container attempts the kubelet started (its per-attempt log files) since the wait began.
    pub attempts: usize,
    /// Distinct new apiserver processes seen since the wait began.
    pub new_processes: usize,
    pub nudged: bool,
    /// Ending the old apiserver's shutdown early was tried (`--skip-shutdown-grace`): once.
    pub grace_skipped: bool,
    /// The process being replaced was seen during this wait.
    pub had_old: bool,
    /// How a serving process's command line differs from the manifest's, when it does.
    pub mismatch: Option<String>,
    /// How long the attempt count has stood still.
    pub since_last_attempt: Duration,
}

/// The limits of one wait.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub timeout: Duration,
    pub nudge_after: Duration,
    /// False while rolling back: the rollback is how an interrupt is handled, and it never
    /// nudges (it must not move the original manifest around).
    pub interruptible: bool,
    /// Attempts (or distinct new processes) without a healthy apiserver that make a crash loop.
    pub crash_loop_after: usize,
    /// The pod's termination grace period (kubeadm's manifest: 30 s): the kubelet starts the new
    /// apiserver only after the old one exited or was killed at its end.
    pub grace: Duration,
    /// An attempt that ended with no new one for this long is the kubelet backing off: the new
    /// apiserver failed. Longer than the real kubelet's first back-off (10 s); a pod tried before
    /// under the same hash (the same change again) keeps its grown back-off, up to 5 minutes
    /// (measured), so counting to three would wait that long.
    pub backoff_patience: Duration,
    /// `--skip-shutdown-grace`: once the old apiserver has stopped listening (the kubelet has
    /// sent SIGTERM; what is left is the wait for its open connections), end it at once.
    pub skip_shutdown_grace: bool,
}

/// See [`Rules::backoff_patience`].
pub const BACKOFF_PATIENCE: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Proved,
    Waiting(String),
    Nudge {
        pid: i32,
    },
    /// Stop the old apiserver's container now, rather than at the end of its grace period.
    EndShutdown {
        pid: i32,
    },
    CrashLoop {
        attempts: usize,
    },
    TimedOut,
    Interrupted,
}

/// Health is asked only of a new process that runs the expected command line.
pub fn should_probe(serving: Option<Serving>) -> bool {
    serving.is_some_and(|s| !s.is_old && s.matches)
}

pub fn decide(seen: &Observation, rules: &Rules) -> Verdict {
    if rules.interruptible && seen.interrupted {
        return Verdict::Interrupted;
    }
    if seen.elapsed >= rules.timeout {
        return Verdict::TimedOut;
    }
    match seen.serving {
        Some(s) if s.is_old && !s.listening && rules.skip_shutdown_grace && !seen.grace_skipped => {
            Verdict::EndShutdown { pid: s.pid }
        }
        Some(s) if s.is_old && !s.listening => Verdict::Waiting(format!(
            "the old kube-apiserver (pid {}) is shutting down; the kubelet starts the new one \
             when it has exited (within the pod's {} s grace period)",
            s.pid,
            rules.grace.as_secs()
        )),
        Some(s) if s.is_old => {
            if rules.interruptible && !seen.nudged && seen.elapsed >= rules.nudge_after {
                Verdict::Nudge { pid: s.pid }
            } else {
                Verdict::Waiting(format!(
                    "waiting for the kubelet to replace kube-apiserver (pid {})",
                    s.pid
                ))
            }
        }
        Some(s) if !s.matches => Verdict::Waiting(format!(
            "kube-apiserver pid {} runs other arguments than the manifest's{}",
            s.pid,
            seen.mismatch
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        )),
        Some(s) => match &seen.health {
            Some(Ok(())) => Verdict::Proved,
            Some(Err(e)) => Verdict::Waiting(format!(
                "kube-apiserver pid {} started; not healthy yet ({e})",
                s.pid
            )),
            None => Verdict::Waiting(format!("kube-apiserver pid {} started", s.pid)),
        },
        None => {
            let attempts = seen.attempts.max(seen.new_processes);
            if attempts >= rules.crash_loop_after
                || (seen.attempts > 0 && seen.since_last_attempt >= rules.backoff_patience)
            {
                Verdict::CrashLoop { attempts }
            } else if seen.attempts == 0 && seen.had_old {
                Verdict::Waiting(
                    "the old kube-apiserver has exited; waiting for the kubelet to start the new one"
                        .into(),
                )
            } else if seen.attempts == 0 {
                Verdict::Waiting("no kube-apiserver process on the port yet".into())
            } else {
                Verdict::Waiting(format!(
                    "no kube-apiserver on the port; the kubelet has started {} attempt(s)",
                    seen.attempts
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        timeout: Duration::from_secs(300),
        nudge_after: Duration::from_secs(40),
        interruptible: true,
        crash_loop_after: 3,
        grace: Duration::from_secs(30),
        backoff_patience: BACKOFF_PATIENCE,
        skip_shutdown_grace: false,
    };

    fn old(pid: i32) -> Option<Serving> {
        Some(Serving {
            pid,
            is_old: true,
            matches: false,
            listening: true,
        })
    }
    fn shutting_down(pid: i32) -> Option<Serving> {
        Some(Serving {
            listening: false,
            ..old(pid).unwrap()
        })
    }
    fn new(pid: i32, matches: bool) -> Option<Serving> {
        Some(Serving {
            pid,
            is_old: false,
            matches,
            listening: true,
        })
    }
    fn at(secs: u64) -> Observation {
        Observation {
            elapsed: Duration::from_secs(secs),
            ..Observation::default()
        }
    }

    #[test]
    fn the_rules_of_the_wait() {
        let rollback = Rules {
            interruptible: false,
            ..RULES
        };
        let skipping = Rules {
            skip_shutdown_grace: true,
            ..RULES
        };
        let healthy = Some(Ok(()));
        let unhealthy = Some(Err(crate::apiserver::call::Failure::Status {
            code: 500,
            message: "etcd failed".into(),
        }));
        #[rustfmt::skip]
        let table: Vec<(&str, Observation, Rules, Verdict)> = vec![
            ("a healthy new process with the manifest's arguments is proof",
             Observation { serving: new(7, true), health: healthy.clone(), ..at(3) }, RULES, Verdict::Proved),
            ("a new process that is not healthy yet: wait",
             Observation { serving: new(7, true), health: unhealthy.clone(), ..at(3) }, RULES,
             Verdict::Waiting("kube-apiserver pid 7 started; not healthy yet (HTTP 500: etcd failed)".into())),
            ("other arguments than the manifest's are never proof, even healthy",
             Observation { serving: new(7, false), health: healthy.clone(), ..at(3) }, RULES,
             Verdict::Waiting("kube-apiserver pid 7 runs other arguments than the manifest's".into())),
            ("the old process before nudge-after: wait",
             Observation { serving: old(5), ..at(39) }, RULES,
             Verdict::Waiting("waiting for the kubelet to replace kube-apiserver (pid 5)".into())),
            ("the old process at nudge-after: nudge",
             Observation { serving: old(5), ..at(40) }, RULES, Verdict::Nudge { pid: 5 }),
            ("the old process has stopped listening (SIGTERM, its grace period): wait, never nudge",
             Observation { serving: shutting_down(5), ..at(60) }, RULES,
             Verdict::Waiting("the old kube-apiserver (pid 5) is shutting down; the kubelet starts \
                               the new one when it has exited (within the pod's 30 s grace period)".into())),
            ("--skip-shutdown-grace: the old process has stopped listening: end it (a rollback too)",
             Observation { serving: shutting_down(5), ..at(2) }, skipping, Verdict::EndShutdown { pid: 5 }),
            ("--skip-shutdown-grace: ended once; then wait for it to go",
             Observation { serving: shutting_down(5), grace_skipped: true, ..at(3) }, skipping,
             Verdict::Waiting("the old kube-apiserver (pid 5) is shutting down; the kubelet starts \
                               the new one when it has exited (within the pod's 30 s grace period)".into())),
            ("--skip-shutdown-grace never ends an old process that still listens",
             Observation { serving: old(5), ..at(2) }, skipping,
             Verdict::Waiting("waiting for the kubelet to replace kube-apiserver (pid 5)".into())),
            ("the old process exited, the new one not started yet: wait",
             Observation { had_old: true, ..at(31) }, RULES,
             Verdict::Waiting("the old kube-apiserver has exited; waiting for the kubelet to start the new one".into())),
            ("nudged once: never twice",
             Observation { serving: old(5), nudged: true, ..at(200) }, RULES,
             Verdict::Waiting("waiting for the kubelet to replace kube-apiserver (pid 5)".into())),
            ("a rollback never nudges",
             Observation { serving: old(5), ..at(200) }, rollback,
             Verdict::Waiting("waiting for the kubelet to replace kube-apiserver (pid 5)".into())),
            ("nothing on the port, no attempt yet: wait",
             at(1), RULES, Verdict::Waiting("no kube-apiserver process on the port yet".into())),
            ("two attempts exited: still waiting",
             Observation { attempts: 2, ..at(5) }, RULES,
             Verdict::Waiting("no kube-apiserver on the port; the kubelet has started 2 attempt(s)".into())),
            ("one attempt exited and the kubelet backs off (a grown back-off): crash loop",
             Observation { attempts: 1, since_last_attempt: Duration::from_secs(15), ..at(60) }, RULES,
             Verdict::CrashLoop { attempts: 1 }),
            ("one attempt, the kubelet's first back-off (10 s) not over: wait",
             Observation { attempts: 2, since_last_attempt: Duration::from_secs(10), ..at(50) }, RULES,
             Verdict::Waiting("no kube-apiserver on the port; the kubelet has started 2 attempt(s)".into())),
            ("three attempts exited: crash loop",
             Observation { attempts: 3, ..at(9) }, RULES, Verdict::CrashLoop { attempts: 3 }),
            ("three processes came and went (no attempt logs on this node): crash loop",
             Observation { new_processes: 3, ..at(9) }, RULES, Verdict::CrashLoop { attempts: 3 }),
            ("a crash loop is not called while a process serves",
             Observation { attempts: 5, serving: new(9, true), health: unhealthy, ..at(9) }, RULES,
             Verdict::Waiting("kube-apiserver pid 9 started; not healthy yet (HTTP 500: etcd failed)".into())),
            ("out of time",
             Observation { serving: old(5), nudged: true, ..at(300) }, RULES, Verdict::TimedOut),
            ("out of time beats a late proof",
             Observation { serving: new(7, true), health: healthy.clone(), ..at(301) }, RULES, Verdict::TimedOut),
            ("an interrupt stops the wait",
             Observation { interrupted: true, serving: new(7, true), health: healthy.clone(), ..at(3) }, RULES,
             Verdict::Interrupted),
            ("a rollback is not interruptible",
             Observation { interrupted: true, serving: new(7, true), health: healthy, ..at(3) }, rollback,
             Verdict::Proved),
        ];
        for (name, seen, rules, want) in table {
            assert_eq!(decide(&seen, &rules), want, "{name}");
        }
    }

    #[test]
    fn health_is_asked_only_of_a_new_matching_process() {
        assert!(should_probe(new(1, true)));
        assert!(!should_probe(new(1, false)));
        assert!(!should_probe(old(1)));
        assert!(!should_probe(None));
    }
}
