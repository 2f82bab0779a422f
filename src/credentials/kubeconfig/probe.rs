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

/// The server as kubectl would meet it: the TLS handshake, then who it says we are.
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
    match served::presented(&host, port, None) {
        Err(LookError::Refused) => {
            analysis
                .problems
                .push(Problem::ConnectionRefused { server });
            return Ok(None);
        }
        Err(LookError::TimedOut) => {
            analysis.problems.push(Problem::TimedOut { server });
            return Ok(None);
        }
        Err(LookError::Other(error)) => {
            analysis.problems.push(Problem::Unreachable {
                server,
                error: error.into(),
            });
            return Ok(None);
        }
        Ok(der) if !target.insecure => {
            match check::server_certificate(&der, target.ca_pem.as_deref(), now) {
                Some(ServerCert::Expired { not_after }) => {
                    analysis
                        .problems
                        .push(Problem::ServerCertificateExpired { server, not_after });
                    return Ok(None);
                }
                Some(ServerCert::UnknownAuthority) => {
                    analysis.problems.push(Problem::UnknownAuthority { server });
                    return Ok(None);
                }
                None => {}
            }
        }
        Ok(_) => {}
    }
    if !analysis.problems.is_empty() {
        return Ok(None);
    }
    let Some(text) = probe_kubeconfig(target) else {
        return Ok(None);
    };
    match whoami(&text) {
        Ok(identity) => Ok(Some(identity)),
        Err(WhoAmIError::Call(Failure::Interrupted)) => Err(Error::InterruptedBeforeChange),
        Err(WhoAmIError::Call(Failure::Status { code, message })) => {
            analysis.problems.push(Problem::Rejected {
                server,
                status: code,
                message: message.into(),
            });
            Ok(None)
        }
        Err(WhoAmIError::Call(Failure::TimedOut(_))) => {
            analysis.problems.push(Problem::TimedOut { server });
            Ok(None)
        }
        Err(WhoAmIError::Call(other)) => {
            analysis.problems.push(Problem::Unreachable {
                server,
                error: other.to_string().into(),
            });
            Ok(None)
        }
        Err(WhoAmIError::Config(e)) => {
            analysis.problems.push(Problem::InvalidConfiguration {
                said: format!("error: {e}"),
                reason: e.into(),
                fix: "fix the kubeconfig's cluster and user entries".into(),
            });
            Ok(None)
        }
        Err(WhoAmIError::NoReview) => Ok(None),
    }
}
