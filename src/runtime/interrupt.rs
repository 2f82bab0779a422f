//! SIGINT, SIGTERM and SIGHUP during a change (an SSH session dropping mid-wait) must not leave
//! the node half-done: they only raise a flag, and the change checks it at safe points.
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// From now on, these signals no longer kill the process; `interrupted()` reports them.
pub fn install() {
    let flag = FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register(signal, flag.clone());
    }
}

pub fn interrupted() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Forget an interrupt that has been handled (with `--on-interrupt continue`).
pub fn clear() {
    if let Some(f) = FLAG.get() {
        f.store(false, Ordering::SeqCst);
    }
}

/// Why a program did not run to its end.
#[derive(Debug)]
pub enum Stopped {
    /// Still running at its deadline: killed.
    TimedOut(std::time::Duration),
    /// A signal arrived while it ran: killed.
    Interrupted,
    /// It could not be started or waited for.
    Failed(std::io::Error),
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::TimedOut(d) => write!(f, "still running after {}s: stopped", d.as_secs()),
            Stopped::Interrupted => write!(f, "interrupted by a signal: stopped"),
            Stopped::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// Runs `program` (its streams as the expression says) to its end: killed at `deadline`, and
/// at a signal when `stop_at_signal`. Its exit status is the caller's to judge.
pub fn run(
    program: duct::Expression,
    deadline: std::time::Duration,
    stop_at_signal: bool,
) -> Result<std::process::Output, Stopped> {
    let handle = program.unchecked().start().map_err(Stopped::Failed)?;
    let until = std::time::Instant::now() + deadline;
    loop {
        match handle.wait_timeout(std::time::Duration::from_millis(50)) {
            Ok(Some(_)) => break,
            Ok(None) => {}
            Err(e) => return Err(Stopped::Failed(e)),
        }
        let stop = if stop_at_signal && interrupted() {
            Some(Stopped::Interrupted)
        } else if std::time::Instant::now() >= until {
            Some(Stopped::TimedOut(deadline))
        } else {
            None
        };
        if let Some(why) = stop {
            let _ = handle.kill();
            return Err(why);
        }
    }
    handle.into_output().map_err(Stopped::Failed)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_program_that_outlives_its_deadline_is_stopped() {
        let out = super::run(
            duct::cmd!("sleep", "30").stdout_null(),
            Duration::from_millis(200),
            true,
        );
        assert!(matches!(out, Err(super::Stopped::TimedOut(_))), "{out:?}");
        let out = super::run(
            duct::cmd!("echo", "hi").stdout_capture(),
            Duration::from_secs(30),
            true,
        )
        .unwrap();
        assert_eq!(out.stdout, b"hi\n");
    }
}
