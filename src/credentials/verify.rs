//! Proving a credential works: with it, the apiserver answers `/livez` and a
//! SelfSubjectReview reports the certificate's own user and groups.
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, SelfSubjectReviewStatus};
use serde::Deserialize;

use crate::apiserver::call::{self, Failure, Limits};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    pub username: String,
    pub groups: Vec<String>,
}

/// Why a credential is not proved.
#[derive(Debug)]
pub enum NotVerified {
    /// A signal arrived while the apiserver was being asked: nothing was proved either way.
    Interrupted,
    /// The credential did not prove itself, in these words.
    Failed(String),
}

impl From<String> for NotVerified {
    fn from(why: String) -> Self {
        NotVerified::Failed(why)
    }
}

impl From<&str> for NotVerified {
    fn from(why: &str) -> Self {
        NotVerified::Failed(why.to_string())
    }
}

impl std::fmt::Display for NotVerified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotVerified::Interrupted => write!(f, "interrupted by a signal"),
            NotVerified::Failed(why) => write!(f, "{why}"),
        }
    }
}

/// What a request of the proof came to: a signal is `Interrupted`, anything else the reason.
fn failed(what: &str, e: Failure) -> NotVerified {
    match e {
        Failure::Interrupted => NotVerified::Interrupted,
        Failure::Status { code, message } => {
            NotVerified::Failed(format!("{what}: the apiserver answered {code}: {message}"))
        }
        other => NotVerified::Failed(format!("{what}: {other}")),
    }
}

/// A client exactly as kubectl would make it with this kubeconfig text, bounded in time.
async fn client(kubeconfig_text: &str) -> Result<kube::Client, NotVerified> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig_text)
        .map_err(|e| NotVerified::Failed(format!("the kubeconfig does not load: {e}")))?;
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| NotVerified::Failed(format!("the kubeconfig does not load: {e}")))?;
    config.connect_timeout = Some(Duration::from_secs(3));
    config.read_timeout = Some(Duration::from_secs(5));
    kube::Client::try_from(config).map_err(|e| NotVerified::Failed(e.to_string()))
}

/// Who the apiserver says the client is (SelfSubjectReview, GA in 1.28, beta in 1.27, alpha
/// in 1.26: tried in that order, as kubectl does; the status has the same shape in each).
/// `None`: this apiserver has no SelfSubjectReview.
async fn review(client: &kube::Client) -> Result<Option<Verified>, Failure> {
    #[derive(Deserialize)]
    struct Review {
        status: Option<SelfSubjectReviewStatus>,
    }
    for version in ["v1", "v1beta1", "v1alpha1"] {
        let mut body = serde_json::to_value(SelfSubjectReview::default()).expect("serializable");
        body["apiVersion"] = format!("authentication.k8s.io/{version}").into();
        let request = http::Request::post(format!(
            "/apis/authentication.k8s.io/{version}/selfsubjectreviews"
        ))
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .expect("request");
        match call::json::<Review>(client, request, Limits::VERIFY).await {
            Ok(r) => {
                let info = r.status.and_then(|s| s.user_info).unwrap_or_default();
                return Ok(Some(Verified {
                    username: info.username.unwrap_or_default(),
                    groups: info.groups.unwrap_or_default(),
                }));
            }
            Err(Failure::Status { code: 404, .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Why the apiserver did not say who a kubeconfig is.
#[derive(Debug)]
pub enum WhoAmIError {
    /// The kubeconfig does not make a client.
    Config(String),
    /// The request failed: refused, timed out, a status.
    Call(Failure),
    /// An apiserver before 1.26.
    NoReview,
}

/// `kubectl auth whoami` with this kubeconfig text: who the apiserver takes it for, bounded in
/// time, a signal ending it at once.
pub fn whoami(kubeconfig_text: &str) -> Result<Verified, WhoAmIError> {
    crate::apiserver::runtime().block_on(async {
        let client = client(kubeconfig_text)
            .await
            .map_err(|e| WhoAmIError::Config(e.to_string()))?;
        review(&client)
            .await
            .map_err(WhoAmIError::Call)?
            .ok_or(WhoAmIError::NoReview)
    })
}

/// Connects exactly as kubectl would with this kubeconfig text. Every request is bounded
/// (`Limits::VERIFY`) and a signal ends the proof at once.
pub fn verify(
    kubeconfig_text: &str,
    subject: &super::issue::Subject,
) -> Result<Verified, NotVerified> {
    crate::apiserver::runtime().block_on(async {
        let client = client(kubeconfig_text).await?;
        let livez = call::text(
            &client,
            http::Request::get("/livez").body(Vec::new()).expect("request"),
            Limits::VERIFY,
        )
        .await
        .map_err(|e| failed("/livez", e))?;
        if livez.trim() != "ok" {
            return Err(format!("/livez said {livez:?}").into());
        }
        let Verified { username, groups } = review(&client)
            .await
            .map_err(|e| failed("SelfSubjectReview", e))?
            .ok_or("this apiserver has no SelfSubjectReview API (Kubernetes before 1.26): check the credential by hand, or use --no-verify")?;
        if username != subject.common_name {
            return Err(format!(
                "the apiserver sees user {username:?}, the certificate says {:?}",
                subject.common_name
            )
            .into());
        }
        if let Some(missing) = subject.organizations.iter().find(|o| !groups.contains(o)) {
            return Err(format!(
                "the apiserver does not report group {missing:?} (it reports {groups:?})"
            )
            .into());
        }
        Ok(Verified { username, groups })
    })
}
