//! Where attachment and avatar bytes live: the local disk (the embedded default) or an
//! S3-compatible object store. Keys are made from ids, never from client input.

use std::io;
use std::path::PathBuf;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// An S3-compatible bucket, addressed path-style (`ENDPOINT/BUCKET/KEY`), which AWS,
/// MinIO, Ceph, R2 and the rest all accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`, ...
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// Prepended to every key.
    pub prefix: String,
}

#[derive(Debug)]
pub enum Blobs {
    Local {
        dir: PathBuf,
    },
    S3 {
        config: S3Config,
        http: reqwest::Client,
    },
}

fn key(id: i64, thumb: bool) -> String {
    format!("{id}{}", if thumb { ".thumb.png" } else { "" })
}

impl Blobs {
    pub fn local(dir: PathBuf) -> Blobs {
        Blobs::Local { dir }
    }

    pub fn s3(config: S3Config) -> Blobs {
        Blobs::S3 {
            config,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Writes an object whole or not at all, durably.
    pub async fn put(&self, id: i64, thumb: bool, bytes: Vec<u8>) -> io::Result<()> {
        match self {
            Blobs::Local { dir } => {
                let path = dir.join(key(id, thumb));
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || {
                    use std::io::Write;
                    std::fs::create_dir_all(&dir)?;
                    let tmp = path.with_extension("part");
                    let mut f = std::fs::File::create(&tmp)?;
                    f.write_all(&bytes)?;
                    f.sync_all()?;
                    std::fs::rename(&tmp, &path)
                })
                .await
                .map_err(io::Error::other)?
            }
            Blobs::S3 { config, http } => {
                let r = s3_request(http, config, "PUT", &key(id, thumb), bytes).await?;
                if !r.status().is_success() {
                    return Err(io::Error::other(format!("S3 PUT: {}", r.status())));
                }
                Ok(())
            }
        }
    }

    pub async fn get(&self, id: i64, thumb: bool) -> io::Result<Option<Vec<u8>>> {
        match self {
            Blobs::Local { dir } => match tokio::fs::read(dir.join(key(id, thumb))).await {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            Blobs::S3 { config, http } => {
                let r = s3_request(http, config, "GET", &key(id, thumb), Vec::new()).await?;
                match r.status().as_u16() {
                    200 => Ok(Some(r.bytes().await.map_err(io::Error::other)?.to_vec())),
                    404 => Ok(None),
                    s => Err(io::Error::other(format!("S3 GET: {s}"))),
                }
            }
        }
    }

    pub async fn delete(&self, id: i64) {
        for thumb in [false, true] {
            match self {
                Blobs::Local { dir } => {
                    let _ = tokio::fs::remove_file(dir.join(key(id, thumb))).await;
                }
                Blobs::S3 { config, http } => {
                    if let Err(e) =
                        s3_request(http, config, "DELETE", &key(id, thumb), Vec::new()).await
                    {
                        tracing::warn!(error = %e, id, "S3 DELETE failed");
                    }
                }
            }
        }
    }

    pub async fn delete_all(&self, ids: &[i64]) {
        for id in ids {
            self.delete(*id).await;
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("hmac takes any key");
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time.
fn amz_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Who signs, and for which region.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub region: &'a str,
    pub access_key: &'a str,
    pub secret_key: &'a str,
}

/// The AWS Signature Version 4 `Authorization` value for a request with no query string.
/// `headers` are lowercase names with trimmed values, all of them signed.
pub fn sigv4(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    payload_sha256: &str,
    amz_date: &str,
    creds: &Credentials<'_>,
) -> String {
    let Credentials {
        region,
        access_key,
        secret_key,
    } = *creds;
    let mut hs: Vec<(&str, &str)> = headers.to_vec();
    hs.sort_by(|a, b| a.0.cmp(b.0));
    let canonical_headers: String = hs.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = hs.iter().map(|(k, _)| *k).collect();
    let signed = signed.join(";");
    let canonical = format!("{method}\n{path}\n\n{canonical_headers}\n{signed}\n{payload_sha256}");
    let day = &amz_date[..8];
    let scope = format!("{day}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac(format!("AWS4{secret_key}").as_bytes(), day);
    let k = hmac(&k, region);
    let k = hmac(&k, "s3");
    let k = hmac(&k, "aws4_request");
    let signature = hex(&hmac(&k, &to_sign));
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, \
         Signature={signature}"
    )
}

/// One signed request on an object.
async fn s3_request(
    http: &reqwest::Client,
    c: &S3Config,
    method: &str,
    key: &str,
    body: Vec<u8>,
) -> io::Result<reqwest::Response> {
    let url = reqwest::Url::parse(&format!(
        "{}/{}/{}{}",
        c.endpoint.trim_end_matches('/'),
        c.bucket,
        c.prefix,
        key
    ))
    .map_err(io::Error::other)?;
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let payload = hex(&Sha256::digest(&body));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let date = amz_date(now);
    let auth = sigv4(
        method,
        url.path(),
        &[
            ("host", &host),
            ("x-amz-content-sha256", &payload),
            ("x-amz-date", &date),
        ],
        &payload,
        &date,
        &Credentials {
            region: &c.region,
            access_key: &c.access_key,
            secret_key: &c.secret_key,
        },
    );
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(io::Error::other)?;
    http.request(method, url)
        .header("x-amz-content-sha256", payload)
        .header("x-amz-date", date)
        .header("authorization", auth)
        .body(body)
        .send()
        .await
        .map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The "GET Object" example of AWS's Signature Version 4 documentation for S3.
    #[test]
    fn signs_like_the_aws_example() {
        let empty = hex(&Sha256::digest(b""));
        assert_eq!(
            empty,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let auth = sigv4(
            "GET",
            "/test.txt",
            &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
                ("x-amz-content-sha256", &empty),
                ("x-amz-date", "20130524T000000Z"),
            ],
            &empty,
            "20130524T000000Z",
            &Credentials {
                region: "us-east-1",
                access_key: "AKIAIOSFODNN7EXAMPLE",
                secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            },
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn amz_dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(amz_date(951_868_799), "20000229T235959Z");
    }
}
