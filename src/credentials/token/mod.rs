//! Service-account and OIDC tokens, read offline: what a JWT says about itself (issuer, subject,
//! audiences, lifetime, the `kubernetes.io` claims) and what that means now — expired, stale
//! (alive only because the apiserver extends it), or a legacy secret-based token that never
//! expires. Pure: text and a clock in, facts out. The signature is never verified here (that is
//! `token review`'s job) and neither it nor the token is ever part of the facts.
//!
//! Beside it: `input`, the tokens where the operator names them (a file, stdin, a kubeconfig's
//! users), and `api`, what the apiserver says of them (TokenReview) and issues (TokenRequest).
pub mod api;
pub mod input;

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use crate::ui::Untrusted;

/// Why a text is not a token. Says what was expected, never echoes the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Past `exp`: every apiserver refuses it.
    Expired,
    /// Past `kubernetes.io.warnafter` but not `exp`: accepted only because token extension is
    /// on; it dies when extension goes off.
    Stale,
    /// Within its lifetime.
    Valid,
    /// A legacy secret-based service-account token: no expiry at all.
    NeverExpires,
    /// Not yet valid (`nbf` in the future).
    NotYetValid,
    /// A time claim (`exp`, `nbf`, `iat`, `warnafter`) that is not a whole number of seconds
    /// (a string, a fraction, out of range): its lifetime cannot be read.
    Malformed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    pub name: Untrusted,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<Untrusted>,
}

/// The `kubernetes.io` claims of a bound (projected or TokenRequest) service-account token, or
/// the flat claims of a legacy secret-based one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesClaims {
    pub namespace: Option<Untrusted>,
    pub service_account: Option<Reference>,
    pub pod: Option<Reference>,
    pub node: Option<Reference>,
    pub secret: Option<Reference>,
    pub warn_after: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenFacts {
    pub algorithm: Untrusted,
    pub key_id: Option<Untrusted>,
    pub issuer: Option<Untrusted>,
    pub subject: Option<Untrusted>,
    pub audiences: Vec<Untrusted>,
    pub issued_at: Option<i64>,
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub kubernetes: Option<KubernetesClaims>,
    /// A legacy token from a `kubernetes.io/service-account-token` Secret.
    pub legacy_secret_based: bool,
    /// The time claims present but not a whole number of seconds: reported, never taken as
    /// absent (a string `exp` is not a token that never expires).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub malformed_claims: Vec<String>,
    pub verdict: Verdict,
}

fn segment(text: &str, which: &str) -> Result<Value, Malformed> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| Malformed(format!("its {which} is not base64url")))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| Malformed(format!("its {which} is not JSON")))?;
    if !value.is_object() {
        return Err(Malformed(format!("its {which} is not a JSON object")));
    }
    Ok(value)
}

fn reference(value: &Value) -> Option<Reference> {
    Some(Reference {
        name: value.get("name")?.as_str()?.into(),
        uid: value
            .get("uid")
            .and_then(Value::as_str)
            .map(Untrusted::from),
    })
}

/// A NumericDate claim: `Ok(None)` when absent; `Err(())` when present but not a whole
/// number of seconds that fits (a string, a fraction, `null`, 1e300).
fn number(claims: &Value, key: &str) -> Result<Option<i64>, ()> {
    let Some(value) = claims.get(key) else {
        return Ok(None);
    };
    if let Some(n) = value.as_i64() {
        return Ok(Some(n));
    }
    // `1700000000.0` is a whole number; `1.7e9 + 0.5` and `1e300` are not seconds.
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(Some(f as i64)),
        _ => Err(()),
    }
}

/// The token itself from what a person pastes or a file holds: surrounding whitespace and a
/// `Bearer ` prefix are dropped.
pub fn clean(text: &str) -> &str {
    let text = text.trim();
    text.strip_prefix("Bearer ").unwrap_or(text).trim()
}

