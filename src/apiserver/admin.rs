//! The apiserver as kubectl reaches it with a kubeconfig (admin.conf by default): for the API
//! calls of the migration toolkit (TokenReview, TokenRequest, listing what uses old tokens).
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::call::{self, Failure, Limits};
use crate::error::{Error, Result};

pub struct Admin {
    /// The client's background worker lives on this runtime: every call runs on it.
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
}

/// Why a call failed: the apiserver's own words when it answered.
#[derive(Debug)]
pub enum CallError {
    Status {
        code: u16,
        message: String,
    },
    Unreachable(String),
    /// No answer within the deadline, one too large to read, or a signal.
    Stopped(Failure),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status { code, message } => {
                write!(f, "the apiserver answered {code}: {message}")
            }
            CallError::Unreachable(e) => write!(f, "the apiserver did not answer: {e}"),
            CallError::Stopped(why) => write!(f, "{why}"),
        }
    }
}

fn call_error(e: Failure) -> CallError {
    match e {
        Failure::Status { code, message } => CallError::Status { code, message },
        Failure::Unreachable(e) => CallError::Unreachable(e),
        other => CallError::Stopped(other),
    }
}

/// Makes a kubeconfig safe for root to load: the client library would run a credential plugin
/// (`exec`, an `auth-provider`'s command) as root, and read the files it names (`client-key`,
/// `certificate-authority`, `tokenFile`) on the host, past `--root` and past a user's links.
/// A plugin is refused; each file is read through `node::fs` (inside the root, no user's link
/// followed) and put in the kubeconfig as data.
fn confine(
    layout: &crate::node::NodeLayout,
    path: &Path,
    kubeconfig: &mut kube::config::Kubeconfig,
) -> Result<()> {
    use base64::Engine;
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let read = |named: &str| -> Result<Vec<u8>> {
        let file = if Path::new(named).is_absolute() {
            layout.path(named)
        } else {
            dir.join(named)
        };
        layout.fs().read(&file).map_err(|e| {
            Error::Refused(format!(
                "{}: the file it names, {named}, cannot be used: {e}",
                path.display()
            ))
        })
    };
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    for user in &mut kubeconfig.auth_infos {
        let Some(auth) = user.auth_info.as_mut() else {
            continue;
        };
        if auth.exec.is_some() || auth.auth_provider.is_some() {
            return Err(Error::Refused(format!(
                "{}: user {} gets its credential from a program (exec or auth-provider); root never runs a program a kubeconfig names.\n  what to do: get a token as the user who owns that kubeconfig (its plugin, or kubectl create token) and give a kubeconfig that holds it, or use admin.conf",
                path.display(),
                crate::ui::escape(&user.name)
            )));
        }
        if let Some(named) = auth.client_certificate.take() {
            auth.client_certificate_data = Some(b64(read(&named)?));
        }
        if let Some(named) = auth.client_key.take() {
            auth.client_key_data = Some(secrecy::SecretString::from(b64(read(&named)?)));
        }
        if let Some(named) = auth.token_file.take() {
            let token = String::from_utf8_lossy(&read(&named)?).trim().to_string();
            auth.token = Some(secrecy::SecretString::from(token));
        }
    }
    for cluster in &mut kubeconfig.clusters {
        if let Some(c) = cluster.cluster.as_mut()
            && let Some(named) = c.certificate_authority.take()
        {
            c.certificate_authority_data = Some(b64(read(&named)?));
        }
    }
    Ok(())
}

impl Admin {
    /// Connects exactly as kubectl would with the kubeconfig at `path`.
    pub fn connect(layout: &crate::node::NodeLayout, path: &Path) -> Result<Admin> {
        let text = layout.fs().read_to_string(path).map_err(|e| {
            Error::Refused(format!(
                "{}: {e}\n  what to do: give a working kubeconfig with --kubeconfig, or regenerate admin.conf (`kubeadm-recover admin-conf regenerate`)",
                path.display()
            ))
        })?;
        let bad = |e: String| {
            Error::Refused(format!(
                "{}: the kubeconfig does not load: {e}",
                path.display()
            ))
        };
        let mut kubeconfig =
            kube::config::Kubeconfig::from_yaml(&text).map_err(|e| bad(e.to_string()))?;
        confine(layout, path, &mut kubeconfig)?;
        let runtime = super::runtime();
        let mut config = runtime
            .block_on(kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            ))
            .map_err(|e| bad(e.to_string()))?;
        config.connect_timeout = Some(Duration::from_secs(3));
        config.read_timeout = Some(Duration::from_secs(10));
        let client = runtime
            .block_on(async { kube::Client::try_from(config) })
            .map_err(|e| bad(e.to_string()))?;
        Ok(Admin { runtime, client })
    }

    fn call<T: DeserializeOwned>(&self, request: http::Request<Vec<u8>>) -> Result<T, CallError> {
        self.runtime
            .block_on(call::json::<T>(&self.client, request, Limits::ADMIN))
            .map_err(call_error)
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        self.call(http::Request::get(path).body(Vec::new()).expect("request"))
    }

    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, CallError> {
        self.call(
            http::Request::post(path)
                .header("content-type", "application/json")
                .body(body.to_string().into_bytes())
                .expect("request"),
        )
    }

    pub fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, CallError> {
        self.call(
            http::Request::put(path)
                .header("content-type", "application/json")
                .body(body.to_string().into_bytes())
                .expect("request"),
        )
    }

    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        self.call(
            http::Request::delete(path)
                .body(Vec::new())
                .expect("request"),
        )
    }
}

/// A TokenRequest for a service account (`kubectl create token`).
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub namespace: String,
    pub service_account: String,
    /// None: the apiserver's default lifetime.
    pub duration: Option<Duration>,
    /// Empty: the apiserver's own audiences.
    pub audiences: Vec<String>,
    /// Bind the token to this pod in the same namespace.
    pub bound_pod: Option<String>,
}

/// What the apiserver issued: the token (never printed but by `token create`) and its expiry as
/// the apiserver states it.
pub struct IssuedToken {
    pub token: secrecy::SecretString,
    pub expiration_timestamp: String,
}

impl Admin {
    /// Asks for a token; a refusal is `Failed` in the apiserver's words.
    pub fn request_token(&self, request: &TokenRequest) -> Result<IssuedToken> {
        let mut spec = serde_json::json!({});
        if let Some(duration) = request.duration {
            spec["expirationSeconds"] = duration.as_secs().into();
        }
        if !request.audiences.is_empty() {
            spec["audiences"] = serde_json::json!(request.audiences);
        }
        if let Some(pod) = &request.bound_pod {
            spec["boundObjectRef"] =
                serde_json::json!({"kind": "Pod", "apiVersion": "v1", "name": pod});
        }
        let body = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
        let what = format!(
            "TokenRequest for {}/{}",
            request.namespace, request.service_account
        );
        let answer: serde_json::Value = self
            .post(
                &format!(
                    "/api/v1/namespaces/{}/serviceaccounts/{}/token",
                    request.namespace, request.service_account
                ),
                &body,
            )
            .map_err(|e| Error::Failed(format!("{what}: {e}")))?;
        let token = answer["status"]["token"]
            .as_str()
            .ok_or_else(|| Error::Failed(format!("{what}: the answer has no token")))?;
        Ok(IssuedToken {
            token: secrecy::SecretString::from(token.to_string()),
            expiration_timestamp: answer["status"]["expirationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
    }
}
