//! Who may open a connection: the bearer token and the browser-origin check, applied to every
//! websocket upgrade (and the token to `/metrics`) before anything else happens.

use axum::http::{header, HeaderMap, StatusCode};
use std::fmt;
use subtle::ConstantTimeEq;

/// A bearer token. Never printed: `Debug` shows only that it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token must be non-empty; surrounding whitespace (a trailing newline in a token file)
    /// is not part of it.
    pub fn new(raw: &str) -> Option<Token> {
        let trimmed = raw.trim();
        (!trimmed.is_empty()).then(|| Token(trimmed.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The admission rules of one server.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    /// Required as `Authorization: Bearer <token>` when set.
    pub token: Option<Token>,
    /// Origins allowed to open a websocket (exact match, e.g. `https://app.example`).
    pub allowed_origins: Vec<String>,
}

/// Why a request was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    MissingOrWrongToken,
    ForbiddenOrigin,
}

impl Rejection {
    pub fn status(self) -> StatusCode {
        match self {
            Rejection::MissingOrWrongToken => StatusCode::UNAUTHORIZED,
            Rejection::ForbiddenOrigin => StatusCode::FORBIDDEN,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Rejection::MissingOrWrongToken => {
                "missing or wrong bearer token: send `Authorization: Bearer <token>`\n"
            }
            Rejection::ForbiddenOrigin => {
                "websocket upgrades from a browser origin are refused unless allowed with --allow-origin\n"
            }
        }
    }
}

impl AccessPolicy {
    /// Checks the bearer token, if one is required.
    pub fn check_token(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Constant time in the token's content, so timing does not reveal a matching prefix.
        if bool::from(presented.as_bytes().ct_eq(expected.0.as_bytes())) {
            Ok(())
        } else {
            Err(Rejection::MissingOrWrongToken)
        }
    }

    /// Refuses upgrades that carry an `Origin` header not explicitly allowed: a web page in
    /// a browser must not be able to drive an exec server on the user's machine.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        match headers.get(header::ORIGIN) {
            None => Ok(()),
            Some(origin) => {
                let origin = origin.to_str().unwrap_or("");
                if self.allowed_origins.iter().any(|o| o == origin) {
                    Ok(())
                } else {
                    Err(Rejection::ForbiddenOrigin)
                }
            }
        }
    }

    /// Both checks, for a websocket upgrade.
    pub fn admit(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        self.check_origin(headers)?;
        self.check_token(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn token_checks() {
        let policy = AccessPolicy {
            token: Token::new("s3cret\n"),
            ..AccessPolicy::default()
        };
        assert!(policy.check_token(&headers(&[])).is_err());
        assert!(policy
            .check_token(&headers(&[(header::AUTHORIZATION, "Bearer s3cre")]))
            .is_err());
        assert!(policy
            .check_token(&headers(&[(header::AUTHORIZATION, "Bearer s3cret")]))
            .is_ok());
        assert_eq!(format!("{:?}", policy.token), "Some(Token(<redacted>))");
        assert!(Token::new("  \n").is_none());
    }

    #[test]
    fn origin_checks() {
        let policy = AccessPolicy {
            allowed_origins: vec!["https://ok.example".into()],
            ..AccessPolicy::default()
        };
        assert!(policy.check_origin(&headers(&[])).is_ok());
        assert!(policy
            .check_origin(&headers(&[(header::ORIGIN, "https://ok.example")]))
            .is_ok());
        assert_eq!(
            policy.check_origin(&headers(&[(header::ORIGIN, "https://evil.example")])),
            Err(Rejection::ForbiddenOrigin)
        );
    }
}
