//! The `products` binary's settings.

use service_kit::config::CommonArgs;

/// Runs the products service.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "products",
    version,
    about = "The products service: an authenticated REST API over a JSON store."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "SHOP_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: String,
    /// Longest time a reservation is held before products releases it on its own (and the
    /// default): `300s`, `5m`, `500ms` or plain seconds.
    #[arg(long, env = "SHOP_RESERVATION_TTL", default_value = "5m", value_parser = parse_duration)]
    pub reservation_ttl: std::time::Duration,
    /// Settings shared with orders.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `500ms`, `30s`, `5m`, `1h` or plain seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a number with ms, s, m or h"))?;
    let millis = match unit {
        "ms" => n,
        "" | "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("{text:?}: the unit is ms, s, m or h")),
    };
    if millis == 0 {
        return Err("must be more than 0".into());
    }
    Ok(std::time::Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("m").is_err());
    }
}
