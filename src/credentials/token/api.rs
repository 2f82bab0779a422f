//! Tokens and the apiserver, with an admin credential (the node's admin.conf unless another
//! kubeconfig is given): whether it accepts a token (TokenReview), and a new short-lived token
//! for a service account (TokenRequest). Neither changes the node.
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::{input, relative};
use crate::apiserver::admin::{Admin, TokenRequest};
use crate::error::{Error, Result};
use crate::node::NodeLayout;
use crate::runtime::clock::{after, now_unix, parse_rfc3339};

/// Connects with `kubeconfig` (a path on the node), else the node's admin.conf.
pub fn connect(layout: &NodeLayout, kubeconfig: Option<&Path>) -> Result<Admin> {
    let path: PathBuf = match kubeconfig {
        Some(given) => layout.given_path(given)?,
        None => layout.admin_conf(),
    };
    Admin::connect(layout, &path)
}

/// The apiserver's answer to a TokenReview.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub authenticated: bool,
    pub username: Option<String>,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub audiences: Vec<String>,
    pub error: Option<String>,
}

/// Asks the apiserver whether it accepts the token in `file` (or stdin, `-`), for `audiences`
/// (empty: its own).
pub fn review(
    layout: &NodeLayout,
    kubeconfig: Option<&Path>,
    file: &Path,
    audiences: &[String],
) -> Result<Review> {
    let secret = input::read(file)?;
    if secret.expose_secret().is_empty() {
        return Err(Error::Usage(format!(
            "{}: the token is empty",
            file.display()
        )));
    }
    let admin = connect(layout, kubeconfig)?;
    let body = TokenReview {
        spec: TokenReviewSpec {
            token: secret.expose_secret().to_string(),
            audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
        },
        ..TokenReview::default()
    };
    let body = serde_json::to_value(&body).expect("a TokenReview serializes");
    let answer: TokenReview = admin
        .post("/apis/authentication.k8s.io/v1/tokenreviews", &body)
        .map_err(|e| Error::Failed(format!("TokenReview: {e}")))?;
    let status = answer.status.unwrap_or_default();
    let user = status.user.unwrap_or_default();
    Ok(Review {
        authenticated: status.authenticated.unwrap_or(false),
        username: user.username,
        uid: user.uid,
        groups: user.groups.unwrap_or_default(),
        audiences: status.audiences.unwrap_or_default(),
        error: status.error,
    })
}

/// A token the apiserver issued, and how its lifetime compares with the one asked for.
pub struct Granted {
    pub token: SecretString,
    /// As the apiserver states it.
    pub expiration_timestamp: String,
    pub requested_seconds: Option<u64>,
    /// From the request to the stated expiry; 0 when that does not parse.
    pub granted_seconds: i64,
    /// "in 1h": when it expires, from the request.
    pub expires_in: String,
    /// Set when the apiserver granted more than a minute less than asked for.
    pub shortened: Option<Shortened>,
}

/// The lifetime asked for and the one granted, as spans ("1h", "10m").
pub struct Shortened {
    pub asked: String,
    pub granted: String,
}

/// Asks for a token (`kubectl create token`); a refusal is `Failed` in the apiserver's words.
pub fn create(
    layout: &NodeLayout,
    kubeconfig: Option<&Path>,
    request: &TokenRequest,
) -> Result<Granted> {
    let admin = connect(layout, kubeconfig)?;
    let now = now_unix();
    let issued = admin.request_token(request)?;
    let expiration = issued.expiration_timestamp;
    // The apiserver's answer: a time that does not parse or wraps around counts as none.
    let expires = parse_rfc3339(&expiration);
    let granted = expires.and_then(|e| e.checked_sub(now)).unwrap_or(0);
    let requested = request.duration.map(|d| d.as_secs());
    let granted_in = relative(now.saturating_add(granted), now);
    let mut shortened = None;
    // A minute of slack for the round trip and clock skew between here and the apiserver.
    if let (Some(asked), Some(duration)) = (requested, request.duration)
        && i64::try_from(asked).is_ok_and(|asked| granted.saturating_add(60) < asked)
    {
        shortened = Some(Shortened {
            asked: relative(after(now, duration).unwrap_or(i64::MAX), now)
                .trim_start_matches("in ")
                .to_string(),
            granted: granted_in.trim_start_matches("in ").to_string(),
        });
    }
    Ok(Granted {
        token: issued.token,
        expiration_timestamp: expiration,
        requested_seconds: requested,
        granted_seconds: granted,
        expires_in: granted_in,
        shortened,
    })
}
