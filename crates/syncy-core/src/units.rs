//! Sizes and rates with units, as on the command line: `256MiB`, `64KiB`, `10MiB/s`,
//! `1.5Mb/s` (lower-case `b` is bits), `0` (unlimited where a limit is meant).

/// A size or rate that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot read {0:?} as a size (examples: 0, 65536, 64KiB, 256MiB, 1.5GB, 10MiB/s, 8Mb/s)")]
pub struct UnitError(pub String);

/// Parses a byte size (`/s` allowed and ignored, so rates share the syntax). Returns bytes.
pub fn parse_bytes(text: &str) -> Result<u64, UnitError> {
    let err = || UnitError(text.to_string());
    let t = text.trim();
    let t = t.strip_suffix("/s").or_else(|| t.strip_suffix("ps")).unwrap_or(t);
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| err())?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "b" => 1.0 / 8.0,
        "k" | "K" | "KB" | "kB" => 1e3,
        "KiB" | "Ki" => 1024.0,
        "M" | "MB" => 1e6,
        "MiB" | "Mi" => 1024.0 * 1024.0,
        "G" | "GB" => 1e9,
        "GiB" | "Gi" => 1024.0 * 1024.0 * 1024.0,
        "kb" | "Kb" => 1e3 / 8.0,
        "Mb" => 1e6 / 8.0,
        "Gb" => 1e9 / 8.0,
        _ => return Err(err()),
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes.round() as u64)
}

pub use crate::api::clock;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("10MiB/s"), Ok(10 << 20));
        assert_eq!(parse_bytes("1.5Mb/s"), Ok(187_500));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        for bad in ["", "x", "10XB", "-1", "1e400", "MiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
