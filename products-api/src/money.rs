//! Exact money: an amount in cents, written as a decimal string with two fraction digits.
//!
//! Never a binary float in storage or arithmetic. The products API takes prices only as
//! strings; where a JSON number is read (this type's `Deserialize`, e.g. for a TinyDB import),
//! it is accepted only if its shortest decimal form has at most two fraction digits (so `12.5`
//! is 12.50, while `12.345` or `1e-7` are refused rather than rounded).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest amount accepted: 1,000,000,000,000.00 (exactly representable in cents as i64,
/// and totals of many lines stay far from overflow).
pub const MAX_CENTS: i64 = 100_000_000_000_000;

/// A non-negative amount of money in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

/// Why a value is not a valid amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not a plain decimal number.
    #[error("must be a decimal number such as \"12.50\"")]
    NotDecimal,
    /// More than two digits after the point.
    #[error("must have at most two fraction digits")]
    TooPrecise,
    /// Below zero.
    #[error("must not be negative")]
    Negative,
    /// Above [`MAX_CENTS`].
    #[error("must be at most 1000000000000.00")]
    TooLarge,
}

impl Money {
    /// An amount from cents.
    pub fn from_cents(cents: i64) -> Result<Self, MoneyError> {
        match cents {
            c if c < 0 => Err(MoneyError::Negative),
            c if c > MAX_CENTS => Err(MoneyError::TooLarge),
            c => Ok(Money(c)),
        }
    }

    /// The amount in cents.
    pub fn cents(self) -> i64 {
        self.0
    }

    /// `self × quantity`, or `None` past [`MAX_CENTS`] × 10,000.
    pub fn times(self, quantity: u32) -> Option<Money> {
        self.0.checked_mul(i64::from(quantity)).map(Money)
    }

    /// `self + other`, or `None` on overflow.
    pub fn plus(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// Parses a JSON number by its shortest decimal form.
    pub fn from_f64(value: f64) -> Result<Self, MoneyError> {
        if !value.is_finite() {
            return Err(MoneyError::NotDecimal);
        }
        // Display prints the shortest string that reads back as the same f64, without exponent.
        format!("{value}").parse()
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let is_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !is_digits(whole) || !is_digits(fraction) || digits.ends_with('.') {
            return Err(MoneyError::NotDecimal);
        }
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > 2 {
            return Err(MoneyError::TooPrecise);
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > 13 {
            return Err(if negative {
                MoneyError::Negative
            } else {
                MoneyError::TooLarge
            });
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| MoneyError::NotDecimal)?
        };
        // At most two digits, checked above: "5" is 50 cents, "05" is 5.
        let fraction = fraction
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(2)
            .fold(0i64, |cents, digit| cents * 10 + i64::from(digit - b'0'));
        let cents = whole * 100 + fraction;
        if negative && cents != 0 {
            return Err(MoneyError::Negative);
        }
        Money::from_cents(cents)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Money {
    /// The text `Display` gives (`12.50`), written into `buf` by hand: `collect_str` through
    /// `write!` cost about as much as the rest of a product's serialization of its scalars.
    pub(crate) fn write_into(self, buf: &mut [u8; 24]) -> &str {
        let negative = self.0 < 0;
        let mut cents = self.0.unsigned_abs();
        let mut at = buf.len();
        for _ in 0..2 {
            at -= 1;
            buf[at] = b'0' + (cents % 10) as u8;
            cents /= 10;
        }
        at -= 1;
        buf[at] = b'.';
        loop {
            at -= 1;
            buf[at] = b'0' + (cents % 10) as u8;
            cents /= 10;
            if cents == 0 {
                break;
            }
        }
        if negative {
            at -= 1;
            buf[at] = b'-';
        }
        std::str::from_utf8(&buf[at..]).expect("ASCII digits")
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.write_into(&mut [0; 24]))
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MoneyVisitor;
        impl Visitor<'_> for MoneyVisitor {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal amount such as \"12.50\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
                let cents = i64::try_from(v)
                    .ok()
                    .and_then(|v| v.checked_mul(100))
                    .ok_or(MoneyError::TooLarge)
                    .map_err(E::custom)?;
                Money::from_cents(cents).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
                if v < 0 {
                    return Err(E::custom(MoneyError::Negative));
                }
                self.visit_u64(v as u64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
                Money::from_f64(v).map_err(E::custom)
            }
        }
        d.deserialize_any(MoneyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Serialized, an amount is exactly its `Display` text, in quotes.
        #[test]
        fn serializes_as_its_display(cents in 0..=MAX_CENTS) {
            let m = Money::from_cents(cents).unwrap();
            proptest::prop_assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{m}\""));
        }

        /// Any amount parses back from its text, and from its text without trailing zeros.
        #[test]
        fn parses_its_display(cents in 0..=MAX_CENTS) {
            let m = Money::from_cents(cents).unwrap();
            let text = m.to_string();
            proptest::prop_assert_eq!(text.parse::<Money>(), Ok(m));
            let (whole, fraction) = text.split_once('.').unwrap();
            let fraction = fraction.trim_end_matches('0');
            let short = if fraction.is_empty() { whole.to_owned() } else { format!("{whole}.{fraction}") };
            proptest::prop_assert_eq!(short.parse::<Money>(), Ok(m), "{}", &short);
        }
    }

