//! Expired credentials in a kubeconfig: which users hold an expired token (a bearer `token`, an
//! OIDC `auth-provider`'s `id-token` or `access-token`) or an expired client certificate, which
//! are exec-plugin users (refreshed by their cloud CLI, never edited), and the kubeconfig with
//! only the expired token fields removed — as `kubectl config unset
//! users.NAME.user.auth-provider.config.id-token` would, with the refresh-token that goes with an
//! expired access-token — every other byte kept. Pure: text and a clock in.
use serde::Serialize;
use serde_json::Value;

use crate::credentials::token::{self, Verdict};
use crate::manifest::ManifestError;
use crate::manifest::yaml::{self, Node};
use crate::ui::{Untrusted, command_line};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Finding {
    /// A token field that has expired: removed.
    ExpiredToken {
        user: Untrusted,
        field: String,
        expired: i64,
        /// The fields taken out of the file (the token, and an access-token's refresh-token).
        removes: Vec<String>,
    },
    /// An expired client certificate: shown, not removed (a new one must be issued).
    ExpiredCertificate {
        user: Untrusted,
        not_after: i64,
        fix: String,
    },
    /// A user whose credential an exec plugin makes: refreshed by its CLI, never edited here.
    ExecPlugin {
        user: Untrusted,
        command: Untrusted,
        /// A command line for a person to run, every word quoted ([`command_line`]).
        refresh: String,
    },
    /// A token that is not a JWT, whose expiry cannot be read offline: left alone.
    OpaqueToken { user: Untrusted, field: String },
}

#[derive(Debug, Clone)]
pub struct Pruned {
    pub findings: Vec<Finding>,
    /// The new text, when something is removed.
    pub text: Option<String>,
}

/// Why the expired tokens could not be taken out; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The kubeconfig is not YAML the edit can read.
    #[error(transparent)]
    Yaml(#[from] ManifestError),
    /// An expired field whose line holds more than it (a flow mapping, several keys on a
    /// line): refused rather than guessed, with the kubectl command that removes it.
    #[error(
        "line {line}: user {user:?}'s {key} is not laid out one key per line, so it cannot be removed safely; \
         remove it with `{remove}`"
    )]
    NotOneKeyPerLine {
        line: usize,
        user: String,
        key: String,
        /// `kubectl config unset users.NAME.user...`, every word quoted.
        remove: String,
    },
    #[error("re-reading the kubeconfig: {0}")]
    Reread(#[source] serde_saphyr::Error),
    #[error("the edited kubeconfig does not read back: {0}")]
    ReadBack(#[source] serde_saphyr::Error),
    #[error("the edit could not be proved to remove only the expired fields; nothing was changed")]
    NotProved,
}

/// A user entry: its name and its `user` mapping.
fn users(root: &Node) -> Vec<(String, &Node)> {
    let Some(Node::Seq { items, .. }) = root.get("users") else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|entry| Some((entry.get("name")?.as_str()?.to_string(), entry.get("user")?)))
        .collect()
}

/// How to get a fresh credential for an exec-plugin user, from its command and arguments (which
/// the kubeconfig's author wrote: every word quoted).
pub fn refresh_command(command: &str, args: &[String]) -> String {
    let program = command.rsplit('/').next().unwrap_or(command);
    let arg_after = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match program {
        "aws" | "aws-iam-authenticator" => match arg_after("--cluster-name")
            .or_else(|| arg_after("-i"))
        {
            Some(cluster) => command_line(["aws", "eks", "update-kubeconfig", "--name", &cluster]),
            None => "aws eks update-kubeconfig --name <cluster>".into(),
        },
        "gke-gcloud-auth-plugin" | "gcloud" => {
            "gcloud container clusters get-credentials <cluster>".into()
        }
        "kubelogin" | "az" => {
            "az aks get-credentials --name <cluster> --resource-group <group>".into()
        }
        other => format!(
            "run {} again (the exec plugin makes the credential)",
            command_line([other])
        ),
    }
}

