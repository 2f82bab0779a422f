//! Replacing one user's embedded client certificate and key in a kubeconfig, as a minimal text
//! edit: every other byte (other clusters, contexts, users, comments, order) stays.
use base64::Engine;

use crate::manifest::ManifestError;
use crate::manifest::yaml::{self, Node};

pub const CERT_KEY: &str = "client-certificate-data";
pub const KEY_KEY: &str = "client-key-data";

#[derive(Debug, Clone)]
pub struct UserCredential {
    pub name: String,
    pub cert_b64: Option<String>,
    pub key_present: bool,
    /// The embedded key (base64, as stored): only to check it belongs to the certificate.
    pub key_b64: Option<secrecy::SecretString>,
}

impl UserCredential {
    /// The same entry: name, certificate and key (compared without printing the key).
    pub fn same_as(&self, other: &UserCredential) -> bool {
        use secrecy::ExposeSecret;
        self.name == other.name
            && self.cert_b64 == other.cert_b64
            && self.key_present == other.key_present
            && self.key_b64.as_ref().map(|k| k.expose_secret().to_string())
                == other
                    .key_b64
                    .as_ref()
                    .map(|k| k.expose_secret().to_string())
    }
}

/// Why a user's credential or token could not be replaced; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The kubeconfig is not YAML the edit can read.
    #[error(transparent)]
    Yaml(#[from] ManifestError),
    #[error("no user {0:?} in the kubeconfig")]
    NoUser(String),
    #[error("user {0:?} has no `user:` section")]
    NoUserSection(String),
    #[error("user {0:?} has no embedded {CERT_KEY}")]
    NoCertificate(String),
    #[error("the certificate is not a plain value")]
    CertificateNotPlain,
    #[error("the key is not a plain value")]
    KeyNotPlain,
    #[error("user {0:?} has no static `token` to replace (it authenticates otherwise)")]
    NoStaticToken(String),
    #[error("line {line}: user {user:?}'s token is not a plain value the edit can replace")]
    TokenNotPlain { line: usize, user: String },
    /// The other YAML reader, reading the text before or after the edit to prove it.
    #[error(transparent)]
    Reread(#[from] serde_saphyr::Error),
    #[error("the edit could not be proved to touch only this user's credential")]
    CredentialNotProved,
    #[error("the edit could not be proved to touch only this user's token")]
    TokenNotProved,
}

fn users(root: &Node) -> Vec<&Node> {
    match root.get("users") {
        Some(Node::Seq { items, .. }) => items.iter().collect(),
        _ => Vec::new(),
    }
}

/// Every user entry with its embedded certificate (base64) and whether a key is embedded.
pub fn user_credentials(text: &str) -> Result<Vec<UserCredential>, ManifestError> {
    let root = yaml::parse_document(text)?;
    Ok(users(&root)
        .into_iter()
        .filter_map(|u| {
            let name = u.get("name")?.as_str()?.to_string();
            let user = u.get("user");
            Some(UserCredential {
                name,
                cert_b64: user
                    .and_then(|x| x.get(CERT_KEY))
                    .and_then(Node::as_str)
                    .map(str::to_string),
                key_present: user.and_then(|x| x.get(KEY_KEY)).is_some(),
                key_b64: user
                    .and_then(|x| x.get(KEY_KEY))
                    .and_then(Node::as_str)
                    .map(|k| secrecy::SecretString::from(k.to_string())),
            })
        })
        .collect())
}

fn scalar_span(node: &Node) -> Option<(usize, usize)> {
    match node {
        Node::Scalar {
            start,
            end,
            has_properties: false,
            ..
        } => Some((start.byte, *end)),
        _ => None,
    }
}

/// Replaces `user`'s embedded certificate and key. A missing key line is added after the
/// certificate line with the same indentation. Fails when the user or its certificate
/// line is missing, or a value is not a plain scalar the edit can replace.
pub fn replace_credential(
    text: &str,
    user: &str,
    cert_b64: &str,
    key_b64: &str,
) -> Result<String, EditError> {
    let root = yaml::parse_document(text)?;
    let entry = users(&root)
        .into_iter()
        .find(|u| u.get("name").and_then(Node::as_str) == Some(user))
        .ok_or_else(|| EditError::NoUser(user.to_string()))?;
    let body = entry
        .get("user")
        .ok_or_else(|| EditError::NoUserSection(user.to_string()))?;
    let cert = body
        .get(CERT_KEY)
        .ok_or_else(|| EditError::NoCertificate(user.to_string()))?;
    let (cert_start, cert_end) = scalar_span(cert).ok_or(EditError::CertificateNotPlain)?;
    let mut splices: Vec<(usize, usize, String)> =
        vec![(cert_start, cert_end, cert_b64.to_string())];
    match body.get(KEY_KEY) {
        Some(key) => {
            let (s, e) = scalar_span(key).ok_or(EditError::KeyNotPlain)?;
            splices.push((s, e, key_b64.to_string()));
        }
        None => {
            let key_node = body.key_node(CERT_KEY).expect("cert key exists");
            let line_start = text[..key_node.start().byte]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let indent = &text[line_start..key_node.start().byte];
            let line_end = text[cert_end..]
                .find('\n')
                .map_or(text.len(), |i| cert_end + i + 1);
            let eol = if text[..line_end].ends_with("\r\n") {
                "\r\n"
            } else {
                "\n"
            };
            let prefix = if text[..line_end].ends_with('\n') {
                ""
            } else {
                eol
            };
            splices.push((
                line_end,
                line_end,
                format!("{prefix}{indent}{KEY_KEY}: {key_b64}{eol}"),
            ));
        }
    }
    splices.sort_by_key(|s| s.0);
    let mut out = String::with_capacity(text.len() + 64);
    let mut cursor = 0;
    for (start, end, with) in splices {
        out.push_str(&text[cursor..start]);
        out.push_str(&with);
        cursor = end;
    }
    out.push_str(&text[cursor..]);
    // Prove it: the same users, and only this user's two values differ.
    let before = user_credentials(text)?;
    let after = user_credentials(&out)?;
    let same_others = before.len() == after.len()
        && before
            .iter()
            .zip(&after)
            .all(|(b, a)| b.name == a.name && (b.name == user || b.same_as(a)));
    let ours = after.iter().find(|u| u.name == user);
    if !same_others
        || ours.is_none_or(|u| u.cert_b64.as_deref() != Some(cert_b64) || !u.key_present)
    {
        return Err(EditError::CredentialNotProved);
    }
    Ok(out)
}

/// Replaces `user`'s static bearer `token` value in place; every other byte stays. Proved by
/// re-reading both texts: the only difference is that value.
pub fn replace_token(text: &str, user: &str, token: &str) -> Result<String, EditError> {
    let root = yaml::parse_document(text)?;
    let entry = users(&root)
        .into_iter()
        .find(|u| u.get("name").and_then(Node::as_str) == Some(user))
        .ok_or_else(|| EditError::NoUser(user.to_string()))?;
    let value = entry
        .get("user")
        .and_then(|u| u.get("token"))
        .ok_or_else(|| EditError::NoStaticToken(user.to_string()))?;
    let (start, end) = scalar_span(value).ok_or_else(|| EditError::TokenNotPlain {
        line: value.start().line,
        user: user.to_string(),
    })?;
    let out = format!("{}{token}{}", &text[..start], &text[end..]);
    let mut expected: serde_json::Value = serde_saphyr::from_str(text)?;
    if let Some(u) = expected
        .get_mut("users")
        .and_then(|u| u.as_array_mut())
        .and_then(|users| {
            users
                .iter_mut()
                .find(|u| u.get("name").and_then(|n| n.as_str()) == Some(user))
        })
    {
        u["user"]["token"] = token.into();
    }
    let actual: serde_json::Value = serde_saphyr::from_str(&out)?;
    if expected != actual {
        return Err(EditError::TokenNotProved);
    }
    Ok(out)
}

/// Secret values a kubeconfig holds, as the keys that name them.
const SECRET_KEYS: [&str; 8] = [
    "token",
    "id-token",
    "access-token",
    "refresh-token",
    "client-key-data",
    "client-certificate-data",
    "password",
    "client-secret",
];

/// Secrets that may be a person's choice, and so guessable.
const CHOSEN_BY_PEOPLE: [&str; 2] = ["password", "client-secret"];

/// The text with every secret value replaced by `<redacted sha256:…>` (eight hex digits of
/// the hash of a random value), or `<redacted>` for a password, line by line: what a diff of a
/// kubeconfig may show a person or a log.
pub fn redacted(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let trimmed = line.trim_start().trim_start_matches("- ");
            let secret = SECRET_KEYS.iter().find(|k| {
                trimmed
                    .strip_prefix(**k)
                    .is_some_and(|rest| rest.starts_with(':'))
            });
            match secret {
                Some(key) => {
                    let at = line.find(key).expect("the key is on the line") + key.len() + 1;
                    let eol = if line.ends_with("\r\n") {
                        "\r\n"
                    } else if line.ends_with('\n') {
                        "\n"
                    } else {
                        ""
                    };
                    // A short fingerprint, so that a diff still shows that the value changed;
                    // never of what a person may have chosen (a fingerprint would let a
                    // guess be checked).
                    if CHOSEN_BY_PEOPLE.contains(key) {
                        return format!("{} <redacted>{eol}", &line[..at]);
                    }
                    let value = line[at..].trim();
                    let fingerprint = &crate::node::store::sha256_hex(value.as_bytes())[..8];
                    format!("{} <redacted sha256:{fingerprint}>{eol}", &line[..at])
                }
                None => line.to_string(),
            }
        })
        .collect()
}

