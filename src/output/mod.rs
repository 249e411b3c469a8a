//! What the engines report, for people and programs: JSON lines (`--headless`, DESIGN §9),
//! plain text for a terminal without the dashboard, and a stdout that may close under us.

pub mod headless;
pub mod plain;
pub mod stdout;
pub mod terminal;
