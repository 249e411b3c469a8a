//! Errors for people. The library's own errors are typed where they are made; these two travel
//! inside an error report and tell `main` how to end: a usage error exits 2, and a hint is
//! printed under the one-line error (`syncy: hint: …`).

/// The user asked for something that cannot be: a bad link, flag or config value (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// An error and what the user can do about it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Hinted {
    /// What went wrong.
    pub message: String,
    /// What to do ("open or map TCP port 7878", "use a TURN server").
    pub hint: String,
}

impl Hinted {
    /// An error with a hint.
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Hinted {
        Hinted { message: message.into(), hint: hint.into() }
    }
}

/// How a failed run ends: the exit code and the hint, looked for anywhere in the chain.
pub fn classify(e: &color_eyre::Report) -> (u8, Option<String>) {
    let usage = e.chain().any(|c| c.downcast_ref::<UsageError>().is_some());
    let hint = e.chain().find_map(|c| c.downcast_ref::<Hinted>().map(|h| h.hint.clone()));
    (if usage { 2 } else { 1 }, hint)
}

#[cfg(test)]
mod tests {
    use color_eyre::eyre::WrapErr;

    use super::*;

    #[test]
    fn usage_errors_and_hints_are_found_under_context() {
        let e: color_eyre::Result<()> = Err(UsageError("not a link".into())).wrap_err("syncy join");
        assert_eq!(classify(&e.unwrap_err()), (2, None));
        let e: color_eyre::Result<()> = Err(Hinted::new("the host is not reachable", "map the port")).wrap_err("cannot join");
        let e = e.unwrap_err();
        assert_eq!(classify(&e), (1, Some("map the port".into())));
        assert_eq!(format!("{e:#}"), "cannot join: the host is not reachable");
    }
}
