//! The JWT secret shared with the execution client: loading it, and signing a token with it.

use std::path::Path;

use alloy_rpc_types_engine::{Claims, JwtError, JwtSecret};
use engine_types::EngineError;

/// A fresh HS256 bearer token (`Authorization` header value) for `secret`, issued now, with
/// `iat` only: what alloy's `AuthLayer`, which every [`HttpExecutionClient`] request goes
/// through, sends. For probes and raw requests outside a client.
///
/// [`HttpExecutionClient`]: crate::HttpExecutionClient
pub fn bearer_token(secret: &JwtSecret) -> Result<String, EngineError> {
    secret
        .encode(&Claims::with_current_timestamp())
        .map(|token| format!("Bearer {token}"))
        .map_err(|e| EngineError::Auth {
            endpoint: String::new(),
            status: 0,
            message: format!("cannot sign the engine JWT: {e}"),
        })
}

/// Read a JWT secret file: 32 bytes as 64 hex characters, an optional `0x` prefix and
/// surrounding whitespace allowed. Every failure names the file and says what is wrong.
///
/// ```no_run
/// let secret = engine_clients::load_jwt_secret("/var/lib/alys/jwt.hex".as_ref())?;
/// # Ok::<(), engine_types::EngineError>(())
/// ```
pub fn load_jwt_secret(path: &Path) -> Result<JwtSecret, EngineError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| EngineError::JwtSecret {
        path: shown.clone(),
        reason: format!("cannot read it: {e}"),
    })?;
    parse_jwt_secret(&text).map_err(|reason| EngineError::JwtSecret {
        path: shown,
        reason,
    })
}

/// Parse the text of a JWT secret file (see [`load_jwt_secret`]); the error says what is wrong.
pub fn parse_jwt_secret(text: &str) -> Result<JwtSecret, String> {
    let hex = text.trim();
    if hex.is_empty() {
        return Err("it is empty".into());
    }
    let digits = hex
        .strip_prefix("0x")
        .or_else(|| hex.strip_prefix("0X"))
        .unwrap_or(hex);
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("it contains the non-hex character {bad:?}"));
    }
    if digits.len() != 64 {
        return Err(format!(
            "it has {} hex characters, expected 64",
            digits.len()
        ));
    }
    JwtSecret::from_hex(digits).map_err(|e: JwtError| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const HEX: &str = "f79ae8046bc11c9927afe911db7143c51a806c4a537cc08e0d37140b0192f430";

    fn file_with(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    #[test]
    fn bearer_tokens_carry_iat_and_no_exp() {
        let secret = JwtSecret::random();
        let token = bearer_token(&secret).unwrap();
        let jwt = token.strip_prefix("Bearer ").unwrap();
        // alloy's own validator accepts it (HS256, iat within ±60 s).
        secret.validate(jwt).unwrap();
        let payload = jwt.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&base64_url_decode(payload)).unwrap();
        assert!(
            claims.get("iat").is_some_and(serde_json::Value::is_u64),
            "{claims}"
        );
        assert!(
            claims.get("exp").is_none(),
            "exp must be absent, not null: {claims}"
        );
    }

    /// Base64url without padding (the JWT encoding), enough for a claims segment.
    fn base64_url_decode(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bits = 0u32;
        let mut count = 0;
        let mut out = Vec::new();
        for c in text.bytes() {
            let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
            bits = (bits << 6) | v;
            count += 6;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
            }
        }
        out
    }

    #[test]
    fn accepts_plain_prefixed_and_padded_hex() {
        let plain = load_jwt_secret(file_with(HEX).path()).unwrap();
        let prefixed = load_jwt_secret(file_with(&format!("0x{HEX}")).path()).unwrap();
        let padded = load_jwt_secret(file_with(&format!("\n  0x{HEX}  \n")).path()).unwrap();
        assert_eq!(plain.as_bytes(), prefixed.as_bytes());
        assert_eq!(plain.as_bytes(), padded.as_bytes());
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let missing = load_jwt_secret(Path::new("/nonexistent/jwt.hex"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("/nonexistent/jwt.hex") && missing.contains("cannot read"),
            "{missing}"
        );

        let short = file_with(&HEX[..40]);
        let err = load_jwt_secret(short.path()).unwrap_err().to_string();
        assert!(err.contains(&short.path().display().to_string()), "{err}");
        assert!(err.contains("40 hex characters, expected 64"), "{err}");

        let garbled = file_with(&format!("{}zz", &HEX[..62]));
        let err = load_jwt_secret(garbled.path()).unwrap_err().to_string();
        assert!(err.contains("non-hex character 'z'"), "{err}");

        let empty = file_with("  \n");
        assert!(
            load_jwt_secret(empty.path())
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
    }
}
