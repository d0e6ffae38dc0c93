//! Requests to Redis with a deadline.

use std::time::Duration;

/// How long a request waits for Redis before Redis counts as away. Unbounded, a
/// command issued while the connection is being re-established waits through every
/// reconnection attempt, and the page or post behind it would hang as long.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);

pub(crate) async fn bounded<T>(
    request: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "redis did not answer in time",
        )
        .into()),
    }
}
