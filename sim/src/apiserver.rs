//! The simulated kube-apiserver: a real process named `kube-apiserver`, started by the simulated
//! kubelet with exactly the manifest's command line. It parses its flags like the real one
//! (an invalid boolean stops it at start-up), serves HTTPS with the node's certificates, and
//! authenticates client certificates against `--client-ca-file` in the handler (so an expired
//! certificate gets 401, as from the real one). Paths in flags resolve under
//! `KUBEADM_RECOVER_SIM_ROOT`.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::config::SimConfig;
use super::flags::{self, CommandLine};

/// The flag the tool turns on and off, spelled here on its own (not taken from the tool).
const EXTEND_TOKEN_EXPIRATION: &str = "service-account-extend-token-expiration";
/// Boolean flags the simulation validates like pflag does.
const BOOL_FLAGS: &[&str] = &[
    EXTEND_TOKEN_EXPIRATION,
    "allow-privileged",
    "enable-bootstrap-token-auth",
    "anonymous-auth",
    "enable-aggregator-routing",
];
/// How long after it starts listening the simulated apiserver's post-start hooks take (the
/// real one's take about a second on two cores): the first half answers health with 403, the
/// second with the verbose 500, as the real one does (docs/fidelity.md).
const WARM_UP_MS: u64 = 200;
/// kube-apiserver's `ExpirationExtensionSeconds`: one year.
const EXTENSION_SECONDS: i64 = 24 * 365 * 60 * 60;
/// The lifetime admission asks for on projected tokens; only these get extended.
const WARN_AFTER_SECONDS: i64 = 3607;

struct Settings {
    port: u16,
    extend: bool,
    max_expiration: Option<i64>,
    issuer: String,
    version: String,
    audit_log: Option<PathBuf>,
    root: PathBuf,
    node_name: String,
}

struct State {
    settings: Settings,
    client_ca_der: Vec<u8>,
    signing_key: ring::signature::RsaKeyPair,
    verify_key_der: Vec<u8>,
    key_id: String,
    stale_tokens: AtomicU64,
    valid_tokens: AtomicU64,
    /// Until then the post-start hooks are still running: health answers 500 the real way.
    warm_at: std::time::Instant,
}

fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn fail(message: String) -> i32 {
    eprintln!("Error: {message}");
    1
}

