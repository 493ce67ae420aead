//! Request bodies, read under the server's limits before any protocol sees them:
//!
//! - a declared `Content-Length` over the limit is refused (413) before a byte of the body
//!   is read, and a body that grows past it while arriving is cut off there;
//! - the whole body must arrive within the body timeout (408 after it);
//! - the bytes every request holds stay within the server's budget: a request takes its
//!   share as its bytes arrive (a client that declares 16 MiB and sends nothing holds
//!   nothing), as they are decoded, and for the tensors read from them ([`Budget::hold`]),
//!   waiting within the body timeout when the budget is spent (503 after it), and keeps
//!   it until its answer is built;
//! - `Content-Encoding: gzip` (or `x-gzip`) and `deflate` (zlib, or raw deflate as some
//!   clients send it) are decoded, the decoded body under the same limit and budget;
//!   `identity` passes; any other coding, or more than one, is a 415.
//!
//! Errors that leave a body unread also close the connection (`Connection: close`), so
//! the rest of a refused body is never read as a next request.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::{ApiError, AppState};

/// Budget permits are KiB, so a semaphore's permit count can hold any budget.
const PERMIT: usize = 1024;

/// The server's limits on request bodies.
#[derive(Debug)]
pub(crate) struct BodyLimits {
    /// Largest body, in bytes, as sent and as decoded.
    pub limit: usize,
    /// Longest a body may take to arrive (and to wait for the budget).
    pub timeout: Duration,
    /// Bytes of bodies held at once, over all requests, in [`PERMIT`] units.
    budget: Arc<Semaphore>,
    budget_bytes: usize,
}

impl BodyLimits {
    pub(crate) fn new(limit: usize, timeout: Duration, budget_bytes: usize) -> BodyLimits {
        let permits = budget_bytes.div_ceil(PERMIT).max(1);
        BodyLimits {
            limit,
            timeout,
            budget: Arc::new(Semaphore::new(permits.min(Semaphore::MAX_PERMITS))),
            budget_bytes,
        }
    }

    /// Budget not held by any request now, in bytes.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.budget.available_permits() * PERMIT
    }

    fn too_large(&self, what: &str) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body{what} is larger than the limit of {} bytes (--body-limit)",
                self.limit
            ),
        )
        .closing()
    }

    fn exhausted(&self) -> ApiError {
        exhausted(self.budget_bytes)
    }

    /// An empty share of the budget, to grow as a request's bytes arrive.
    pub(crate) fn budget(&self) -> Budget {
        Budget {
            semaphore: self.budget.clone(),
            held: None,
            bytes: 0,
            total: self.budget_bytes,
        }
    }
}

/// A request's share of the body budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Budget {
    semaphore: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    /// Bytes the share covers.
    bytes: usize,
    /// The whole budget, in bytes.
    total: usize,
}

impl Budget {
    /// Grows the share to cover `bytes` more, waiting until `deadline` at most. A share
    /// never grows past the whole budget: a request larger than that runs alone.
    async fn grow(&mut self, bytes: usize, deadline: Instant) -> Result<(), ()> {
        let want = (self.bytes + bytes).min(self.total).div_ceil(PERMIT);
        let have = self.held.as_ref().map_or(0, |p| p.num_permits());
        if want > have {
            let more = u32::try_from(want - have).unwrap_or(u32::MAX);
            let acquire = self.semaphore.clone().acquire_many_owned(more);
            let permit = match tokio::time::timeout_at(deadline, acquire).await {
                Ok(Ok(permit)) => permit,
                _ => return Err(()),
            };
            match &mut self.held {
                Some(held) => held.merge(permit),
                None => self.held = Some(permit),
            }
        }
        self.bytes += bytes;
        Ok(())
    }

    /// Holds `bytes` more for as long as the request runs: the tensors read from its
    /// body, and the predictor's copy of them. Waits up to `wait`, then is a 503.
    pub(crate) async fn hold(&mut self, bytes: usize, wait: Duration) -> Result<(), ApiError> {
        let deadline = Instant::now() + wait;
        let total = self.total;
        self.grow(bytes, deadline)
            .await
            .map_err(|()| exhausted(total))
    }
}

fn exhausted(total: usize) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the server holds as many request bodies as its budget of {total} bytes allows (--body-budget); try again"
        ),
    )
    .closing()
}

/// A request's whole body, decoded, with its share of the body budget (given back when
/// dropped).
#[derive(Debug)]
pub(crate) struct Body {
    bytes: Bytes,
    budget: Budget,
}