/// A kubeconfig shaped exactly like kubeadm's (names, embedded data).
pub fn kubeadm_kubeconfig(
    ca_pem: &str,
    server: &str,
    user: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: kubernetes\n\
         contexts:\n- context:\n    cluster: kubernetes\n    user: {user}\n  name: {user}@kubernetes\n\
         current-context: {user}@kubernetes\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    \
         client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca_pem),
        b64(cert_pem),
        b64(key_pem)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_replaced_in_place_and_secrets_never_reach_a_diff() {
        let text = "users:\n- name: ci # the pipeline\n  user:\n    token: old.tok.en\n- name: b\n  user:\n    token: other\n";
        let out = replace_token(text, "ci", "new.tok.en").unwrap();
        assert_eq!(out, text.replace("old.tok.en", "new.tok.en"));
        assert_eq!(
            replace_token(text, "nobody", "x").unwrap_err().to_string(),
            r#"no user "nobody" in the kubeconfig"#
        );
        let shown = redacted(&out);
        assert!(
            !shown.contains("new.tok.en") && !shown.contains("other"),
            "{shown}"
        );
        assert!(shown.contains("    token: <redacted sha256:"), "{shown}");
        assert!(shown.contains("- name: ci # the pipeline\n"));
    }

    const CONFIG: &str = "apiVersion: v1\nclusters:\n- cluster:\n    server: https://a:6443\n  name: a\n# keep me\ncontexts: []\nusers:\n- name: other\n  user:\n    client-certificate-data: T1RIRVI=\n    client-key-data: T0s=\n- name: kubernetes-admin\n  user:\n    client-certificate-data: T0xE\n    client-key-data: T0xES0VZ\n";

    #[test]
    fn only_the_users_two_values_change() {
        let out = replace_credential(CONFIG, "kubernetes-admin", "TkVX", "TkVXS0VZ").unwrap();
        assert_eq!(
            out,
            CONFIG
                .replace("T0xES0VZ", "TkVXS0VZ")
                .replace("T0xE\n", "TkVX\n")
        );
    }

    #[test]
    fn a_missing_key_line_is_added_with_the_same_indentation() {
        let text = CONFIG.replace("    client-key-data: T0xES0VZ\n", "");
        let out = replace_credential(&text, "kubernetes-admin", "TkVX", "TkVXS0VZ").unwrap();
        assert!(
            out.ends_with("    client-certificate-data: TkVX\n    client-key-data: TkVXS0VZ\n"),
            "{out}"
        );
    }

    #[test]
    fn unknown_user_is_an_error() {
        assert!(replace_credential(CONFIG, "nobody", "A", "B").is_err());
    }

    #[test]
    fn a_refused_edit_says_what_is_missing_or_not_plain() {
        let credential = |text: &str| {
            replace_credential(text, "u", "A", "B")
                .unwrap_err()
                .to_string()
        };
        let token = |text: &str| replace_token(text, "u", "t").unwrap_err().to_string();
        assert_eq!(
            credential("users:\n- name: u\n"),
            r#"user "u" has no `user:` section"#
        );
        assert_eq!(
            credential("users:\n- name: u\n  user: {}\n"),
            r#"user "u" has no embedded client-certificate-data"#
        );
        assert_eq!(
            credential("users:\n- name: u\n  user:\n    client-certificate-data: !!str A\n"),
            "the certificate is not a plain value"
        );
        assert_eq!(
            credential(
                "users:\n- name: u\n  user:\n    client-certificate-data: A\n    client-key-data: [B]\n"
            ),
            "the key is not a plain value"
        );
        assert_eq!(
            token("users:\n- name: u\n  user: {}\n"),
            r#"user "u" has no static `token` to replace (it authenticates otherwise)"#
        );
        assert_eq!(
            token("users:\n- name: u\n  user:\n    token: [t]\n"),
            r#"line 4: user "u"'s token is not a plain value the edit can replace"#
        );
    }
}