/// Entry point when this binary runs as `kube-apiserver`.
pub fn main(args: Vec<String>) -> i32 {
    let root = match crate::persona_root("kube-apiserver") {
        Ok(root) => root,
        Err(e) => return fail(e),
    };
    let config = SimConfig::load(&root);
    let args: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    if let Some(arg) = args
        .iter()
        .find(|a| config.reject_args.iter().any(|r| r == *a))
    {
        return fail(format!(
            "invalid argument {arg:?}: rejected by this simulated apiserver"
        ));
    }
    let line = match CommandLine::parse(&args) {
        Ok(line) => line,
        Err(e) => return fail(e),
    };
    // pflag sets each flag as it reads it: the first bad boolean, in the order given, stops it.
    for (name, value) in &line.flags {
        if BOOL_FLAGS.contains(&name.as_str())
            && let Err(e) = flags::bool_value(name, *value)
        {
            return fail(e);
        }
    }
    // cobra's check, after the flags are read: an empty argument is no argument.
    let positional: Vec<String> = line
        .positional
        .iter()
        .filter(|a| !a.is_empty())
        .map(|a| format!("{a:?}"))
        .collect();
    if !positional.is_empty() {
        return fail(format!(
            "\"kube-apiserver\" does not take any arguments, got [{}]",
            positional.join(" ")
        ));
    }
    let last = |name: &str| line.value(name).map(str::to_string);
    let required = |name: &str| last(name).ok_or_else(|| format!("--{name} is required"));
    let settings = match (|| -> Result<Settings, String> {
        let extend = line.bool(EXTEND_TOKEN_EXPIRATION, true)?;
        Ok(Settings {
            port: required("secure-port")?
                .parse()
                .map_err(|e| format!("--secure-port: {e}"))?,
            extend,
            max_expiration: last("service-account-max-token-expiration")
                .and_then(|d| parse_seconds(&d))
                .filter(|s| *s > 0),
            issuer: last("service-account-issuer")
                .unwrap_or_else(|| "https://kubernetes.default.svc.cluster.local".into()),
            version: std::env::var("KUBEADM_RECOVER_SIM_IMAGE")
                .ok()
                .and_then(|i| kubeadm_recover::manifest::image_version(&i))
                .map_or("v1.30.0".into(), |(a, b, c)| format!("v{a}.{b}.{c}")),
            audit_log: last("audit-log-path").map(|p| under(&root, &p)),
            root: root.clone(),
            node_name: config.node_name.clone(),
        })
    })() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let load = |flag: &str| -> Result<Vec<u8>, String> {
        let path = under(&root, &required(flag)?);
        std::fs::read(&path).map_err(|e| format!("--{flag} {}: {e}", path.display()))
    };
    let serving_files = match (|| {
        Ok::<_, String>((
            under(&root, &required("tls-cert-file")?),
            under(&root, &required("tls-private-key-file")?),
        ))
    })() {
        Ok(files) => files,
        Err(e) => return fail(e),
    };
    let (cert_pem, key_pem, ca_pem, sa_key_pem, sa_pub_pem) = match (|| {
        Ok::<_, String>((
            load("tls-cert-file")?,
            load("tls-private-key-file")?,
            load("client-ca-file")?,
            load("service-account-signing-key-file")?,
            load("service-account-key-file")?,
        ))
    })() {
        Ok(v) => v,
        Err(e) => return fail(e),
    };

    std::thread::sleep(std::time::Duration::from_millis(config.startup_delay_ms));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let serving = match ServingCertificate::load(serving_files, config.serving_cert_reload) {
        Ok(serving) => serving,
        Err(e) => return fail(e),
    };
    drop((cert_pem, key_pem));
    match runtime.block_on(serve(settings, serving, ca_pem, sa_key_pem, sa_pub_pem)) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

/// "1h", "30m", "3600s", "1h30m" → seconds.
fn parse_seconds(duration: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut number = String::new();
    for c in duration.chars() {
        if c.is_ascii_digit() {
            number.push(c);
        } else {
            let n: i64 = number.parse().ok()?;
            number.clear();
            total += n * match c {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => return None,
            };
        }
    }
    if !number.is_empty() {
        return None;
    }
    Some(total)
}

fn pem_blocks(pem: &[u8], label: &str) -> Vec<Vec<u8>> {
    kubeadm_recover::credentials::pem::blocks(&String::from_utf8_lossy(pem), label)
}

async fn serve(
    settings: Settings,
    serving: ServingCertificate,
    ca_pem: Vec<u8>,
    sa_key_pem: Vec<u8>,
    sa_pub_pem: Vec<u8>,
) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(Arc::new(AcceptAnyClientCert))
        .with_cert_resolver(Arc::new(serving));
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));

    let sa_key =
        kubeadm_recover::credentials::pki::Key::from_pem(&String::from_utf8_lossy(&sa_key_pem))
            .map_err(|e| format!("sa key: {e}"))?;
    let signing_key = ring::signature::RsaKeyPair::from_pkcs8(&sa_key.pair.serialize_der())
        .map_err(|e| format!("--service-account-signing-key-file: {e}"))?;
    let spki = pem_blocks(&sa_pub_pem, "PUBLIC KEY")
        .into_iter()
        .next()
        .ok_or("--service-account-key-file: no PUBLIC KEY")?;
    let verify_key_der = rsa_public_key(&spki)?;
    let state = Arc::new(State {
        client_ca_der: pem_blocks(&ca_pem, "CERTIFICATE")
            .into_iter()
            .next()
            .ok_or("--client-ca-file: no certificate")?,
        key_id: key_id(&spki),
        signing_key,
        verify_key_der,
        settings,
        stale_tokens: AtomicU64::new(0),
        valid_tokens: AtomicU64::new(0),
        warm_at: std::time::Instant::now() + std::time::Duration::from_millis(WARM_UP_MS),
    });

    // Loopback only: nothing here is ever reachable from outside the machine.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", state.settings.port))
        .await
        .map_err(|e| format!("failed to listen on 127.0.0.1:{}: {e}", state.settings.port))?;
    eprintln!(
        "serving securely on 127.0.0.1:{} at {}",
        state.settings.port,
        crate::now_unix_ms()
    );
    // SIGTERM as the real apiserver takes it (measured on the real kubelet): stop listening at
    // once, then live on while open watch connections drain, until the kubelet's grace period
    // ends in SIGKILL. `shutdown_linger_ms` is how long the drain lasts here.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("SIGTERM handler: {e}"))?;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = terminate.recv() => {
                drop(listener);
                let linger = SimConfig::load(&state.settings.root).shutdown_linger_ms;
                eprintln!("received SIGTERM: stopped listening; draining for {linger} ms");
                tokio::time::sleep(std::time::Duration::from_millis(linger)).await;
                return Ok(());
            }
        };
        let Ok((tcp, _)) = accepted else {
            continue;
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            if let Some(stall) = SimConfig::load(&state.settings.root).stall {
                return stalled(tls, stall).await;
            }
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec());
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let peer = peer.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(handle(&state, peer.as_deref(), req).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}