impl Body {
    /// The bytes, to be dropped as soon as they are read, and the share of the budget,
    /// kept (and grown for the tensors read) until the answer is built.
    pub(crate) fn split(self) -> (Bytes, Budget) {
        (self.bytes, self.budget)
    }
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Coding {
    Identity,
    Gzip,
    Deflate,
}

/// The body's coding, from every `Content-Encoding` header (a list, in the order
/// applied; RFC 9110, section 8.4): `identity` entries aside, at most one of gzip or
/// deflate.
fn coding(request: &Request) -> Result<Coding, ApiError> {
    let refuse = |m: String| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, m).closing();
    let mut found = Coding::Identity;
    for value in request.headers().get_all(header::CONTENT_ENCODING) {
        let text = value
            .to_str()
            .map_err(|_| refuse("Content-Encoding is not text".to_owned()))?;
        for item in text.split(',') {
            let coding = match item.trim().to_ascii_lowercase().as_str() {
                "" | "identity" => continue,
                "gzip" | "x-gzip" => Coding::Gzip,
                "deflate" => Coding::Deflate,
                other => {
                    return Err(refuse(format!(
                        "Content-Encoding '{other}' is not supported; use gzip, deflate or none"
                    )));
                }
            };
            if found != Coding::Identity {
                return Err(refuse(
                    "a body encoded more than once is not supported; use one of gzip or deflate"
                        .to_owned(),
                ));
            }
            found = coding;
        }
    }
    Ok(found)
}

impl FromRequest<Arc<AppState>> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Body, ApiError> {
        read(request, &state.bodies).await
    }
}

/// Reads, checks and decodes a request's body under `limits`.
pub(crate) async fn read(request: Request, limits: &BodyLimits) -> Result<Body, ApiError> {
    let deadline = Instant::now() + limits.timeout;
    let coding = coding(&request)?;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.limit as u64) {
        return Err(limits.too_large(""));
    }
    let mut budget = limits.budget();
    let mut body = request.into_body();
    // Room for what was declared, but never more than has arrived's worth of budget.
    let mut bytes = BytesMut::with_capacity(declared.map_or(0, |n| n as usize).min(limits.limit));
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} (--body-timeout)",
                        humantime::format_duration(limits.timeout)
                    ),
                )
                .closing());
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(
                    ApiError::bad_request(format!("cannot read the request body: {e}")).closing(),
                );
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limits.limit {
                return Err(limits.too_large(""));
            }
            budget
                .grow(data.len(), deadline)
                .await
                .map_err(|()| limits.exhausted())?;
            bytes.extend_from_slice(&data);
        }
    }
    let bytes = bytes.freeze();
    let bytes = match coding {
        Coding::Identity => bytes,
        Coding::Gzip | Coding::Deflate => {
            let mut decoded_budget = limits.budget();
            let decoded = decode(coding, &bytes, limits, &mut decoded_budget, deadline).await?;
            // The encoded bytes go; the decoded ones keep their own share.
            drop(bytes);
            budget = decoded_budget;
            Bytes::from(decoded)
        }
    };
    Ok(Body { bytes, budget })
}

/// Bytes decoded per step, each taken from the budget before it is kept.
const DECODE_STEP: usize = 64 * 1024;