/// The byte range of the whole line(s) holding `key: value` in a block mapping, when they hold
/// nothing else; `None` when the layout is not that simple (flow mapping, several keys on a
/// line), so that the edit is refused rather than guessed.
fn line_span(text: &str, key: &Node, value: &Node) -> Option<(usize, usize)> {
    let key_start = key.start().byte;
    let line_start = text[..key_start].rfind('\n').map_or(0, |i| i + 1);
    if !text[line_start..key_start].trim().is_empty() {
        return None;
    }
    let Node::Scalar { end, .. } = value else {
        return None;
    };
    let rest = &text[*end..];
    let line_end = rest.find('\n').map_or(text.len(), |i| *end + i + 1);
    let tail = text[*end..line_end].trim();
    if !(tail.is_empty() || tail.starts_with('#')) {
        return None;
    }
    Some((line_start, line_end))
}

/// The expiry of an embedded (`client-certificate-data`) certificate.
fn certificate_not_after(data: &str) -> Option<i64> {
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()?;
    crate::credentials::pem::not_after(&pem).ok()
}

/// Finds what has expired in `text` at `now`, and the text with the expired token fields gone.
pub fn prune(text: &str, now: i64) -> Result<Pruned, PruneError> {
    let root = yaml::parse_document(text)?;
    let mut findings = Vec::new();
    // (user, keys removed from its token's holder mapping).
    let mut removals: Vec<(String, Vec<String>)> = Vec::new();
    let mut spans = Vec::new();
    for (name, user) in users(&root) {
        if let Some(exec) = user.get("exec") {
            let command = exec
                .get("command")
                .and_then(Node::as_str)
                .unwrap_or_default()
                .to_string();
            let args: Vec<String> = match exec.get("args") {
                Some(Node::Seq { items, .. }) => items
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            findings.push(Finding::ExecPlugin {
                user: name.as_str().into(),
                refresh: refresh_command(&command, &args),
                command: command.into(),
            });
        }
        if let Some(not_after) = user
            .get("client-certificate-data")
            .and_then(Node::as_str)
            .and_then(certificate_not_after)
            .filter(|n| *n <= now)
        {
            findings.push(Finding::ExpiredCertificate {
                user: name.as_str().into(),
                not_after,
                fix: if name == "kubernetes-admin" || name == "kubernetes-super-admin" {
                    "kubeadm-recover admin-conf regenerate --update-copies".into()
                } else {
                    "issue the user a new certificate (kubeadm kubeconfig user, or your CA)".into()
                },
            });
        }
        let config = user.get("auth-provider").and_then(|a| a.get("config"));
        // (field, the mapping holding it, the keys that go when it has expired)
        let candidates: [(&str, Option<&Node>, &[&str]); 3] = [
            ("token", Some(user), &["token"]),
            ("auth-provider id-token", config, &["id-token"]),
            (
                "auth-provider access-token",
                config,
                &["access-token", "refresh-token"],
            ),
        ];
        for (field, holder, keys) in candidates {
            let Some(token_text) = holder.and_then(|h| h.get(keys[0])).and_then(Node::as_str)
            else {
                continue;
            };
            let facts = match token::inspect(token_text, now) {
                Ok(facts) => facts,
                Err(_) => {
                    findings.push(Finding::OpaqueToken {
                        user: name.as_str().into(),
                        field: field.into(),
                    });
                    continue;
                }
            };
            if facts.verdict != Verdict::Expired {
                continue;
            }
            let mut removed = Vec::new();
            for k in keys {
                let (Some(v), Some(kn)) = (
                    holder.and_then(|h| h.get(k)),
                    holder.and_then(|h| h.key_node(k)),
                ) else {
                    continue;
                };
                let span = line_span(text, kn, v).ok_or_else(|| {
                    let unset = format!(
                        "users.{name}.user.{}{k}",
                        if field == "token" {
                            ""
                        } else {
                            "auth-provider.config."
                        }
                    );
                    PruneError::NotOneKeyPerLine {
                        line: kn.start().line,
                        user: name.clone(),
                        key: (*k).to_string(),
                        remove: command_line(["kubectl", "config", "unset", &unset]),
                    }
                })?;
                spans.push(span);
                removed.push((*k).to_string());
            }
            findings.push(Finding::ExpiredToken {
                user: name.as_str().into(),
                field: field.into(),
                expired: facts.expires.unwrap_or(now),
                removes: removed.clone(),
            });
            removals.push((name.clone(), removed));
        }
    }
    if spans.is_empty() {
        return Ok(Pruned {
            findings,
            text: None,
        });
    }
    spans.sort();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        out.push_str(&text[at..start]);
        at = end;
    }
    out.push_str(&text[at..]);
    prove(text, &out, &removals)?;
    Ok(Pruned {
        findings,
        text: Some(out),
    })
}