/// Answers a connection as a stalled apiserver does, until the client goes away: the request's
/// head is read first (a client does not expect an answer before it has asked).
async fn stalled<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    stall: crate::config::Stall,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let headers: &[u8] = match stall {
        crate::config::Stall::Trickle => {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n"
        }
        crate::config::Stall::Flood => {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        }
    };
    if stream.write_all(headers).await.is_err() || stream.flush().await.is_err() {
        return;
    }
    let chunk = format!("10000\r\n{}\r\n", "o".repeat(0x10000));
    loop {
        let (bytes, pause) = match stall {
            crate::config::Stall::Trickle => (&b"o"[..], 1000),
            crate::config::Stall::Flood => (chunk.as_bytes(), 10),
        };
        if stream.write_all(bytes).await.is_err() || stream.flush().await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
    }
}

/// The raw RSA public key (PKCS#1) inside a SubjectPublicKeyInfo, as ring wants it.
fn rsa_public_key(spki_der: &[u8]) -> Result<Vec<u8>, String> {
    use x509_parser::prelude::FromDer;
    let (_, spki) =
        x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| e.to_string())?;
    Ok(spki.subject_public_key.data.to_vec())
}

/// The serving certificate, re-read when its file changes, as kube-apiserver's dynamic serving
/// certificate controller does (a file watch; checked here at each handshake). With
/// `servingCertReload: false` it keeps the one it started with: a stale apiserver, for the
/// "renewed on disk but not in use" finding.
#[derive(Debug)]
struct ServingCertificate {
    files: (PathBuf, PathBuf),
    reload: bool,
    current: std::sync::Mutex<(
        Option<std::time::SystemTime>,
        Arc<rustls::sign::CertifiedKey>,
    )>,
}

impl ServingCertificate {
    fn load(files: (PathBuf, PathBuf), reload: bool) -> Result<Self, String> {
        let (stamp, key) = Self::read(&files)?;
        Ok(ServingCertificate {
            files,
            reload,
            current: std::sync::Mutex::new((stamp, key)),
        })
    }

    fn read(
        (cert, key): &(PathBuf, PathBuf),
    ) -> Result<
        (
            Option<std::time::SystemTime>,
            Arc<rustls::sign::CertifiedKey>,
        ),
        String,
    > {
        let stamp = std::fs::metadata(cert).and_then(|m| m.modified()).ok();
        let cert_pem =
            std::fs::read(cert).map_err(|e| format!("--tls-cert-file {}: {e}", cert.display()))?;
        let key_text = std::fs::read_to_string(key)
            .map_err(|e| format!("--tls-private-key-file {}: {e}", key.display()))?;
        let chain: Vec<rustls::pki_types::CertificateDer<'static>> =
            pem_blocks(&cert_pem, "CERTIFICATE")
                .into_iter()
                .map(Into::into)
                .collect();
        let tls_key = kubeadm_recover::credentials::pki::Key::from_pem(&key_text)
            .map_err(|e| format!("--tls-private-key-file: {e}"))?;
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(tls_key.pair.serialize_der().into());
        let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
            .map_err(|e| format!("TLS: {e}"))?;
        Ok((
            stamp,
            Arc::new(rustls::sign::CertifiedKey::new(chain, signing)),
        ))
    }
}

impl rustls::server::ResolvesServerCert for ServingCertificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let mut current = self.current.lock().ok()?;
        if self.reload {
            let stamp = std::fs::metadata(&self.files.0)
                .and_then(|m| m.modified())
                .ok();
            if stamp != current.0 {
                // A half-written pair keeps the old one, as the real controller does.
                if let Ok(fresh) = Self::read(&self.files) {
                    *current = fresh;
                }
            }
        }
        Some(current.1.clone())
    }
}

