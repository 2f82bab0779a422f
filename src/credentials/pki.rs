//! Keys and certificates in the formats kubeadm writes: PKCS#1 RSA (`RSA PRIVATE KEY`) by
//! default, SEC1 EC (`EC PRIVATE KEY`) for ECDSA; certificates signed by the cluster CA.
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use time::OffsetDateTime;

/// kubeadm's `encryptionAlgorithm` values: a renewal keeps the one its certificate has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcdsaP256,
    EcdsaP384,
}

impl KeyType {
    /// The key type of a certificate's public key (RSA by its modulus, ECDSA by its point),
    /// or `None` for one kubeadm never writes (Ed25519, DSA, an odd size).
    pub fn of_public_key(spki: &x509_parser::x509::SubjectPublicKeyInfo) -> Option<KeyType> {
        use x509_parser::public_key::PublicKey;
        match spki.parsed().ok()? {
            PublicKey::RSA(rsa) => match rsa.key_size() {
                2048 => Some(KeyType::Rsa2048),
                3072 => Some(KeyType::Rsa3072),
                4096 => Some(KeyType::Rsa4096),
                _ => None,
            },
            PublicKey::EC(point) => match point.key_size() {
                256 => Some(KeyType::EcdsaP256),
                384 => Some(KeyType::EcdsaP384),
                _ => None,
            },
            _ => None,
        }
    }

    /// kubeadm's name for it (`encryptionAlgorithm`).
    pub fn kubeadm_name(self) -> &'static str {
        match self {
            KeyType::Rsa2048 => "RSA-2048",
            KeyType::Rsa3072 => "RSA-3072",
            KeyType::Rsa4096 => "RSA-4096",
            KeyType::EcdsaP256 => "ECDSA-P256",
            KeyType::EcdsaP384 => "ECDSA-P384",
        }
    }
}

/// A private key, usable for signing, with the PEM kubeadm would have written for it.
pub struct Key {
    pub pair: KeyPair,
    pub pem: String,
    pub key_type: KeyType,
}

pub type Error = Box<dyn std::error::Error + Send + Sync>;

impl Key {
    /// The SubjectPublicKeyInfo (DER) of the key: what a certificate for it carries.
    pub fn public_key_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(&self.pair)
    }

    pub fn generate(key_type: KeyType) -> Result<Key, Error> {
        let rsa_bits = match key_type {
            KeyType::Rsa2048 => 2048,
            KeyType::Rsa3072 => 3072,
            KeyType::Rsa4096 => 4096,
            KeyType::EcdsaP256 => {
                let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                let secret = p256::SecretKey::from_pkcs8_der(&pair.serialize_der())?;
                let pem = sec1_pem(&secret);
                return Ok(Key {
                    pair,
                    pem,
                    key_type,
                });
            }
            KeyType::EcdsaP384 => {
                let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
                let secret = p384::SecretKey::from_pkcs8_der(&pair.serialize_der())?;
                // elliptic-curve's SEC1 writer names the curve and carries the public key, as
                // Go's x509.MarshalECPrivateKey does.
                let pem = secret.to_sec1_pem(LineEnding::LF)?.to_string();
                return Ok(Key {
                    pair,
                    pem,
                    key_type,
                });
            }
        };
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, rsa_bits)?;
        let pem = key.to_pkcs1_pem(LineEnding::LF)?.to_string();
        Self::from_rsa(key, &pem)
    }

    /// Reads a key in any format kubeadm writes: PKCS#1 RSA, SEC1 EC, or PKCS#8.
    pub fn from_pem(pem: &str) -> Result<Key, Error> {
        if pem.contains("BEGIN RSA PRIVATE KEY") {
            let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem)?;
            return Self::from_rsa(key, pem);
        }
        if pem.contains("BEGIN EC PRIVATE KEY") {
            if let Ok(secret) = p384::SecretKey::from_sec1_pem(pem) {
                return Self::from_pkcs8(
                    secret.to_pkcs8_der()?.as_bytes(),
                    pem,
                    KeyType::EcdsaP384,
                );
            }
            let secret = p256::SecretKey::from_sec1_pem(pem)?;
            return Self::from_pkcs8(secret.to_pkcs8_der()?.as_bytes(), pem, KeyType::EcdsaP256);
        }
        if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
            return Self::from_rsa(key, pem);
        }
        let pair = KeyPair::from_pem(pem)?;
        let key_type = if pair.algorithm() == &rcgen::PKCS_ECDSA_P384_SHA384 {
            KeyType::EcdsaP384
        } else {
            KeyType::EcdsaP256
        };
        Ok(Key {
            pair,
            pem: pem.to_string(),
            key_type,
        })
    }

    fn from_rsa(key: rsa::RsaPrivateKey, pem: &str) -> Result<Key, Error> {
        let key_type = match rsa::traits::PublicKeyParts::size(&key) * 8 {
            3072 => KeyType::Rsa3072,
            4096 => KeyType::Rsa4096,
            _ => KeyType::Rsa2048,
        };
        Self::from_pkcs8(key.to_pkcs8_der()?.as_bytes(), pem, key_type)
    }

    /// The key whose PKCS#8 form is `der`, signing with its type's algorithm, keeping the PEM
    /// it was read from (or written as).
    fn from_pkcs8(der: &[u8], pem: &str, key_type: KeyType) -> Result<Key, Error> {
        let algorithm = match key_type {
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        };
        let pair = KeyPair::from_pkcs8_der_and_sign_algo(&der.to_vec().into(), algorithm)?;
        Ok(Key {
            pair,
            pem: pem.to_string(),
            key_type,
        })
    }

    /// The public key as PEM (`PUBLIC KEY`, SubjectPublicKeyInfo), as kubeadm writes `sa.pub`.
    pub fn public_pem(&self) -> String {
        self.pair.public_key_pem()
    }
}

