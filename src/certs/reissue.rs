//! Re-issuing a leaf certificate as kubeadm's renewal does: the same subject (every attribute, in
//! order), SANs, key usages and extended key usages, and the same key, signed by the CA, with a
//! new serial and validity. Pure: DER and keys in, PEM out.
use ::time::OffsetDateTime;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyUsagePurpose,
    SanType, SerialNumber,
};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;

use crate::credentials::pki::{Issued, Key};

#[derive(Debug, thiserror::Error)]
pub enum ReissueError {
    #[error("the certificate does not parse: {0}")]
    Parse(String),
    #[error("it holds a name this tool cannot copy exactly ({0}); renew it with kubeadm")]
    Unsupported(String),
    #[error("signing failed: {0}")]
    Sign(#[from] rcgen::Error),
}

/// The identity of `old` (DER), for its own `key`, signed by the CA, valid from `not_before`
/// to `not_after`.
pub fn reissue(
    old: &[u8],
    key: &Key,
    ca_pem: &str,
    ca_key: &Key,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Issued, ReissueError> {
    let (_, cert) =
        X509Certificate::from_der(old).map_err(|e| ReissueError::Parse(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&cert)?;
    params.subject_alt_names = sans(&cert)?;
    params.key_usages = key_usages(&cert)?;
    params.extended_key_usages = extended_key_usages(&cert)?;
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let mut serial = [0u8; 16];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut serial[..]);
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let issuer = Issuer::from_ca_cert_pem(ca_pem, &ca_key.pair)?;
    let cert = params.signed_by(&key.pair, &issuer)?;
    Ok(Issued {
        pem: cert.pem(),
        der: cert.der().to_vec(),
    })
}

fn subject(cert: &X509Certificate) -> Result<DistinguishedName, ReissueError> {
    use x509_parser::oid_registry as oids;
    let mut name = DistinguishedName::new();
    for attribute in cert.subject().iter_attributes() {
        let value = attribute.as_str().map_err(|_| {
            ReissueError::Unsupported("a subject attribute that is not a string".into())
        })?;
        let oid = attribute.attr_type();
        let kind = if *oid == oids::OID_X509_COMMON_NAME {
            DnType::CommonName
        } else if *oid == oids::OID_X509_ORGANIZATION_NAME {
            DnType::OrganizationName
        } else if *oid == oids::OID_X509_ORGANIZATIONAL_UNIT {
            DnType::OrganizationalUnitName
        } else if *oid == oids::OID_X509_COUNTRY_NAME {
            DnType::CountryName
        } else if *oid == oids::OID_X509_LOCALITY_NAME {
            DnType::LocalityName
        } else if *oid == oids::OID_X509_STATE_OR_PROVINCE_NAME {
            DnType::StateOrProvinceName
        } else {
            let arcs: Vec<u64> = oid
                .iter()
                .ok_or_else(|| ReissueError::Unsupported(format!("subject attribute {oid}")))?
                .collect();
            DnType::CustomDnType(arcs)
        };
        name.push(kind, value);
    }
    Ok(name)
}

fn sans(cert: &X509Certificate) -> Result<Vec<SanType>, ReissueError> {
    let Some(extension) = cert
        .subject_alternative_name()
        .map_err(|e| ReissueError::Parse(e.to_string()))?
    else {
        return Ok(Vec::new());
    };
    extension
        .value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => (*dns)
                .to_string()
                .try_into()
                .map(SanType::DnsName)
                .map_err(ReissueError::Sign),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => Ok(SanType::IpAddress(
                    <[u8; 4]>::try_from(*bytes).expect("4 bytes").into(),
                )),
                16 => Ok(SanType::IpAddress(
                    <[u8; 16]>::try_from(*bytes).expect("16 bytes").into(),
                )),
                _ => Err(ReissueError::Unsupported("an IP SAN of odd length".into())),
            },
            other => Err(ReissueError::Unsupported(format!("the SAN {other}"))),
        })
        .collect()
}

