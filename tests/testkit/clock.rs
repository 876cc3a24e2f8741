//! A real clock for the domain's [`Clock`] port: wall-clock time and tokio's timer. (The
//! deliver-worker has its own in its binary crate, which tests cannot import.)

use wa_domain::ports::Clock;

/// Wall-clock unix milliseconds; sleeps on tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        wa_domain::clock::unix_now_ms()
    }

    async fn sleep_until(&self, until_ms: i64) {
        let wait = until_ms.saturating_sub(self.now_ms());
        if wait > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(wait.unsigned_abs())).await;
        }
    }
}