    #[test]
    fn serializes_small_and_large_amounts() {
        for (cents, text) in [
            (0, "0.00"),
            (5, "0.05"),
            (1250, "12.50"),
            (MAX_CENTS, &*Money(MAX_CENTS).to_string()),
        ] {
            assert_eq!(
                serde_json::to_string(&Money(cents)).unwrap(),
                format!("\"{text}\"")
            );
        }
    }

    #[test]
    fn parses_exact_decimals_only() {
        for (s, cents) in [
            ("0", 0),
            ("12", 1200),
            ("12.5", 1250),
            ("12.50", 1250),
            ("0.01", 1),
            ("0.05", 5),
            ("0.5", 50),
            ("3.09", 309),
            ("007.10", 710),
            ("12.340", 1234),
        ] {
            assert_eq!(s.parse::<Money>().unwrap().cents(), cents, "{s}");
        }
        for (s, e) in [
            ("12.345", MoneyError::TooPrecise),
            ("-1", MoneyError::Negative),
            ("-0.01", MoneyError::Negative),
            ("NaN", MoneyError::NotDecimal),
            ("1e3", MoneyError::NotDecimal),
            ("", MoneyError::NotDecimal),
            (".5", MoneyError::NotDecimal),
            ("5.", MoneyError::NotDecimal),
            ("1 000", MoneyError::NotDecimal),
            ("10000000000000.00", MoneyError::TooLarge),
            ("99999999999999999999", MoneyError::TooLarge),
        ] {
            assert_eq!(s.parse::<Money>(), Err(e), "{s}");
        }
        assert_eq!(
            "1000000000000.00".parse::<Money>().unwrap().cents(),
            MAX_CENTS
        );
        assert_eq!("-0".parse::<Money>().unwrap().cents(), 0);
    }

    #[test]
    fn json_numbers_by_their_shortest_form() {
        let m: Money = serde_json::from_str("12.5").unwrap();
        assert_eq!(m.to_string(), "12.50");
        let m: Money = serde_json::from_str("0.1").unwrap();
        assert_eq!(m.cents(), 10);
        let m: Money = serde_json::from_str("19").unwrap();
        assert_eq!(m.cents(), 1900);
        for bad in ["12.345", "1e-7", "-3", "0.001", "\"abc\"", "true"] {
            assert!(serde_json::from_str::<Money>(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&Money(5)).unwrap(), "\"0.05\"");
    }

    #[test]
    fn arithmetic_is_exact() {
        let p: Money = "0.10".parse().unwrap();
        let total = p.times(3).unwrap().plus("0.20".parse().unwrap()).unwrap();
        assert_eq!(total.to_string(), "0.50");
        assert_eq!(Money(i64::MAX).times(2), None);
    }
}
