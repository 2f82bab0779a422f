//! Issuing an admin client certificate from the cluster CA on the node itself, with the identity
//! of the old one (or kubeadm's defaults), and describing certificates without their keys.
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use sha2::Digest;
use x509_parser::prelude::*;

use crate::credentials::pki::{self, Key, KeyType, Profile, Request};

/// The identity a credential carries: CN is the user, every O a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subject {
    pub common_name: String,
    pub organizations: Vec<String>,
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CN={}", self.common_name)?;
        for o in &self.organizations {
            write!(f, ", O={o}")?;
        }
        Ok(())
    }
}

/// Which kubeadm credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Admin,
    SuperAdmin,
}

impl Kind {
    pub fn file_name(self) -> &'static str {
        match self {
            Kind::Admin => "admin.conf",
            Kind::SuperAdmin => "super-admin.conf",
        }
    }

    pub fn user_name(self) -> &'static str {
        match self {
            Kind::Admin => "kubernetes-admin",
            Kind::SuperAdmin => "kubernetes-super-admin",
        }
    }

    /// kubeadm's subject: admin is in kubeadm:cluster-admins from 1.29 on (system:masters
    /// before); super-admin is always system:masters.
    pub fn default_subject(self, v129_or_later: bool) -> Subject {
        let group = match (self, v129_or_later) {
            (Kind::Admin, true) => "kubeadm:cluster-admins",
            _ => "system:masters",
        };
        Subject {
            common_name: self.user_name().into(),
            organizations: vec![group.into()],
        }
    }
}

/// What is recorded about a certificate: never the key.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertFacts {
    pub subject: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub sha256_fingerprint: String,
    pub system_masters: bool,
}

pub fn facts(der: &[u8]) -> Result<CertFacts, x509_parser::nom::Err<X509Error>> {
    let (_, cert) = X509Certificate::from_der(der)?;
    let fingerprint = sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok(CertFacts {
        subject: cert.subject().to_string(),
        serial: cert.raw_serial_as_string(),
        not_before: crate::runtime::clock::rfc3339(cert.validity().not_before.timestamp()),
        not_after: crate::runtime::clock::rfc3339(cert.validity().not_after.timestamp()),
        sha256_fingerprint: fingerprint,
        system_masters: cert
            .subject()
            .iter_organization()
            .any(|o| o.as_str() == Ok("system:masters")),
    })
}

/// Subject and key type of a certificate (base64 of PEM, as kubeconfigs embed it), even expired.
pub fn read_certificate(cert_b64: &str) -> Option<(Subject, KeyType, Vec<u8>)> {
    let pem = base64::engine::general_purpose::STANDARD
        .decode(cert_b64.trim())
        .ok()?;
    let der = crate::credentials::pem::certificates(&String::from_utf8_lossy(&pem))
        .into_iter()
        .next()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let organizations = cert
        .subject()
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    // kubeadm's default where the key is of a kind it never writes.
    let key_type = KeyType::of_public_key(cert.public_key()).unwrap_or(KeyType::Rsa2048);
    Some((
        Subject {
            common_name,
            organizations,
        },
        key_type,
        der,
    ))
}

/// Whether the private key `key_b64` (base64 of a PEM, as a kubeconfig embeds it) is the key
/// of the certificate `cert_b64`: proof that whoever wrote the kubeconfig held that credential.
pub fn key_matches(cert_b64: &str, key_b64: &str) -> bool {
    let decode = |b: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    let (Some(cert_pem), Some(key_pem)) = (decode(cert_b64), decode(key_b64)) else {
        return false;
    };
    let Some(der) = crate::credentials::pem::certificates(&cert_pem)
        .into_iter()
        .next()
    else {
        return false;
    };
    let Ok((_, cert)) = X509Certificate::from_der(&der) else {
        return false;
    };
    let Ok(key) = crate::credentials::pki::Key::from_pem(&key_pem) else {
        return false;
    };
    key.public_key_der() == cert.tbs_certificate.subject_pki.raw
}

