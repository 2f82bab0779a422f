//! `completions` and `man`: generated from the same clap definitions that parse the command line,
//! so they never fall behind it.
use clap::CommandFactory;

use crate::cli::{Cli, Shell};
use crate::error::{Error, Result};

pub fn completions(shell: Shell) -> Result<()> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kubeadm-recover", &mut out);
    let mut script = String::from_utf8_lossy(&out).into_owned();
    if shell == clap_complete::Shell::Bash {
        // clap_complete's bash script spells the state of a hyphenated binary two ways (the
        // dispatch loop `kubeadm__recover__subcmd__x`, the case arms
        // `kubeadm__subcmd__recover__subcmd__x`), so nothing past the first word completes
        // (clap-rs/clap#6421, open). Spell the arms the way the loop does.
        script = script.replace("kubeadm__subcmd__recover", "kubeadm__recover");
    }
    crate::ui::stdout_write(&script)?;
    Ok(())
}

pub fn man() -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| Error::Failed(format!("cannot render the manual page: {e}")))?;
    crate::ui::stdout_write(&String::from_utf8_lossy(&out))?;
    Ok(())
}
