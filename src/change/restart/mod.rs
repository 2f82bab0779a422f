//! Restart, prove, roll back. After the manifest is written, the kubelet must replace the
//! apiserver; this proves that the NEW process runs the NEW argument list and is healthy, or
//! puts the old files back and proves the OLD apiserver healthy again.
//!
//! "Restarted" is proved, not assumed: the identity of the `kube-apiserver` process serving the
//! manifest's port (pid + start time) must change, its command line must be exactly the
//! manifest's argument list, and `/livez` then `/readyz` must answer ok over TLS verified with
//! the cluster CA.
pub mod nudge;
pub mod observe;
pub mod verdict;

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::apiserver::client::{ApiClient, Endpoint};
use crate::apiserver::process::{self, ProcessIdentity};
use crate::apiserver::runtime;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::node::NodeLayout;
use crate::runtime::interrupt;
use crate::ui::Ui;
use observe::{NodeObserver, Observer};
use verdict::{Observation, Rules, Serving, Verdict};

pub use nudge::unpark_manifest;

pub(crate) const POLL: Duration = Duration::from_millis(250);
/// The poll while a new apiserver with the manifest's arguments starts.
const STARTING_POLL: Duration = Duration::from_millis(40);

/// How long to wait, and when to nudge a kubelet that has not reacted.
#[derive(Debug, Clone, Copy)]
pub struct WaitOptions {
    pub timeout: Duration,
    pub nudge_after: Duration,
    /// How long a rollback waits for the OLD apiserver: its own budget, not what is left of
    /// `timeout` (a short `--timeout` must not turn a good rollback into "manual action").
    pub rollback_timeout: Duration,
    /// `--skip-shutdown-grace`: end the old apiserver once it has stopped listening.
    pub skip_shutdown_grace: bool,
}

impl WaitOptions {
    pub fn for_rollback(self) -> Self {
        WaitOptions {
            timeout: self.rollback_timeout,
            ..self
        }
    }
}

/// What the manifest says the running apiserver must look like.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The arguments after the program name, exactly as the manifest gives them.
    pub args: Vec<String>,
    pub port: u16,
    pub endpoint: Endpoint,
    pub advertise_endpoint: Option<String>,
    /// The pod's termination grace period (default 30 s, as in kubeadm's manifest).
    pub grace: Duration,
    /// `--shutdown-delay-duration`: how long an apiserver told to stop keeps listening.
    pub shutdown_delay: Duration,
}

impl Expected {
    pub fn from_manifest(
        text: &str,
    ) -> std::result::Result<Expected, crate::manifest::ManifestError> {
        let manifest = Manifest::parse(text)?;
        let (host, port) = manifest.probe_endpoint();
        Ok(Expected {
            args: manifest
                .argument_values()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            port: manifest.secure_port(),
            endpoint: Endpoint { host, port },
            advertise_endpoint: manifest.advertise_endpoint.clone(),
            grace: Duration::from_secs(manifest.termination_grace_seconds.unwrap_or(30)),
            shutdown_delay: manifest
                .flag("shutdown-delay-duration")
                .and_then(|d| crate::runtime::duration::parse_duration(&d).ok())
                .unwrap_or_default(),
        })
    }

    fn matches(&self, process: &process::ApiserverProcess) -> bool {
        process
            .args
            .get(1..)
            .is_some_and(|args| args == self.args.as_slice())
    }

    /// The first argument where a process differs from the manifest, for the operator.
    fn mismatch(&self, process: &process::ApiserverProcess) -> String {
        let running = process.args.get(1..).unwrap_or_default();
        let at = running
            .iter()
            .zip(&self.args)
            .position(|(a, b)| a != b)
            .unwrap_or(running.len().min(self.args.len()));
        let shown = |v: Option<&String>| {
            v.map_or("nothing".to_string(), |a| crate::ui::escape(a).to_string())
        };
        format!(
            "argument {}: it runs {}, the manifest says {}",
            at + 1,
            shown(running.get(at)),
            shown(self.args.get(at))
        )
    }
}

/// The apiserver as it was before the change.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Before {
    pub process: Option<ProcessIdentity>,
    pub container_id: Option<String>,
    pub config_hash: Option<String>,
}

/// Evidence that the intended apiserver runs and is healthy.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proof {
    pub pid: i32,
    pub started: Option<String>,
    pub container_id: Option<String>,
    pub config_hash: Option<String>,
    /// How long the wait took, from the write to "healthy".
    pub waited_ms: u64,
    /// When the tool saw /readyz answer ok (Unix ms), for measuring its reaction time.
    pub noticed_unix_ms: i64,
    pub nudged: bool,
    /// The old apiserver's container was stopped once it had stopped listening
    /// (`--skip-shutdown-grace`), rather than left to its grace period.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shutdown_grace_skipped: bool,
}

#[derive(Debug)]
pub enum WaitFailure {
    Timeout(String),
    CrashLoop(String),
    Interrupted,
    Injected(String),
}