/// Whether `cert_der` carries a valid signature by the CA certificate `ca_der`.
pub fn signed_by(cert_der: &[u8], ca_der: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(cert_der),
        X509Certificate::from_der(ca_der),
    ) else {
        return false;
    };
    cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// Why a client certificate could not be issued. The messages name the file, the kind of key
/// and what to do.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// `ca.crt` or `ca.key` could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: an encrypted (passphrase-protected) private key; kubeadm writes it unencrypted. Decrypt a copy \
         (openssl pkey -in ca.key -out /root/ca.key.plain) and put that in place, or use --method kubeadm",
        path.display()
    )]
    EncryptedKey { path: PathBuf },
    /// A private key of a kind this tool does not sign with (P-384, P-521, ...).
    #[error(
        "{}: a key this tool cannot sign with ({source}); it signs with RSA and ECDSA P-256 keys, as kubeadm \
         makes them (a P-384 or P-521 CA is not one of them). Use --method kubeadm",
        path.display()
    )]
    UnsupportedKey {
        path: PathBuf,
        #[source]
        source: pki::Error,
    },
    #[error(
        "{}: not a private key this tool can read ({source}); use --method kubeadm",
        path.display()
    )]
    NotAKey {
        path: PathBuf,
        #[source]
        source: pki::Error,
    },
    #[error("ca.crt holds no certificate")]
    NoCaCertificate,
    /// The CA certificate, or the one just issued, does not parse.
    #[error(transparent)]
    Certificate(#[from] x509_parser::nom::Err<X509Error>),
    #[error("the cluster CA has expired: renew the CA first (kubeadm cannot do that either)")]
    CaExpired,
    /// Generating the key or signing the certificate failed.
    #[error(transparent)]
    Pki(pki::Error),
    /// A certificate signed with `key` does not verify against `ca`.
    #[error(
        "{} does not belong to {}: a certificate signed with it does not verify against the CA. \
         Nothing was written; find the CA's own key (kubeadm keeps it beside ca.crt)",
        key.display(),
        ca.display()
    )]
    KeyNotTheCas { key: PathBuf, ca: PathBuf },
}

/// Why a CA key cannot be used, from what its PEM says it is.
fn unusable_key(path: &Path, pem: &str, error: pki::Error) -> IssueError {
    let path = path.to_path_buf();
    if pem.contains("ENCRYPTED") {
        IssueError::EncryptedKey { path }
    } else if pem.contains("BEGIN EC PRIVATE KEY") || pem.contains("BEGIN PRIVATE KEY") {
        IssueError::UnsupportedKey {
            path,
            source: error,
        }
    } else {
        IssueError::NotAKey {
            path,
            source: error,
        }
    }
}

pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub facts: CertFacts,
    /// The validity was shortened to end with the CA.
    pub capped_to_ca: bool,
}

