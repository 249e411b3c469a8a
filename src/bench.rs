//! `syncy bench`: throughput on loopback (filled in below).
use color_eyre::eyre::{Result, bail};
/// Runs the benchmark.
pub async fn run(_a: crate::cli::BenchArgs) -> Result<()> {
    bail!("bench is being written")
}
