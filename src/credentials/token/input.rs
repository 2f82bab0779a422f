//! Tokens where the operator names them — a file, stdin (`-`), or the users of a kubeconfig —
//! read offline for `token inspect` and `token review`. A token is never echoed.
use std::io::Read;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::TokenFacts;
use crate::error::{Error, Result};
use crate::node::NodeLayout;
use crate::ui::Untrusted;

/// A token from a file or stdin (`-`), never echoed.
pub fn read(file: &Path) -> Result<SecretString> {
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::Usage(format!("cannot read the token from stdin: {e}")))?;
    } else {
        // A token file is input data, like stdin: the operator's own file, never the node's
        // state, so it is read where the operator's shell names it (not under --root).
        text = std::fs::read_to_string(file)
            .map_err(|e| Error::Usage(format!("{}: {e}", file.display())))?;
    }
    Ok(SecretString::from(super::clean(&text).to_string()))
}

fn malformed(source: &str, e: super::Malformed) -> Error {
    Error::Usage(format!(
        "{source} does not hold a readable token: {e}\n  what to do: give the token itself (a JWT: three base64url parts separated by dots), e.g. from `kubectl create token` or a pod's /var/run/secrets/kubernetes.io/serviceaccount/token"
    ))
}

/// Where the tokens to inspect are.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A token file, or `-` for stdin: where the operator's shell names it.
    File(&'a Path),
    /// The tokens a kubeconfig on the node holds, of `user` (default: the current context's).
    Kubeconfig {
        path: &'a Path,
        user: Option<&'a str>,
    },
}

/// One token read offline, and whose it is when it came from a kubeconfig.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspected {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Untrusted>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(flatten)]
    pub facts: TokenFacts,
}

/// The tokens of a source, as `now` judges them.
#[derive(Debug)]
pub struct Tokens {
    /// The source as a person names it: the kubeconfig's path, the file's, or `stdin`.
    pub source: String,
    pub tokens: Vec<Inspected>,
}

/// Reads every token of `source`; one that is not a readable token is a usage error naming it.
pub fn inspect(layout: &NodeLayout, source: Source<'_>, now: i64) -> Result<Tokens> {
    let mut tokens = Vec::new();
    let source = match source {
        Source::Kubeconfig { path: given, user } => {
            let path = &layout.given_path(given)?;
            let text = layout
                .fs()
                .read_to_string(path)
                .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
            let held = crate::credentials::kubeconfig::held_tokens(&text, user)
                .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
            for h in held {
                let user = Untrusted::new(h.user);
                let where_ = format!("{} user {user} ({})", path.display(), h.field);
                let facts = super::inspect(h.token.expose_secret(), now)
                    .map_err(|e| malformed(&where_, e))?;
                tokens.push(Inspected {
                    user: Some(user),
                    field: Some(h.field.to_string()),
                    facts,
                });
            }
            path.display().to_string()
        }
        Source::File(file) => {
            let name = if file == Path::new("-") {
                "stdin".to_string()
            } else {
                file.display().to_string()
            };
            let secret = read(file)?;
            let facts =
                super::inspect(secret.expose_secret(), now).map_err(|e| malformed(&name, e))?;
            tokens.push(Inspected {
                user: None,
                field: None,
                facts,
            });
            name
        }
    };
    Ok(Tokens { source, tokens })
}
