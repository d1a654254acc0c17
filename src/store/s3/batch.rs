//! DeleteObjects: many keys deleted in one request (at most [`BATCH_MAX`]), each key's outcome
//! reported on its own. Used where the mount itself decides to delete many keys (the sources of a
//! directory rename); a key the server could not delete is never reported deleted.

use std::collections::HashMap;

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::S3Store;
use crate::store::StoreError;

/// Keys per DeleteObjects request: S3's limit.
pub const BATCH_MAX: usize = 1000;

impl S3Store {
    /// Delete `keys` in requests of at most [`BATCH_MAX`] keys; the outcome of each key, in order.
    /// A request that fails as a whole fails each of its keys with its error.
    pub(super) async fn delete_batch(&self, keys: &[String]) -> Vec<Result<(), StoreError>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_MAX) {
            out.extend(self.delete_one_batch(chunk).await);
        }
        out
    }

    async fn delete_one_batch(&self, keys: &[String]) -> Vec<Result<(), StoreError>> {
        let Some(first) = keys.first() else {
            return Vec::new();
        };
        let delete = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .and_then(|objects| Delete::builder().set_objects(Some(objects)).quiet(true).build());
        let delete = match delete {
            Ok(d) => d,
            Err(e) => {
                let err = StoreError::Other {
                    op: "DeleteObjects",
                    message: e.to_string(),
                };
                return keys.iter().map(|_| Err(err.clone())).collect();
            }
        };
        let answer = self
            .call(|| async {
                self.client
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(delete.clone())
                    .send()
                    .await
                    .map_err(|e| self.map_err("DeleteObjects", first, e))
            })
            .await;
        let out = match answer {
            Ok(out) => out,
            Err(e) => return keys.iter().map(|_| Err(e.clone())).collect(),
        };
        // Quiet mode: the answer lists only the keys that were not deleted.
        let mut failed: HashMap<&str, StoreError> = HashMap::new();
        for e in out.errors() {
            let Some(key) = e.key() else { continue };
            failed.insert(key, self.key_error(key, e.code(), e.message()));
        }
        keys.iter()
            .map(|k| failed.remove(k.as_str()).map_or(Ok(()), Err))
            .collect()
    }

    /// The error of one key in a DeleteObjects answer.
    fn key_error(&self, key: &str, code: Option<&str>, message: Option<&str>) -> StoreError {
        let message = format!("{key}: {} {}", code.unwrap_or("error"), message.unwrap_or(""))
            .trim_end()
            .to_string();
        match code {
            Some("AccessDenied") => StoreError::AccessDenied {
                endpoint: self.endpoint.clone(),
                message,
            },
            Some("NoSuchBucket") => StoreError::NoSuchBucket {
                bucket: self.bucket.clone(),
                endpoint: self.endpoint.clone(),
            },
            _ => StoreError::Other {
                op: "DeleteObjects",
                message,
            },
        }
    }
}
