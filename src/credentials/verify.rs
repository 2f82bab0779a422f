//! Proving a credential works: with it, the apiserver answers `/livez` and a
//! SelfSubjectReview reports the certificate's own user and groups.
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, SelfSubjectReviewStatus};
use serde::Deserialize;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    pub username: String,
    pub groups: Vec<String>,
}

/// Connects exactly as kubectl would with this kubeconfig text.
pub fn verify(kubeconfig_text: &str, subject: &super::issue::Subject) -> Result<Verified, String> {
    crate::apiserver::runtime().block_on(async {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig_text).map_err(|e| format!("the kubeconfig does not load: {e}"))?;
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| format!("the kubeconfig does not load: {e}"))?;
        config.connect_timeout = Some(Duration::from_secs(3));
        config.read_timeout = Some(Duration::from_secs(5));
        let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
        let livez = client
            .request_text(http::Request::get("/livez").body(Vec::new()).expect("request"))
            .await
            .map_err(|e| format!("/livez: {e}"))?;
        if livez.trim() != "ok" {
            return Err(format!("/livez said {livez:?}"));
        }
        // GA in 1.28, beta in 1.27, alpha in 1.26: try them in that order, as kubectl does.
        // The review's status has the same shape in every version.
        #[derive(Deserialize)]
        struct Review {
            status: Option<SelfSubjectReviewStatus>,
        }
        let mut review: Option<Review> = None;
        for version in ["v1", "v1beta1", "v1alpha1"] {
            let mut body = serde_json::to_value(SelfSubjectReview::default()).expect("serializable");
            body["apiVersion"] = format!("authentication.k8s.io/{version}").into();
            let request = http::Request::post(format!("/apis/authentication.k8s.io/{version}/selfsubjectreviews"))
                .header("content-type", "application/json")
                .body(body.to_string().into_bytes())
                .expect("request");
            match client.request::<Review>(request).await {
                Ok(r) => {
                    review = Some(r);
                    break;
                }
                Err(kube::Error::Api(status)) if status.code == 404 => continue,
                Err(e) => return Err(format!("SelfSubjectReview: {e}")),
            }
        }
        let review = review.ok_or("this apiserver has no SelfSubjectReview API (Kubernetes before 1.26): check the credential by hand, or use --no-verify")?;
        let info = review.status.and_then(|s| s.user_info).unwrap_or_default();
        let username = info.username.unwrap_or_default();
        let groups = info.groups.unwrap_or_default();
        if username != subject.common_name {
            return Err(format!("the apiserver sees user {username:?}, the certificate says {:?}", subject.common_name));
        }
        if let Some(missing) = subject.organizations.iter().find(|o| !groups.contains(o)) {
            return Err(format!("the apiserver does not report group {missing:?} (it reports {groups:?})"));
        }
        Ok(Verified { username, groups })
    })
}
