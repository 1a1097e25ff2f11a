//! Whole numbers as JSON Schema counts them: a JSON number with no fraction, however it is
//! written (`3`, `3.0`, `3e0`), so that every body valid against an `integer` in the OpenAPI
//! documents is read as the number it is.
/// The whole number a JSON number holds, as JSON Schema counts integers: `3`, and also `3.0`
/// or `3e0` (a number with no fraction), as long as it is exact (within ±2^53 when written
/// with a fraction or exponent). `None` for a fraction or a float too large to be exact.
pub fn whole_number(n: &serde_json::Number) -> Option<i128> {
    if let Some(i) = n.as_i64() {
        return Some(i.into());
    }
    if let Some(u) = n.as_u64() {
        return Some(u.into());
    }
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    n.as_f64()
        .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
        .map(|f| f as i128)
}

/// `#[serde(deserialize_with = "...")]` helpers for whole-number fields that accept what
/// [`whole_number`] accepts (`3.0` as well as `3`), so that a body valid against the OpenAPI
/// schema's `integer` is read as such.
pub mod serde_whole {
    use serde::Deserialize;
    use serde::de::{Deserializer, Error};

    fn convert<T: TryFrom<i128>, E: Error>(n: serde_json::Number) -> Result<T, E> {
        super::whole_number(&n)
            .and_then(|w| T::try_from(w).ok())
            .ok_or_else(|| E::custom(format!("{n} is not a whole number in range")))
    }

    /// A `u32`.
    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        convert(serde_json::Number::deserialize(d)?)
    }

    /// An optional `u64` (`null` or absent: `None`; give the field `#[serde(default)]`).
    pub fn option_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Option::<serde_json::Number>::deserialize(d)?
            .map(convert)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::whole_number;

    fn number(text: &str) -> serde_json::Number {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn whole_numbers_include_those_written_with_a_zero_fraction() {
        assert_eq!(whole_number(&number("3")), Some(3));
        assert_eq!(whole_number(&number("-3")), Some(-3));
        assert_eq!(whole_number(&number("3.0")), Some(3));
        assert_eq!(whole_number(&number("1e3")), Some(1000));
        assert_eq!(
            whole_number(&number("18446744073709551615")),
            Some(u64::MAX.into())
        );
        assert_eq!(whole_number(&number("3.5")), None);
        assert_eq!(whole_number(&number("1e300")), None);
    }
}