/// Reads a JWT's header and claims. `now` decides the verdict.
pub fn inspect(text: &str, now: i64) -> Result<TokenFacts, Malformed> {
    let token = clean(text);
    if token.is_empty() {
        return Err(Malformed("it is empty".into()));
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(Malformed(format!(
            "a JWT has three dot-separated parts (header.claims.signature); this has {}{}",
            parts.len(),
            if parts.len() == 5 {
                " (an encrypted JWE, which cannot be read offline)"
            } else {
                ""
            }
        )));
    }
    let header = segment(parts[0], "header")?;
    let claims = segment(parts[1], "claims part")?;
    let algorithm = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| Malformed("its header names no algorithm (alg)".into()))?
        .into();
    let audiences = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str().into()],
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .map(Untrusted::from)
            .collect(),
        _ => Vec::new(),
    };
    let bound = claims.get("kubernetes.io").map(|k| KubernetesClaims {
        namespace: k
            .get("namespace")
            .and_then(Value::as_str)
            .map(Untrusted::from),
        service_account: k.get("serviceaccount").and_then(reference),
        pod: k.get("pod").and_then(reference),
        node: k.get("node").and_then(reference),
        secret: k.get("secret").and_then(reference),
        warn_after: number(k, "warnafter").unwrap_or(None),
    });
    let legacy_claim = |key: &str| {
        claims
            .get(format!("kubernetes.io/serviceaccount/{key}"))
            .and_then(Value::as_str)
            .map(Untrusted::from)
    };
    let legacy_secret_based =
        claims.get("kubernetes.io").is_none() && legacy_claim("secret.name").is_some();
    let kubernetes = bound.or_else(|| {
        legacy_secret_based.then(|| KubernetesClaims {
            namespace: legacy_claim("namespace"),
            service_account: legacy_claim("service-account.name").map(|name| Reference {
                name,
                uid: legacy_claim("service-account.uid"),
            }),
            secret: legacy_claim("secret.name").map(|name| Reference { name, uid: None }),
            ..KubernetesClaims::default()
        })
    });
    let mut malformed_claims = Vec::new();
    let mut time = |holder: Option<&Value>, key: &str, name: &str| {
        holder
            .map_or(Ok(None), |h| number(h, key))
            .unwrap_or_else(|()| {
                malformed_claims.push(name.to_string());
                None
            })
    };
    let expires = time(Some(&claims), "exp", "exp");
    let not_before = time(Some(&claims), "nbf", "nbf");
    let issued_at = time(Some(&claims), "iat", "iat");
    time(
        claims.get("kubernetes.io"),
        "warnafter",
        "kubernetes.io.warnafter",
    );
    let warn_after = kubernetes.as_ref().and_then(|k| k.warn_after);
    let verdict = match (expires, not_before) {
        _ if !malformed_claims.is_empty() => Verdict::Malformed,
        (Some(exp), _) if now >= exp => Verdict::Expired,
        (_, Some(nbf)) if now < nbf => Verdict::NotYetValid,
        (None, _) => Verdict::NeverExpires,
        _ if warn_after.is_some_and(|w| now >= w) => Verdict::Stale,
        _ => Verdict::Valid,
    };
    Ok(TokenFacts {
        algorithm,
        key_id: header
            .get("kid")
            .and_then(Value::as_str)
            .map(Untrusted::from),
        issuer: claims
            .get("iss")
            .and_then(Value::as_str)
            .map(Untrusted::from),
        subject: claims
            .get("sub")
            .and_then(Value::as_str)
            .map(Untrusted::from),
        audiences,
        issued_at,
        not_before,
        expires,
        kubernetes,
        legacy_secret_based,
        malformed_claims,
        verdict,
    })
}

