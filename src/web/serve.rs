//! The accept loop: hyper's connection builder with the slow-client limits `axum::serve` does not expose.
//!
//! - HTTP/1 only. Nothing here needs cleartext HTTP/2 (a TLS proxy in front speaks HTTP/2 to browsers), and
//!   hyper's header-read timer covers HTTP/1 only: an HTTP/2 preface followed by silence stayed open forever.
//! - A connection that has not sent a whole request header within `header_read_timeout` is closed (hyper's
//!   http1 header-read timer; it also closes idle keep-alive connections after that long). The timer starts
//!   only once hyper reads; [`FirstBytes`] gives the first bytes the same deadline.
//! - A request body that delivers less than [`MIN_PROGRESS`] bytes in `body_idle_timeout` of waiting fails: the
//!   handler sees a body error (an upload's half-written `.part` file is removed by its guard), and the answer
//!   is 408 with `Connection: close`. So does a body that, after `body_rate_grace` of waiting, has averaged less
//!   than `min_body_bytes_per_sec`: a steady trickle that never stalls long enough for the idle timer. Only the
//!   time the handler spends waiting for the client counts (see [`IdleBody`]).
//!
//! Kept from `axum::serve`: TCP_NODELAY on every connection, `ConnectInfo<SocketAddr>` for the client address,
//! and graceful shutdown (stop accepting, let open connections finish), bounded by `shutdown_grace`: a slow
//! reader or a trickling upload must not hold up the exit, so what is still open then is dropped.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

/// A body must deliver at least this many bytes per idle period: one byte now and then is not progress.
pub const MIN_PROGRESS: usize = 8 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_idle_timeout: Duration,
    /// After `body_rate_grace`, a body must have averaged this many bytes per second (0: no minimum).
    pub min_body_bytes_per_sec: u64,
    pub body_rate_grace: Duration,
    /// How long open connections may take to finish after the signal.
    pub shutdown_grace: Duration,
}

/// The production [`Limits::shutdown_grace`].
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `signal` completes, then waits for open connections to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    signal: impl Future<Output = ()> + Send + 'static,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    // The connections' tasks, to drop those still open when the grace is over.
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(signal);
    loop {
        while conns.try_join_next().is_some() {}
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        // Tokens are small writes: without TCP_NODELAY, Nagle's algorithm holds one back until the previous is
        // acknowledged, and a client that delays its ACKs adds up to 40 ms to a token.
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            handle(router.clone(), req, addr, limits)
        });
        let io = FirstBytes {
            inner: tcp,
            deadline: Some(Box::pin(tokio::time::sleep(limits.header_read_timeout))),
            seen: 0,
        };
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        let conn = graceful.watch(conn);
        conns.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!(
            open = conns.len(),
            "connections still open after the shutdown grace; closing them"
        );
    }
    conns.shutdown().await;
}

async fn handle(
    router: Router,
    req: Request<Incoming>,
    addr: SocketAddr,
    limits: Limits,
) -> Result<Response<Body>, std::convert::Infallible> {
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(ConnectInfo(addr));
    let timed_out = Arc::new(AtomicBool::new(false));
    let body = Body::new(IdleBody::new(body, &limits, timed_out.clone()));
    let res = router.oneshot(Request::from_parts(parts, body)).await?;
    if timed_out.load(Ordering::Relaxed) {
        tracing::info!(client = %addr, "request body stalled; answered 408");
        return Ok(request_timeout());
    }
    Ok(res)
}

fn request_timeout() -> Response<Body> {
    let mut res = Response::new(Body::from(
        "The request body stopped arriving or arrived too slowly, so the request was cancelled. Try again.\n",
    ));
    *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A request body that fails when it stalls; see the module documentation.
///
/// Only time spent **waiting on the client** counts — from a poll that found nothing to the data that ended the
/// wait. Time the handler spends elsewhere (extracting one file of a request before reading the next, waiting
/// for a database lock) is the server's: a fast client must not be blamed for it.
struct IdleBody<B = Incoming> {
    inner: B,
    idle: Duration,
    /// Since when the handler has been waiting for the client, if it is.
    waiting_since: Option<tokio::time::Instant>,
    /// Waiting time since the last [`MIN_PROGRESS`] bytes (completed waits only).
    waited: Duration,
    /// Fires when the current wait would bring `waited` to `idle`.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    progress: usize,
    rate: Rate,
    timed_out: Arc<AtomicBool>,
}

impl<B> IdleBody<B> {
    fn new(inner: B, limits: &Limits, timed_out: Arc<AtomicBool>) -> IdleBody<B> {
        IdleBody {
            inner,
            idle: limits.body_idle_timeout,
            waiting_since: None,
            waited: Duration::ZERO,
            sleep: None,
            progress: 0,
            rate: Rate {
                min_per_sec: limits.min_body_bytes_per_sec,
                grace: limits.body_rate_grace,
                waited: Duration::ZERO,
                received: 0,
            },
            timed_out,
        }
    }
}

/// The minimum average rate of a body, over the time spent waiting for it; see the module documentation.
struct Rate {
    min_per_sec: u64,
    grace: Duration,
    /// All the time spent waiting on the client so far.
    waited: Duration,
    received: u64,
}

impl Rate {
    /// Whether the body, so far, is slower than allowed.
    fn too_slow(&self) -> bool {
        self.min_per_sec > 0
            && self.waited > self.grace
            && (self.received as f64) < self.min_per_sec as f64 * self.waited.as_secs_f64()
    }
}

fn stalled(why: &'static str) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, why))
}

impl<B> http_body::Body for IdleBody<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                // The wait, if there was one, is over: it counts, the time until the next poll does not.
                if let Some(since) = this.waiting_since.take() {
                    let waited = since.elapsed();
                    this.waited += waited;
                    this.rate.waited += waited;
                }
                this.sleep = None;
                if let Some(Ok(f)) = &frame
                    && let Some(data) = f.data_ref()
                {
                    this.progress += data.len();
                    this.rate.received += data.len() as u64;
                    if this.progress >= MIN_PROGRESS {
                        this.progress = 0;
                        this.waited = Duration::ZERO;
                    }
                    // A trickle: data keeps coming, but too little for the time waited.
                    let trickle = this.waited >= this.idle;
                    if trickle || this.rate.too_slow() {
                        this.timed_out.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(stalled(
                            "the request body arrived too slowly",
                        ))));
                    }
                }
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let now = tokio::time::Instant::now();
                this.waiting_since.get_or_insert(now);
                let left = this.idle.saturating_sub(this.waited);
                let since = this.waiting_since.unwrap_or(now);
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(since + left)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.timed_out.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(stalled("the request body stalled"))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Bytes hyper reads to choose HTTP/1 or HTTP/2 (the length of the HTTP/2 preface).
const VERSION_BYTES: usize = 24;