/// The TLS layer asks for a client certificate but leaves judging it to the authenticator,
/// like kube-apiserver (`tls.RequestClientCert`).
#[derive(Debug)]
struct AcceptAnyClientCert;

impl rustls::server::danger::ClientCertVerifier for AcceptAnyClientCert {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn verify_client_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

struct User {
    name: String,
    groups: Vec<String>,
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

fn status_error(code: StatusCode, reason: &str, message: &str) -> Response<Full<Bytes>> {
    reply(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

/// Client certificate → user, checked against the client CA and the clock.
fn authenticate_cert(state: &State, der: &[u8]) -> Result<User, String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let (_, ca) = X509Certificate::from_der(&state.client_ca_der).map_err(|e| e.to_string())?;
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|_| "x509: certificate signed by unknown authority".to_string())?;
    let now = crate::now_unix();
    let validity = cert.validity();
    if now < validity.not_before.timestamp() || now > validity.not_after.timestamp() {
        return Err("x509: certificate has expired or is not yet valid".into());
    }
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut groups: Vec<String> = cert
        .subject()
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    groups.push("system:authenticated".into());
    Ok(User { name, groups })
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// kube-apiserver's key id for a service-account key (`keyIDFromPublicKey`): the unpadded
/// base64url SHA-256 of the PKIX DER public key.
pub fn key_id(spki_der: &[u8]) -> String {
    b64url(ring::digest::digest(&ring::digest::SHA256, spki_der).as_ref())
}

fn sign_with(key: &ring::signature::RsaKeyPair, kid: &str, claims: &Value) -> String {
    let header = b64url(json!({"alg": "RS256", "kid": kid}).to_string().as_bytes());
    let payload = b64url(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{payload}");
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .expect("RSA signing");
    format!("{signing_input}.{}", b64url(&signature))
}

fn sign_jwt(state: &State, claims: &Value) -> String {
    sign_with(&state.signing_key, &state.key_id, claims)
}

/// A service-account token signed with the cluster's `sa.key` (PEM) as kube-apiserver signs
/// them: for tests that need a token with claims no TokenRequest would give (a past warnafter).
pub fn service_account_token(sa_key_pem: &str, claims: &Value) -> Result<String, String> {
    let key =
        kubeadm_recover::credentials::pki::Key::from_pem(sa_key_pem).map_err(|e| e.to_string())?;
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&key.pair.serialize_der())
        .map_err(|e| format!("sa key: {e}"))?;
    let spki = pem_blocks(key.public_pem().as_bytes(), "PUBLIC KEY")
        .into_iter()
        .next()
        .ok_or("sa key: no public key")?;
    Ok(sign_with(&pair, &key_id(&spki), claims))
}

/// Verifies a service-account JWT; returns its claims.
fn verify_jwt(state: &State, token: &str) -> Result<Value, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT".into());
    };
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "bad signature encoding")?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &state.verify_key_der,
    )
    .verify(format!("{h}.{p}").as_bytes(), &signature)
    .map_err(|_| "invalid bearer token".to_string())?;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| "bad payload encoding")?,
    )
    .map_err(|e| e.to_string())?;
    if claims["iss"] != state.settings.issuer.as_str() {
        return Err("invalid bearer token: wrong issuer".into());
    }
    let now = crate::now_unix() + SimConfig::load(&state.settings.root).clock_offset_seconds;
    if claims["exp"].as_i64().is_none_or(|exp| exp < now) {
        return Err("invalid bearer token: token has expired".into());
    }
    state.valid_tokens.fetch_add(1, Ordering::Relaxed);
    if let Some(warn_after) = claims
        .pointer("/kubernetes.io/warnafter")
        .and_then(Value::as_i64)
        && now > warn_after
    {
        state.stale_tokens.fetch_add(1, Ordering::Relaxed);
        audit_stale(state, &claims, now - warn_after);
    }
    Ok(claims)
}

/// The audit annotation the real apiserver adds when a stale token is used.
fn audit_stale(state: &State, claims: &Value, seconds: i64) {
    // Audit events are stamped with the real time, as the real apiserver does.
    let Some(path) = &state.settings.audit_log else {
        return;
    };
    let sub = claims["sub"].as_str().unwrap_or_default();
    let event = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "stageTimestamp": kubeadm_recover::runtime::clock::rfc3339(crate::now_unix()),
        "user": {"username": sub},
        "annotations": {"authentication.k8s.io/stale-token": format!("subject: {sub}, seconds after warning threshold: {seconds}")},
    });
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{event}");
    }
}

