//! Which certificate a port presents NOW: one TLS handshake, bounded in time, that records the
//! server's certificate and trusts nothing (it authenticates no one: it only looks). Where the
//! server demands a client certificate (etcd), the one its own probes use is offered, so that
//! the handshake completes instead of leaving a rejection in the component's log.
use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// How long one look may take, connection included: a local port answers in milliseconds, and a
/// component that hangs must not hang `status`.
pub const DEADLINE: Duration = Duration::from_secs(3);

/// A client certificate and key (PEM) to offer.
pub struct ClientIdentity {
    pub certificate_pem: String,
    pub key_pem: secrecy::SecretString,
}

/// Why the port's certificate could not be seen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookError {
    #[error("nothing listens (connection refused)")]
    Refused,
    #[error("no answer within {}s", DEADLINE.as_secs())]
    TimedOut,
    #[error("{0}")]
    Other(String),
}

/// The end-entity certificate (DER) `host:port` presents.
pub fn presented(
    host: &str,
    port: u16,
    client: Option<&ClientIdentity>,
) -> Result<Vec<u8>, LookError> {
    let deadline = Instant::now() + DEADLINE;
    let seen = Arc::new(Mutex::new(None));
    let config = config(seen.clone(), client)?;
    let address = resolve(host, port, deadline)?;
    let name = ServerName::IpAddress(address.ip().into());
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| LookError::Other(e.to_string()))?;
    let mut socket = Deadlined::connect(&address, deadline)?;
    while connection.is_handshaking() {
        if let Err(e) = connection.complete_io(&mut socket) {
            // The certificate is seen before the handshake can fail on our side of it.
            if seen.lock().expect("not poisoned").is_some() {
                break;
            }
            return Err(io_error(e));
        }
    }
    if !connection.is_handshaking() {
        connection.send_close_notify();
        let _ = connection.write_tls(&mut socket);
        let _ = socket.flush();
    }
    seen.lock()
        .expect("not poisoned")
        .take()
        .ok_or_else(|| LookError::Other("the server presented no certificate".into()))
}

/// The HTTP status of `GET path` over TLS on `host:port` (the controller-manager's and the
/// scheduler's `/healthz`, which kubeadm lets anyone read), within [`DEADLINE`].
pub fn get_status(host: &str, port: u16, path: &str) -> Result<u16, LookError> {
    use std::io::Read;
    let deadline = Instant::now() + DEADLINE;
    let config = config(Arc::new(Mutex::new(None)), None)?;
    let address = resolve(host, port, deadline)?;
    let connection =
        rustls::ClientConnection::new(Arc::new(config), ServerName::IpAddress(address.ip().into()))
            .map_err(|e| LookError::Other(e.to_string()))?;
    let socket = Deadlined::connect(&address, deadline)?;
    let mut tls = rustls::StreamOwned::new(connection, socket);
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(io_error)?;
    // The status line is all that is read: at most a small, bounded head.
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        if Instant::now() > deadline {
            return Err(LookError::TimedOut);
        }
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(io_error(e)),
        }
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| LookError::Other("no HTTP status line".into()))
}

/// The address of `host` (an IP address as it is; a name looked up on a thread of its own, so
/// that a resolver that hangs is bounded by the look's deadline too).
fn resolve(host: &str, port: u16, deadline: Instant) -> Result<SocketAddr, LookError> {
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let left = Deadlined::left(deadline).map_err(io_error)?;
    let (send, receive) = std::sync::mpsc::channel();
    let name = host.to_string();
    std::thread::spawn(move || {
        let _ = send.send(
            (name.as_str(), port)
                .to_socket_addrs()
                .map(|mut a| a.next()),
        );
    });
    match receive.recv_timeout(left) {
        Ok(Ok(Some(address))) => Ok(address),
        Ok(Ok(None)) => Err(LookError::Other(format!("{host}: no address"))),
        Ok(Err(e)) => Err(LookError::Other(format!("{host}: {e}"))),
        Err(_) => Err(LookError::TimedOut),
    }
}

