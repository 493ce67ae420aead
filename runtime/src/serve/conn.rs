//! The connections of `sluice serve`: the accept loop, every connection's timeouts, and
//! the drain on shutdown. HTTP/1.1 through hyper; the routes are the caller's `Router`.
//!
//! A connection is always in one phase, and each phase but one has a deadline:
//!
//! | phase | from | until | deadline |
//! |---|---|---|---|
//! | idle | accept, or the end of an answer | the first byte of a request | keep-alive timeout, from the phase's start or the last byte written, whichever is later |
//! | head | that first byte | the request's headers are complete | header timeout |
//! | busy | the headers | hyper has taken the whole answer | none while the body arrives (the body timeout of `body` bounds it) or the answer is computed (the predictor's deadline bounds it) |
//!
//! In every phase, a write that waits for the client to take bytes has the write
//! timeout: an answer still being sent to a client that reads it, however slowly, is
//! never cut off; one whose client stopped reading is. Past a deadline the connection is
//! closed. On shutdown the listener closes, idle
//! connections close, requests in flight finish, and after the drain timeout whatever
//! is still open is left to close with the process. Nothing here knows the protocols.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::ServiceExt;

/// How long a connection may sit in each phase.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// From a request's first byte until its headers are complete.
    pub header: Duration,
    /// Between requests on a kept-alive connection (and before the first).
    pub keep_alive: Duration,
    /// How long an answer may wait for the client to take its next bytes.
    pub write: Duration,
}

/// How a drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished its request and closed.
    All,
    /// This many connections were still open at the drain deadline.
    Cut(usize),
}

/// Serves `router` on `listener` until `shutdown` completes, then drains for up to
/// `drain`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> Drained {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(AtomicUsize::new(0));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors or a connection reset before it was taken: the
                // listener itself is fine; wait a little rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            io: stream,
            activity: activity.clone(),
        });
        let service = {
            let activity = activity.clone();
            let router = router.clone();
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let finished = activity.request_started();
                let router = router.clone();
                async move {
                    let response = router
                        .oneshot(request.map(Body::new))
                        .await
                        .unwrap_or_else(|never: Infallible| match never {});
                    Ok::<_, Infallible>(response.map(|body| Tracked {
                        body,
                        _finished: finished,
                    }))
                }
            })
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .keep_alive(true)
            // The watchdog keeps the header deadline, which must not also run while idle.
            .header_read_timeout(None);
        let connection = graceful.watch(http.serve_connection(io, service));
        let counted = Open::count(&open);
        tokio::spawn(async move {
            let _counted = counted;
            tokio::select! {
                _ = connection => {}
                () = watchdog(&activity, limits) => {}
            }
        });
    }
    drop(listener);
    match tokio::time::timeout(drain, graceful.shutdown()).await {
        Ok(()) => Drained::All,
        Err(_) => Drained::Cut(open.load(Ordering::SeqCst)),
    }
}

/// Counts a connection as open until dropped with its task.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn count(open: &Arc<AtomicUsize>) -> Open {
        open.fetch_add(1, Ordering::SeqCst);
        Open(open.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Idle(Instant),
    Head(Instant),
    Busy { requests: usize },
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct State {
    phase: Phase,
    /// Since when a write has been waiting for the client to take bytes.
    write_stalled: Option<Instant>,
    /// When bytes were last written.
    last_write: Option<Instant>,
}

/// What a connection is doing, shared by its stream, its service and its watchdog.
struct Activity {
    state: Mutex<State>,
    changed: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            state: Mutex::new(State {
                phase: Phase::Idle(Instant::now()),
                write_stalled: None,
                last_write: None,
            }),
            changed: Notify::new(),
        }
    }

    /// Changes the state; the watchdog looks again when a deadline may have come
    /// closer (a new phase, a write that starts to wait).
    fn update(&self, f: impl FnOnce(&mut State)) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let before = *state;
        f(&mut state);
        let sooner = state.phase != before.phase
            || (state.write_stalled.is_some() && before.write_stalled.is_none());
        drop(state);
        if sooner {
            self.changed.notify_one();
        }
    }

    fn bytes_read(&self) {
        self.update(|state| {
            if let Phase::Idle(_) = state.phase {
                state.phase = Phase::Head(Instant::now());
            }
        });
    }

    /// A write returned: `pending` when it waits for the client, else having written
    /// `wrote` bytes.
    fn write_polled(&self, pending: bool, wrote: bool) {
        self.update(|state| {
            if pending {
                state.write_stalled.get_or_insert_with(Instant::now);
            } else {
                state.write_stalled = None;
                if wrote {
                    state.last_write = Some(Instant::now());
                }
            }
        });
    }

    /// A request's headers are complete; the returned guard ends it when dropped.
    fn request_started(self: &Arc<Self>) -> Finished {
        self.update(|state| {
            state.phase = match state.phase {
                Phase::Busy { requests } => Phase::Busy {
                    requests: requests + 1,
                },
                _ => Phase::Busy { requests: 1 },
            }
        });
        Finished(self.clone())
    }

    fn request_finished(&self) {
        self.update(|state| {
            if let Phase::Busy { requests } = state.phase {
                state.phase = if requests <= 1 {
                    Phase::Idle(Instant::now())
                } else {
                    Phase::Busy {
                        requests: requests - 1,
                    }
                };
            }
        });
    }

    /// When the connection's current state ends it, if it has a deadline.
    fn deadline(&self, limits: ConnLimits) -> Option<Instant> {
        let state = *self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(since) = state.write_stalled {
            return Some(since + limits.write);
        }
        match state.phase {
            Phase::Idle(since) => {
                let from = state.last_write.map_or(since, |w| w.max(since));
                Some(from + limits.keep_alive)
            }
            Phase::Head(since) => Some(since + limits.header),
            Phase::Busy { .. } => None,
        }
    }
}

