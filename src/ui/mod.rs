//! Talking to the operator: reports on stdout (text or JSON), messages on stderr, confirmations.
use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::error::{Error, Result};

pub mod guided;
pub mod text;

pub use text::{Untrusted, command_line, escape, shell_quote};

pub const API_VERSION: &str = "kubeadm-recover/v1";

/// A command's result: one typed value, rendered as JSON for scripts or as text for people.
/// Text is always made from the value itself, never from its JSON.
pub trait Report: Serialize {
    /// The document's `kind` in JSON.
    const KIND: &'static str;
    fn text(&self) -> String;
}

/// Every JSON document: `apiVersion` and `kind`, then the report's own fields.
#[derive(Serialize)]
struct Envelope<'a, R: Serialize> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    #[serde(flatten)]
    report: &'a R,
}

/// The document for a command that failed (`-o json`), beside the message on stderr.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReport {
    pub reason: &'static str,
    pub exit_code: i32,
    pub message: String,
}

impl Report for ErrorReport {
    const KIND: &'static str = "Error";
    fn text(&self) -> String {
        String::new()
    }
}

pub fn to_json<R: Report>(report: &R) -> String {
    let envelope = Envelope {
        api_version: API_VERSION,
        kind: R::KIND,
        report,
    };
    text::json_safe(serde_json::to_string_pretty(&envelope).expect("reports serialize"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// How to talk, decided once at the top from the flags and the terminal.
#[derive(Debug, Clone, Copy)]
pub struct UiSettings {
    pub format: Format,
    pub quiet: bool,
    pub verbose: bool,
    /// Never prompt, even on a terminal.
    pub non_interactive: bool,
    pub yes: bool,
}

/// Writes to stderr never panic nor fail: when the SSH session drops mid-change, stdout and
/// stderr go away (EPIPE/EIO), and the change must still be finished or rolled back. Every
/// writer shows control characters escaped ([`text::terminal_safe`]): see `ui::text`.
pub fn stderr_line(text: &str) {
    let _ = writeln!(std::io::stderr(), "{}", text::terminal_safe(text));
}

pub fn stderr_raw(text: &str) {
    let mut err = std::io::stderr();
    let _ = write!(err, "{}", text::terminal_safe(text));
    let _ = err.flush();
}

/// Set before `main` when the process started with stdout closed (`>&-`): the Rust runtime
/// then opens /dev/null in its place, where a result would vanish without an error.
pub static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The command's result on stdout. A result that does not arrive is an error (exit 1): a full
/// disk (`> /dev/full`), a closed stdout (`>&-`), EIO. A closed pipe (EPIPE: `| head -1`) is the
/// reader's choice and stays a quiet success. Never panics.
pub fn stdout_write(text: &str) -> Result<()> {
    let failed = |why: String| {
        Err(Error::Failed(format!(
            "cannot write the result to stdout: {why}"
        )))
    };
    if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
        return failed("stdout is closed".into());
    }
    let mut out = std::io::stdout().lock();
    match out
        .write_all(text::terminal_safe(text).as_bytes())
        .and_then(|()| out.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => failed(e.to_string()),
    }
}

/// A command's failure, as every command of the tool ends with one: `error: ...` on stderr and,
/// with `-o json`, the `Error` document on stdout (but for a negative answer, whose document is
/// the command's own report, already printed). Returns the exit code. `kubeadm-recover-sim
/// rehearse`, which `kubeadm-recover rehearse` hands over to, ends through here too.
pub fn fail(err: &Error, format: Format) -> i32 {
    stderr_line(&format!("error: {err}"));
    if format == Format::Json {
        report_error(err);
    }
    err.code()
}

/// The `Error` document on stdout, for scripts that parse it (`-o json`).
pub fn report_error(err: &Error) {
    let _ = stdout_write(&format!(
        "{}\n",
        to_json(&ErrorReport {
            reason: err.kind(),
            exit_code: err.code(),
            message: err.to_string(),
        })
    ));
}

/// `NO_COLOR`, set and not empty (no-color.org): no colours.
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// `TERM=dumb` (Emacs shells, some consoles): no cursor movement, so no spinner.
pub fn dumb_terminal() -> bool {
    std::env::var("TERM").is_ok_and(|t| t == "dumb")
}

pub struct Ui {
    pub format: Format,
    quiet: bool,
    verbose: bool,
    interactive: bool,
    yes: bool,
    /// Inside `guide`: the executor's question is the guide's (do it / skip / details / quit).
    guided: Option<guided::GuidedStep>,
}

impl Ui {
    pub fn new(settings: UiSettings) -> Self {
        Ui {
            format: settings.format,
            quiet: settings.quiet,
            verbose: settings.verbose,
            interactive: !settings.non_interactive
                && std::io::stdin().is_terminal()
                && std::io::stderr().is_terminal(),
            yes: settings.yes,
            guided: None,
        }
    }

    /// The talker for one step of `guide`.
    pub fn guided(settings: UiSettings, step: guided::GuidedStep) -> Self {
        Ui {
            guided: Some(step),
            ..Ui::new(settings)
        }
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// A person can answer: stdin and stderr are a terminal, and `--non-interactive` was not given.
    pub fn interactive(&self) -> bool {
        self.interactive
    }

    /// A redrawn progress line: on a terminal that can redraw, unless `-o json` or `--quiet`.
    /// Elsewhere (logs, pipes) progress is one plain line per phase: no spinner residue.
    pub fn redraws_progress(&self) -> bool {
        std::io::stderr().is_terminal() && !self.json() && !self.quiet && !dumb_terminal()
    }

    /// Progress and advice, on stderr so that stdout stays parseable.
    pub fn info(&self, message: impl AsRef<str>) {
        if !self.quiet {
            stderr_line(message.as_ref());
        }
    }

    pub fn detail(&self, message: impl AsRef<str>) {
        if self.verbose {
            stderr_line(message.as_ref());
        }
    }

    pub fn warn(&self, message: impl AsRef<str>) {
        stderr_line(&format!("warning: {}", message.as_ref()));
    }

    /// The command's result on stdout: a versioned JSON document, or the text for people. An
    /// error when it cannot be written (see [`stdout_write`]).
    pub fn report<R: Report>(&self, report: &R) -> Result<()> {
        if self.json() {
            stdout_write(&format!("{}\n", to_json(report)))
        } else {
            stdout_write(&report.text())
        }
    }

    /// A decision `--yes` does not make: a person answers at the terminal; without one,
    /// `refusal` is returned (a flag of its own must say yes).
    pub fn decide(&self, question: &str, refusal: impl FnOnce() -> Error) -> Result<()> {
        if !self.interactive {
            return Err(refusal());
        }
        Self::ask(question)
    }

    /// Asks before a change. `--yes` answers; without a terminal the question is an error (exit 2).
    /// Only the guide's step question can be declined; a plain "no" cancels (exit 2).
    pub fn confirm(&self, question: &str) -> Result<Answer> {
        if let Some(step) = &self.guided {
            return guided::ask_step(step, question);
        }
        if self.yes {
            return Ok(Answer::Yes);
        }
        if !self.interactive {
            return Err(Error::Usage(format!(
                "{question} — a decision is needed and this run is not interactive: pass --yes to proceed"
            )));
        }
        Self::ask(question).map(|()| Answer::Yes)
    }

    /// A yes/no prompt that defaults to no: only `y` goes ahead. Enter, `n`, Esc, `q`, Ctrl-D and
    /// Ctrl-C all mean no, cleanly: the terminal is put back as it was found, and a signal
    /// (Ctrl-C, or a `kill` while the question waits) is noticed at once, never swallowed.
    fn ask(question: &str) -> Result<()> {
        crate::runtime::interrupt::install();
        let answer = read_answer(question).unwrap_or(false);
        stderr_line(if answer { "yes" } else { "no" });
        if answer {
            Ok(())
        } else {
            Err(Error::Usage("cancelled; nothing was changed".into()))
        }
    }
}

/// The answer to the question before a change.
pub enum Answer {
    Yes,
    /// The guide's step was skipped or the guide quit: nothing of the step is changed.
    Declined(crate::error::Declined),
}

/// One key from the terminal, read by console (raw: no Enter needed, no echo). Ctrl-C is a key
/// there, and console raises SIGINT for it, so it sets the interrupt flag as a signal from the
/// terminal would; a signal while the question waits ends console's wait (EINTR), and is
/// never taken for a `y` however the key read ends.
fn read_answer(question: &str) -> std::io::Result<bool> {
    use std::os::fd::AsFd;

    // Keys typed or pasted before the question was asked are not its answer: a pasted line
    // such as `sudo systemctl ...` must not say "y" through its letters. console reads stdin,
    // a terminal whenever a question is asked (`Ui::interactive`).
    let _ = nix::sys::termios::tcflush(
        std::io::stdin().as_fd(),
        nix::sys::termios::FlushArg::TCIFLUSH,
    );
    stderr_raw(&format!("{question} [y/N] "));
    // console's wait has no timeout to look at the flag with: a signal in the instant between
    // this check and that wait is seen only at the next key.
    if crate::runtime::interrupt::interrupted() {
        return Ok(false);
    }
    let key = console::Term::stderr().read_key()?;
    // Only y goes ahead; any other key is no (never skipped while looking for a y).
    Ok(matches!(key, console::Key::Char('y' | 'Y')) && !crate::runtime::interrupt::interrupted())
}

/// A unified diff with the node paths as headers.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a{path}"), &format!("b{path}"))
        .to_string()
}
