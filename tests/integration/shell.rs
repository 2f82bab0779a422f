//! `completions` and `man`, checked by the programs that read them.
use std::process::Command;

use crate::harness::*;

/// What bash offers after `words` (the last one being completed).
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = Run::new().args(["completions", "bash"]).ok().stdout;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), script).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source {}; COMP_WORDS=({}); COMP_CWORD={}; _kubeadm__recover kubeadm-recover '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.path().display(),
        quoted.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len() - 2],
    );
    bash_ok(["-c", &program])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_their_options() {
    assert_eq!(
        bash_completes(&["kubeadm-recover", "ext"]),
        ["extend-tokens"]
    );
    assert_eq!(
        bash_completes(&["kubeadm-recover", "token", "i"]),
        ["inspect"]
    );
    let options = bash_completes(&["kubeadm-recover", "extend-tokens", "enable", "--re"]);
    assert!(
        options.contains(&"--revert-after".to_string()),
        "{options:?}"
    );
}

#[test]
fn zsh_and_fish_scripts_name_every_command_and_the_man_page_renders() {
    for shell in ["zsh", "fish"] {
        let script = Run::new().args(["completions", shell]).ok().stdout;
        for command in ["extend-tokens", "admin-conf", "prune-expired", "migrate"] {
            assert!(script.contains(command), "{shell}: {command}");
        }
    }
    let page = Run::new().arg("man").ok().stdout;
    assert!(
        page.starts_with(".ie") || page.contains(".TH kubeadm-recover 1"),
        "{page}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeadm-recover.1");
    std::fs::write(&path, &page).unwrap();
    let rendered = Command::new("man")
        .arg("-l")
        .arg(&path)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output();
    // Where man-db is installed, it reads the page too.
    if let Ok(rendered) = rendered
        && rendered.status.success()
    {
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(text.contains("kubeadm-recover"), "{text}");
    }
    assert!(
        page.contains("extend\\-tokens"),
        "the subcommands are listed"
    );
}