/// "in 40m", "2h ago", "3d 4h ago": how far `then` is from `now`, to the two largest units.
pub fn relative(then: i64, now: i64) -> String {
    // Claims are someone else's numbers: no subtraction that overflows.
    let delta = then.abs_diff(now);
    let units = [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)];
    let mut parts = Vec::new();
    let mut rest = delta;
    for (name, size) in units {
        if rest >= size && parts.len() < 2 {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        } else if !parts.is_empty() {
            break;
        }
    }
    if parts.is_empty() {
        return "now".into();
    }
    let span = parts.join(" ");
    if then >= now {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(header: &Value, claims: &Value) -> String {
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        format!("{}.{}.c2lnbmF0dXJl", b64(header), b64(claims))
    }

    const NOW: i64 = 1_800_000_000;

    fn bound(exp: i64, warn_after: Option<i64>) -> String {
        let mut k = serde_json::json!({
            "namespace": "web",
            "serviceaccount": {"name": "frontend", "uid": "sa-1"},
            "pod": {"name": "web-1", "uid": "pod-1"},
            "node": {"name": "cp-1", "uid": "n-1"},
        });
        if let Some(w) = warn_after {
            k["warnafter"] = serde_json::json!(w);
        }
        jwt(
            &serde_json::json!({"alg": "RS256", "kid": "k1"}),
            &serde_json::json!({"iss": "https://kubernetes.default.svc.cluster.local",
                "sub": "system:serviceaccount:web:frontend", "aud": ["https://kubernetes.default.svc.cluster.local"],
                "iat": NOW - 7200, "nbf": NOW - 7200, "exp": exp, "kubernetes.io": k}),
        )
    }

    #[test]
    fn a_bound_token_reads_fully_and_its_verdict_follows_the_clock() {
        let facts = inspect(&bound(NOW + 2400, None), NOW).unwrap();
        assert_eq!(facts.algorithm, "RS256");
        assert_eq!(facts.key_id.as_ref().map(Untrusted::as_str), Some("k1"));
        assert_eq!(
            facts.subject.as_ref().map(Untrusted::as_str),
            Some("system:serviceaccount:web:frontend")
        );
        let k = facts.kubernetes.unwrap();
        assert_eq!(k.namespace.as_ref().map(Untrusted::as_str), Some("web"));
        assert_eq!(k.pod.unwrap().name, "web-1");
        assert_eq!(k.node.unwrap().name, "cp-1");
        assert_eq!(facts.verdict, Verdict::Valid);
        assert!(!facts.legacy_secret_based);

        let stale = inspect(&bound(NOW + 365 * 86_400, Some(NOW - 60)), NOW).unwrap();
        assert_eq!(stale.verdict, Verdict::Stale);
        let expired = inspect(&bound(NOW - 1, Some(NOW - 60)), NOW).unwrap();
        assert_eq!(expired.verdict, Verdict::Expired);
    }

    #[test]
    fn a_legacy_secret_token_never_expires() {
        let token = jwt(
            &serde_json::json!({"alg": "RS256"}),
            &serde_json::json!({"iss": "kubernetes/serviceaccount",
                "sub": "system:serviceaccount:ci:deployer",
                "kubernetes.io/serviceaccount/namespace": "ci",
                "kubernetes.io/serviceaccount/secret.name": "deployer-token-x1",
                "kubernetes.io/serviceaccount/service-account.name": "deployer",
                "kubernetes.io/serviceaccount/service-account.uid": "u"}),
        );
        let facts = inspect(&format!("Bearer {token}\n"), NOW).unwrap();
        assert!(facts.legacy_secret_based);
        assert_eq!(facts.verdict, Verdict::NeverExpires);
        let k = facts.kubernetes.unwrap();
        assert_eq!(k.secret.unwrap().name, "deployer-token-x1");
        assert_eq!(k.service_account.unwrap().name, "deployer");
    }

    #[test]
    fn a_time_claim_of_the_wrong_type_is_malformed_not_absent() {
        let header = serde_json::json!({"alg": "RS256"});
        for (claims, which) in [
            (serde_json::json!({"exp": "1800000000"}), "exp"),
            (serde_json::json!({"exp": 1.8e9 + 0.5}), "exp"),
            (serde_json::json!({"exp": null}), "exp"),
            (serde_json::json!({"exp": 1e300}), "exp"),
            (serde_json::json!({"exp": NOW + 60, "nbf": [1]}), "nbf"),
            (
                serde_json::json!({"exp": NOW + 60, "iat": "yesterday"}),
                "iat",
            ),
            (
                serde_json::json!({"exp": NOW + 60, "kubernetes.io": {"warnafter": "soon"}}),
                "kubernetes.io.warnafter",
            ),
        ] {
            let facts = inspect(&jwt(&header, &claims), NOW).unwrap();
            assert_eq!(facts.verdict, Verdict::Malformed, "{claims}");
            assert_eq!(facts.malformed_claims, [which], "{claims}");
        }
        let whole = inspect(
            &jwt(&header, &serde_json::json!({"exp": 1.8e9 + 60.0})),
            NOW,
        )
        .unwrap();
        assert_eq!(whole.expires, Some(NOW + 60));
        assert_eq!(whole.verdict, Verdict::Valid);
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong_without_echoing_the_text() {
        for (text, says) in [
            ("", "empty"),
            ("abc", "three dot-separated parts"),
            ("a.b.c.d.e", "encrypted JWE"),
            ("!!!.e30.sig", "header is not base64url"),
            ("e30.bm90IGpzb24.sig", "claims part is not JSON"),
            ("e30.e30.sig", "no algorithm"),
        ] {
            let err = inspect(text, NOW).unwrap_err().to_string();
            assert!(err.contains(says), "{text:?}: {err}");
            if !text.is_empty() {
                assert!(!err.contains(text), "{err}");
            }
        }
    }

    #[test]
    fn relative_times_read_like_a_person_says_them() {
        assert_eq!(relative(NOW + 2400, NOW), "in 40m");
        assert_eq!(relative(NOW - 7200, NOW), "2h ago");
        assert_eq!(relative(NOW - 3 * 86_400 - 4 * 3600 - 5, NOW), "3d 4h ago");
        assert_eq!(relative(NOW, NOW), "now");
    }
}