impl std::fmt::Display for WaitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitFailure::Timeout(last) => write!(f, "timed out; last seen: {last}"),
            WaitFailure::CrashLoop(last) => write!(f, "the new apiserver keeps exiting ({last})"),
            WaitFailure::Interrupted => write!(f, "interrupted by a signal"),
            WaitFailure::Injected(what) => write!(f, "{what}"),
        }
    }
}

/// Refuses to change the manifest when no kubelet would act on it.
pub fn require_kubelet(layout: &NodeLayout) -> Result<()> {
    if process::kubelet_running(layout) {
        return Ok(());
    }
    let start = if layout.is_host() {
        "start it (systemctl start kubelet; journalctl -u kubelet to see why it stopped)"
            .to_string()
    } else {
        format!(
            "start the kubelet that runs {} (the host's systemctl does not)",
            layout.manifests_dir().display()
        )
    };
    Err(Error::Refused(format!(
        "the kubelet is not running, so nothing would restart kube-apiserver after the change.\n  \
         what to do: {start}, or pass --no-wait to only edit the file"
    )))
}

pub fn observe_before(layout: &NodeLayout, expected: &Expected) -> Before {
    let process = process::find_apiserver(expected.port).map(|p| p.identity);
    let pod = process.as_ref().and_then(|p| process::pod_of(p.pid));
    let config_hash = match (&process, &pod) {
        (_, Some(pod)) => Some(pod.uid.clone()),
        (Some(_), None) => runtime().block_on(async {
            let client = ApiClient::new(layout, &expected.endpoint).ok()?;
            client
                .mirror_config_hash(expected.advertise_endpoint.as_deref())
                .await
        }),
        (None, None) => None,
    };
    Before {
        process,
        container_id: pod
            .map(|pod| pod.container_id)
            .or_else(|| process::crictl_container_id(layout)),
        config_hash,
    }
}

/// Progress on stderr: a spinner on a terminal, a log line per phase otherwise.
struct Progress<'a> {
    ui: &'a Ui,
    tty: bool,
    phase: String,
    started: Instant,
}

impl<'a> Progress<'a> {
    fn new(ui: &'a Ui) -> Self {
        Progress {
            ui,
            tty: ui.redraws_progress(),
            phase: String::new(),
            started: Instant::now(),
        }
    }

    fn show(&mut self, phase: String) {
        let elapsed = self.started.elapsed().as_secs_f32();
        if self.tty {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            let frame = FRAMES[(self.started.elapsed().as_millis() / 250 % 4) as usize];
            crate::ui::stderr_raw(&format!("\r\x1b[2K{frame} {phase} ({elapsed:.1}s)"));
        } else if phase != self.phase {
            self.ui.info(format!("[{elapsed:5.1}s] {phase}"));
        }
        self.phase = phase;
    }

    fn done(&self) {
        if self.tty {
            crate::ui::stderr_raw("\r\x1b[2K");
        }
    }
}

/// Waits for an apiserver running `expected` that is healthy. With `replacing`, the process
/// must not be that one (a restart must have happened). `changing`: this wait proves a change
/// (it may nudge and be interrupted); otherwise it proves a rollback, which does neither.
pub fn wait_for(
    layout: &NodeLayout,
    ui: &Ui,
    expected: &Expected,
    replacing: Option<&ProcessIdentity>,
    options: WaitOptions,
    changing: bool,
) -> std::result::Result<Proof, WaitFailure> {
    let mut observer = NodeObserver::new(
        layout,
        ui,
        &expected.endpoint,
        expected.advertise_endpoint.clone(),
        changing,
    )
    .map_err(|e| WaitFailure::Timeout(format!("cannot build a client: {e}")))?;
    if let (true, Err(e)) = (changing, injected_during_wait()) {
        return Err(WaitFailure::Injected(e.to_string()));
    }
    let rules = Rules {
        timeout: options.timeout,
        // An apiserver told to stop keeps listening for its --shutdown-delay-duration: only
        // after that is an old process still listening a kubelet that did not act.
        nudge_after: options.nudge_after + expected.shutdown_delay,
        interruptible: changing,
        crash_loop_after: 3,
        grace: expected.grace,
        backoff_patience: verdict::BACKOFF_PATIENCE,
        skip_shutdown_grace: options.skip_shutdown_grace,
    };
    wait_with(&mut observer, ui, expected, replacing, rules)
}

