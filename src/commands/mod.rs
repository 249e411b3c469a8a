//! The subcommands that are more than wiring: the demo, the doctor and the benchmarks. (`serve`,
//! `host`, `join` and `sample` are wired in `main`.)

pub mod bench;
pub mod demo;
pub mod doctor;
