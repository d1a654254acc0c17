//! The scanner's unit tests, and the SDK's decoder and the scanner reading the same answers.

use super::scanner::unescape;
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
    assert!(declined("<ListBucketResult><Contents><Key><![CDATA[a]]></Key></Contents></ListBucketResult>").is_some());
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
