//! Failure points at step boundaries, for the crash-safety tests (`--features failpoints`; the
//! macros expand to nothing otherwise). `FAILPOINTS=name=return` makes the step fail;
//! `FAILPOINTS=name=return(kill)` kills the process right there with SIGKILL.

/// In a function returning `crate::error::Result`.
#[macro_export]
macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, |arg| {
            $crate::runtime::failpoints::maybe_kill(arg);
            Err($crate::error::Error::Failed(format!(
                "failure injected at {}",
                $name
            )))
        });
    };
}

/// In a function returning `std::io::Result`.
#[macro_export]
macro_rules! failpoint_io {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, |arg| {
            $crate::runtime::failpoints::maybe_kill(arg);
            Err(std::io::Error::other(format!(
                "failure injected at {}",
                $name
            )))
        });
    };
}

pub fn maybe_kill(arg: Option<String>) {
    if arg.as_deref() == Some("kill") {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