/// Completes when the connection passes a deadline.
async fn watchdog(activity: &Activity, limits: ConnLimits) {
    loop {
        match activity.deadline(limits) {
            Some(at) if Instant::now() >= at => return,
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = activity.changed.notified() => {}
                }
            }
            None => activity.changed.notified().await,
        }
    }
}

/// Ends a request when its answer's body is dropped: written, or abandoned.
struct Finished(Arc<Activity>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// An answer's body, which ends its request when hyper is done with it.
struct Tracked {
    body: Body,
    _finished: Finished,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's socket, reporting reads and stalled writes to its [`Activity`].
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, data);
        this.activity.write_polled(
            polled.is_pending(),
            matches!(polled, Poll::Ready(Ok(n)) if n > 0),
        );
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.activity.write_polled(
            polled.is_pending(),
            matches!(polled, Poll::Ready(Ok(n)) if n > 0),
        );
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.activity.write_polled(polled.is_pending(), false);
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnLimits = ConnLimits {
        header: Duration::from_secs(2),
        keep_alive: Duration::from_secs(5),
        write: Duration::from_secs(7),
    };

    #[test]
    fn each_phase_has_its_deadline() {
        let a = Arc::new(Activity::new());
        let phase = |a: &Activity| a.state.lock().unwrap().phase;
        let Phase::Idle(start) = phase(&a) else {
            panic!()
        };
        assert_eq!(a.deadline(LIMITS), Some(start + LIMITS.keep_alive));
        a.bytes_read();
        let Phase::Head(first_byte) = phase(&a) else {
            panic!()
        };
        assert_eq!(a.deadline(LIMITS), Some(first_byte + LIMITS.header));
        // More bytes of the same head do not move its deadline.
        a.bytes_read();
        assert_eq!(a.deadline(LIMITS), Some(first_byte + LIMITS.header));
        let finished = a.request_started();
        assert_eq!(a.deadline(LIMITS), None);
        a.bytes_read();
        assert_eq!(
            a.deadline(LIMITS),
            None,
            "body bytes belong to the busy phase"
        );
        a.write_polled(true, false);
        let since = a.state.lock().unwrap().write_stalled.unwrap();
        assert_eq!(a.deadline(LIMITS), Some(since + LIMITS.write));
        a.write_polled(false, true);
        assert_eq!(a.deadline(LIMITS), None);
        drop(finished);
        assert!(matches!(phase(&a), Phase::Idle(_)));
    }

    #[test]
    fn an_answer_still_being_written_is_not_cut_off_by_the_keep_alive_timeout() {
        let a = Arc::new(Activity::new());
        drop(a.request_started());
        let Phase::Idle(idle) = a.state.lock().unwrap().phase else {
            panic!()
        };
        // hyper has the whole answer; the client keeps taking it, a write at a time.
        std::thread::sleep(Duration::from_millis(20));
        a.write_polled(false, true);
        let deadline = a.deadline(LIMITS).unwrap();
        assert!(
            deadline > idle + LIMITS.keep_alive,
            "the last write moves it"
        );
        // A client that stops reading has the write timeout, even after the answer.
        a.write_polled(true, false);
        let since = a.state.lock().unwrap().write_stalled.unwrap();
        assert_eq!(a.deadline(LIMITS), Some(since + LIMITS.write));
    }
}
