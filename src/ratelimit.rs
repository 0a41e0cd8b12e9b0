//! A client-side limit on the operator's request rate: a token bucket (`--qps` tokens a
//! second, at most `--burst` saved up) in front of the Kubernetes client, as client-go's
//! `QPS`/`Burst`. It bounds what the operator can ask of the API server when thousands of
//! SafeApps change at once (a new policy, a mass apply); at steady state the operator
//! reads caches and sends nothing. A watch is one request when it opens. The Lease has a
//! client of its own, outside this limit, so renewals never wait behind reconciles.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use tower::{Layer, Service};

/// Default sustained requests per second. Converging N new SafeApps takes 6 requests
/// each (4 applies, a status patch, an Event): at 200 a second after the burst, 1,000 new
/// apps take ~29 s, about a third of what `kubectl apply --server-side` of the same
/// objects takes against a server as slow as a real one (BENCHMARKS.md); a runaway loop
/// is held to 200 a second.
pub const DEFAULT_QPS: f64 = 200.0;
/// Default burst: requests that may go at once after a quiet period.
pub const DEFAULT_BURST: u32 = 500;

struct Bucket {
    tokens: f64,
    last: Instant,
    qps: f64,
    burst: f64,
}

impl Bucket {
    /// Takes a token, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.qps))
        }
    }
}

/// The layer: every service it wraps shares one bucket.
#[derive(Clone)]
pub struct RateLimitLayer {
    bucket: Arc<Mutex<Bucket>>,
}

impl RateLimitLayer {
    /// `qps` tokens a second (at least 0.1), at most `burst` (at least 1) saved up.
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: burst,
                last: Instant::now(),
                qps: qps.max(0.1),
                burst,
            })),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            bucket: self.bucket.clone(),
            wait: None,
            has_token: false,
        }
    }
}

/// A service that sends a request only with a token of the shared bucket.
pub struct RateLimited<S> {
    inner: S,
    bucket: Arc<Mutex<Bucket>>,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
    has_token: bool,
}

impl<S, R> Service<R> for RateLimited<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        while !self.has_token {
            if let Some(wait) = self.wait.as_mut() {
                if wait.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.wait = None;
            }
            let taken = self
                .bucket
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(Instant::now());
            match taken {
                Ok(()) => self.has_token = true,
                Err(wait) => self.wait = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.has_token = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A full bucket lets a burst through, then one request per 1/qps seconds.
    #[test]
    fn bucket_refills_at_qps() {
        let start = Instant::now();
        let mut b = Bucket {
            tokens: 2.0,
            last: start,
            qps: 10.0,
            burst: 2.0,
        };
        assert!(b.take(start).is_ok());
        assert!(b.take(start).is_ok());
        let wait = b.take(start).expect_err("empty");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        assert!(b.take(start + Duration::from_millis(100)).is_ok());
        // Never more than the burst saved up.
        assert!(b.take(start + Duration::from_secs(60)).is_ok());
        assert!(b.take(start + Duration::from_secs(60)).is_ok());
        assert!(b.take(start + Duration::from_secs(60)).is_err());
    }

    // Through the layer, requests beyond the burst wait for tokens.
    #[tokio::test(start_paused = true)]
    async fn service_waits_for_tokens() {
        use tower::ServiceExt;
        let layer = RateLimitLayer::new(10.0, 3);
        let mut svc = layer.layer(tower::service_fn(|x: u32| async move { Ok::<_, ()>(x) }));
        let start = tokio::time::Instant::now();
        for i in 0..5 {
            svc.ready().await.expect("ready");
            assert_eq!(svc.call(i).await, Ok(i));
        }
        // 3 at once, then 2 more at 10 per second.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(199), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");
    }
}
