//! How every watch retries after an error: from 250 ms, doubling, to at most 5 s, with
//! jitter, back to the start after any success. kube-runtime's default (client-go's)
//! grows to 30 s: after an API server restart — whose RBAC answers 403 for a moment
//! while it syncs — each of the operator's ~20 watches could sleep 30 s before its next
//! try, and drift made meanwhile waited as long. Five seconds keeps recovery within
//! seconds of the server's `/readyz` and costs an outage at most a few requests a second.
//! Also the resync period, stretched per object so thousands do not resync together.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// First retry delay.
pub const MIN: Duration = Duration::from_millis(250);
/// Longest retry delay.
pub const MAX: Duration = Duration::from_secs(5);

/// The retry delays of one watch.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
    seed: u64,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self {
            next: MIN,
            seed: u64::from(std::process::id())
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::from(d.subsec_nanos())),
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    /// The next delay: the current one less up to a quarter (jitter, so ~20 watches do
    /// not retry in step), then doubled up to [`MAX`].
    fn next(&mut self) -> Option<Duration> {
        // xorshift: cheap, good enough to spread retries.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let quarter = u64::try_from(self.next.as_millis() / 4).unwrap_or(0).max(1);
        let delay = self.next - Duration::from_millis(self.seed % quarter);
        self.next = (self.next * 2).min(MAX);
        Some(delay)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = MIN;
    }
}

/// The resync period stretched by up to 10%, differently for each SafeApp (by its uid),
/// so that thousands of SafeApps created together do not resync in the same second.
pub fn with_jitter(resync: std::time::Duration, uid: &str) -> std::time::Duration {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    uid.hash(&mut h);
    let tenth = resync / 10;
    let millis = u64::try_from(tenth.as_millis()).unwrap_or(u64::MAX).max(1);
    resync + std::time::Duration::from_millis(h.finish() % millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Delays grow from 250 ms to at most 5 s, never to nothing, and a success starts over.
    #[test]
    fn bounded_and_reset() {
        let mut b = WatchBackoff::default();
        let delays: Vec<Duration> = (&mut b).take(10).collect();
        assert!(delays[0] <= MIN && delays[0] > MIN * 3 / 4);
        assert!(delays.iter().all(|d| *d <= MAX && *d > Duration::ZERO));
        assert!(delays[9] > MAX * 3 / 4);
        b.reset();
        assert!(b.next().unwrap() <= MIN);
    }
}
