//! Time for the engines' select loops.

use std::time::Instant;

/// Sleeps until `at`; never wakes when there is no `at` (a `select!` branch that is off).
pub async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