/// Re-reads both texts with the other YAML reader: the only difference must be the removed keys.
fn prove(old: &str, new: &str, removals: &[(String, Vec<String>)]) -> Result<(), PruneError> {
    let mut expected: Value = serde_saphyr::from_str(old).map_err(PruneError::Reread)?;
    let actual: Value = serde_saphyr::from_str(new).map_err(PruneError::ReadBack)?;
    for (name, keys) in removals {
        let Some(user) = expected
            .get_mut("users")
            .and_then(Value::as_array_mut)
            .and_then(|users| {
                users
                    .iter_mut()
                    .find(|u| u.get("name").and_then(Value::as_str) == Some(name))
            })
            .and_then(|u| u.get_mut("user"))
        else {
            continue;
        };
        for key in keys {
            let holder = if key == "token" {
                Some(&mut *user)
            } else {
                user.pointer_mut("/auth-provider/config")
            };
            if let Some(holder) = holder {
                if let Some(map) = holder.as_object_mut() {
                    map.remove(key);
                }
                // A mapping whose last key went is left empty in the text: YAML reads null.
                if holder.as_object().is_some_and(|m| m.is_empty()) {
                    *holder = Value::Null;
                }
            }
        }
    }
    if expected != actual {
        return Err(PruneError::NotProved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const NOW: i64 = 1_800_000_000;

    fn jwt(exp: i64) -> String {
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"RS256"}"#),
            b64(&format!(r#"{{"sub":"u","exp":{exp}}}"#))
        )
    }

    fn kubeconfig() -> String {
        format!(
            "apiVersion: v1\nkind: Config\n# our users\nusers:\n\
             - name: oidc-old\n  user:\n    auth-provider:\n      name: oidc\n      config:\n        client-id: k8s\n        id-token: {old}\n        refresh-token: r1  # keep?\n        idp-issuer-url: https://idp\n\
             - name: oidc-fresh\n  user:\n    auth-provider:\n      name: oidc\n      config:\n        id-token: {fresh}\n        refresh-token: r2\n\
             - name: gcp\n  user:\n    auth-provider:\n      name: gcp\n      config:\n        access-token: {old}\n        refresh-token: r3\n        expiry: \"2020-01-01T00:00:00Z\"\n\
             - name: ci\n  user:\n    token: {old}\n\
             - name: static\n  user:\n    token: not-a-jwt\n\
             - name: eks\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args: [eks, get-token, --cluster-name, prod]\n",
            old = jwt(NOW - 60),
            fresh = jwt(NOW + 3600)
        )
    }

    #[test]
    fn only_the_expired_fields_go_and_every_other_byte_stays() {
        let text = kubeconfig();
        let pruned = prune(&text, NOW).unwrap();
        let new = pruned.text.unwrap();
        let old = jwt(NOW - 60);
        let expected = text
            .replace(
                &format!("        id-token: {old}\n        refresh-token: r1  # keep?\n"),
                "        refresh-token: r1  # keep?\n",
            )
            .replace(
                &format!("        access-token: {old}\n        refresh-token: r3\n"),
                "",
            )
            .replace(&format!("    token: {old}\n"), "");
        assert_eq!(new, expected);
        assert!(pruned.findings.contains(&Finding::ExecPlugin {
            user: "eks".into(),
            command: "aws".into(),
            refresh: "aws eks update-kubeconfig --name prod".into()
        }));
        assert!(pruned.findings.contains(&Finding::OpaqueToken {
            user: "static".into(),
            field: "token".into()
        }));
        let expired: Vec<&str> = pruned
            .findings
            .iter()
            .filter_map(|f| match f {
                Finding::ExpiredToken { user, .. } => Some(user.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(expired, ["oidc-old", "gcp", "ci"]);
    }

    #[test]
    fn nothing_expired_changes_nothing() {
        let pruned = prune(&kubeconfig(), NOW - 3600).unwrap();
        assert!(pruned.text.is_none());
    }

    #[test]
    fn a_flow_style_user_is_refused_with_the_kubectl_command() {
        let text = format!("users:\n- name: ci\n  user: {{token: {}}}\n", jwt(NOW - 60));
        let err = prune(&text, NOW).unwrap_err().to_string();
        assert_eq!(
            err,
            r#"line 3: user "ci"'s token is not laid out one key per line, so it cannot be removed safely; remove it with `kubectl config unset users.ci.user.token`"#
        );
    }
}
