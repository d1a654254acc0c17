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
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        metrics::s3_bytes_received(body_len(ctx.response().headers()));
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
