//! `token inspect|review|create`: the troubleshooting notes' token steps as commands. None of
//! them changes the node; none prints a token except `create`, whose output is the token.
use std::path::Path;

use secrecy::ExposeSecret;
use serde::Serialize;

use super::Context;
use crate::apiserver::admin::TokenRequest;
use crate::cli::{ApiOptions, InspectOptions, TokenCommand};
use crate::credentials::token::api::Review;
use crate::credentials::token::input::{self, Inspected, Source};
use crate::credentials::token::{self, TokenFacts, Verdict, relative};
use crate::error::{Error, ExitStatus, Result};
use crate::runtime::clock::{now_unix, rfc3339};
use crate::ui::{Report, Untrusted, escape};

pub fn run(ctx: &Context, action: TokenCommand) -> Result<ExitStatus> {
    match action {
        TokenCommand::Inspect(options) => inspect(ctx, &options).map(|()| ExitStatus::Success),
        TokenCommand::Review {
            file,
            audiences,
            api,
        } => review(ctx, &file, &audiences, &api),
        TokenCommand::Create {
            service_account,
            namespace,
            duration,
            audiences,
            bound_pod,
            api,
        } => create(
            ctx,
            &TokenRequest {
                service_account,
                namespace,
                duration,
                audiences,
                bound_pod,
            },
            &api,
        )
        .map(|()| ExitStatus::Success),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    pub source: String,
    pub now: String,
    pub tokens: Vec<Inspected>,
    #[serde(skip)]
    now_unix: i64,
}

fn when(label: &str, at: Option<i64>, now: i64) -> String {
    match at {
        Some(at) => format!("  {label:<10} {} ({})\n", rfc3339(at), relative(at, now)),
        None => String::new(),
    }
}

fn meaning(facts: &TokenFacts, now: i64) -> String {
    let warn_after = facts.kubernetes.as_ref().and_then(|k| k.warn_after);
    match facts.verdict {
        Verdict::Expired => "EXPIRED: every apiserver refuses it; get a new one".into(),
        Verdict::NotYetValid => "NOT YET VALID (its nbf is in the future)".into(),
        Verdict::Malformed => format!(
            "MALFORMED: its {} claim is not a whole number of seconds, so its lifetime cannot be read; \
             an apiserver refuses a token whose time claims are not numbers",
            facts.malformed_claims.join(", ")
        ),
        Verdict::NeverExpires => "NEVER EXPIRES: a legacy secret-based token; move its users to TokenRequest or projected tokens".into(),
        Verdict::Stale => format!(
            "STALE: valid only because token extension is on; without it, it died {} (at its warnafter)",
            relative(warn_after.unwrap_or(now), now)
        ),
        Verdict::Valid => match warn_after {
            Some(w) => format!(
                "valid; extended by the apiserver: without token extension it dies {}",
                relative(w, now)
            ),
            None => "valid".into(),
        },
    }
}

impl Report for Inspection {
    const KIND: &'static str = "TokenInspection";

    fn text(&self) -> String {
        let now = self.now_unix;
        let mut out = String::new();
        let source = escape(&self.source);
        if self.tokens.is_empty() {
            out.push_str(&format!("{source}: no tokens\n"));
        }
        for t in &self.tokens {
            let f = &t.facts;
            match (&t.user, &t.field) {
                (Some(user), Some(field)) => {
                    out.push_str(&format!("{source} user {user} ({field})\n"))
                }
                _ => out.push_str(&format!("{source}\n")),
            }
            out.push_str(&format!(
                "  algorithm  {}{}\n",
                f.algorithm,
                f.key_id
                    .as_ref()
                    .map_or(String::new(), |k| format!(", key id {k}"))
            ));
            let line = |label: &str, value: Option<&Untrusted>| {
                value.map_or(String::new(), |v| format!("  {label:<10} {v}\n"))
            };
            out.push_str(&line("issuer", f.issuer.as_ref()));
            out.push_str(&line("subject", f.subject.as_ref()));
            if !f.audiences.is_empty() {
                let audiences: Vec<String> = f.audiences.iter().map(Untrusted::to_string).collect();
                out.push_str(&format!("  audiences  {}\n", audiences.join(", ")));
            }
            out.push_str(&when("issued", f.issued_at, now));
            out.push_str(&when("not before", f.not_before, now));
            out.push_str(&when("expires", f.expires, now));
            if let Some(k) = &f.kubernetes {
                out.push_str(&when("warn after", k.warn_after, now));
                let mut bound = Vec::new();
                if let Some(ns) = &k.namespace {
                    bound.push(format!("namespace {ns}"));
                }
                for (what, r) in [
                    ("service account", &k.service_account),
                    ("pod", &k.pod),
                    ("node", &k.node),
                    ("secret", &k.secret),
                ] {
                    if let Some(r) = r {
                        bound.push(format!("{what} {}", r.name));
                    }
                }
                if !bound.is_empty() {
                    out.push_str(&format!("  kubernetes {}\n", bound.join(", ")));
                }
            }
            out.push_str(&format!("  verdict    {}\n", meaning(f, now)));
        }
        out
    }
}

fn inspect(ctx: &Context, options: &InspectOptions) -> Result<()> {
    let source = match (&options.kubeconfig, &options.file) {
        (Some(path), _) => Source::Kubeconfig {
            path,
            user: options.user.as_deref(),
        },
        (None, Some(file)) => Source::File(file),
        (None, None) => {
            return Err(Error::Usage(
                "give a token FILE, `-`, or --kubeconfig".into(),
            ));
        }
    };
    let now = now_unix();
    let found = input::inspect(&ctx.layout, source, now)?;
    ctx.ui.report(&Inspection {
        source: found.source,
        now: rfc3339(now),
        tokens: found.tokens,
        now_unix: now,
    })?;
    Ok(())
}

impl Report for Review {
    const KIND: &'static str = "TokenReview";

    fn text(&self) -> String {
        // Every value here is the apiserver's answer: shown escaped.
        let list = |items: &[String]| -> String {
            items
                .iter()
                .map(|i| escape(i).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.authenticated {
            return format!(
                "NOT authenticated: {}\n",
                escape(
                    self.error
                        .as_deref()
                        .unwrap_or("the apiserver gave no reason")
                )
            );
        }
        let mut out = format!(
            "authenticated as {}\n  groups     {}\n",
            escape(self.username.as_deref().unwrap_or("?")),
            list(&self.groups)
        );
        if !self.audiences.is_empty() {
            out.push_str(&format!("  audiences  {}\n", list(&self.audiences)));
        }
        out
    }
}

fn review(
    ctx: &Context,
    file: &Path,
    audiences: &[String],
    api: &ApiOptions,
) -> Result<ExitStatus> {
    let review = token::api::review(&ctx.layout, api.kubeconfig.as_deref(), file, audiences)?;
    ctx.ui.report(&review)?;
    Ok(if review.authenticated {
        ExitStatus::Success
    } else {
        ExitStatus::Negative("the apiserver does not accept this token".into())
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub token: String,
    pub expiration_timestamp: String,
    pub requested_seconds: Option<u64>,
    pub granted_seconds: i64,
}

impl Report for Created {
    const KIND: &'static str = "TokenRequest";

    /// The token alone, for `$(...)` and files.
    fn text(&self) -> String {
        format!("{}\n", self.token)
    }
}

fn create(ctx: &Context, request: &TokenRequest, api: &ApiOptions) -> Result<()> {
    let granted = token::api::create(&ctx.layout, api.kubeconfig.as_deref(), request)?;
    if let Some(shortened) = &granted.shortened {
        ctx.ui.warn(format!(
            "the apiserver shortened the lifetime: asked for {}, granted {} (its --service-account-max-token-expiration)",
            shortened.asked, shortened.granted
        ));
    }
    ctx.ui.info(format!(
        "token for {}/{} expires {} ({})",
        escape(&request.namespace),
        escape(&request.service_account),
        escape(&granted.expiration_timestamp),
        granted.expires_in
    ));
    ctx.ui.report(&Created {
        token: granted.token.expose_secret().to_string(),
        expiration_timestamp: granted.expiration_timestamp,
        requested_seconds: granted.requested_seconds,
        granted_seconds: granted.granted_seconds,
    })?;
    Ok(())
}
