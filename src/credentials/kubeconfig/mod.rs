//! Kubeconfig files: reading them and their embedded client certificates, editing them
//! (`edit`), taking expired tokens out of them (`prune`), and what the kubeconfig commands
//! rewrite (`rewrite`: the file kubectl would use, the new text and its redacted diff).
pub mod check;
pub mod edit;
pub mod probe;
pub mod prune;
pub mod rewrite;

use crate::credentials::pem::CertificateError;
use crate::node::NodeLayout;
use std::path::Path;

use base64::Engine;
use serde::Serialize;

/// Why a kubeconfig's text is not one kubectl can load, never quoting it: a parser's snippet
/// of the text around the error could hold a token or a key.
pub fn unloadable(text: &str) -> String {
    match serde_saphyr::from_str::<serde_json::Value>(text) {
        Err(e) => match e.location() {
            Some(at) => format!(
                "it is not YAML kubectl can read (line {}, column {})",
                at.line(),
                at.column()
            ),
            None => "it is not YAML kubectl can read".into(),
        },
        Ok(_) => "its fields are not a kubeconfig's (a value of the wrong type or shape)".into(),
    }
}

/// What `status` tells about one admin credential. Never holds key material.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialInfo {
    pub path: String,
    pub user: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub serial: Option<String>,
    pub not_after: Option<String>,
    pub expired: Option<bool>,
    pub days_left: Option<i64>,
    /// Set when the file is missing or unreadable; status reports it, it is not fatal.
    pub problem: Option<String>,
}

impl CredentialInfo {
    fn problem(path: &str, problem: String) -> Self {
        CredentialInfo {
            path: path.to_string(),
            user: None,
            subject: None,
            issuer: None,
            serial: None,
            not_after: None,
            expired: None,
            days_left: None,
            problem: Some(problem),
        }
    }

    pub fn describe(&self) -> String {
        if let Some(problem) = &self.problem {
            return problem.clone();
        }
        let when = match (self.expired, self.days_left) {
            (Some(true), _) => "EXPIRED".to_string(),
            (_, Some(days)) => format!("expires in {days} days"),
            _ => "expiry unknown".to_string(),
        };
        format!(
            "{} ({}), not after {}, serial {}",
            self.subject.as_deref().unwrap_or("?"),
            when,
            self.not_after.as_deref().unwrap_or("?"),
            self.serial.as_deref().unwrap_or("?")
        )
    }
}

/// Reads the client certificate of the current context's user (or the first user).
pub fn credential_info(layout: &NodeLayout, path: &Path, now: i64) -> CredentialInfo {
    let node_path = &layout.node_path(path);
    let text = match layout.fs().read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return CredentialInfo::problem(node_path, "not present".into());
        }
        Err(e) => return CredentialInfo::problem(node_path, format!("unreadable: {e}")),
    };
    let config: serde_json::Value = match serde_saphyr::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            return CredentialInfo::problem(
                node_path,
                format!("not a kubeconfig: {}", unloadable(&text)),
            );
        }
    };
    let Some(user) = current_user_entry(&config) else {
        return CredentialInfo::problem(node_path, "no user in the kubeconfig".into());
    };
    let name = user
        .get("name")
        .and_then(|n| n.as_str())
        .map(str::to_string);
    let Some(data) = user
        .pointer("/user/client-certificate-data")
        .and_then(|d| d.as_str())
    else {
        return CredentialInfo::problem(
            node_path,
            "the user has no embedded client-certificate-data".into(),
        );
    };
    let pem = match base64::engine::general_purpose::STANDARD.decode(data.trim()) {
        Ok(p) => p,
        Err(e) => {
            return CredentialInfo::problem(
                node_path,
                format!("client-certificate-data is not base64: {e}"),
            );
        }
    };
    match certificate_facts(&pem, now) {
        Ok(mut info) => {
            info.path = node_path.to_string();
            info.user = name;
            info
        }
        Err(e) => CredentialInfo::problem(node_path, format!("client certificate unreadable: {e}")),
    }
}

fn certificate_facts(pem: &[u8], now: i64) -> Result<CredentialInfo, CertificateError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem)?;
    let cert = pem.parse_x509()?;
    let not_after = cert.validity().not_after.timestamp();
    Ok(CredentialInfo {
        path: String::new(),
        user: None,
        subject: Some(cert.subject().to_string()),
        issuer: Some(cert.issuer().to_string()),
        serial: Some(cert.raw_serial_as_string()),
        not_after: Some(crate::runtime::clock::rfc3339(not_after)),
        expired: Some(not_after <= now),
        days_left: Some((not_after - now).div_euclid(86_400)),
        problem: None,
    })
}

/// The embedded client certificate and key (base64, as stored) of the current user, for
/// authenticating health checks when anonymous access is refused. Never printed.
pub fn client_credentials(
    layout: &NodeLayout,
    path: &Path,
) -> Option<(String, secrecy::SecretString)> {
    let text = layout.fs().read_to_string(path).ok()?;
    let config: serde_json::Value = serde_saphyr::from_str(&text).ok()?;
    let user = current_user_entry(&config)?;
    let cert = user
        .pointer("/user/client-certificate-data")?
        .as_str()?
        .to_string();
    let key = user.pointer("/user/client-key-data")?.as_str()?.to_string();
    Some((cert, secrecy::SecretString::from(key)))
}

