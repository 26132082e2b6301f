//! Money as people read it. Every amount is kept in integer micro-units of one currency, whose label the
//! configuration names (`currency`, default `USD`): `$1.25` for USD, `1.25 EUR` for any other label. The label
//! is set once by the command line at start (it is a deployment's setting, like its time zone); a server
//! built without it (the tests) shows USD.

use std::sync::OnceLock;

static LABEL: OnceLock<String> = OnceLock::new();

/// Sets the label for this process; the first call wins.
pub fn set_label(label: &str) {
    let _ = LABEL.set(label.to_string());
}

/// The currency's label: `USD`, `EUR`, `credits`…
pub fn label() -> &'static str {
    LABEL.get().map_or("USD", String::as_str)
}

fn written(label: &str, number: String) -> String {
    if label == "USD" {
        match number.strip_prefix('-') {
            Some(n) => format!("-${n}"),
            None => format!("${number}"),
        }
    } else {
        format!("{number} {label}")
    }
}

/// A call's cost or a price, as precise as it needs: `$0`, `$0.0123`, `$0.000123`.
pub fn text(micros: i64) -> String {
    text_in(label(), micros)
}

pub fn text_in(label: &str, micros: i64) -> String {
    if micros == 0 {
        return written(label, "0".into());
    }
    let d = micros as f64 / 1e6;
    written(
        label,
        if d.abs() >= 0.01 {
            format!("{d:.4}")
        } else {
            format!("{d:.6}")
        },
    )
}

/// An amount people set or are told (a budget, what is left): `$5.00`, or `$0.001234` when that small.
pub fn amount(micros: i64) -> String {
    amount_in(label(), micros)
}

pub fn amount_in(label: &str, micros: i64) -> String {
    let d = micros as f64 / 1e6;
    written(
        label,
        if micros != 0 && d.abs() < 0.01 {
            format!("{d:.6}")
        } else {
            format!("{d:.2}")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_has_its_sign_before_and_other_labels_come_after() {
        assert_eq!(text_in("USD", 0), "$0");
        assert_eq!(text_in("USD", 12_300), "$0.0123");
        assert_eq!(text_in("USD", 123), "$0.000123");
        assert_eq!(text_in("EUR", 1_250_000), "1.2500 EUR");
        assert_eq!(amount_in("USD", 5_000_000), "$5.00");
        assert_eq!(amount_in("USD", 1234), "$0.001234");
        assert_eq!(amount_in("USD", -2_000_000), "-$2.00");
        assert_eq!(amount_in("credits", 10_000_000), "10.00 credits");
        assert_eq!(label(), "USD", "unset, the label is USD");
    }
}
