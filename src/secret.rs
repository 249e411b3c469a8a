//! A value that must never reach a log or an error message, the TURN password: its `Debug`
//! says `<hidden>`, so the structs holding it can derive `Debug` safely, and its text comes out
//! only through [`Secret::expose`], where it is handed to the TURN client.

/// A secret string.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The text, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// No secret at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "<hidden>" })
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_never_shows_it() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<hidden>");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(<hidden>)");
        assert_eq!(s.expose(), "hunter2");
        let parsed: Secret = "x".parse().unwrap();
        assert_eq!(parsed.expose(), "x");
    }
}
