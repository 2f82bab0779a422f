//! The one way every request reaches the apiserver: an overall deadline (a per-read timeout is
//! not one: a server that trickles a byte a second never trips it), a cap on the body (an
//! endless answer must not eat the node's memory), and, while a change waits on the answer, the
//! interrupt flag: a signal ends the request within a fraction of a second.
use std::future::Future;
use std::time::Duration;

use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

/// How often a request in flight looks at the interrupt flag.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// What a signal does to a request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSignal {
    /// Give up at once (a change being proved, a read-only command): the caller rolls back.
    Stop,
    /// Carry on to the deadline: a rollback proving the old apiserver must not be cut short by
    /// the very signal that started it.
    Finish,
}

/// The bounds of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From sending the request to the last byte of the answer.
    pub deadline: Duration,
    /// The largest answer read, in bytes.
    pub max_body: usize,
    pub on_signal: OnSignal,
}

impl Limits {
    /// Health probes, `/metrics`, the mirror pod: what the tool asks while it watches a restart.
    pub const PROBE: Limits = Limits {
        deadline: Duration::from_secs(5),
        max_body: 64 << 20,
        on_signal: OnSignal::Stop,
    };
    /// Proving a credential: `/livez` and a SelfSubjectReview, both small.
    pub const VERIFY: Limits = Limits {
        deadline: Duration::from_secs(10),
        max_body: 1 << 20,
        on_signal: OnSignal::Stop,
    };
    /// The migration toolkit's calls as kubectl makes them (a list of every pod can be large).
    pub const ADMIN: Limits = Limits {
        deadline: Duration::from_secs(30),
        max_body: 256 << 20,
        on_signal: OnSignal::Stop,
    };

    pub fn finishing(self) -> Limits {
        Limits {
            on_signal: OnSignal::Finish,
            ..self
        }
    }
}

/// Why a request has no answer to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The apiserver answered with an error status (its Status message, or the text).
    Status { code: u16, message: String },
    /// Nothing usable answered: connection refused, TLS failure, a broken answer.
    Unreachable(String),
    /// No complete answer within the deadline.
    TimedOut(Duration),
    /// The answer was larger than the cap.
    TooLarge(usize),
    /// A signal arrived while waiting.
    Interrupted,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status { code, message } => write!(f, "HTTP {code}: {message}"),
            Failure::Unreachable(e) => write!(f, "unreachable: {e}"),
            Failure::TimedOut(d) => {
                write!(f, "the apiserver did not answer within {}", seconds(*d))
            }
            Failure::TooLarge(n) => write!(
                f,
                "the apiserver's answer is larger than {} MiB, more than is ever needed: not read",
                n >> 20
            ),
            Failure::Interrupted => write!(f, "interrupted by a signal"),
        }
    }
}

/// "5s", "1.5s".
pub fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Races `work` against the deadline and, unless `on_signal` is `Finish`, the interrupt flag.
pub async fn bounded<T>(
    limits: Limits,
    work: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    let signalled = async {
        if limits.on_signal == OnSignal::Finish {
            return std::future::pending().await;
        }
        while !crate::runtime::interrupt::interrupted() {
            tokio::time::sleep(SIGNAL_POLL).await;
        }
    };
    tokio::select! {
        result = work => result,
        () = tokio::time::sleep(limits.deadline) => Err(Failure::TimedOut(limits.deadline)),
        () = signalled => Err(Failure::Interrupted),
    }
}

/// Runs `future` to completion on `runtime` within `limits` (for the synchronous callers).
pub fn block_on<T>(
    runtime: &tokio::runtime::Runtime,
    limits: Limits,
    work: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    runtime.block_on(bounded(limits, work))
}

fn unreachable(e: impl std::fmt::Display) -> Failure {
    Failure::Unreachable(e.to_string())
}

/// Sends `request` and reads the whole answer as text, within `limits`. An error status is
/// `Failure::Status` with the apiserver's own message.
pub async fn text(
    client: &kube::Client,
    request: http::Request<Vec<u8>>,
    limits: Limits,
) -> Result<String, Failure> {
    bounded(limits, async {
        let response = client
            .send(request.map(kube::client::Body::from))
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let body = Limited::new(response.into_body(), limits.max_body)
            .collect()
            .await
            .map_err(|e| match e.downcast_ref::<LengthLimitError>() {
                Some(_) => Failure::TooLarge(limits.max_body),
                None => unreachable(e),
            })?
            .to_bytes();
        let text = String::from_utf8(body.to_vec())
            .map_err(|_| unreachable("the answer is not UTF-8 text"))?;
        if status.is_client_error() || status.is_server_error() {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| text.trim().to_string());
            return Err(Failure::Status {
                code: status.as_u16(),
                message,
            });
        }
        Ok(text)
    })
    .await
}

/// Like `text`, decoded from JSON.
pub async fn json<T: DeserializeOwned>(
    client: &kube::Client,
    request: http::Request<Vec<u8>>,
    limits: Limits,
) -> Result<T, Failure> {
    let text = text(client, request, limits).await?;
    serde_json::from_str(&text).map_err(|e| unreachable(format!("the answer does not parse: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ms: u64) -> Limits {
        Limits {
            deadline: Duration::from_millis(ms),
            max_body: 1,
            on_signal: OnSignal::Stop,
        }
    }

    #[test]
    fn a_call_that_never_ends_times_out_with_its_deadline() {
        let runtime = super::super::runtime();
        let never = std::future::pending::<Result<(), Failure>>();
        assert_eq!(
            block_on(&runtime, limits(100), never),
            Err(Failure::TimedOut(Duration::from_millis(100)))
        );
        assert_eq!(
            Failure::TimedOut(Duration::from_secs(5)).to_string(),
            "the apiserver did not answer within 5s"
        );
    }

    #[test]
    fn a_call_that_answers_in_time_gives_its_answer() {
        let runtime = super::super::runtime();
        assert_eq!(block_on(&runtime, limits(10_000), async { Ok(7) }), Ok(7));
    }
}