/// SEC1 `EC PRIVATE KEY` with the named-curve parameters and the public key, exactly as Go's
/// `x509.MarshalECPrivateKey` (and so kubeadm) writes it; Go and OpenSSL need the curve OID.
fn sec1_pem(secret: &p256::SecretKey) -> String {
    use base64::Engine;
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    const SECP256R1: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let private = secret.to_bytes();
    let public = secret.public_key().to_encoded_point(false);
    let mut body = vec![0x02, 0x01, 0x01, 0x04, 0x20];
    body.extend_from_slice(&private);
    body.extend_from_slice(&[0xa0, SECP256R1.len() as u8]);
    body.extend_from_slice(&SECP256R1);
    body.extend_from_slice(&[0xa1, 0x44, 0x03, 0x42, 0x00]);
    body.extend_from_slice(public.as_bytes());
    let mut der = vec![0x30, body.len() as u8];
    der.extend(body);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// What a certificate is for.
pub enum Profile<'a> {
    Ca,
    Server { sans: &'a [String] },
    Client,
}

/// A certificate to issue. Validity is counted from `now`; not-before is backdated 5 minutes
/// like kubeadm does, to tolerate clock skew.
pub struct Request<'a> {
    pub common_name: &'a str,
    pub organizations: &'a [&'a str],
    pub profile: Profile<'a>,
    pub now: OffsetDateTime,
    pub validity: Duration,
}

pub struct Issued {
    pub pem: String,
    pub der: Vec<u8>,
}

fn params(request: &Request) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    // The default DN holds a placeholder CN; start empty so the order is kubeadm's: O, then CN.
    params.distinguished_name = rcgen::DistinguishedName::new();
    for org in request.organizations {
        params
            .distinguished_name
            .push(DnType::OrganizationName, *org);
    }
    params
        .distinguished_name
        .push(DnType::CommonName, request.common_name);
    params.not_before = request.now - time::Duration::minutes(5);
    params.not_after = request.now + request.validity;
    let mut serial = [0u8; 16];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut serial[..]);
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    match &request.profile {
        Profile::Ca => {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
                KeyUsagePurpose::KeyCertSign,
            ];
        }
        Profile::Server { sans } => {
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            for san in *sans {
                params.subject_alt_names.push(match san.parse() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(san.clone().try_into()?),
                });
            }
            params.use_authority_key_identifier_extension = true;
        }
        Profile::Client => {
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params.use_authority_key_identifier_extension = true;
        }
    }
    Ok(params)
}

