//! What `kubeconfig prune-expired` and `kubeconfig set-token` write: the kubeconfig kubectl
//! would use, read from the node, and the new text with the diff a person is shown (every
//! secret value redacted). Nothing here writes; the command hands the rewrite to the executor.
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use super::edit::{redacted, replace_token};
use super::prune::{Finding, prune};
use crate::apiserver::admin::TokenRequest;
use crate::credentials::token;
use crate::error::{Error, Result};
use crate::node::NodeLayout;
use crate::ui::unified_diff;

/// The kubeconfig kubectl would use: `--kubeconfig`, else `$KUBECONFIG`'s first file, else
/// `~/.kube/config` — each a path on the node, so that under `--root` it is the sandbox's.
pub fn target(layout: &NodeLayout, given: Option<PathBuf>) -> Result<PathBuf> {
    let chosen = choose(
        given,
        std::env::var_os("KUBECONFIG"),
        std::env::var_os("HOME"),
    )?;
    layout.given_path(&chosen)
}

/// kubectl's choice from the flag, `$KUBECONFIG` and `$HOME`.
fn choose(
    given: Option<PathBuf>,
    kubeconfig: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf> {
    Ok(match given {
        Some(path) => path,
        None => match kubeconfig
            .and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()))
        {
            Some(first) => first,
            None => home
                .map(|home| Path::new(&home).join(".kube/config"))
                .ok_or_else(|| {
                    Error::Usage("no --kubeconfig, no $KUBECONFIG and no $HOME".into())
                })?,
        },
    })
}

fn read(layout: &NodeLayout, path: &Path) -> Result<String> {
    layout.fs().read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "{}: {e}\n  what to do: name the kubeconfig with --kubeconfig PATH",
            path.display()
        ))
    })
}

/// One kubeconfig to rewrite: the text read (to detect a change under our feet), the text to
/// write, and what a person is shown before saying yes.
#[derive(Debug, Clone)]
pub struct Rewrite {
    pub path: PathBuf,
    pub old: String,
    pub new: String,
    /// The unified diff, every secret value redacted.
    pub diff: String,
    /// The confirmation question.
    pub question: String,
    /// What the rewrite does, for the plan's one step.
    pub step: String,
}

impl Rewrite {
    fn new(
        layout: &NodeLayout,
        path: &Path,
        old: String,
        new: String,
        question: String,
        step: String,
    ) -> Self {
        Rewrite {
            diff: unified_diff(&layout.node_path(path), &redacted(&old), &redacted(&new)),
            path: path.to_path_buf(),
            old,
            new,
            question,
            step,
        }
    }
}

/// What has expired in the kubeconfig at `path` at `now`, and the rewrite that takes the
/// expired tokens out (`None`: nothing to remove).
pub fn prune_expired(
    layout: &NodeLayout,
    path: &Path,
    now: i64,
) -> Result<(Option<Rewrite>, Vec<Finding>)> {
    let text = read(layout, path)?;
    let pruned =
        prune(&text, now).map_err(|e| Error::Refused(format!("{}: {e}", path.display())))?;
    let rewrite = pruned.text.map(|new| {
        Rewrite::new(
            layout,
            path,
            text,
            new,
            format!("remove the expired tokens from {}?", path.display()),
            format!(
                "remove the expired tokens from {} (backed up first)",
                path.display()
            ),
        )
    });
    Ok((rewrite, pruned.findings))
}

/// A kubeconfig user's new token: a TokenRequest for a service account.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub user: String,
    pub request: TokenRequest,
    /// The kubeconfig that asks for the token (`None`: the node's admin.conf).
    pub using: Option<PathBuf>,
}

/// A TokenRequest with the node's admin credential: (token, expirationTimestamp).
fn request_token(layout: &NodeLayout, new: &NewToken) -> Result<(SecretString, String)> {
    let issued = token::api::connect(layout, new.using.as_deref())?
        .request_token(&new.request)
        .map_err(|e| Error::Failed(format!("{e}; nothing was changed")))?;
    Ok((issued.token, issued.expiration_timestamp))
}

/// The rewrite that puts a new token in `new.user`'s static `token`, and the new token's
/// expiry as the apiserver states it. A dry run shows where the token goes without minting
/// one (and so has no expiry).
pub fn set_token(
    layout: &NodeLayout,
    path: &Path,
    new: &NewToken,
    dry_run: bool,
) -> Result<(Rewrite, Option<String>)> {
    let text = read(layout, path)?;
    let (token, expires) = if dry_run {
        (SecretString::from("dry-run".to_string()), None)
    } else {
        let (token, expires) = request_token(layout, new)?;
        (token, Some(expires))
    };
    let edited = replace_token(&text, &new.user, token.expose_secret())
        .map_err(|e| Error::Refused(format!("{}: {e}", path.display())))?;
    let rewrite = Rewrite::new(
        layout,
        path,
        text,
        edited,
        format!("replace user {}'s token in {}?", new.user, path.display()),
        format!(
            "replace user {}'s token in {} with a new one for {}/{} (backed up first)",
            new.user,
            path.display(),
            new.request.namespace,
            new.request.service_account
        ),
    );
    Ok((rewrite, expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_the_flag_else_kubeconfigs_first_file_else_home() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            choose(Some("/a".into()), os("/b"), os("/h")).unwrap(),
            Path::new("/a")
        );
        assert_eq!(
            choose(None, os("::/b:/c"), os("/h")).unwrap(),
            Path::new("/b")
        );
        assert_eq!(
            choose(None, os(""), os("/h")).unwrap(),
            Path::new("/h/.kube/config")
        );
        assert!(
            choose(None, None, None)
                .unwrap_err()
                .to_string()
                .contains("no $HOME")
        );
    }
}