async fn handle(
    state: &State,
    peer: Option<&[u8]>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_string();

    // Health and version are public (system:public-info-viewer), like the real defaults.
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/livez" | "/readyz" | "/healthz") => {
            let now = std::time::Instant::now();
            if now + std::time::Duration::from_millis(WARM_UP_MS / 2) < state.warm_at {
                // Before the RBAC bootstrap roles exist, even the health paths are forbidden.
                return reply(
                    StatusCode::FORBIDDEN,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": format!("forbidden: User \"system:anonymous\" cannot get path \"{path}\""),
                           "reason": "Forbidden", "details": {}, "code": 403}),
                );
            }
            if now < state.warm_at {
                // The real body lists every check; a failed one's reason is withheld from
                // clients that are not verbose-authorized.
                let check = path.trim_start_matches('/');
                let body = format!(
                    "[+]ping ok\n[+]etcd ok\n[-]poststarthook/rbac/bootstrap-roles failed: reason withheld\n{check} check failed\n"
                );
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return response;
            }
            return Response::new(Full::new(Bytes::from_static(b"ok")));
        }
        (&Method::GET, "/version") => {
            let v = &state.settings.version;
            let mut it = v.trim_start_matches('v').split('.');
            return reply(
                StatusCode::OK,
                json!({"major": it.next(), "minor": it.next(), "gitVersion": v, "platform": "linux/amd64"}),
            );
        }
        _ => {}
    }

    let bearer = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_string);
    let user = match (bearer, peer) {
        (Some(token), _) => verify_jwt(state, &token).map(|claims| User {
            name: claims["sub"].as_str().unwrap_or_default().to_string(),
            groups: vec![
                "system:serviceaccounts".into(),
                "system:authenticated".into(),
            ],
        }),
        (None, Some(der)) => authenticate_cert(state, der),
        (None, None) => Err("anonymous".into()),
    };
    let user = match user {
        Ok(u) => u,
        Err(e) if e == "anonymous" => {
            return status_error(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!("forbidden: User \"system:anonymous\" cannot get path \"{path}\""),
            );
        }
        Err(e) => {
            return status_error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                &format!("Unauthorized: {e}"),
            );
        }
    };

    // JSON, and the protobuf of the one request kubectl sends that way (`kubectl create token`,
    // 1.36 and later); anything else is answered 415 as a real apiserver answers a media type it
    // does not serve, never read as an empty request.
    let kind = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let body = if body.is_empty() || kind.contains("json") || kind.contains("yaml") {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else if kind.starts_with("application/vnd.kubernetes.protobuf")
        && let Some(request) = protobuf::token_request(&body)
    {
        request
    } else {
        return status_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: application/json (got {kind})"
            ),
        );
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&parts.method, segments.as_slice()) {
        (&Method::GET, ["metrics"]) => Response::new(Full::new(Bytes::from(format!(
            "# HELP serviceaccount_stale_tokens_total [ALPHA] Cumulative stale projected service account tokens used\n\
             # TYPE serviceaccount_stale_tokens_total counter\nserviceaccount_stale_tokens_total {}\n\
             # HELP serviceaccount_valid_tokens_total [ALPHA] Cumulative valid projected service account tokens used\n\
             # TYPE serviceaccount_valid_tokens_total counter\nserviceaccount_valid_tokens_total {}\n",
            state.stale_tokens.load(Ordering::Relaxed),
            state.valid_tokens.load(Ordering::Relaxed)
        )))),
        (
            &Method::POST,
            [
                "apis",
                "authentication.k8s.io",
                version,
                "selfsubjectreviews",
            ],
        ) if self_subject_review_served(&state.settings.version, version) => reply(
            StatusCode::CREATED,
            json!({"kind": "SelfSubjectReview", "apiVersion": format!("authentication.k8s.io/{version}"), "metadata": {},
                       "status": {"userInfo": {"username": user.name, "groups": user.groups}}}),
        ),
        (&Method::POST, ["apis", "authentication.k8s.io", "v1", "tokenreviews"]) => {
            let token = body
                .pointer("/spec/token")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let status = match verify_jwt(state, token) {
                Ok(claims) => json!({"authenticated": true, "audiences": claims["aud"],
                    "user": {"username": claims["sub"], "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", claims.pointer("/kubernetes.io/namespace").and_then(Value::as_str).unwrap_or_default()), "system:authenticated"]}}),
                Err(e) => json!({"authenticated": false, "error": e}),
            };
            reply(
                StatusCode::CREATED,
                json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {}, "spec": {}, "status": status}),
            )
        }
        (
            &Method::POST,
            [
                "api",
                "v1",
                "namespaces",
                ns,
                "serviceaccounts",
                sa,
                "token",
            ],
        ) => token_request(state, ns, sa, &body),
        (&Method::POST, ["api", "v1", "namespaces", ns, kind @ ("secrets" | "pods")]) => {
            objects::create(&state.settings.root, kind, ns, body)
        }
        // Leases (coordination.k8s.io/v1), as the fleet rule of a timed revert takes one:
        // create, get, replace with an optimistic resourceVersion, delete.
        (
            &Method::POST,
            [
                "apis",
                "coordination.k8s.io",
                "v1",
                "namespaces",
                ns,
                "leases",
            ],
        ) => objects::create(&state.settings.root, "leases", ns, body),
        (
            &Method::GET,
            [
                "apis",
                "coordination.k8s.io",
                "v1",
                "namespaces",
                ns,
                "leases",
                name,
            ],
        ) => objects::get(&state.settings.root, "leases", ns, name),
        (
            &Method::PUT,
            [
                "apis",
                "coordination.k8s.io",
                "v1",
                "namespaces",
                ns,
                "leases",
                name,
            ],
        ) => objects::replace(&state.settings.root, "leases", ns, name, body),
        (
            &Method::DELETE,
            [
                "apis",
                "coordination.k8s.io",
                "v1",
                "namespaces",
                ns,
                "leases",
                name,
            ],
        ) => objects::delete(&state.settings.root, "leases", ns, name),
        (&Method::GET, ["api", "v1", "secrets"]) => {
            let wanted_type = parts
                .uri
                .query()
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("fieldSelector=")))
                .map(|f| f.replace("%3D", "=").replace("%2F", "/"))
                .and_then(|f| f.strip_prefix("type=").map(str::to_string));
            let items: Vec<Value> = objects::list(&state.settings.root, "secrets", None)
                .into_iter()
                .filter(|s| wanted_type.as_deref().is_none_or(|t| s["type"] == t))
                .collect();
            reply(
                StatusCode::OK,
                json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {}, "items": items}),
            )
        }
        (&Method::GET, ["api", "v1", "pods"]) => reply(
            StatusCode::OK,
            json!({"kind": "PodList", "apiVersion": "v1", "metadata": {},
                   "items": objects::list(&state.settings.root, "pods", None)}),
        ),
        (&Method::GET, ["api", "v1", "namespaces", ns, "pods"]) => {
            let dir = super::kubelet::mirror_pod_path(&state.settings.root, ns, "x");
            let mut items = Vec::new();
            for entry in std::fs::read_dir(dir.parent().expect("mirror dir"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!("{ns}_"))
                    && name.ends_with(".json")
                    && let Some(pod) = std::fs::read(entry.path())
                        .ok()
                        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                {
                    items.push(pod);
                }
            }
            items.extend(objects::list(&state.settings.root, "pods", Some(ns)));
            reply(
                StatusCode::OK,
                json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}),
            )
        }
        (&Method::GET, ["api", "v1", "namespaces", ns, "pods", name]) => {
            let mirror = super::kubelet::mirror_pod_path(&state.settings.root, ns, name);
            match std::fs::read(&mirror)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            {
                Some(pod)
                    if *name == format!("kube-apiserver-{}", state.settings.node_name)
                        || pod["metadata"]["name"] == *name =>
                {
                    reply(StatusCode::OK, pod)
                }
                _ => status_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("pods \"{name}\" not found"),
                ),
            }
        }
        _ => status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