/// A socket whose every read and write ends by one deadline: a peer that trickles a byte just
/// before each read timeout would otherwise keep a handshake going for ever.
struct Deadlined {
    socket: TcpStream,
    deadline: Instant,
}

impl Deadlined {
    fn connect(address: &SocketAddr, deadline: Instant) -> Result<Self, LookError> {
        let left = Self::left(deadline).map_err(io_error)?;
        let socket = TcpStream::connect_timeout(address, left).map_err(io_error)?;
        Ok(Deadlined { socket, deadline })
    }

    fn left(deadline: Instant) -> std::io::Result<Duration> {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::TimedOut))
    }
}

impl std::io::Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.socket
            .set_read_timeout(Some(Self::left(self.deadline)?))?;
        self.socket.read(buf)
    }
}

impl std::io::Write for Deadlined {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.socket
            .set_write_timeout(Some(Self::left(self.deadline)?))?;
        self.socket.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.socket.flush()
    }
}

fn io_error(e: std::io::Error) -> LookError {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => LookError::Refused,
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => LookError::TimedOut,
        _ => LookError::Other(e.to_string()),
    }
}

fn config(
    seen: Arc<Mutex<Option<Vec<u8>>>>,
    client: Option<&ClientIdentity>,
) -> Result<rustls::ClientConfig, LookError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| LookError::Other(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Recorder { seen, provider }));
    let identity = client.and_then(|c| {
        let chain: Vec<CertificateDer<'static>> =
            crate::credentials::pem::certificates(&c.certificate_pem)
                .into_iter()
                .map(CertificateDer::from)
                .collect();
        let key = crate::credentials::pki::Key::from_pem(secrecy::ExposeSecret::expose_secret(
            &c.key_pem,
        ))
        .ok()?;
        Some((chain, PrivateKeyDer::Pkcs8(key.pair.serialize_der().into())))
    });
    Ok(match identity {
        Some((chain, key)) if !chain.is_empty() => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| LookError::Other(e.to_string()))?,
        _ => builder.with_no_client_auth(),
    })
}

/// Records the server's certificate and accepts it: the look is about what is presented, not
/// about whom to trust. Nothing is sent over this connection but the handshake.
#[derive(Debug)]
struct Recorder {
    seen: Arc<Mutex<Option<Vec<u8>>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().expect("not poisoned") = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_port_is_refused_quickly_and_says_so() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(presented("127.0.0.1", port, None), Err(LookError::Refused));
    }

    #[test]
    fn a_listener_that_never_answers_ends_at_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(presented("127.0.0.1", port, None), Err(LookError::TimedOut));
        drop(listener);
    }

    #[test]
    fn a_peer_that_trickles_its_handshake_ends_at_the_deadline_too() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // A TLS record header announcing 16 KiB, then a byte a second: each read sees data
        // before its own timeout, so only the one deadline over the whole look ends it. (Were
        // it not kept, the look would end at the trickle's end with another error.)
        let peer = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            for byte in [0x16u8, 0x03, 0x03, 0x40, 0x00].into_iter().chain([0; 5]) {
                if socket.write_all(&[byte]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(900));
            }
        });
        assert_eq!(presented("127.0.0.1", port, None), Err(LookError::TimedOut));
        peer.join().unwrap();
    }

    #[test]
    fn an_address_is_not_looked_up_and_a_name_is_bounded() {
        let far = Instant::now() + Duration::from_secs(1);
        assert_eq!(
            resolve("198.51.100.10", 6443, far).unwrap(),
            "198.51.100.10:6443".parse().unwrap()
        );
        assert_eq!(
            resolve("[::1]", 2379, far).unwrap(),
            "[::1]:2379".parse().unwrap()
        );
        assert_eq!(
            resolve("localhost", 1, Instant::now()),
            Err(LookError::TimedOut),
            "no time left: no lookup waited for"
        );
    }
}