/// A TCP stream whose first [`VERSION_BYTES`] bytes must arrive before a deadline; after that, hyper's own
/// header timer applies.
struct FirstBytes {
    inner: TcpStream,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    seen: usize,
}

impl AsyncRead for FirstBytes {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.seen += buf.filled().len() - before;
                if this.seen >= VERSION_BYTES {
                    this.deadline = None;
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if let Some(deadline) = &mut this.deadline
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no request header in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for FirstBytes {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    type Started = (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
        Arc<tokio::sync::Notify>,
    );

    /// Starts `serve` on a free port with a route that never answers; returns its address, the signal, the
    /// server's task and a notice that the route was entered.
    async fn start(limits: Limits) -> Started {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let entered = Arc::new(tokio::sync::Notify::new());
        let notice = entered.clone();
        let router = Router::new().route(
            "/never",
            axum::routing::get(move || {
                let notice = notice.clone();
                async move {
                    notice.notify_one();
                    std::future::pending::<&'static str>().await
                }
            }),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, limits, async {
            let _ = rx.await;
        }));
        (addr, tx, server, entered)
    }

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(1),
            body_idle_timeout: Duration::from_secs(30),
            min_body_bytes_per_sec: 0,
            body_rate_grace: Duration::from_secs(30),
            shutdown_grace: Duration::from_millis(200),
        }
    }

    /// Waits (bounded) until the server closes `tcp`.
    async fn closed(tcp: &mut TcpStream) -> bool {
        let mut buf = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    #[tokio::test]
    async fn shutdown_does_not_wait_for_a_request_that_never_ends() {
        let (addr, tx, server, entered) = start(limits()).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        // The request is in the handler before the signal.
        tokio::time::timeout(Duration::from_secs(20), entered.notified())
            .await
            .expect("the request reached its handler");
        tx.send(()).unwrap();
        // Bounded: without the grace this waits forever.
        tokio::time::timeout(Duration::from_secs(20), server)
            .await
            .expect("the server stopped")
            .unwrap();
        assert!(closed(&mut tcp).await, "the connection was dropped");
    }

    /// A body fed from a channel, as a client would send it.
    fn channel_body() -> (
        tokio::sync::mpsc::Sender<bytes::Bytes>,
        IdleBody<
            impl http_body::Body<Data = bytes::Bytes, Error = std::convert::Infallible> + Unpin,
        >,
        Arc<AtomicBool>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
        let stream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            let chunk = rx.recv().await?;
            Some((Ok(http_body::Frame::data(chunk)), rx))
        }));
        let limits = Limits {
            header_read_timeout: Duration::from_secs(5),
            body_idle_timeout: Duration::from_millis(300),
            min_body_bytes_per_sec: 1 << 20,
            body_rate_grace: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(1),
        };
        let timed_out = Arc::new(AtomicBool::new(false));
        let body = IdleBody::new(
            http_body_util::StreamBody::new(stream),
            &limits,
            timed_out.clone(),
        );
        (tx, body, timed_out)
    }

    #[tokio::test]
    async fn only_time_spent_waiting_on_the_client_counts() {
        use http_body_util::BodyExt as _;
        // A fast client and a busy handler: the data is there whenever the handler asks, so neither the idle
        // timer nor the rate may fire, however long the handler works between reads (extracting a file, say).
        let (tx, mut body, timed_out) = channel_body();
        for _ in 0..3 {
            tx.send(bytes::Bytes::from(vec![b'a'; 1024])).await.unwrap();
            let frame = body.frame().await.expect("a frame");
            assert!(frame.is_ok(), "a waiting handler is not a slow client");
            // The handler's own work, longer than both the idle timeout and the rate's grace.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        drop(tx);
        assert!(body.frame().await.is_none());
        assert!(!timed_out.load(Ordering::Relaxed));

        // A client that makes the handler wait longer than the idle timeout fails.
        let (tx, mut body, timed_out) = channel_body();
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let _ = tx.send(bytes::Bytes::from_static(b"late")).await;
        });
        let frame = body.frame().await.expect("an error frame");
        assert!(frame.is_err(), "the stalled client is refused");
        assert!(timed_out.load(Ordering::Relaxed));
        late.abort();
    }

    #[tokio::test]
    async fn an_http2_preface_then_silence_is_closed() {
        let (addr, _tx, _server, _) = start(limits()).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        assert!(closed(&mut tcp).await, "still open after 20 s");
    }
}