/// Secrets and pods that tests create, kept under the sandbox (as etcd keeps them) so that they
/// outlive apiserver restarts. No controllers: a service-account-token Secret gets no token.
mod objects {
    use std::path::{Path, PathBuf};

    use bytes::Bytes;
    use http::{Response, StatusCode};
    use http_body_util::Full;
    use serde_json::{Value, json};

    fn dir(root: &Path, kind: &str) -> PathBuf {
        crate::config::sim_dir(root).join("objects").join(kind)
    }

    pub fn create(root: &Path, kind: &str, ns: &str, mut object: Value) -> Response<Full<Bytes>> {
        let Some(name) = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return super::status_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "metadata.name: Required value",
            );
        };
        let path = dir(root, kind).join(format!("{ns}_{name}.json"));
        if path.exists() {
            return super::status_error(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("{kind} \"{name}\" already exists"),
            );
        }
        object["metadata"]["namespace"] = json!(ns);
        object["metadata"]["resourceVersion"] = json!("1");
        object["metadata"]["uid"] = json!(format!("sim-{kind}-{ns}-{name}"));
        object["metadata"]["creationTimestamp"] =
            json!(kubeadm_recover::runtime::clock::rfc3339(crate::now_unix()));
        let _ = std::fs::create_dir_all(dir(root, kind));
        if let Err(e) = std::fs::write(&path, object.to_string()) {
            return super::status_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &e.to_string(),
            );
        }
        super::reply(StatusCode::CREATED, object)
    }

    fn not_found(kind: &str, name: &str) -> Response<Full<Bytes>> {
        super::status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{kind}.coordination.k8s.io \"{name}\" not found"),
        )
    }

    fn read(root: &Path, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let path = dir(root, kind).join(format!("{ns}_{name}.json"));
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    pub fn get(root: &Path, kind: &str, ns: &str, name: &str) -> Response<Full<Bytes>> {
        match read(root, kind, ns, name) {
            Some(object) => super::reply(StatusCode::OK, object),
            None => not_found(kind, name),
        }
    }

    /// PUT: the stored object's resourceVersion must be the one sent, as the real apiserver's
    /// optimistic concurrency demands ("the object has been modified").
    pub fn replace(
        root: &Path,
        kind: &str,
        ns: &str,
        name: &str,
        mut object: Value,
    ) -> Response<Full<Bytes>> {
        let Some(current) = read(root, kind, ns, name) else {
            return not_found(kind, name);
        };
        let stored = current["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("0");
        if object["metadata"]["resourceVersion"].as_str() != Some(stored) {
            return super::status_error(
                StatusCode::CONFLICT,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {kind} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
            );
        }
        let next = stored.parse::<u64>().unwrap_or(0) + 1;
        object["metadata"] = current["metadata"].clone();
        object["metadata"]["resourceVersion"] = json!(next.to_string());
        let path = dir(root, kind).join(format!("{ns}_{name}.json"));
        match std::fs::write(&path, object.to_string()) {
            Ok(()) => super::reply(StatusCode::OK, object),
            Err(e) => super::status_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &e.to_string(),
            ),
        }
    }

    pub fn delete(root: &Path, kind: &str, ns: &str, name: &str) -> Response<Full<Bytes>> {
        let path = dir(root, kind).join(format!("{ns}_{name}.json"));
        match std::fs::remove_file(&path) {
            Ok(()) => super::reply(
                StatusCode::OK,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ),
            Err(_) => not_found(kind, name),
        }
    }

    pub fn list(root: &Path, kind: &str, ns: Option<&str>) -> Vec<Value> {
        let mut items: Vec<(String, Value)> = std::fs::read_dir(dir(root, kind))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if ns.is_some_and(|ns| !name.starts_with(&format!("{ns}_"))) {
                    return None;
                }
                let value = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
                Some((name, value))
            })
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        items.into_iter().map(|(_, v)| v).collect()
    }
}