/// A token a kubeconfig user holds, and where (`token`, `auth-provider id-token`, ...).
pub struct HeldToken {
    pub user: String,
    pub field: &'static str,
    pub token: secrecy::SecretString,
}

/// Why the tokens of a kubeconfig could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeldTokensError {
    #[error("not a kubeconfig: {0}")]
    NotAKubeconfig(#[source] serde_saphyr::Error),
    /// `--user` names no user of the kubeconfig; `names` are the ones it has.
    #[error("no user {wanted:?} in the kubeconfig (it has: {})", listed(.names))]
    NoSuchUser { wanted: String, names: Vec<String> },
}

fn listed(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The tokens held by `user` (default: the current context's user, else every user): a static
/// bearer `token`, and an OIDC `auth-provider`'s `id-token` and `access-token`.
pub fn held_tokens(text: &str, user: Option<&str>) -> Result<Vec<HeldToken>, HeldTokensError> {
    let config: serde_json::Value =
        serde_saphyr::from_str(text).map_err(HeldTokensError::NotAKubeconfig)?;
    let users: Vec<&serde_json::Value> = config
        .get("users")
        .and_then(|u| u.as_array())
        .map(|u| u.iter().collect())
        .unwrap_or_default();
    let name_of = |u: &serde_json::Value| {
        u.get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let chosen: Vec<&serde_json::Value> = match user {
        Some(wanted) => {
            let found: Vec<_> = users
                .iter()
                .copied()
                .filter(|u| name_of(u) == wanted)
                .collect();
            if found.is_empty() {
                return Err(HeldTokensError::NoSuchUser {
                    wanted: wanted.to_string(),
                    names: users.iter().map(|u| name_of(u)).collect(),
                });
            }
            found
        }
        None => match current_user_entry(&config) {
            Some(current) if config.get("current-context").is_some() => vec![current],
            _ => users,
        },
    };
    let mut held = Vec::new();
    for entry in chosen {
        for (field, pointer) in [
            ("token", "/user/token"),
            (
                "auth-provider id-token",
                "/user/auth-provider/config/id-token",
            ),
            (
                "auth-provider access-token",
                "/user/auth-provider/config/access-token",
            ),
        ] {
            if let Some(token) = entry.pointer(pointer).and_then(|t| t.as_str()) {
                held.push(HeldToken {
                    user: name_of(entry),
                    field,
                    token: secrecy::SecretString::from(token.to_string()),
                });
            }
        }
    }
    Ok(held)
}

/// The name of the user the current context names (what the component reading the kubeconfig
/// authenticates as), if the kubeconfig says.
pub fn current_user_name(text: &str) -> Option<String> {
    let config: serde_json::Value = serde_saphyr::from_str(text).ok()?;
    current_name(&config).map(str::to_string)
}

fn current_name(config: &serde_json::Value) -> Option<&str> {
    config
        .get("current-context")
        .and_then(|c| c.as_str())
        .and_then(|ctx| {
            config
                .get("contexts")?
                .as_array()?
                .iter()
                .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(ctx))
        })
        .and_then(|c| c.pointer("/context/user"))
        .and_then(|u| u.as_str())
}

/// The `users` entry of the current context's user, else the first user, as kubectl picks it.
fn current_user_entry(config: &serde_json::Value) -> Option<&serde_json::Value> {
    let users = config.get("users")?.as_array()?;
    let current = current_name(config);
    users
        .iter()
        .find(|u| current.is_some() && u.get("name").and_then(|n| n.as_str()) == current)
        .or(users.first())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_checks_authenticate_as_the_current_contexts_user() {
        let dir = tempfile::tempdir().unwrap();
        let layout = NodeLayout::new(Some(dir.path().to_path_buf())).unwrap();
        let path = layout.path("/config");
        std::fs::write(
            &path,
            "current-context: admin@k\ncontexts:\n- name: admin@k\n  context: {user: admin}\nusers:\n\
             - name: other\n  user: {client-certificate-data: T1RIRVI=, client-key-data: T0s=}\n\
             - name: admin\n  user: {client-certificate-data: QURNSU4=, client-key-data: QUs=}\n",
        )
        .unwrap();
        let (cert, _) = client_credentials(&layout, &path).unwrap();
        assert_eq!(cert, "QURNSU4=");
    }

    #[test]
    fn tokens_of_a_user_it_does_not_have_name_the_users_it_has() {
        let text = "users:\n- name: a\n  user: {token: t}\n- name: b\n  user: {token: u}\n";
        let err = |text: &str, user| held_tokens(text, Some(user)).err().unwrap().to_string();
        assert_eq!(
            err(text, "c"),
            r#"no user "c" in the kubeconfig (it has: a, b)"#
        );
        assert_eq!(
            err("users: []\n", "c"),
            r#"no user "c" in the kubeconfig (it has: none)"#
        );
        assert!(err("users: [\n", "c").starts_with("not a kubeconfig: "));
        let held = held_tokens(text, Some("b")).unwrap();
        assert_eq!((held[0].user.as_str(), held[0].field), ("b", "token"));
    }
}
