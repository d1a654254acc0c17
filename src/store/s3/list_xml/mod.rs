//! A fast reader for ListObjectsV2 answers, plugged into the SDK's own request.
//!
//! A directory listing spends most of the mount's CPU in the SDK's generic XML decoder: about
//! half of it for a 1 000-key page, on the same cores as everything else. [`FastList`] is an
//! interceptor for one ListObjectsV2 call that swaps in a deserializer reading the
//! `ListBucketResult` with a specialised scanner. Everything else stays the SDK's: the request,
//! signing, retries, metrics, and every answer the scanner does not take. The SDK's decoder reads
//! error answers, and also any body with something the scanner leaves alone: a DOCTYPE, comments
//! or CDATA, namespace prefixes, `EncodingType`, or a malformed number, date or entity.
//!
//! Only the fields cosmount reads are filled in: each object's key, size, ETag, LastModified and
//! storage class, the common prefixes, IsTruncated and NextContinuationToken. The output never
//! leaves [`super::s3`]'s `list_objects`.
//!
//! This file holds the plug-in (interceptor and deserializer) and the reader of the document;
//! the XML cursor it reads with is [`scanner`].

use aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept};
use aws_sdk_s3::operation::list_objects_v2::{ListObjectsV2, ListObjectsV2Output};
use aws_sdk_s3::types::{CommonPrefix, Object, ObjectStorageClass};
use aws_smithy_runtime_api::client::interceptors::context::{Error, Output, OutputOrError};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, OrchestratorError};
use aws_smithy_runtime_api::client::runtime_plugin::RuntimePlugin;
use aws_smithy_runtime_api::client::ser_de::{DeserializeResponse, SharedResponseDeserializer};
use aws_smithy_types::config_bag::FrozenLayer;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

use scanner::{Scanner, Tok};

mod scanner;
#[cfg(test)]
mod tests;

/// Interceptor for one ListObjectsV2 call: its answer is read by [`parse`] when it can be.
#[derive(Clone, Debug)]
pub(crate) struct FastList {
    /// The operation's own configuration, holding the SDK's deserializer for everything the
    /// scanner does not take (the one in the request's bag is not `Clone`, so it cannot be kept).
    sdk: FrozenLayer,
}

impl FastList {
    /// `None` if this SDK's ListObjectsV2 has no deserializer where one is expected (then the
    /// SDK reads every answer itself).
    pub(crate) fn new() -> Option<Self> {
        let sdk = ListObjectsV2::new().config()?;
        sdk.load::<SharedResponseDeserializer>()?;
        Some(Self { sdk })
    }
}

impl Intercept for FastList {
    fn name(&self) -> &'static str {
        "CosmountFastList"
    }

    fn read_before_execution(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        // Operation interceptors run after the operation's configuration is in the bag: this
        // deserializer replaces the SDK's for the call.
        cfg.interceptor_state()
            .store_put(SharedResponseDeserializer::new(FastListDeserializer {
                sdk: self.sdk.clone(),
            }));
        Ok(())
    }
}

#[derive(Debug)]
struct FastListDeserializer {
    sdk: FrozenLayer,
}

impl FastListDeserializer {
    fn sdk(&self) -> Result<&SharedResponseDeserializer, OrchestratorError<Error>> {
        // Checked in `FastList::new`.
        self.sdk
            .load::<SharedResponseDeserializer>()
            .ok_or_else(|| OrchestratorError::other("the SDK's ListObjectsV2 deserializer is missing"))
    }
}

impl DeserializeResponse for FastListDeserializer {
    fn deserialize_streaming_with_config(&self, response: &mut HttpResponse, cfg: &ConfigBag) -> Option<OutputOrError> {
        match self.sdk() {
            Ok(sdk) => sdk.deserialize_streaming_with_config(response, cfg),
            Err(e) => Some(Err(e)),
        }
    }

    fn deserialize_nonstreaming_with_config(&self, response: &HttpResponse, cfg: &ConfigBag) -> OutputOrError {
        if response.status().is_success() {
            match response.body().bytes().map(parse) {
                Some(Ok(out)) => return Ok(Output::erase(out)),
                Some(Err(Declined(why))) => {
                    tracing::debug!(why, "listing answer left to the SDK's XML decoder")
                }
                None => {}
            }
        }
        self.sdk()?.deserialize_nonstreaming_with_config(response, cfg)
    }
}

/// Why the scanner left a body to the SDK's decoder.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Declined(&'static str);

type Res<T> = Result<T, Declined>;

/// Reads a `ListBucketResult` document.
pub(crate) fn parse(body: &[u8]) -> Res<ListObjectsV2Output> {
    let text = std::str::from_utf8(body).map_err(|_| Declined("not UTF-8"))?;
    let mut x = Scanner { s: text, pos: 0 };
    x.skip_prolog()?;
    match x.next()? {
        Tok::Open("ListBucketResult") => {}
        _ => return Err(Declined("not a ListBucketResult")),
    }
    let mut out = ListObjectsV2Output::builder();
    // Sized up front: an `Object` is a few hundred bytes, and growing a 1 000-entry vector by
    // doubling copied it all several times (a tenth of the parse).
    let mut contents = Vec::with_capacity(memchr::memmem::find_iter(body, b"<Contents>").count());
    let mut prefixes = Vec::new();
    loop {
        match x.next()? {
            Tok::Open("Contents") => contents.push(object(&mut x)?),
            Tok::Open("CommonPrefixes") => {
                let mut p = CommonPrefix::builder();
                while let Some(name) = x.child()? {
                    match name {
                        "Prefix" => p = p.prefix(x.leaf(name)?.into_owned()),
                        _ => x.skip(name)?,
                    }
                }
                prefixes.push(p.build());
            }
            Tok::Open("IsTruncated") => {
                out = out.is_truncated(match x.leaf("IsTruncated")?.as_ref() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(Declined("IsTruncated")),
                })
            }
            Tok::Open("NextContinuationToken") => out = out.next_continuation_token(x.leaf("NextContinuationToken")?),
            Tok::Open("EncodingType") => return Err(Declined("EncodingType")),
            Tok::Open(name) => x.skip(name)?,
            Tok::Empty(_) => {}
            Tok::Close("ListBucketResult") => break,
            Tok::Close(_) | Tok::End => return Err(Declined("unbalanced")),
        }
    }
    match x.next()? {
        Tok::End => {}
        _ => return Err(Declined("content after the root")),
    }
    if !contents.is_empty() {
        out = out.set_contents(Some(contents));
    }
    if !prefixes.is_empty() {
        out = out.set_common_prefixes(Some(prefixes));
    }
    Ok(out.build())
}

/// One `<Contents>` element (its opening tag already read).
fn object(x: &mut Scanner<'_>) -> Res<Object> {
    let mut o = Object::builder();
    while let Some(name) = x.child()? {
        o = match name {
            "Key" => o.key(x.leaf(name)?.into_owned()),
            "ETag" => o.e_tag(x.leaf(name)?.into_owned()),
            "Size" => o.size(x.leaf(name)?.parse::<i64>().map_err(|_| Declined("Size"))?),
            "LastModified" => o.last_modified(
                DateTime::from_str(&x.leaf(name)?, Format::DateTimeWithOffset).map_err(|_| Declined("LastModified"))?,
            ),
            "StorageClass" => o.storage_class(ObjectStorageClass::from(x.leaf(name)?.as_ref())),
            _ => {
                x.skip(name)?;
                o
            }
        };
    }
    Ok(o.build())
}