/// Signs a new client certificate with the CA in `pki_dir` (ca.crt + ca.key in any format
/// kubeadm writes). The validity never runs past the CA's own.
pub fn issue(
    layout: &crate::node::NodeLayout,
    pki_dir: &Path,
    subject: &Subject,
    key_type: KeyType,
    validity: Duration,
) -> Result<Issued, IssueError> {
    let read = |path: PathBuf| {
        layout
            .fs()
            .read_to_string(&path)
            .map_err(|source| IssueError::Read { path, source })
    };
    let ca_pem = read(pki_dir.join("ca.crt"))?;
    let ca_key_pem = read(pki_dir.join("ca.key"))?;
    let ca_key = Key::from_pem(&ca_key_pem)
        .map_err(|e| unusable_key(&pki_dir.join("ca.key"), &ca_key_pem, e))?;
    let ca_der = crate::credentials::pem::certificates(&ca_pem)
        .into_iter()
        .next()
        .ok_or(IssueError::NoCaCertificate)?;
    let (_, ca) = X509Certificate::from_der(&ca_der)?;
    let now = pki::now();
    let ca_end = ca.validity().not_after.timestamp();
    // A validity past every date is capped to the CA's end like any other too long one.
    let wanted_end =
        crate::runtime::clock::after(now.unix_timestamp(), validity).unwrap_or(i64::MAX);
    let capped_to_ca = wanted_end > ca_end;
    let validity = if capped_to_ca {
        Duration::from_secs((ca_end - now.unix_timestamp()).max(0) as u64)
    } else {
        validity
    };
    if validity.is_zero() {
        return Err(IssueError::CaExpired);
    }
    let key = Key::generate(key_type).map_err(IssueError::Pki)?;
    let orgs: Vec<&str> = subject.organizations.iter().map(String::as_str).collect();
    let cert = pki::issue(
        &ca_pem,
        &ca_key,
        &key,
        &Request {
            common_name: &subject.common_name,
            organizations: &orgs,
            profile: Profile::Client,
            now,
            validity,
        },
    )
    .map_err(IssueError::Pki)?;
    // Checked locally whatever else is verified: a ca.key that is not ca.crt's key signs a
    // certificate nothing will accept.
    if !signed_by(&cert.der, &ca_der) {
        return Err(IssueError::KeyNotTheCas {
            key: pki_dir.join("ca.key"),
            ca: pki_dir.join("ca.crt"),
        });
    }
    Ok(Issued {
        facts: facts(&cert.der)?,
        cert_pem: cert.pem,
        key_pem: key.pem,
        capped_to_ca,
    })
}

/// The cluster CA certificate (DER), to recognise certificates it signed.
pub fn cluster_ca_der(layout: &crate::node::NodeLayout) -> Option<Vec<u8>> {
    let pem = layout.fs().read_to_string(&layout.cluster_ca()).ok()?;
    crate::credentials::pem::certificates(&pem)
        .into_iter()
        .next()
}

/// Whether a user's client certificate is kubeadm's `kind` credential of this cluster: signed
/// by its CA and carrying that identity's CN.
pub fn is_admin_certificate(cert_b64: &str, kind: Kind, ca: Option<&[u8]>) -> bool {
    read_certificate(cert_b64).is_some_and(|(subject, _, der)| {
        subject.common_name == kind.user_name() && ca.is_some_and(|ca| signed_by(&der, ca))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeLayout;

    #[test]
    fn a_ca_that_cannot_issue_says_which_file_what_it_is_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let layout = NodeLayout::new(Some(dir.path().to_path_buf())).unwrap();
        let pki = layout.pki_dir();
        std::fs::create_dir_all(&pki).unwrap();
        let subject = Kind::Admin.default_subject(true);
        let issue_with = |key: Option<&str>| {
            std::fs::write(pki.join("ca.crt"), "no certificate").unwrap();
            match key {
                Some(key) => std::fs::write(pki.join("ca.key"), key).unwrap(),
                None => std::fs::remove_file(pki.join("ca.key")).unwrap(),
            }
            issue(
                &layout,
                &pki,
                &subject,
                KeyType::EcdsaP256,
                Duration::from_secs(3600),
            )
            .err()
            .expect("refused")
            .to_string()
        };
        let key = pki.join("ca.key").display().to_string();
        assert_eq!(
            issue_with(Some(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
            )),
            format!(
                "{key}: an encrypted (passphrase-protected) private key; kubeadm writes it unencrypted. \
                 Decrypt a copy (openssl pkey -in ca.key -out /root/ca.key.plain) and put that in place, \
                 or use --method kubeadm"
            )
        );
        let garbage = issue_with(Some("garbage"));
        assert!(
            garbage.starts_with(&format!("{key}: not a private key this tool can read ("))
                && garbage.ends_with("); use --method kubeadm"),
            "{garbage}"
        );
        let missing = issue_with(None);
        assert!(missing.starts_with(&format!("{key}: ")), "{missing}");
        let no_ca = issue_with(Some(&Key::generate(KeyType::EcdsaP256).unwrap().pem));
        assert_eq!(no_ca, "ca.crt holds no certificate");
    }
}
