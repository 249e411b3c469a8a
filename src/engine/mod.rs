//! The engines: the host's and the participant's drivers around the sans-IO cores, and the
//! interface both report through (`Event`) and take commands by (`Command`, DESIGN §9).

pub mod bans;
pub mod host;
pub mod identity;
pub mod join;

pub use crate::core::api::{Command, Event, LinkInfo, PeerStats};

use std::time::Instant;

/// Sleeps until `at`; never wakes when there is no `at` (a `select!` branch that is off).
pub async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
