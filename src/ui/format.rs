//! Short human figures for narrow columns.

/// "12.5 MB/s", "830 kB/s", "0 B/s".
pub fn rate(bps: u64) -> String {
    format!("{}/s", bytes(bps))
}

/// "12.5 MB", "830 kB", "512 B" (decimal units, like the rates).
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.0} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_short() {
        assert_eq!(rate(0), "0 B/s");
        assert_eq!(rate(830_400), "830 kB/s");
        assert_eq!(rate(12_500_000), "12.5 MB/s");
        assert_eq!(bytes(3_200_000_000), "3.2 GB");
    }
}
