//! `MetricsInterceptor`: an SDK interceptor that feeds [`crate::metrics`] with every S3 request the
//! client sends — requests and their time (once per operation), retries (attempts after the
//! first), failures (after the retries), and body bytes each way — without touching the call sites.

use std::time::Instant;

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

use crate::metrics;

/// When the operation started (kept in the request's config bag).
#[derive(Debug, Clone, Copy)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

/// Counts S3 requests for the metrics endpoint.
#[derive(Debug, Default)]
pub struct MetricsInterceptor;

fn operation(cfg: &ConfigBag) -> &str {
    cfg.load::<Metadata>().map_or("unknown", Metadata::name)
}

fn body_len(headers: &aws_smithy_runtime_api::http::Headers) -> u64 {
    // aws-chunked bodies (streamed checksums) announce the payload size separately.
    headers
        .get("x-amz-decoded-content-length")
        .or_else(|| headers.get("content-length"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Body bytes of the answer to `op`: its Content-Length, except for answers that carry no body
/// although they may announce one (HeadObject's gives the object's size; 204 and 304 have none).
fn received_body_len(op: &str, status: u16, headers: &aws_smithy_runtime_api::http::Headers) -> u64 {
    if op == "HeadObject" || op == "HeadBucket" || status == 204 || status == 304 {
        return 0;
    }
    body_len(headers)
}

impl Intercept for MetricsInterceptor {
    fn name(&self) -> &'static str {
        "CosmountMetrics"
    }

    fn read_before_execution(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        // The operation's name is not in the bag yet here: requests are counted per attempt.
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        match cfg.load::<RequestAttempts>().map_or(1, RequestAttempts::attempts) {
            1 => metrics::s3_request(operation(cfg)),
            _ => metrics::s3_retry(operation(cfg)),
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        metrics::s3_bytes_sent(body_len(ctx.request().headers()));
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let response = ctx.response();
        metrics::s3_bytes_received(received_body_len(
            operation(cfg),
            response.status().as_u16(),
            response.headers(),
        ));
        Ok(())
    }

    fn read_after_execution(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let failed = !matches!(ctx.output_or_error(), Some(Ok(_)));
        let elapsed = cfg.load::<Started>().map(|s| s.0.elapsed()).unwrap_or_default();
        metrics::s3_finished(operation(cfg), elapsed, failed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::http::Headers;

    fn with_length(n: &str) -> Headers {
        let mut h = Headers::new();
        h.insert("content-length", n.to_string());
        h
    }

    #[test]
    fn a_head_answer_announces_a_size_but_brings_no_body() {
        let h = with_length("268435456");
        assert_eq!(received_body_len("HeadObject", 200, &h), 0);
        assert_eq!(received_body_len("GetObject", 304, &h), 0);
        assert_eq!(received_body_len("GetObject", 206, &h), 268_435_456);
        assert_eq!(received_body_len("GetObject", 200, &Headers::new()), 0);
    }

    #[test]
    fn streamed_bodies_count_their_decoded_length() {
        let mut h = with_length("1100");
        h.insert("x-amz-decoded-content-length", "1000".to_string());
        assert_eq!(received_body_len("PutObject", 200, &h), 1000);
    }
}