fn key_usages(cert: &X509Certificate) -> Result<Vec<KeyUsagePurpose>, ReissueError> {
    let Some(extension) = cert
        .key_usage()
        .map_err(|e| ReissueError::Parse(e.to_string()))?
    else {
        return Ok(Vec::new());
    };
    let usage = extension.value;
    let mut out = Vec::new();
    let mut add = |on: bool, purpose| {
        if on {
            out.push(purpose)
        }
    };
    add(usage.digital_signature(), KeyUsagePurpose::DigitalSignature);
    add(usage.non_repudiation(), KeyUsagePurpose::ContentCommitment);
    add(usage.key_encipherment(), KeyUsagePurpose::KeyEncipherment);
    add(usage.data_encipherment(), KeyUsagePurpose::DataEncipherment);
    add(usage.key_agreement(), KeyUsagePurpose::KeyAgreement);
    add(usage.key_cert_sign(), KeyUsagePurpose::KeyCertSign);
    add(usage.crl_sign(), KeyUsagePurpose::CrlSign);
    Ok(out)
}

fn extended_key_usages(
    cert: &X509Certificate,
) -> Result<Vec<ExtendedKeyUsagePurpose>, ReissueError> {
    let Some(extension) = cert
        .extended_key_usage()
        .map_err(|e| ReissueError::Parse(e.to_string()))?
    else {
        return Ok(Vec::new());
    };
    let usage = extension.value;
    let mut out = Vec::new();
    if usage.server_auth {
        out.push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if usage.client_auth {
        out.push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    if !usage.other.is_empty() || usage.any || usage.code_signing || usage.email_protection {
        return Err(ReissueError::Unsupported(
            "an extended key usage kubeadm does not set".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::pki::{self, KeyType, Profile, Request, YEAR};

    #[test]
    fn the_new_certificate_keeps_subject_sans_usages_and_key_and_only_dates_and_serial_change() {
        let ca_key = Key::generate(KeyType::EcdsaP256).unwrap();
        let now = pki::now();
        let request = |common_name, profile| Request {
            common_name,
            organizations: &["system:masters", "b"],
            profile,
            now,
            validity: YEAR,
        };
        let ca = pki::self_signed_ca(&ca_key, &request("kubernetes", Profile::Ca)).unwrap();
        let key = Key::generate(KeyType::EcdsaP256).unwrap();
        let sans = ["kubernetes".to_string(), "10.96.0.1".to_string()];
        let old = pki::issue(
            &ca.pem,
            &ca_key,
            &key,
            &request("kube-apiserver", Profile::Server { sans: &sans }),
        )
        .unwrap();
        let past = now - ::time::Duration::days(400);
        let new = reissue(
            &old.der,
            &key,
            &ca.pem,
            &ca_key,
            past,
            past + ::time::Duration::days(365),
        )
        .unwrap();
        let (_, a) = X509Certificate::from_der(&old.der).unwrap();
        let (_, b) = X509Certificate::from_der(&new.der).unwrap();
        assert_eq!(a.subject().to_string(), b.subject().to_string());
        assert_eq!(a.public_key().raw, b.public_key().raw);
        assert_eq!(
            a.subject_alternative_name().unwrap().unwrap().value,
            b.subject_alternative_name().unwrap().unwrap().value
        );
        assert_eq!(
            a.key_usage().unwrap().unwrap().value,
            b.key_usage().unwrap().unwrap().value
        );
        assert_eq!(
            a.extended_key_usage().unwrap().unwrap().value.server_auth,
            b.extended_key_usage().unwrap().unwrap().value.server_auth
        );
        assert_ne!(a.raw_serial(), b.raw_serial());
        assert!(b.validity().not_after.timestamp() < now.unix_timestamp());
        assert!(crate::credentials::issue::signed_by(&new.der, &ca.der));
    }
}