/// TokenRequest, honouring the 3607-second rule and `--service-account-extend-token-expiration`.
fn token_request(state: &State, ns: &str, sa: &str, body: &Value) -> Response<Full<Bytes>> {
    let now = crate::now_unix();
    let mut requested = body
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if requested < 600 {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "spec.expirationSeconds: may not specify a duration less than 10 minutes",
        );
    }
    let bound_pod = body
        .pointer("/spec/boundObjectRef/kind")
        .and_then(Value::as_str)
        == Some("Pod");
    let extend = state.settings.extend && bound_pod && requested == WARN_AFTER_SECONDS;
    if let Some(max) = state.settings.max_expiration
        && !extend
    {
        requested = requested.min(max);
    }
    let exp = if extend {
        now + EXTENSION_SECONDS
    } else {
        now + requested
    };
    let audiences = body
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(|| vec![json!(state.settings.issuer)]);
    let mut k8s =
        json!({"namespace": ns, "serviceaccount": {"name": sa, "uid": format!("sim-{ns}-{sa}")}});
    if bound_pod {
        let pod = body
            .pointer("/spec/boundObjectRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        k8s["pod"] = json!({"name": pod, "uid": format!("sim-pod-{pod}")});
    }
    if extend {
        k8s["warnafter"] = json!(now + WARN_AFTER_SECONDS);
    }
    let claims = json!({
        "aud": audiences, "exp": exp, "iat": now, "nbf": now, "iss": state.settings.issuer,
        "kubernetes.io": k8s, "sub": format!("system:serviceaccount:{ns}:{sa}"),
    });
    reply(
        StatusCode::CREATED,
        json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {"name": sa, "namespace": ns},
               "spec": body.get("spec").cloned().unwrap_or(json!({})),
               "status": {"token": sign_jwt(state, &claims), "expirationTimestamp": kubeadm_recover::runtime::clock::rfc3339(now + requested)}}),
    )
}

