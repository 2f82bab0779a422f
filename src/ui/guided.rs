//! The guide's questions (dialoguer), on the terminal only: one Select per step and the reason.
//! Ctrl-C at a question is a signal like any other (console raises SIGINT for it), so it is
//! reported as an interrupt; Esc and `q` mean quit.
use dialoguer::theme::{ColorfulTheme, SimpleTheme, Theme};
use dialoguer::{Input, Select};

use crate::error::{Declined, Error, Result};
use crate::ui::Answer;

/// What the guide tells the executor's question about the step it asks for.
#[derive(Debug, Clone)]
pub struct GuidedStep {
    pub number: usize,
    pub total: usize,
    /// Shown on "show details": the findings this step answers, and the command it runs.
    pub details: String,
}

fn theme() -> Box<dyn Theme> {
    if crate::ui::no_color() || crate::ui::dumb_terminal() {
        Box::new(SimpleTheme)
    } else {
        Box::new(ColorfulTheme::default())
    }
}

const DO_IT: usize = 0;
const SKIP: usize = 1;
const DETAILS: usize = 2;

/// Asks whether to run the step whose plan was just shown. Ok means "do it".
pub fn ask_step(step: &GuidedStep, question: &str) -> Result<Answer> {
    let term = console::Term::stderr();
    let theme = theme();
    loop {
        let choice = Select::with_theme(&*theme)
            .with_prompt(format!("step {}/{}: {question}", step.number, step.total))
            .items(["do it", "skip this step", "show details", "quit"])
            .default(DO_IT)
            .interact_on_opt(&term);
        let _ = term.show_cursor();
        match choice {
            Ok(Some(DO_IT)) => return Ok(Answer::Yes),
            Ok(Some(SKIP)) => {
                return Ok(Answer::Declined(Declined {
                    quit: false,
                    message: format!("step {} skipped: nothing of it was changed", step.number),
                }));
            }
            Ok(Some(DETAILS)) => crate::ui::stderr_line(&step.details),
            Ok(_) => {
                return Ok(Answer::Declined(Declined {
                    quit: true,
                    message: format!(
                        "quit at step {}: nothing of it was changed; the node is as the steps before left it",
                        step.number
                    ),
                }));
            }
            Err(e) => return Err(broken(e, &format!("step {}", step.number))),
        }
    }
}

/// Why the person is doing this, once, for the audit log. Empty input takes `default`.
pub fn ask_reason(default: &str) -> Result<String> {
    let term = console::Term::stderr();
    let answer = Input::<String>::with_theme(&*theme())
        .with_prompt("Why are you doing this? (recorded in the audit log)")
        .default(default.to_string())
        .interact_text_on(&term);
    let _ = term.show_cursor();
    answer.map_err(|e| broken(e, "the reason"))
}

/// A question that did not get an answer: Ctrl-C (or a signal) is an interrupt; anything else
/// is the terminal failing. Either way nothing of the step was changed.
fn broken(err: dialoguer::Error, at: &str) -> Error {
    let dialoguer::Error::IO(io) = err;
    if io.kind() == std::io::ErrorKind::Interrupted || crate::runtime::interrupt::interrupted() {
        Error::Interrupted(format!(
            "interrupted at the question ({at}): nothing of it was changed; the node is as the steps before left it"
        ))
    } else {
        Error::Failed(format!(
            "the terminal failed at the question ({at}): {io}; nothing of it was changed"
        ))
    }
}
