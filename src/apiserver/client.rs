//! Talking to the apiserver over TLS verified with the cluster CA (kube, rustls): health probes
//! as the kubelet's probes do them, authenticated with the admin client certificate only where
//! anonymous access is refused.
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::config::AuthInfo;

use super::call::{self, Failure, Limits};
use crate::node::NodeLayout;

/// Where the kubelet's probes reach the apiserver (the manifest's probe host and port).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("https://[{}]:{}", self.host, self.port)
        } else {
            format!("https://{}:{}", self.host, self.port)
        }
    }
}

pub struct ApiClient {
    anonymous: kube::Client,
    admin: Option<kube::Client>,
    limits: Limits,
}

/// Why a probe has no answer: the same as any request's (`call::Failure`).
pub type ProbeError = Failure;

/// Why no client could be made for an apiserver.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}: {source}", path.display())]
    CaUnreadable {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: {source}")]
    BadEndpoint {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

fn config(endpoint: &Endpoint, ca_pem: &str, auth: AuthInfo) -> Result<kube::Config, ClientError> {
    let uri = endpoint
        .url()
        .parse()
        .map_err(|source| ClientError::BadEndpoint {
            url: endpoint.url(),
            source,
        })?;
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(crate::credentials::pem::certificates(ca_pem));
    config.connect_timeout = Some(Duration::from_secs(1));
    config.read_timeout = Some(Duration::from_secs(2));
    config.write_timeout = Some(Duration::from_secs(2));
    config.default_retry = false;
    config.auth_info = auth;
    Ok(config)
}

/// A failing health endpoint answers with every check, one per line (`[+]ping ok`,
/// `[-]poststarthook/rbac/bootstrap-roles failed: reason withheld`, `livez check failed`): one
/// line naming the failed checks is what a person waiting for a restart can read.
pub fn failed_checks(body: &str) -> String {
    let failed: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("[-]"))
        .map(|l| l.split(' ').next().unwrap_or(l))
        .collect();
    let Some(verdict) = body.lines().rev().find(|l| !l.trim().is_empty()) else {
        return body.to_string();
    };
    match failed.len() {
        0 => body.to_string(),
        1..=3 => format!("{}: {}", verdict.trim(), failed.join(", ")),
        n => format!(
            "{}: {} and {} more",
            verdict.trim(),
            failed[..3].join(", "),
            n - 3
        ),
    }
}

impl ApiClient {
    pub fn new(layout: &NodeLayout, endpoint: &Endpoint) -> Result<Self, ClientError> {
        let path = layout.cluster_ca();
        let ca_pem = layout
            .fs()
            .read_to_string(&path)
            .map_err(|source| ClientError::CaUnreadable { path, source })?;
        let anonymous = kube::Client::try_from(config(endpoint, &ca_pem, AuthInfo::default())?)?;
        let admin =
            crate::credentials::kubeconfig::client_credentials(layout, &layout.admin_conf())
                .map(|(cert, key)| AuthInfo {
                    client_certificate_data: Some(cert),
                    client_key_data: Some(key),
                    ..AuthInfo::default()
                })
                .and_then(|auth| config(endpoint, &ca_pem, auth).ok())
                .and_then(|c| kube::Client::try_from(c).ok());
        Ok(ApiClient {
            anonymous,
            admin,
            limits: Limits::PROBE,
        })
    }

    /// Requests that a signal does not cut short (a rollback proving the old apiserver).
    pub fn finishing(self) -> Self {
        ApiClient {
            limits: self.limits.finishing(),
            ..self
        }
    }

    async fn get_with(&self, client: &kube::Client, path: &str) -> Result<String, ProbeError> {
        let request = http::Request::get(path)
            .body(Vec::new())
            .expect("valid request");
        call::text(client, request, self.limits).await
    }

    /// GET `path`, anonymously first; with the admin certificate when that is refused.
    pub async fn get(&self, path: &str) -> Result<String, ProbeError> {
        match self.get_with(&self.anonymous, path).await {
            Err(Failure::Status {
                code: 401 | 403,
                message,
            }) => match &self.admin {
                Some(admin) => self.get_with(admin, path).await,
                None => Err(Failure::Status { code: 401, message }),
            },
            other => other,
        }
    }

    /// `/livez` then `/readyz`, both "ok".
    pub async fn healthy(&self) -> Result<(), ProbeError> {
        self.check(&["/livez", "/readyz"]).await
    }

    /// `/readyz` alone: whether another apiserver of the fleet serves.
    pub async fn ready(&self) -> Result<(), ProbeError> {
        self.check(&["/readyz"]).await
    }

    async fn check(&self, paths: &[&str]) -> Result<(), ProbeError> {
        for &path in paths {
            let body = self.get(path).await.map_err(|e| match e {
                Failure::Status { code, message } => Failure::Status {
                    code,
                    message: failed_checks(&message),
                },
                other => other,
            })?;
            if body.trim() != "ok" {
                return Err(Failure::Status {
                    code: 200,
                    message: format!("{path} said {body:?}"),
                });
            }
        }
        Ok(())
    }

    /// The mirror pod's `kubernetes.io/config.hash`: the kube-apiserver pod in kube-system
    /// whose advertise-address annotation is this node's.
    pub async fn mirror_config_hash(&self, advertise_endpoint: Option<&str>) -> Option<String> {
        let list = self
            .get("/api/v1/namespaces/kube-system/pods?labelSelector=component%3Dkube-apiserver")
            .await
            .ok()?;
        let list: k8s_openapi::List<Pod> = serde_json::from_str(&list).ok()?;
        let key = "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint";
        let annotations = |pod: &Pod| pod.metadata.annotations.clone().unwrap_or_default();
        list.items
            .iter()
            .find(|pod| {
                advertise_endpoint
                    .is_none_or(|ep| annotations(pod).get(key).map(String::as_str) == Some(ep))
            })
            .and_then(|pod| annotations(pod).remove("kubernetes.io/config.hash"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failing_health_body_is_reduced_to_the_failed_checks() {
        let body = "[+]ping ok\n[+]log ok\n[-]poststarthook/rbac/bootstrap-roles failed: reason withheld\n[-]poststarthook/bootstrap-controller failed: reason withheld\nlivez check failed";
        assert_eq!(
            super::failed_checks(body),
            "livez check failed: poststarthook/rbac/bootstrap-roles, poststarthook/bootstrap-controller"
        );
        let many: String = (0..5)
            .map(|i| format!("[-]c{i} failed: reason withheld\n"))
            .collect::<String>()
            + "readyz check failed\n";
        assert_eq!(
            super::failed_checks(&many),
            "readyz check failed: c0, c1, c2 and 2 more"
        );
        assert_eq!(super::failed_checks("Unauthorized"), "Unauthorized");
    }
}
