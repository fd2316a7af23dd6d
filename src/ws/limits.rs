//! Per-connection message-rate rule (close 1008 above it): a token bucket of one second.

use std::num::NonZeroU32;

use tokio::time::Instant;

/// A token bucket holding at most `rate` tokens, refilled at `rate` per second.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl RateLimit {
    pub fn new(rate: NonZeroU32) -> Self {
        let rate = f64::from(rate.get());
        RateLimit {
            rate,
            tokens: rate,
            refilled: Instant::now(),
        }
    }

    /// Takes one token; `false` when the client is over its rate.
    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limit(rate: u32) -> RateLimit {
        RateLimit::new(NonZeroU32::new(rate).expect("non-zero"))
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_up_to_the_rate_passes_and_the_next_is_refused() {
        let mut rate = limit(5);
        assert!((0..5).all(|_| rate.allow()));
        assert!(!rate.allow());
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_come_back_with_time() {
        let mut rate = limit(10);
        assert!((0..10).all(|_| rate.allow()));
        assert!(!rate.allow());
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(rate.allow());
        assert!(!rate.allow());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!((0..20).filter(|_| rate.allow()).count(), 10);
    }
}
