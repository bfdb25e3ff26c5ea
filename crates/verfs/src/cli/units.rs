//! Sizes for people: binary units with one decimal in tables, or exact byte counts with
//! `--bytes` (for scripts that parse the text and for checking the arithmetic).

/// How a command prints sizes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sizes {
    /// Exact bytes instead of binary units.
    pub exact: bool,
}

impl Sizes {
    /// `n` bytes as `1.5 GiB` (or `1610612736` with `--bytes`).
    pub fn fmt(self, n: u64) -> String {
        if self.exact {
            n.to_string()
        } else {
            human(n)
        }
    }
}

/// `n` bytes in binary units with one decimal; plain bytes below 1 KiB.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally_or_exactly() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 << 30), "5.0 GiB");
        assert_eq!(Sizes { exact: true }.fmt(5 << 30), "5368709120");
        assert_eq!(Sizes::default().fmt(3 << 20), "3.0 MiB");
    }
}
