//! Where file bytes live: a directory under the data dir, or an S3-compatible bucket
//! (`REALE_S3_*`), behind one `object_store` API. Objects are written once under a
//! random key and never overwritten, so a key (and the attachment id naming it) is
//! also the content's version.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AwsAuthorizer, AwsCredential};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResult, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("file storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("cannot create the files directory {0}: {1}")]
    Directory(String, std::io::Error),
    #[error("S3 bucket {0}: {1}")]
    Bucket(String, String),
}

/// Which backend holds the files, for logs and the README's promise.
#[derive(Clone, Debug)]
pub enum Location {
    Local(std::path::PathBuf),
    S3 { bucket: String },
}

#[derive(Clone)]
pub struct Storage {
    objects: Arc<dyn ObjectStore>,
    pub location: Location,
    /// Bytes buffered before a part is sent: S3 wants parts of at least 5 MiB, a local
    /// file takes any size, so uploads to disk hold little memory each.
    part_size: usize,
}

/// S3's smallest part but the last.
const S3_PART: usize = 5 * 1024 * 1024;
const LOCAL_PART: usize = 256 * 1024;

impl Storage {
    pub async fn open(config: &Config) -> Result<Storage, StorageError> {
        match &config.s3_bucket {
            Some(bucket) => open_s3(config, bucket).await,
            None => {
                let dir = config.data_dir.join("files");
                std::fs::create_dir_all(&dir).map_err(|e| StorageError::Directory(dir.display().to_string(), e))?;
                let objects = LocalFileSystem::new_with_prefix(&dir)?;
                Ok(Storage { objects: Arc::new(objects), location: Location::Local(dir), part_size: LOCAL_PART })
            }
        }
    }

    /// A streaming write of a new object: `write` what arrives, then `finish` (or `abort`).
    pub async fn writer(&self, key: &str) -> Result<WriteMultipart, StorageError> {
        let upload = self.objects.put_multipart(&Path::from(key)).await?;
        Ok(WriteMultipart::new_with_chunk_size(upload, self.part_size))
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.objects.put(&Path::from(key), PutPayload::from_bytes(bytes)).await?;
        Ok(())
    }

    /// The object, or the bytes `range` of it, as a stream.
    pub async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<GetResult, StorageError> {
        let options = GetOptions { range: range.map(GetRange::Bounded), ..GetOptions::default() };
        Ok(self.objects.get_opts(&Path::from(key), options).await?)
    }

    /// Removes the object; one already gone counts as removed.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.objects.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

async fn open_s3(config: &Config, bucket: &str) -> Result<Storage, StorageError> {
    // reqwest is built without a TLS provider of its own; ring is the one we ship. (Its
    // provider is deprecated only for lacking post-quantum key exchange; aws-lc-rs has
    // it but doubles the build, and S3 traffic is not long-lived secrets.)
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let endpoint = config.s3_endpoint.clone().unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", config.s3_region));
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&config.s3_region)
        .with_endpoint(&endpoint)
        .with_allow_http(endpoint.starts_with("http://"));
    if let (Some(id), Some(secret)) = (&config.s3_access_key_id, &config.s3_secret_access_key) {
        builder = builder.with_access_key_id(id).with_secret_access_key(secret);
    }
    let objects = builder.build()?;
    if let (Some(id), Some(secret)) = (&config.s3_access_key_id, &config.s3_secret_access_key) {
        let credential = AwsCredential { key_id: id.clone(), secret_key: secret.clone(), token: None };
        create_bucket(&endpoint, bucket, &config.s3_region, &credential).await?;
    }
    Ok(Storage { objects: Arc::new(objects), location: Location::S3 { bucket: bucket.to_string() }, part_size: S3_PART })
}

/// How long start-up waits for the S3 service to accept the bucket: a server started
/// alongside Reale (or a test's) may take a few seconds to come up.
const BUCKET_WAIT: Duration = Duration::from_secs(30);

/// `object_store` reads and writes objects but cannot make a bucket, so this sends S3's
/// CreateBucket itself, signed with the same credentials (SigV4 from `object_store`).
/// A bucket that exists already (409) is fine; credentials that may not create
/// one (403) leave it to the operator, and the first upload says if it is missing.
async fn create_bucket(endpoint: &str, bucket: &str, region: &str, credential: &AwsCredential) -> Result<(), StorageError> {
    let url = format!("{}/{bucket}", endpoint.trim_end_matches('/'));
    let body = if region == "us-east-1" {
        Bytes::new()
    } else {
        Bytes::from(format!(
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
        ))
    };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().map_err(|e| StorageError::Bucket(bucket.into(), e.to_string()))?;
    let deadline = tokio::time::Instant::now() + BUCKET_WAIT;
    loop {
        let mut request = http::Request::builder()
            .method(http::Method::PUT)
            .uri(&url)
            .body(object_store::client::HttpRequestBody::from(body.clone()))
            .map_err(|e| StorageError::Bucket(bucket.into(), e.to_string()))?;
        AwsAuthorizer::new(credential, "s3", region)
            .try_authorize(&mut request, None)
            .map_err(|e| StorageError::Bucket(bucket.into(), e.to_string()))?;
        let mut send = client.put(&url).body(body.clone());
        for (name, value) in request.headers() {
            send = send.header(name, value);
        }
        let outcome = match send.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                match status {
                    200..=299 => return Ok(()),
                    // It exists. (Were it someone else's, uploads would fail with 403 and say so.)
                    409 => return Ok(()),
                    403 => {
                        tracing::warn!(bucket, "may not create the S3 bucket (403); assuming it exists");
                        return Ok(());
                    }
                    _ => format!("CreateBucket answered {status}: {}", text.chars().take(300).collect::<String>()),
                }
            }
            Err(error) => error.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(StorageError::Bucket(bucket.into(), outcome));
        }
        tracing::info!(bucket, %outcome, "S3 not ready for the bucket yet; trying again");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