/// SelfSubjectReview went alpha in 1.26, beta in 1.27 and GA in 1.28; older servers 404.
fn self_subject_review_served(server_version: &str, api_version: &str) -> bool {
    let minor: u32 = server_version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    match api_version {
        "v1" => minor >= 28,
        "v1beta1" => minor >= 27,
        "v1alpha1" => minor >= 26,
        _ => false,
    }
}

/// The Kubernetes protobuf encoding, as far as the simulator reads it: a TokenRequest.
mod protobuf {
    use serde_json::{Value, json};

    /// (field number, wire type, payload) of each field of one message.
    fn fields(mut bytes: &[u8]) -> Option<Vec<(u64, u8, Field<'_>)>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let key = varint(&mut bytes)?;
            let (number, wire) = (key >> 3, (key & 7) as u8);
            let field = match wire {
                0 => Field::Varint(varint(&mut bytes)?),
                2 => {
                    let len = varint(&mut bytes)? as usize;
                    let (data, rest) = (bytes.get(..len)?, bytes.get(len..)?);
                    bytes = rest;
                    Field::Bytes(data)
                }
                1 => {
                    bytes = bytes.get(8..)?;
                    Field::Varint(0)
                }
                5 => {
                    bytes = bytes.get(4..)?;
                    Field::Varint(0)
                }
                _ => return None,
            };
            out.push((number, wire, field));
        }
        Some(out)
    }

    enum Field<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
    }

    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn text(field: &Field<'_>) -> Option<String> {
        match field {
            Field::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Field::Varint(_) => None,
        }
    }

    /// `k8s\0` + runtime.Unknown{typeMeta=1, raw=2}; raw is the TokenRequest (spec=2:
    /// audiences=1, boundObjectRef=3 {kind=1, apiVersion=2, name=3, uid=4},
    /// expirationSeconds=4), as authentication/v1's generated.proto numbers them.
    pub fn token_request(body: &[u8]) -> Option<Value> {
        let unknown = fields(body.strip_prefix(b"k8s\0")?)?;
        let raw = unknown.iter().find_map(|(n, _, f)| match (n, f) {
            (2, Field::Bytes(b)) => Some(*b),
            _ => None,
        })?;
        let spec_bytes = fields(raw)?
            .into_iter()
            .find_map(|(n, _, f)| match (n, f) {
                (2, Field::Bytes(b)) => Some(b),
                _ => None,
            })?;
        let mut spec = json!({});
        let mut audiences = Vec::new();
        for (number, _, field) in fields(spec_bytes)? {
            match (number, &field) {
                (1, _) => audiences.push(json!(text(&field)?)),
                (4, Field::Varint(seconds)) => spec["expirationSeconds"] = json!(*seconds as i64),
                (3, Field::Bytes(reference)) => {
                    let mut bound = json!({});
                    for (n, _, f) in fields(reference)? {
                        let key = match n {
                            1 => "kind",
                            2 => "apiVersion",
                            3 => "name",
                            4 => "uid",
                            _ => continue,
                        };
                        bound[key] = json!(text(&f)?);
                    }
                    spec["boundObjectRef"] = bound;
                }
                _ => {}
            }
        }
        spec["audiences"] = json!(audiences);
        Some(
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}),
        )
    }
}