pub fn self_signed_ca(key: &Key, request: &Request) -> Result<Issued, Error> {
    let cert = params(request)?.self_signed(&key.pair)?;
    Ok(Issued {
        pem: cert.pem(),
        der: cert.der().to_vec(),
    })
}

/// Signs a certificate for `subject_key` with the CA (its certificate PEM and key).
pub fn issue(
    ca_pem: &str,
    ca_key: &Key,
    subject_key: &Key,
    request: &Request,
) -> Result<Issued, Error> {
    let issuer = Issuer::from_ca_cert_pem(ca_pem, &ca_key.pair)?;
    let cert = params(request)?.signed_by(&subject_key.pair, &issuer)?;
    Ok(Issued {
        pem: cert.pem(),
        der: cert.der().to_vec(),
    })
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(crate::runtime::clock::now_unix())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_keys_are_sec1_with_the_curve_and_read_back() {
        let key = Key::generate(KeyType::EcdsaP256).unwrap();
        assert!(key.pem.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        let again = Key::from_pem(&key.pem).unwrap();
        assert_eq!(again.pair.public_key_pem(), key.pair.public_key_pem());
        let der = crate::credentials::pem::blocks(&key.pem, "EC PRIVATE KEY").remove(0);
        assert!(
            der.windows(8)
                .any(|w| w == [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
            "names prime256v1"
        );
    }

    #[test]
    fn every_kubeadm_encryption_algorithm_is_generated_read_back_and_recognised_in_a_certificate() {
        let ca_key = Key::generate(KeyType::EcdsaP256).unwrap();
        let ca = self_signed_ca(
            &ca_key,
            &Request {
                common_name: "kubernetes",
                organizations: &[],
                profile: Profile::Ca,
                now: now(),
                validity: YEAR,
            },
        )
        .unwrap();
        for key_type in [
            KeyType::Rsa2048,
            KeyType::Rsa3072,
            KeyType::Rsa4096,
            KeyType::EcdsaP256,
            KeyType::EcdsaP384,
        ] {
            let key = Key::generate(key_type).unwrap();
            let again = Key::from_pem(&key.pem).unwrap();
            assert_eq!(again.key_type, key_type, "{}", key_type.kubeadm_name());
            assert_eq!(again.pair.public_key_pem(), key.pair.public_key_pem());
            let leaf = issue(
                &ca.pem,
                &ca_key,
                &key,
                &Request {
                    common_name: "leaf",
                    organizations: &[],
                    profile: Profile::Client,
                    now: now(),
                    validity: YEAR,
                },
            )
            .unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&leaf.der).unwrap();
            assert_eq!(KeyType::of_public_key(cert.public_key()), Some(key_type));
            // And a CA of that type signs.
            let signed_by_it = issue(
                &self_signed_ca(
                    &again,
                    &Request {
                        common_name: "ca",
                        organizations: &[],
                        profile: Profile::Ca,
                        now: now(),
                        validity: YEAR,
                    },
                )
                .unwrap()
                .pem,
                &again,
                &ca_key,
                &Request {
                    common_name: "leaf",
                    organizations: &[],
                    profile: Profile::Client,
                    now: now(),
                    validity: YEAR,
                },
            );
            assert!(signed_by_it.is_ok(), "{}", key_type.kubeadm_name());
        }
    }

    #[test]
    fn rsa_keys_are_pkcs1_and_read_back() {
        let key = Key::generate(KeyType::Rsa2048).unwrap();
        assert!(key.pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        assert_eq!(
            Key::from_pem(&key.pem).unwrap().pair.public_key_pem(),
            key.pair.public_key_pem()
        );
    }
}