/// The decoded bytes, no more than the limit of them, each step of them taken from
/// `budget` before it is kept: a small compressed body cannot make a large decoded one
/// outside the budget.
async fn decode(
    coding: Coding,
    bytes: &[u8],
    limits: &BodyLimits,
    budget: &mut Budget,
    deadline: Instant,
) -> Result<Vec<u8>, ApiError> {
    let name = if coding == Coding::Gzip {
        "gzip"
    } else {
        "deflate"
    };
    // HTTP's deflate is zlib (RFC 1950); some clients send raw deflate (RFC 1951).
    let zlib = coding == Coding::Deflate
        && flate2::Decompress::new(true)
            .decompress(bytes, &mut [0u8; 16], flate2::FlushDecompress::None)
            .is_ok();
    let mut reader: Box<dyn Read + Send + '_> = match coding {
        Coding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
        Coding::Deflate if zlib => Box::new(flate2::read::ZlibDecoder::new(bytes)),
        _ => Box::new(flate2::read::DeflateDecoder::new(bytes)),
    };
    let mut out = Vec::new();
    let mut step = vec![0u8; DECODE_STEP];
    loop {
        let n = match reader.read(&mut step) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "the request body is not valid {name} data: {e}"
                )));
            }
        };
        if out.len() + n > limits.limit {
            return Err(limits.too_large(", decoded,"));
        }
        budget
            .grow(n, deadline)
            .await
            .map_err(|()| limits.exhausted())?;
        out.extend_from_slice(&step[..n]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use axum::body::Body as AxumBody;

    use super::*;

    fn request(body: impl Into<AxumBody>, headers: &[(&str, &str)]) -> Request {
        let mut builder = axum::http::Request::builder().method("POST").uri("/");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(body.into()).unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn zlib(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[tokio::test]
    async fn compressed_bodies_are_decoded_and_other_codings_refused() {
        let limits = BodyLimits::new(1 << 20, Duration::from_secs(5), 4 << 20);
        let text = br#"{"inputs": []}"#.repeat(100);
        for (coding, encoded) in [
            ("gzip", gzip(&text)),
            ("x-gzip", gzip(&text)),
            ("deflate", zlib(&text)),
            ("deflate", raw_deflate(&text)),
            ("identity", text.clone()),
        ] {
            let body = read(request(encoded, &[("content-encoding", coding)]), &limits)
                .await
                .unwrap();
            assert_eq!(&body[..], &text[..], "{coding}");
        }
        let e = read(
            request(text.clone(), &[("content-encoding", "br")]),
            &limits,
        )
        .await
        .unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(e.close);
        let e = read(
            request(b"not gzip".to_vec(), &[("content-encoding", "gzip")]),
            &limits,
        )
        .await
        .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        // Every share of the budget came back.
        assert_eq!(limits.available(), 4 << 20);
    }

    #[tokio::test]
    async fn declared_bytes_take_no_budget_until_they_arrive() {
        let limits = Arc::new(BodyLimits::new(
            1 << 20,
            Duration::from_millis(300),
            1 << 20,
        ));
        // A client that declares the whole limit and sends nothing holds nothing.
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let idle = AxumBody::from_stream(tokio_stream_of(rx));
        let stalled = tokio::spawn({
            let request = request(idle, &[("content-length", "1048576")]);
            let limits = limits.clone();
            async move { read(request, &limits).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        let body = read(request(vec![b'x'; 1000], &[]), &limits).await.unwrap();
        assert_eq!(body.len(), 1000);
        assert!(stalled.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn decoded_bytes_are_taken_from_the_budget_as_they_are_decoded() {
        // 900 KB decoded from a few KB: two such bodies do not fit a 1 MiB budget.
        let limits = BodyLimits::new(1 << 20, Duration::from_millis(300), 1 << 20);
        let small = gzip(&vec![b'0'; 900_000]);
        assert!(small.len() < 10_000);
        let first = read(
            request(small.clone(), &[("content-encoding", "gzip")]),
            &limits,
        )
        .await
        .unwrap();
        assert_eq!(first.len(), 900_000);
        assert!(limits.available() < 200 << 10, "{}", limits.available());
        let e = read(
            request(small.clone(), &[("content-encoding", "gzip")]),
            &limits,
        )
        .await
        .unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        drop(first);
        assert_eq!(limits.available(), 1 << 20);
        assert!(
            read(request(small, &[("content-encoding", "gzip")]), &limits)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn every_content_encoding_header_counts() {
        let limits = BodyLimits::new(1 << 20, Duration::from_secs(5), 4 << 20);
        let text = br#"{"inputs": []}"#.to_vec();
        let mut two = request(gzip(&text), &[("content-encoding", "identity")]);
        two.headers_mut()
            .append(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert_eq!(&read(two, &limits).await.unwrap()[..], &text[..]);
        let twice = request(gzip(&gzip(&text)), &[("content-encoding", "gzip, gzip")]);
        let e = read(twice, &limits).await.unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[tokio::test]
    async fn a_decompression_bomb_stops_at_the_limit() {
        let limits = BodyLimits::new(1 << 20, Duration::from_secs(5), 4 << 20);
        let bomb = gzip(&vec![b'0'; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        let e = read(request(bomb, &[("content-encoding", "gzip")]), &limits)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.message.contains("decoded"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread() {
        let limits = BodyLimits::new(1024, Duration::from_secs(5), 1 << 20);
        // A body that never ends: only the header can be looked at.
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let endless = AxumBody::from_stream(tokio_stream_of(rx));
        let e = read(
            request(endless, &[("content-length", "1073741824")]),
            &limits,
        )
        .await
        .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.close);
    }

    #[tokio::test]
    async fn a_stalled_body_times_out_and_a_full_budget_waits_then_refuses() {
        let limits = BodyLimits::new(1024, Duration::from_millis(200), 2048);
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let stalled = AxumBody::from_stream(tokio_stream_of(rx));
        let e = read(request(stalled, &[("content-length", "1000")]), &limits)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(limits.available(), 2048);
        let held = read(request(vec![b'x'; 1024], &[]), &limits).await.unwrap();
        let held2 = read(request(vec![b'x'; 1024], &[]), &limits).await.unwrap();
        let e = read(request(vec![b'x'; 10], &[]), &limits)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        drop((held, held2));
        assert!(read(request(vec![b'x'; 10], &[]), &limits).await.is_ok());
    }

    fn tokio_stream_of(
        mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
