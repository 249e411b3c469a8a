//! What a view toggles by itself (not engine state): overlays and a passing message.

/// View-only state, shared by the host and participant views.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewState {
    /// The `?` overlay is up.
    pub help: bool,
    /// The log pane is shown.
    pub log: bool,
    /// A short message for the footer line ("link copied").
    pub flash: Option<String>,
    /// The terminal lacks 24-bit colour: the picture is drawn in the 256-colour palette.
    pub palette256: bool,
}
