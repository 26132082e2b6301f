//! Parameter effects: a model's calls grouped by the range a parameter was in, so that output length, latency,
//! speed and the share of answers cut by `max_tokens` can be read against temperature, top P and max tokens.
//! Calls that did not set the parameter (the provider's default) are a group of their own.

/// A parameter whose effects are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    Temperature,
    TopP,
    MaxTokens,
}

impl Param {
    pub const ALL: [Param; 3] = [Param::Temperature, Param::TopP, Param::MaxTokens];

    /// Its name in URLs and CSV file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Param::Temperature => "temperature",
            Param::TopP => "top_p",
            Param::MaxTokens => "max_tokens",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Param::Temperature => "Temperature",
            Param::TopP => "Top P",
            Param::MaxTokens => "Max tokens",
        }
    }

    pub fn parse(s: &str) -> Option<Param> {
        Param::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The ranges, in order; a call's group is the index of its range (`0` = not set).
    pub fn ranges(self) -> &'static [&'static str] {
        match self {
            Param::Temperature => &["not set", "0", "0–0.3", "0.3–0.7", "0.7–1", "> 1"],
            Param::TopP => &["not set", "≤ 0.5", "0.5–0.9", "0.9–1", "1"],
            Param::MaxTokens => &["not set", "≤ 256", "≤ 1024", "≤ 4096", "≤ 16384", "> 16384"],
        }
    }

    /// An SQL expression of the calls (`c`) giving the index of a call's range. Each upper bound is included.
    pub fn key_sql(self) -> &'static str {
        match self {
            Param::Temperature => {
                "CASE WHEN c.temperature IS NULL THEN 0 WHEN c.temperature <= 0 THEN 1 \
                 WHEN c.temperature <= 0.3 THEN 2 WHEN c.temperature <= 0.7 THEN 3 \
                 WHEN c.temperature <= 1 THEN 4 ELSE 5 END"
            }
            Param::TopP => {
                "CASE WHEN c.top_p IS NULL THEN 0 WHEN c.top_p <= 0.5 THEN 1 WHEN c.top_p <= 0.9 THEN 2 \
                 WHEN c.top_p < 1 THEN 3 ELSE 4 END"
            }
            Param::MaxTokens => {
                "CASE WHEN c.max_tokens IS NULL THEN 0 WHEN c.max_tokens <= 256 THEN 1 \
                 WHEN c.max_tokens <= 1024 THEN 2 WHEN c.max_tokens <= 4096 THEN 3 \
                 WHEN c.max_tokens <= 16384 THEN 4 ELSE 5 END"
            }
        }
    }

    /// The index of a value's range, as [`Param::key_sql`] computes it.
    pub fn range_of(self, value: Option<f64>) -> usize {
        let Some(v) = value else { return 0 };
        let bounds: &[f64] = match self {
            Param::Temperature => &[0.0, 0.3, 0.7, 1.0],
            Param::TopP => &[0.5, 0.9],
            Param::MaxTokens => &[256.0, 1024.0, 4096.0, 16384.0],
        };
        if self == Param::TopP && v > 0.9 {
            return if v < 1.0 { 3 } else { 4 };
        }
        1 + bounds.iter().take_while(|&&b| v > b).count()
    }
}

#[cfg(test)]
mod tests {
    use super::Param;

    #[test]
    fn values_fall_in_their_ranges_with_upper_bounds_included() {
        let t = Param::Temperature;
        assert_eq!(t.range_of(None), 0);
        assert_eq!(t.ranges()[t.range_of(Some(0.0))], "0");
        assert_eq!(t.ranges()[t.range_of(Some(0.3))], "0–0.3");
        assert_eq!(t.ranges()[t.range_of(Some(0.31))], "0.3–0.7");
        assert_eq!(t.ranges()[t.range_of(Some(1.0))], "0.7–1");
        assert_eq!(t.ranges()[t.range_of(Some(1.5))], "> 1");
        let p = Param::TopP;
        assert_eq!(p.ranges()[p.range_of(Some(0.95))], "0.9–1");
        assert_eq!(p.ranges()[p.range_of(Some(1.0))], "1");
        assert_eq!(p.ranges()[p.range_of(Some(0.5))], "≤ 0.5");
        let m = Param::MaxTokens;
        assert_eq!(m.ranges()[m.range_of(Some(256.0))], "≤ 256");
        assert_eq!(m.ranges()[m.range_of(Some(257.0))], "≤ 1024");
        assert_eq!(m.ranges()[m.range_of(Some(100_000.0))], "> 16384");
        for p in Param::ALL {
            assert_eq!(Param::parse(p.as_str()), Some(p));
        }
    }
}
