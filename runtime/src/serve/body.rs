//! Request bodies, read under the server's limits before any protocol sees them:
//!
//! - a declared `Content-Length` over the limit is refused (413) before a byte of the body
//!   is read, and a body that grows past it while arriving is cut off there;
//! - the whole body must arrive within the body timeout (408 after it);
//! - the bytes of all bodies held at once stay within the server's budget: a request
//!   takes its share before reading (waiting, within the same timeout, for others to
//!   finish; 503 after it) and holds it until its answer is built;
//! - `Content-Encoding: gzip` (or `x-gzip`) and `deflate` (zlib, or raw deflate as some
//!   clients send it) are decoded, the decoded body under the same limit and budget;
//!   `identity` passes; any other coding is a 415.
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

    /// Takes `bytes` of the budget, waiting until `deadline` at most.
    async fn take(
        &self,
        bytes: usize,
        deadline: Instant,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        let permits = bytes.div_ceil(PERMIT).max(1);
        let permits = u32::try_from(permits).unwrap_or(u32::MAX);
        let acquire = self.budget.clone().acquire_many_owned(permits);
        match tokio::time::timeout_at(deadline, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the server holds as many request bodies as its budget of {} bytes allows (--body-budget); try again",
                    self.budget_bytes
                ),
            )
            .closing()),
        }
    }
}

/// A request's whole body, decoded, with its share of the body budget (given back when
/// dropped).
#[derive(Debug)]
pub(crate) struct Body {
    bytes: Bytes,
    budget: Budget,
}

/// A request's share of the body budget, held until its answer is built: the tensors
/// read from a body, and the answer, take about as much again as the body.
#[derive(Debug)]
pub(crate) struct Budget {
    _permits: Vec<OwnedSemaphorePermit>,
}

impl Body {
    /// The bytes, to be dropped as soon as they are read, and the share of the budget,
    /// kept until the answer is built.
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

fn coding(request: &Request) -> Result<Coding, ApiError> {
    let Some(value) = request.headers().get(header::CONTENT_ENCODING) else {
        return Ok(Coding::Identity);
    };
    let text = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
    match text.as_str() {
        "" | "identity" => Ok(Coding::Identity),
        "gzip" | "x-gzip" => Ok(Coding::Gzip),
        "deflate" => Ok(Coding::Deflate),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding '{other}' is not supported; use gzip, deflate or none"),
        )
        .closing()),
    }
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
    // A body of unknown length takes the whole limit until it has arrived.
    let share = declared.map_or(limits.limit, |n| n as usize);
    let mut budget = vec![limits.take(share, deadline).await?];
    let mut body = request.into_body();
    let mut bytes = BytesMut::with_capacity(share.min(limits.limit));
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
            bytes.extend_from_slice(&data);
        }
    }
    let bytes = bytes.freeze();
    let bytes = match coding {
        Coding::Identity => bytes,
        Coding::Gzip | Coding::Deflate => {
            // The decoded body takes its own share too, once its size is known.
            let decoded = decode(coding, &bytes, limits.limit)?;
            budget.push(limits.take(decoded.len(), deadline).await?);
            Bytes::from(decoded)
        }
    };
    Ok(Body {
        bytes,
        budget: Budget { _permits: budget },
    })
}

/// The decoded bytes, no more than `limit` of them.
fn decode(coding: Coding, bytes: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let bound = limit as u64 + 1;
    let read = match coding {
        Coding::Gzip => flate2::read::MultiGzDecoder::new(bytes)
            .take(bound)
            .read_to_end(&mut out),
        Coding::Deflate => {
            // HTTP's deflate is zlib (RFC 1950); some clients send raw deflate (RFC 1951).
            let zlib = flate2::read::ZlibDecoder::new(bytes)
                .take(bound)
                .read_to_end(&mut out);
            match zlib {
                Ok(n) => Ok(n),
                Err(_) => {
                    out.clear();
                    flate2::read::DeflateDecoder::new(bytes)
                        .take(bound)
                        .read_to_end(&mut out)
                }
            }
        }
        Coding::Identity => return Ok(bytes.to_vec()),
    };
    let name = if coding == Coding::Gzip {
        "gzip"
    } else {
        "deflate"
    };
    read.map_err(|e| {
        ApiError::bad_request(format!("the request body is not valid {name} data: {e}"))
    })?;
    if out.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body, decoded, is larger than the limit of {limit} bytes (--body-limit)"
            ),
        ));
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
