//! PEM blocks, for the few places that need DER.
use x509_parser::error::{PEMError, X509Error};
use x509_parser::pem::Pem;

/// Why a certificate's expiry could not be read. Shown as the parser says it (`diagnose`
/// reports it as the certificate's problem).
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// No PEM block, or one that does not decode.
    #[error(transparent)]
    Pem(#[from] x509_parser::nom::Err<PEMError>),
    /// A PEM block that holds no X.509 certificate.
    #[error(transparent)]
    X509(#[from] x509_parser::nom::Err<X509Error>),
}

/// The DER contents of every `-----BEGIN <label>-----` block in `text`, in order. Blocks of
/// other labels (a key beside the certificate) and blocks that do not decode are skipped.
pub fn blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    Pem::iter_from_buffer(text.as_bytes())
        .filter_map(Result::ok)
        .filter(|pem| pem.label == label)
        .map(|pem| pem.contents)
        .collect()
}

pub fn certificates(text: &str) -> Vec<Vec<u8>> {
    blocks(text, "CERTIFICATE")
}

/// The `notAfter` (Unix seconds) of the first certificate in a PEM text.
pub fn not_after(pem: &[u8]) -> Result<i64, CertificateError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem)?;
    let cert = pem.parse_x509()?;
    Ok(cert.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armored(label: &str, der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn only_the_blocks_of_the_label_in_order_and_never_one_that_does_not_decode() {
        let first = vec![1u8; 100];
        let second = vec![2u8; 3];
        let text = format!(
            "a comment\n{}{}-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n{}",
            armored("CERTIFICATE", &first),
            armored("EC PRIVATE KEY", &[9; 32]),
            armored("CERTIFICATE", &second).replace('\n', "\r\n"),
        );
        assert_eq!(certificates(&text), vec![first, second]);
        assert_eq!(blocks(&text, "EC PRIVATE KEY"), vec![vec![9u8; 32]]);
        assert!(certificates("").is_empty());
        assert!(certificates("-----BEGIN CERTIFICATE-----\nAAAA\n").is_empty());
    }

    #[test]
    fn an_expiry_that_cannot_be_read_says_why() {
        assert!(matches!(
            not_after(b"no pem here"),
            Err(CertificateError::Pem(_))
        ));
        let not_a_certificate = armored("CERTIFICATE", &[1, 2, 3]);
        assert!(matches!(
            not_after(not_a_certificate.as_bytes()),
            Err(CertificateError::X509(_))
        ));
    }
}
