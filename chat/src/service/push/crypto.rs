//! The cryptography of Web Push, on aws-lc-rs: message encryption (RFC 8291, with the
//! `aes128gcm` content coding of RFC 8188) and the application server's VAPID
//! identification (RFC 8292).
//!
//! Written here rather than taken from the `web-push`/`ece` crates because those encrypt
//! with OpenSSL only, which Parlor does not link; everything else in Parlor uses aws-lc-rs.
//! The tests check the RFC 8291 example (Appendix A) byte for byte.

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

/// The record size written in the header: one record holds any payload Parlor sends.
const RECORD_SIZE: u32 = 4096;
/// The most plaintext one record carries (record size, less the tag and the delimiter).
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - 16 - 1;

#[derive(Debug, PartialEq, Eq)]
pub enum PushCryptoError {
    /// The subscription's `p256dh` is not an uncompressed P-256 point, or `auth` is not
    /// 16 bytes.
    BadSubscriptionKeys,
    TooLarge,
    Crypto,
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[&[u8]], len: usize) -> Result<Vec<u8>, PushCryptoError> {
    let prk = Salt::new(HKDF_SHA256, salt).extract(ikm);
    let okm = prk
        .expand(info, Len(len))
        .map_err(|_| PushCryptoError::Crypto)?;
    let mut out = vec![0; len];
    okm.fill(&mut out).map_err(|_| PushCryptoError::Crypto)?;
    Ok(out)
}

/// Encrypts `plaintext` for a subscription (`ua_public`: its `p256dh`, 65 bytes; `auth`:
/// its 16-byte secret) with a fresh key and salt: the body of the push request.
pub fn encrypt(
    ua_public: &[u8],
    auth: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, PushCryptoError> {
    let rng = SystemRandom::new();
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| PushCryptoError::Crypto)?;
    let key = PrivateKey::generate(&ECDH_P256).map_err(|_| PushCryptoError::Crypto)?;
    encrypt_with(&key, &salt, ua_public, auth, plaintext)
}

/// [`encrypt`] with a given application server key and salt (for the RFC's example).
fn encrypt_with(
    as_private: &PrivateKey,
    salt: &[u8; 16],
    ua_public: &[u8],
    auth: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, PushCryptoError> {
    if ua_public.len() != 65 || ua_public[0] != 4 || auth.len() != 16 {
        return Err(PushCryptoError::BadSubscriptionKeys);
    }
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(PushCryptoError::TooLarge);
    }
    let as_public = as_private
        .compute_public_key()
        .map_err(|_| PushCryptoError::Crypto)?;
    let as_public = as_public.as_ref();
    let ecdh_secret = agreement::agree(
        as_private,
        UnparsedPublicKey::new(&ECDH_P256, ua_public),
        PushCryptoError::BadSubscriptionKeys,
        |secret| Ok(secret.to_vec()),
    )?;
    // RFC 8291 §3.4: the input keying material from the shared secret and the auth secret.
    let ikm = hkdf(
        auth,
        &ecdh_secret,
        &[b"WebPush: info\0", ua_public, as_public],
        32,
    )?;
    // RFC 8188 §2.2, 2.3: the content encryption key and nonce.
    let cek = hkdf(salt, &ikm, &[b"Content-Encoding: aes128gcm\0"], 16)?;
    let nonce = hkdf(salt, &ikm, &[b"Content-Encoding: nonce\0"], 12)?;
    let key =
        LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).map_err(|_| PushCryptoError::Crypto)?);
    let mut record = Vec::with_capacity(plaintext.len() + 17);
    record.extend_from_slice(plaintext);
    // The last (and only) record's delimiter, no padding.
    record.push(2);
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| PushCryptoError::Crypto)?;
    key.seal_in_place_append_tag(nonce, Aad::empty(), &mut record)
        .map_err(|_| PushCryptoError::Crypto)?;
    // The header: salt, record size, the key id (our public key), then the record.
    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + record.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.len() as u8);
    body.extend_from_slice(as_public);
    body.extend_from_slice(&record);
    Ok(body)
}

/// The application server's VAPID key (RFC 8292): P-256, derived from the chat secret so
/// that every chat node of a cluster signs with the same key and a subscription made
/// through one node works from all of them.
pub struct VapidKey {
    pair: EcdsaKeyPair,
    /// The uncompressed public key, base64url: browsers' `applicationServerKey`.
    public: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public)
            .finish()
    }
}

