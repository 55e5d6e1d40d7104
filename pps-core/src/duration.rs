//! Durations as users write them: `90s`, `10m`, `2h`, `1d`, `500ms`. Shared by the
//! config file and every adapter's own configuration.

use std::time::Duration;

/// Parses `<number><unit>` with unit `ms`, `s`, `m`, `h` or `d`; the number may be
/// fractional (`1.5h`). The error says what is accepted.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write e.g. 90s, 10m, 2h or 1d"))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        "" => {
            return Err(format!(
                "`{text}` has no unit; write e.g. 90s, 10m, 2h or 1d"
            ));
        }
        other => {
            return Err(format!(
                "`{other}` in `{text}` is not a unit; use ms, s, m, h or d"
            ));
        }
    };
    if !secs.is_finite() || !(0.0..=10.0 * 365.0 * 86400.0).contains(&secs) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// [`parse`] for a poll interval: at least one second, since a shorter one would list
/// without pause and spin a core (and, on a cloud, spend the whole call budget).
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = parse(text)?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "`{text}` is too short for an interval; the shortest is 1s"
        ));
    }
    Ok(d)
}

/// For `#[serde(deserialize_with = "pps_core::duration::serde")]`: a duration
/// written as text (`"90s"`), with [`parse`]'s message on a mistake.
pub fn serde<'de, D: ::serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = <String as ::serde::Deserialize>::deserialize(d)?;
    parse(&text).map_err(::serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse("10").unwrap_err().contains("no unit"));
        assert!(parse("10x").unwrap_err().contains("not a unit"));
        assert!(parse("abc").is_err());
        assert!(parse("1e9d").is_err());
        assert!(parse_interval("0s").unwrap_err().contains("shortest is 1s"));
        assert!(parse_interval("500ms").is_err());
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
    }
}
