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

use std::borrow::Cow;

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

#[derive(Debug, PartialEq, Eq)]
enum Tok<'a> {
    Open(&'a str),
    /// `<name/>`
    Empty(&'a str),
    Close(&'a str),
    End,
}

/// A cursor over the document: tags and the text between them.
struct Scanner<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    /// Skips a byte-order mark, the `<?xml …?>` declaration and whitespace.
    fn skip_prolog(&mut self) -> Res<()> {
        let rest = &self.s[self.pos..];
        let rest = rest.strip_prefix('\u{feff}').unwrap_or(rest);
        let rest = rest.trim_start();
        self.pos = self.s.len() - rest.len();
        if rest.starts_with("<?xml") {
            let end = rest.find("?>").ok_or(Declined("declaration"))?;
            self.pos += end + 2;
        }
        Ok(())
    }

    /// The next tag, skipping the whitespace before it. Text other than whitespace between
    /// tags that are not a leaf's is not expected in this document.
    fn next(&mut self) -> Res<Tok<'a>> {
        let Some(text) = self.text_to_tag() else {
            return if self.s[self.pos..].trim().is_empty() {
                self.pos = self.s.len();
                Ok(Tok::End)
            } else {
                Err(Declined("text outside elements"))
            };
        };
        if !text.trim().is_empty() {
            return Err(Declined("mixed content"));
        }
        self.tag()
    }

    /// The text up to the next `<`, which `pos` then points at; `None` (and `pos` unmoved) if no
    /// tag follows.
    fn text_to_tag(&mut self) -> Option<&'a str> {
        let lt = memchr::memchr(b'<', &self.s.as_bytes()[self.pos..])? + self.pos;
        let text = &self.s[self.pos..lt];
        self.pos = lt;
        Some(text)
    }

    /// The tag at `pos` (which is at a `<`).
    fn tag(&mut self) -> Res<Tok<'a>> {
        let b = self.s.as_bytes();
        let start = self.pos + 1;
        let gt = memchr::memchr(b'>', &b[start..]).ok_or(Declined("open tag"))? + start;
        let inner = &self.s[start..gt];
        self.pos = gt + 1;
        if let Some(name) = inner.strip_prefix('/') {
            return Ok(Tok::Close(name.trim_end()));
        }
        // Comments, CDATA, DOCTYPE and processing instructions are left to the SDK's decoder,
        // and so are attribute values holding '>' or a quote mark (not in S3's answers).
        if inner.starts_with(['!', '?']) || inner.contains(['"', '\'']) && !plain_attributes(inner) {
            return Err(Declined("markup"));
        }
        let (inner, empty) = match inner.strip_suffix('/') {
            Some(i) => (i, true),
            None => (inner, false),
        };
        let name = inner.split([' ', '\t', '\r', '\n']).next().unwrap_or_default();
        if name.is_empty() || name.contains(':') {
            return Err(Declined("element name"));
        }
        Ok(if empty { Tok::Empty(name) } else { Tok::Open(name) })
    }

    /// The next child element of the current one, as the name of its (now read) opening tag;
    /// `None` at the current element's closing tag. An empty child `<x/>` is skipped.
    fn child(&mut self) -> Res<Option<&'a str>> {
        loop {
            match self.next()? {
                Tok::Open(name) => return Ok(Some(name)),
                Tok::Empty(_) => continue,
                Tok::Close(_) => return Ok(None),
                Tok::End => return Err(Declined("unbalanced")),
            }
        }
    }

    /// The text of the leaf element `name`, whose opening tag was just read, with entities
    /// replaced; reads its closing tag.
    fn leaf(&mut self, name: &str) -> Res<Cow<'a, str>> {
        let raw = self.text_to_tag().ok_or(Declined("leaf"))?;
        match self.tag()? {
            Tok::Close(n) if n == name => unescape(raw),
            _ => Err(Declined("leaf with children")),
        }
    }

    /// Skips the rest of element `name`, whose opening tag was just read, with its children.
    fn skip(&mut self, name: &str) -> Res<()> {
        let mut depth = 1usize;
        while depth > 0 {
            self.text_to_tag().ok_or(Declined("unclosed"))?;
            match self.tag()? {
                Tok::Open(_) => depth += 1,
                Tok::Close(n) => {
                    depth -= 1;
                    if depth == 0 && n != name {
                        return Err(Declined("unbalanced"));
                    }
                }
                // `tag` never gives `End`.
                Tok::Empty(_) | Tok::End => {}
            }
        }
        Ok(())
    }
}

/// Whether the attributes in a tag's text are simple `name="value"` pairs with no `>` inside
/// (the scanner found the tag's end at the first `>`, which a quoted value could contain).
fn plain_attributes(inner: &str) -> bool {
    inner.matches(['"', '\'']).count().is_multiple_of(2)
}

