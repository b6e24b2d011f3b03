//! Signing in with an OpenID Connect provider (Google, Kakao, GitLab or any standard
//! issuer): the authorization code flow with PKCE (RFC 7636) and a nonce, the provider's
//! discovery document and keys, and the checks on the ID token it returns (signature,
//! issuer, audience, expiry, nonce).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// One provider, as the operator configures it (`PARLOR_OIDC`, a JSON list).
#[derive(Debug, Clone, Deserialize)]
pub struct OidcProvider {
    /// In URLs: `/api/v1/auth/oidc/{id}/start`. Letters, digits, `-` and `_`.
    pub id: String,
    /// What the sign-in button says: "Sign in with {name}".
    pub name: String,
    /// The issuer URL; its `/.well-known/openid-configuration` describes the rest.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

/// Reads `PARLOR_OIDC`: a JSON list of providers with distinct ids of letters, digits,
/// `-` and `_`.
pub fn parse_providers(json: &str) -> Result<Vec<OidcProvider>, String> {
    let list: Vec<OidcProvider> = serde_json::from_str(json).map_err(|e| e.to_string())?;
    for (i, p) in list.iter().enumerate() {
        let ok = !p.id.is_empty()
            && p.id.len() <= 32
            && p.id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!(
                "provider id {:?}: letters, digits, '-' and '_'",
                p.id
            ));
        }
        if list[..i].iter().any(|q| q.id == p.id) {
            return Err(format!("provider id {:?} twice", p.id));
        }
        if !(p.issuer.starts_with("https://") || p.issuer.starts_with("http://")) {
            return Err(format!("provider {:?}: the issuer is a URL", p.id));
        }
    }
    Ok(list)
}

/// What the discovery document says.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// The claims Parlor uses from an ID token.
#[derive(Debug, Clone, Deserialize)]
pub struct IdClaims {
    pub sub: String,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<serde_json::Value>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub preferred_username: Option<String>,
}

impl IdClaims {
    /// Some providers send `"true"` as a string.
    pub fn email_is_verified(&self) -> bool {
        match &self.email_verified {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    #[error("the provider answered unexpectedly: {0}")]
    BadAnswer(String),
    #[error("the ID token is not valid: {0}")]
    BadToken(String),
}

/// How long discovery documents and keys are kept.
const CACHE_FOR: Duration = Duration::from_secs(3600);

/// The providers, with their discovery documents and keys cached.
pub struct Oidc {
    pub providers: Vec<OidcProvider>,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, (Instant, Discovery, JwkSet)>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field(
                "providers",
                &self.providers.iter().map(|p| &p.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A random URL-safe string of 32 bytes.
pub fn random() -> String {
    crate::service::auth::random_token()
}

/// The PKCE `code_challenge` of a verifier (S256).
pub fn challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

impl Oidc {
    pub fn new(providers: Vec<OidcProvider>) -> Oidc {
        Oidc {
            providers,
            // The issuers are the operator's choice, so this client may reach any address
            // (unlike the one for URLs users name).
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            cache: Mutex::default(),
        }
    }

    pub fn provider(&self, id: &str) -> Option<&OidcProvider> {
        self.providers.iter().find(|p| p.id == id)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let r = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        if !r.status().is_success() {
            return Err(OidcError::BadAnswer(format!("{url}: {}", r.status())));
        }
        r.json()
            .await
            .map_err(|e| OidcError::BadAnswer(format!("{url}: {e}")))
    }

    /// The provider's discovery document and keys; `fresh` fetches them again (a key
    /// rotated).
    pub async fn describe(
        &self,
        p: &OidcProvider,
        fresh: bool,
    ) -> Result<(Discovery, JwkSet), OidcError> {
        if !fresh
            && let Some((at, d, k)) = self.cache.lock().ok().and_then(|c| c.get(&p.id).cloned())
            && at.elapsed() < CACHE_FOR
        {
            return Ok((d, k));
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            p.issuer.trim_end_matches('/')
        );
        let d: Discovery = self.get_json(&url).await?;
        if d.issuer.trim_end_matches('/') != p.issuer.trim_end_matches('/') {
            return Err(OidcError::BadAnswer(format!(
                "the discovery document names issuer {}, not {}",
                d.issuer, p.issuer
            )));
        }
        let keys: JwkSet = self.get_json(&d.jwks_uri).await?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(p.id.clone(), (Instant::now(), d.clone(), keys.clone()));
        }
        Ok((d, keys))
    }

    /// Where to send the browser: the provider's authorization endpoint with the request.
    pub async fn authorization_url(
        &self,
        p: &OidcProvider,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> Result<String, OidcError> {
        let (d, _) = self.describe(p, false).await?;
        let mut url = reqwest::Url::parse(&d.authorization_endpoint)
            .map_err(|e| OidcError::BadAnswer(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &p.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid email profile")
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Trades the code for tokens and checks the ID token; its claims.
    pub async fn finish(
        &self,
        p: &OidcProvider,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<IdClaims, OidcError> {
        let (d, _) = self.describe(p, false).await?;
        let r = self
            .http
            .post(&d.token_endpoint)
            .basic_auth(&p.client_id, Some(&p.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("client_id", &p.client_id),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        let status = r.status();
        let body: serde_json::Value = r
            .json()
            .await
            .map_err(|e| OidcError::BadAnswer(format!("token endpoint: {e}")))?;
        if !status.is_success() {
            return Err(OidcError::BadAnswer(format!(
                "token endpoint: {status} {body}"
            )));
        }
        let id_token = body["id_token"]
            .as_str()
            .ok_or_else(|| OidcError::BadAnswer("no id_token".into()))?;
        let claims = match self.check(p, &d, id_token, false).await {
            Err(OidcError::BadToken(e)) if e.starts_with("no key") => {
                // The provider may have rotated its keys since they were cached.
                self.check(p, &d, id_token, true).await?
            }
            other => other?,
        };
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(OidcError::BadToken("the nonce does not match".into()));
        }
        Ok(claims)
    }

    async fn check(
        &self,
        p: &OidcProvider,
        d: &Discovery,
        token: &str,
        fresh: bool,
    ) -> Result<IdClaims, OidcError> {
        let (_, keys) = self.describe(p, fresh).await?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| OidcError::BadToken(e.to_string()))?;
        let jwk = match &header.kid {
            Some(kid) => keys.find(kid),
            None => keys.keys.first(),
        }
        .ok_or_else(|| OidcError::BadToken(format!("no key {:?}", header.kid)))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| OidcError::BadToken(e.to_string()))?;
        let mut v = Validation::new(header.alg);
        v.set_audience(&[&p.client_id]);
        v.set_issuer(&[d.issuer.as_str(), d.issuer.trim_end_matches('/')]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<IdClaims>(token, &key, &v)
            .map(|t| t.claims)
            .map_err(|e| OidcError::BadToken(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_the_rfc_7636_example() {
        // RFC 7636, Appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn email_verified_may_be_a_string() {
        let c: IdClaims =
            serde_json::from_value(serde_json::json!({"sub": "1", "email_verified": "true"}))
                .unwrap();
        assert!(c.email_is_verified());
        let c: IdClaims = serde_json::from_value(serde_json::json!({"sub": "1"})).unwrap();
        assert!(!c.email_is_verified());
    }
}
