//! Where attachment and avatar bytes live: the local disk (the embedded default) or an
//! S3-compatible bucket, both behind `object_store`. Keys are made from ids, never from
//! client input.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

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
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
}

fn key(id: i64, thumb: bool) -> Path {
    Path::from(format!("{id}{}", if thumb { ".thumb.png" } else { "" }))
}

fn other(e: object_store::Error) -> io::Error {
    io::Error::other(e.to_string())
}

impl Blobs {
    /// Files under `dir`, created if missing. Every write is synced before it counts.
    pub fn local(dir: PathBuf) -> io::Result<Blobs> {
        std::fs::create_dir_all(&dir)?;
        let fs = LocalFileSystem::new_with_prefix(&dir)
            .map_err(other)?
            .with_fsync(true);
        Ok(Blobs {
            store: Arc::new(fs),
        })
    }

    pub fn s3(config: S3Config) -> io::Result<Blobs> {
        let s3 = AmazonS3Builder::new()
            .with_endpoint(config.endpoint.trim_end_matches('/'))
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key)
            .with_secret_access_key(&config.secret_key)
            .with_allow_http(config.endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .build()
            .map_err(other)?;
        let prefix = config.prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Blobs { store })
    }

    /// Writes an object whole or not at all, durably.
    pub async fn put(&self, id: i64, thumb: bool, bytes: Vec<u8>) -> io::Result<()> {
        self.store
            .put(&key(id, thumb), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(other)
    }

    pub async fn get(&self, id: i64, thumb: bool) -> io::Result<Option<Vec<u8>>> {
        match self.store.get(&key(id, thumb)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(other)?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(other(e)),
        }
    }

    pub async fn delete(&self, id: i64) {
        for thumb in [false, true] {
            match self.store.delete(&key(id, thumb)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => tracing::warn!(error = %e, id, "deleting a stored file failed"),
            }
        }
    }

    pub async fn delete_all(&self, ids: &[i64]) {
        for id in ids {
            self.delete(*id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_files_round_trip_and_delete() {
        let dir = std::env::temp_dir().join(format!("parlor_blobs_{}", std::process::id()));
        let b = Blobs::local(dir.clone()).unwrap();
        b.put(7, false, b"abc".to_vec()).await.unwrap();
        b.put(7, true, b"thumb".to_vec()).await.unwrap();
        assert_eq!(b.get(7, false).await.unwrap(), Some(b"abc".to_vec()));
        assert!(dir.join("7.thumb.png").exists(), "stored under the id");
        b.delete(7).await;
        assert_eq!(b.get(7, false).await.unwrap(), None);
        assert_eq!(b.get(7, true).await.unwrap(), None);
        b.delete(7).await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
