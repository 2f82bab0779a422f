fn main() {
    std::process::exit(kubeadm_recover::run());
}

/// Whether stdout was closed (`>&-`) when the process started. The Rust runtime puts /dev/null
/// on a closed standard descriptor before `main`, where the result would vanish with success;
/// this runs earlier, from the C runtime's constructors, and notes the truth for `ui`.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static NOTE_CLOSED_STDOUT: extern "C" fn() = note_closed_stdout;

#[cfg(target_os = "linux")]
extern "C" fn note_closed_stdout() {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if unsafe { nix::libc::fcntl(1, nix::libc::F_GETFD) } == -1 {
        kubeadm_recover::ui::STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
