//! Passwords (argon2id), access tokens (short-lived HS256 JWTs), refresh tokens (random,
//! stored hashed, rotated on every use) and login IP allowlists.

use std::net::IpAddr;

use crate::model::UserId;
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id, as a string.
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    /// Always "access": a room token can never pass for one.
    pub typ: String,
    /// The session (refresh-token family) the token was issued in; when that session
    /// ends, so does the token.
    pub sid: String,
}

/// Who a valid access token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub user_id: UserId,
    pub session: String,
}

/// Seconds an access token is still accepted after its `exp`.
pub const ACCESS_LEEWAY_SECS: u64 = 5;

#[derive(Clone)]
pub struct AccessKeys {
    enc: EncodingKey,
    dec: DecodingKey,
}

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessKeys(..)")
    }
}

impl AccessKeys {
    pub fn new(secret: &[u8]) -> AccessKeys {
        AccessKeys {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
        }
    }

    pub fn issue(&self, user_id: UserId, session: &str, ttl_secs: u64) -> String {
        let now = crate::now_ms() as u64 / 1000;
        let c = AccessClaims {
            sub: user_id.to_string(),
            exp: now + ttl_secs,
            iat: now,
            typ: "access".into(),
            sid: session.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &self.enc).unwrap_or_default()
    }

    /// The user and session of a validly signed, unexpired access token. Whether its
    /// session is still alive is the caller's check (the set of ended sessions).
    pub fn verify(&self, token: &str) -> Result<AccessToken, &'static str> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = ACCESS_LEEWAY_SECS;
        match jsonwebtoken::decode::<AccessClaims>(token, &self.dec, &v) {
            Ok(d) if d.claims.typ == "access" && !d.claims.sid.is_empty() => {
                let user_id = d.claims.sub.parse().map_err(|_| "invalid_token")?;
                Ok(AccessToken {
                    user_id,
                    session: d.claims.sid,
                })
            }
            Ok(_) => Err("invalid_token"),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                Err("token_expired")
            }
            Err(_) => Err("invalid_token"),
        }
    }
}

/// A new opaque token: 256 random bits, URL-safe base64.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// What is stored for a refresh token: its SHA-256, so a leaked table grants nothing.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An allowlist entry: an address or a CIDR block, IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, prefix) = match s.trim().split_once('/') {
            Some((ip, p)) => (ip.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { net: ip, prefix })
    }

    /// A comma-separated list of addresses or CIDR blocks (an environment variable).
    pub fn parse_list(list: &str) -> Result<Vec<Cidr>, String> {
        list.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| Cidr::parse(p).ok_or_else(|| format!("{p:?} is not an IP address or CIDR")))
            .collect()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(
            Cidr::parse("127.0.0.1")
                .unwrap()
                .contains("127.0.0.1".parse().unwrap())
        );
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("nope"), None);
    }

    #[test]
    fn access_tokens() {
        let k = AccessKeys::new(b"k");
        assert_eq!(
            k.verify(&k.issue(UserId(42), "s1", 60)),
            Ok(AccessToken {
                user_id: UserId(42),
                session: "s1".into()
            })
        );
        assert_eq!(
            AccessKeys::new(b"other").verify(&k.issue(UserId(42), "s1", 60)),
            Err("invalid_token")
        );
    }
}
