//! The server as kubectl would meet it, bounded in time: one TLS handshake (the server's
//! certificate against the kubeconfig's CA: expired, another CA's), then a SelfSubjectReview
//! with the kubeconfig's own credential (who the cluster thinks you are). What stops kubectl is
//! added to the analysis as a problem.
use crate::apiserver::call::Failure;
use crate::certs::served::{self, LookError};
use crate::credentials::kubeconfig::check::{
    self, Analysis, Problem, ServerCert, Target, host_port, probe_kubeconfig,
};
use crate::credentials::verify::{Verified, WhoAmIError, whoami};
use crate::error::{Error, Result};
use crate::ui::Untrusted;

/// The server as kubectl would meet it: first the client library with the kubeconfig's own
/// credential (a SelfSubjectReview: who the cluster thinks you are); only when that does not
/// answer, or cannot be asked (a credential already known to fail, a plugin), one TLS look to
/// say why — connection refused, timed out, the server's certificate expired or of another CA.
/// The look never overrules an answer: it sends no SNI and knows no proxy, so a server it
/// cannot judge is one the client library reached.
pub fn look_at_server(
    target: &Target,
    now: i64,
    analysis: &mut Analysis,
) -> Result<Option<Verified>> {
    let server: Untrusted = target.server.as_str().into();
    let Some((host, port)) = host_port(&target.server) else {
        analysis.problems.push(Problem::InvalidConfiguration {
            reason: format!("the server {:?} is not a URL", target.server).into(),
            said: format!("error: parse {:?}: invalid URL", target.server),
            fix: "set the cluster's server to https://HOST:PORT".into(),
        });
        return Ok(None);
    };
    let asked = analysis
        .problems
        .is_empty()
        .then(|| probe_kubeconfig(target))
        .flatten()
        .map(|text| whoami(&text));
    let failure = match asked {
        Some(Ok(identity)) => return Ok(Some(identity)),
        Some(Err(WhoAmIError::Call(Failure::Interrupted))) => {
            return Err(Error::InterruptedBeforeChange);
        }
        Some(Err(WhoAmIError::Call(Failure::Status { code, message }))) => {
            analysis.problems.push(Problem::Rejected {
                server,
                status: code,
                message: message.into(),
            });
            return Ok(None);
        }
        Some(Err(WhoAmIError::Config(e))) => {
            analysis.problems.push(Problem::InvalidConfiguration {
                said: format!("error: {e}"),
                reason: e.into(),
                fix: "fix the kubeconfig's cluster and user entries".into(),
            });
            return Ok(None);
        }
        Some(Err(WhoAmIError::NoReview)) => return Ok(None),
        Some(Err(WhoAmIError::Call(other))) => Some(other),
        None => None,
    };
    if let Some(why) = explain(&host, port, target, now, &server) {
        analysis.problems.push(why);
    } else if let Some(failure) = failure {
        analysis.problems.push(match failure {
            Failure::TimedOut(_) => Problem::TimedOut { server },
            other => Problem::Unreachable {
                server,
                error: other.to_string().into(),
            },
        });
    }
    Ok(None)
}

/// What one TLS handshake shows is wrong with the server (`None`: nothing it can tell, or a
/// proxy in the way, which the look does not go through).
fn explain(
    host: &str,
    port: u16,
    target: &Target,
    now: i64,
    server: &Untrusted,
) -> Option<Problem> {
    let proxied = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|p| !p.is_empty()));
    if proxied {
        return None;
    }
    let server = server.clone();
    match served::presented(host, port, None) {
        Err(LookError::Refused) => Some(Problem::ConnectionRefused { server }),
        Err(LookError::TimedOut) => Some(Problem::TimedOut { server }),
        Err(LookError::Other(error)) => Some(Problem::Unreachable {
            server,
            error: error.into(),
        }),
        Ok(_) if target.insecure => None,
        Ok(der) => match check::server_certificate(&der, target.ca_pem.as_deref(), now)? {
            ServerCert::Expired { not_after } => {
                Some(Problem::ServerCertificateExpired { server, not_after })
            }
            ServerCert::UnknownAuthority => Some(Problem::UnknownAuthority { server }),
        },
    }
}