/// Replaces XML's five named entities and character references.
fn unescape(raw: &str) -> Res<Cow<'_, str>> {
    if !raw.contains('&') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..].find(';').ok_or(Declined("entity"))? + amp;
        let entity = &rest[amp + 1..semi];
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32).ok_or(Declined("entity"))?
            }
        };
        out.push(c);
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>d/</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated><Contents><Key>d/a &amp; b&lt;c&gt;&#233;&#x4E2D;</Key><LastModified>2026-11-25T08:00:01.000Z</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Size>12</Size><Owner><ID>x</ID><DisplayName>y</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>d/empty</Key><LastModified>2026-11-25T08:00:02Z</LastModified><ETag>"e"</ETag><Size>0</Size><RestoreStatus/></Contents><CommonPrefixes><Prefix>d/sub/</Prefix></CommonPrefixes><NextContinuationToken>a+b/c==</NextContinuationToken></ListBucketResult>"#;

    #[test]
    fn reads_objects_prefixes_and_the_token() {
        let out = parse(PAGE.as_bytes()).expect("parsed");
        let c = out.contents();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].key(), Some("d/a & b<c>é中"));
        assert_eq!(c[0].e_tag(), Some("\"9b2cf535f27731c974343645a3985328\""));
        assert_eq!(c[0].size(), Some(12));
        assert_eq!(c[0].storage_class(), Some(&ObjectStorageClass::Standard));
        assert_eq!(
            c[0].last_modified().map(|d| (d.secs(), d.subsec_nanos())),
            Some((1_795_593_601, 0))
        );
        assert_eq!(c[1].key(), Some("d/empty"));
        assert_eq!(c[1].size(), Some(0));
        assert_eq!(c[1].e_tag(), Some("\"e\""));
        let p: Vec<_> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
        assert_eq!(p, ["d/sub/"]);
        assert_eq!(out.is_truncated(), Some(true));
        assert_eq!(out.next_continuation_token(), Some("a+b/c=="));
    }

    #[test]
    fn an_empty_last_page() {
        let xml = "<ListBucketResult><Name>b</Name><Prefix></Prefix><KeyCount>0</KeyCount>\
                   <IsTruncated>false</IsTruncated></ListBucketResult>\n";
        let out = parse(xml.as_bytes()).expect("parsed");
        assert!(out.contents().is_empty() && out.common_prefixes().is_empty());
        assert_eq!(out.is_truncated(), Some(false));
        assert_eq!(out.next_continuation_token(), None);
    }

    #[test]
    fn declines_what_it_does_not_read_so_the_sdk_does() {
        let declined = |xml: &str| parse(xml.as_bytes()).err();
        assert!(declined("<Error><Code>NoSuchBucket</Code></Error>").is_some());
        assert!(declined("<ListBucketResult><!-- c --></ListBucketResult>").is_some());
        assert!(
            declined("<ListBucketResult><Contents><Key><![CDATA[a]]></Key></Contents></ListBucketResult>").is_some()
        );
        assert!(declined("<ListBucketResult><EncodingType>url</EncodingType></ListBucketResult>").is_some());
        assert!(declined("<ListBucketResult><Contents><Size>x</Size></Contents></ListBucketResult>").is_some());
        assert!(declined("<ListBucketResult><Contents><Key>a&bogus;</Key></Contents></ListBucketResult>").is_some());
        assert!(declined("<ListBucketResult><Contents><Key>a</Key></ListBucketResult>").is_some());
        assert!(declined("<ListBucketResult><s3:Contents></s3:Contents></ListBucketResult>").is_some());
        assert!(declined("<ListBucketResult>text</ListBucketResult>").is_some());
        assert!(declined("<ListBucketResult></ListBucketResult><x/>").is_some());
        assert!(declined("<ListBucketResult>").is_some());
        assert!(declined("").is_some());
        assert!(declined("<ListBucketResult a=\"x>y\"></ListBucketResult>").is_some());
        assert!(declined("<ListBucketResult a=\"1\"><IsTruncated/></ListBucketResult>").is_none());
    }

    #[test]
    fn entities() {
        assert_eq!(unescape("plain").as_deref(), Ok("plain"));
        assert_eq!(unescape("&lt;&gt;&amp;&quot;&apos;").as_deref(), Ok("<>&\"'"));
        assert_eq!(unescape("a&#38;b&#x26;c").as_deref(), Ok("a&b&c"));
        assert!(unescape("a&b").is_err());
        assert!(unescape("&#xD800;").is_err());
        assert!(unescape("&#;").is_err());
    }

    /// The SDK reading a canned answer, with or without the scanner.
    mod against_the_sdk {
        use std::sync::{Arc, Mutex};

        use aws_sdk_s3::config::{Credentials, Region};
        use aws_smithy_runtime_api::client::http::{
            http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpConnector,
        };
        use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
        use aws_smithy_types::body::SdkBody;
        use proptest::prelude::*;

        use super::super::{FastList, ListObjectsV2Output};

        #[derive(Debug, Clone, Default)]
        struct Canned(Arc<Mutex<String>>);

        impl HttpConnector for Canned {
            fn call(&self, _req: HttpRequest) -> HttpConnectorFuture {
                let body = self.0.lock().expect("lock").clone();
                HttpConnectorFuture::ready(Ok(HttpResponse::new(
                    200u16.try_into().expect("status"),
                    SdkBody::from(body),
                )))
            }
        }

        fn client(canned: &Canned) -> aws_sdk_s3::Client {
            let c = canned.clone();
            let conf = aws_sdk_s3::Config::builder()
                .behavior_version_latest()
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("k", "s", None, None, "test"))
                .endpoint_url("http://127.0.0.1:9")
                .force_path_style(true)
                .http_client(http_client_fn(move |_, _| SharedHttpConnector::new(c.clone())))
                .build();
            aws_sdk_s3::Client::from_conf(conf)
        }

        type Sent = Result<
            ListObjectsV2Output,
            Box<aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Error, HttpResponse>>,
        >;

        /// A ListObjectsV2 answered with `xml`, read by the SDK's decoder or (`fast`) the scanner.
        fn send(xml: &str, fast: bool) -> Sent {
            let canned = Canned::default();
            *canned.0.lock().expect("lock") = xml.to_string();
            let c = client(&canned);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let mut op = c.list_objects_v2().bucket("b").customize();
            if fast {
                op = op.interceptor(FastList::new().expect("deserializer"));
            }
            rt.block_on(op.send()).map_err(Box::new)
        }

        /// The SDK's reading and the scanner's of `xml`, keeping only what the scanner fills.
        fn both(xml: &str) -> (ListObjectsV2Output, ListObjectsV2Output) {
            let sdk = send(xml, false).expect("the SDK reads it");
            let fast = send(xml, true).expect("read with the scanner");
            let keep = |o: ListObjectsV2Output| {
                ListObjectsV2Output::builder()
                    .set_contents(o.contents.map(|c| {
                        c.into_iter()
                            .map(|o| {
                                aws_sdk_s3::types::Object::builder()
                                    .set_key(o.key)
                                    .set_e_tag(o.e_tag)
                                    .set_size(o.size)
                                    .set_last_modified(o.last_modified)
                                    .set_storage_class(o.storage_class)
                                    .build()
                            })
                            .collect()
                    }))
                    .set_common_prefixes(o.common_prefixes)
                    .set_is_truncated(o.is_truncated)
                    .set_next_continuation_token(o.next_continuation_token)
                    .build()
            };
            (keep(sdk), keep(fast))
        }

        fn escape(s: &str, numeric: bool) -> String {
            let mut out = String::new();
            for ch in s.chars() {
                match (ch, numeric) {
                    ('&', false) => out.push_str("&amp;"),
                    ('<', false) => out.push_str("&lt;"),
                    ('>', false) => out.push_str("&gt;"),
                    ('"', false) => out.push_str("&quot;"),
                    ('\'', false) => out.push_str("&apos;"),
                    ('&' | '<' | '>' | '"' | '\'', true) => out.push_str(&format!("&#x{:X};", ch as u32)),
                    _ => out.push(ch),
                }
            }
            out
        }

        #[test]
        fn a_real_shaped_page_reads_the_same() {
            let (sdk, fast) = both(super::PAGE);
            assert_eq!(sdk.contents().len(), 2);
            assert_eq!(sdk, fast);
        }

        #[test]
        fn an_error_answer_is_still_the_sdks_error() {
            let err = send("<Error><Code>NoSuchBucket</Code><Message>m</Message></Error>", true)
                .expect_err("an error body with status 200 is an error");
            let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&*err);
            assert_eq!(code, Some("NoSuchBucket"), "{err:?}");
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn generated_pages_read_the_same(
                keys in proptest::collection::vec("[a-z &<>\"'/é中\\-]{1,12}", 0..6),
                prefixes in proptest::collection::vec("[a-z&<]{1,5}/", 0..3),
                numeric in any::<bool>(),
                token in proptest::option::of("[A-Za-z0-9+/=]{1,20}"),
                sizes in proptest::collection::vec(0i64..1 << 40, 6),
            ) {
                let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
                xml.push_str(&format!("<IsTruncated>{}</IsTruncated>", token.is_some()));
                for (i, k) in keys.iter().enumerate() {
                    xml.push_str(&format!(
                        "\n  <Contents><Key>{}</Key><LastModified>2026-0{}-1{}T0{}:00:00.{}Z</LastModified><ETag>&quot;{:x}&quot;</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                        escape(k, numeric), 1 + i, i, i, 100 * i, sizes[i], sizes[i]
                    ));
                }
                for p in &prefixes {
                    xml.push_str(&format!("<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>", escape(p, numeric)));
                }
                if let Some(t) = &token {
                    xml.push_str(&format!("<NextContinuationToken>{t}</NextContinuationToken>"));
                }
                xml.push_str("</ListBucketResult>");
                prop_assert!(super::parse(xml.as_bytes()).is_ok(), "the scanner reads {}", xml);
                let (sdk, fast) = both(&xml);
                prop_assert_eq!(sdk.contents().len(), keys.len());
                prop_assert_eq!(sdk, fast);
            }
        }
    }
}