/// The wait loop over any observer: look, decide (pure), act.
pub fn wait_with(
    observer: &mut dyn Observer,
    ui: &Ui,
    expected: &Expected,
    replacing: Option<&ProcessIdentity>,
    rules: Rules,
) -> std::result::Result<Proof, WaitFailure> {
    let started = Instant::now();
    let deadline = started + rules.timeout;
    let mut progress = Progress::new(ui);
    let mut nudged = false;
    // Tried once (`--skip-shutdown-grace`), and whether the old container was stopped.
    let mut ending_tried = false;
    let mut grace_skipped = false;
    let mut seen_new: Vec<ProcessIdentity> = Vec::new();
    let mut had_old = false;
    let mut attempt_count = (0usize, Instant::now());
    let why = |observer: &mut dyn Observer, attempts: &crate::apiserver::logs::Since| {
        attempts
            .newest
            .as_ref()
            .map(|attempt| {
                // The runtime writes an attempt's output a moment after it exits.
                let mut tail = observer.log_tail(attempt);
                for _ in 0..8 {
                    if !tail.is_empty() {
                        break;
                    }
                    std::thread::sleep(POLL);
                    tail = observer.log_tail(attempt);
                }
                format!("; its log {} ends:\n{tail}", attempt.log.display())
            })
            .unwrap_or_default()
    };
    let result = loop {
        let now = Instant::now();
        let process = observer.serving(expected.port);
        let serving = process.as_ref().map(|p| Serving {
            pid: p.identity.pid,
            is_old: Some(&p.identity) == replacing,
            matches: expected.matches(p),
            listening: observer.listening(expected.port),
        });
        had_old |= serving.is_some_and(|s| s.is_old);
        if let Some(p) = process.as_ref().filter(|p| Some(&p.identity) != replacing)
            && expected.matches(p)
            && !seen_new.contains(&p.identity)
        {
            seen_new.push(p.identity.clone());
        }
        let attempts = observer.attempts();
        if attempts.started != attempt_count.0 {
            attempt_count = (attempts.started, Instant::now());
        }
        let seen = Observation {
            elapsed: started.elapsed(),
            interrupted: interrupt::interrupted(),
            serving,
            health: verdict::should_probe(serving).then(|| observer.health()),
            // This wait's attempts only: a pod tried before under this hash (the same change
            // after a rollback) keeps its old restart count, which says nothing about this
            // image or this run. Its grown back-off is what `backoff_patience` is for.
            attempts: attempts.started,
            new_processes: seen_new.len(),
            nudged,
            grace_skipped: ending_tried,
            had_old,
            since_last_attempt: attempt_count.1.elapsed(),
            mismatch: process
                .as_ref()
                .filter(|p| !expected.matches(p))
                .map(|p| expected.mismatch(p)),
        };
        match verdict::decide(&seen, &rules) {
            Verdict::Proved => {
                let p = process.expect("a serving process is proved");
                break Ok(Proof {
                    pid: p.identity.pid,
                    started: process::started_unix(&p.identity).map(crate::runtime::clock::rfc3339),
                    container_id: observer.container_id(p.identity.pid),
                    config_hash: observer.config_hash(p.identity.pid),
                    waited_ms: started.elapsed().as_millis() as u64,
                    noticed_unix_ms: crate::runtime::clock::now_unix_ms(),
                    nudged,
                    shutdown_grace_skipped: grace_skipped,
                });
            }
            Verdict::Waiting(phase) => progress.show(phase),
            Verdict::Nudge { pid } => {
                progress.done();
                ui.warn(format!(
                    "the kubelet has not restarted kube-apiserver (pid {pid}) after {}s",
                    started.elapsed().as_secs()
                ));
                observer.nudge(expected.port, deadline);
                nudged = true;
            }
            Verdict::EndShutdown { pid } => {
                progress.done();
                grace_skipped = observer.end_shutdown(pid);
                ending_tried = true;
            }
            Verdict::CrashLoop { attempts: count } => {
                break Err(WaitFailure::CrashLoop(format!(
                    "{count} attempts exited{}",
                    why(observer, &attempts)
                )));
            }
            Verdict::TimedOut => {
                break Err(WaitFailure::Timeout(format!(
                    "{}{}",
                    progress.phase,
                    why(observer, &attempts)
                )));
            }
            Verdict::Interrupted => break Err(WaitFailure::Interrupted),
        }
        // A new process with the manifest's arguments is seconds from ready: look often then, so
        // that the proof follows readiness closely (measured on the real node: the 250 ms poll
        // added 180–200 ms after readiness; the goal is under 100 ms).
        let poll = if verdict::should_probe(serving) {
            STARTING_POLL
        } else {
            POLL
        };
        std::thread::sleep(poll.saturating_sub(now.elapsed()));
    };
    progress.done();
    result
}

/// Proves that an apiserver running `manifest_text` is up and healthy (no restart required):
/// for `resume`, and for a revert that finds the original already in place.
pub fn prove_running(
    layout: &NodeLayout,
    ui: &Ui,
    manifest_text: &str,
    options: WaitOptions,
) -> Result<Proof> {
    let expected = Expected::from_manifest(manifest_text)
        .map_err(|e| Error::manifest(&layout.apiserver_manifest(), &e))?;
    wait_for(layout, ui, &expected, None, options, true).map_err(|e| Error::Failed(e.to_string()))
}

fn injected_during_wait() -> Result<()> {
    crate::failpoint!("during-wait");
    Ok(())
}
