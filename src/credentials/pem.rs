//! PEM blocks, for the few places that need DER.
use base64::Engine;

/// The DER contents of every `-----BEGIN <label>-----` block in `text`.
pub fn blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    text.split(&begin)
        .skip(1)
        .filter_map(|rest| rest.split(&end).next())
        .filter_map(|b64| {
            let clean: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD.decode(clean).ok()
        })
        .collect()
}

pub fn certificates(text: &str) -> Vec<Vec<u8>> {
    blocks(text, "CERTIFICATE")
}

/// The `notAfter` (Unix seconds) of the first certificate in a PEM text.
pub fn not_after(pem: &[u8]) -> Result<i64, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| e.to_string())?;
    let cert = pem.parse_x509().map_err(|e| e.to_string())?;
    Ok(cert.validity().not_after.timestamp())
}