impl VapidKey {
    pub fn derive(secret: &[u8]) -> Result<VapidKey, PushCryptoError> {
        // A derived scalar is a valid private key unless it is zero or past the group
        // order, which a counter steps over.
        for counter in 0u8..=255 {
            let scalar = hkdf(
                b"parlor web push",
                secret,
                &[b"vapid p-256 key", &[counter]],
                32,
            )?;
            let Ok(private) = PrivateKey::from_private_key(&ECDH_P256, &scalar) else {
                continue;
            };
            let public = private
                .compute_public_key()
                .map_err(|_| PushCryptoError::Crypto)?;
            let pair = EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &scalar,
                public.as_ref(),
            )
            .map_err(|_| PushCryptoError::Crypto)?;
            return Ok(VapidKey {
                public: B64.encode(pair.public_key().as_ref()),
                pair,
            });
        }
        Err(PushCryptoError::Crypto)
    }

    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header of a push to `endpoint`: a JWT for the endpoint's
    /// origin, signed ES256, valid for 12 hours, naming `subject` as the contact.
    pub fn authorization(
        &self,
        endpoint: &reqwest::Url,
        subject: &str,
        now_secs: u64,
    ) -> Result<String, PushCryptoError> {
        let aud = endpoint.origin().ascii_serialization();
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({"aud": aud, "exp": now_secs + 12 * 3600, "sub": subject});
        let claims = B64.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let sig = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| PushCryptoError::Crypto)?;
        Ok(format!(
            "vapid t={signing_input}.{}, k={}",
            B64.encode(sig.as_ref()),
            self.public
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey as Verify};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 8291, Appendix A: the application server's key and salt, the user agent's
    /// public key and auth secret, and the push message body they give.
    #[test]
    fn encrypts_the_rfc_8291_example_exactly() {
        let as_private = PrivateKey::from_private_key(
            &ECDH_P256,
            &hex("c9f58f89813e9f8e872e71f42aa64e1757c9254dcc62b72ddc010bb4043ea11c"),
        )
        .unwrap();
        let ua_public = hex(
            "042571b2becdfde360551aaf1ed0f4cd366c11cebe555f89bcb7b186a53339173168ece2ebe018597bd30479b86e3c8f8eced577ca59187e9246990db682008b0e",
        );
        let auth = hex("05305932a1c7eabe13b6cec9fda48882");
        let salt: [u8; 16] = hex("0c6bfaadad67958803092d454676f397").try_into().unwrap();
        let body = encrypt_with(
            &as_private,
            &salt,
            &ua_public,
            &auth,
            b"When I grow up, I want to be a watermelon",
        )
        .unwrap();
        assert_eq!(
            body,
            hex(
                "0c6bfaadad67958803092d454676f397000010004104fe33f4ab0dea71914db55823f73b54948f41306d920732dbb9a59a53286482200e597a7b7bc260ba1c227998580992e93973002f3012a28ae8f06bbb78e5ec0ff297de5b429bba7153d3a4ae0caa091fd425f3b4b5414add8ab37a19c1bbb05cf5cb5b2a2e0562d558635641ec52812c6c8ff42e95ccb86be7cd"
            )
        );
    }

    #[test]
    fn refuses_bad_subscription_keys_and_large_payloads() {
        let ua = hex(
            "042571b2becdfde360551aaf1ed0f4cd366c11cebe555f89bcb7b186a53339173168ece2ebe018597bd30479b86e3c8f8eced577ca59187e9246990db682008b0e",
        );
        let auth = [0u8; 16];
        assert_eq!(
            encrypt(&ua[..64], &auth, b"x"),
            Err(PushCryptoError::BadSubscriptionKeys)
        );
        assert_eq!(
            encrypt(&ua, &auth[..8], b"x"),
            Err(PushCryptoError::BadSubscriptionKeys)
        );
        // A point not on the curve.
        let mut off = ua.clone();
        off[64] ^= 1;
        assert_eq!(
            encrypt(&off, &auth, b"x"),
            Err(PushCryptoError::BadSubscriptionKeys)
        );
        assert_eq!(
            encrypt(&ua, &auth, &vec![0; MAX_PLAINTEXT + 1]),
            Err(PushCryptoError::TooLarge)
        );
        // Fresh salt and key each time.
        assert_ne!(
            encrypt(&ua, &auth, b"x").unwrap(),
            encrypt(&ua, &auth, b"x").unwrap()
        );
    }

    #[test]
    fn vapid_tokens_verify_with_the_public_key_and_name_the_origin() {
        let key = VapidKey::derive(b"a secret").unwrap();
        assert_eq!(
            key.public_key(),
            VapidKey::derive(b"a secret").unwrap().public_key()
        );
        assert_ne!(
            key.public_key(),
            VapidKey::derive(b"another").unwrap().public_key()
        );
        let endpoint = reqwest::Url::parse("https://push.example.net:8443/wpush/v2/abc").unwrap();
        let header = key
            .authorization(&endpoint, "mailto:ops@example.com", 1_000)
            .unwrap();
        let rest = header.strip_prefix("vapid t=").unwrap();
        let (jwt, k) = rest.split_once(", k=").unwrap();
        assert_eq!(k, key.public_key());
        let (signed, sig) = jwt.rsplit_once('.').unwrap();
        let public = B64.decode(k).unwrap();
        assert_eq!(public.len(), 65);
        Verify::new(&ECDSA_P256_SHA256_FIXED, &public)
            .verify(signed.as_bytes(), &B64.decode(sig).unwrap())
            .unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(signed.split('.').nth(1).unwrap()).unwrap())
                .unwrap();
        assert_eq!(claims["aud"], "https://push.example.net:8443");
        assert_eq!(claims["exp"], 1_000 + 12 * 3600);
        assert_eq!(claims["sub"], "mailto:ops@example.com");
    }
}
