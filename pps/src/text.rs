//! Formatters: numbers, lengths of time and dates as people read them. A leaf: it
//! names no other module, so the CLI, the web UI and the logs format alike without
//! importing each other.

use std::time::Duration;

/// Civil date and time (UTC) of a Unix time, `YYYY-MM-DD HH:MM:SS`; a time outside
/// chrono's range (±262,000 years) as its number of seconds.
pub fn utc_text(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || format!("@{secs}"),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// A size in bytes for people: `812 B`, `1.2 MB`, `9120.6 GB` (`pps status`, the web
/// UI's browser).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `1h 02m`, `3m 20s`, `12.5s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m {:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else if s < 86_400.0 {
        format!(
            "{}h {:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    } else {
        format!(
            "{}d {:02}h",
            (s / 86_400.0) as u64,
            ((s % 86_400.0) / 3600.0) as u64
        )
    }
}

/// `d` in the config file's syntax, in the largest unit that writes it exactly.
pub fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if s > 0 && s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// [`human`] in Chinese: `3分20秒`, `1小时02分`, `2天03小时`, `12.5秒`.
pub fn human_zh(d: Duration) -> String {
    let s = d.as_secs_f64();
    let a = d.as_secs();
    if s < 60.0 {
        format!("{s:.1}秒")
    } else if s < 3600.0 {
        format!("{}分{:02}秒", a / 60, a % 60)
    } else if s < 86_400.0 {
        format!("{}小时{:02}分", a / 3600, a % 3600 / 60)
    } else {
        format!("{}天{:02}小时", a / 86_400, a % 86_400 / 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unix_times_read_as_civil_dates() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00");
        assert_eq!(utc_text(-1), "1969-12-31 23:59:59");
        assert_eq!(utc_text(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc_text(1_800_000_000), "2027-01-15 08:00:00");
        assert_eq!(utc_text(i64::MAX), format!("@{}", i64::MAX), "no panic");
    }

    #[test]
    fn lengths_read_as_the_config_file_writes_them() {
        assert_eq!(duration_text(Duration::from_secs(600)), "10m");
        assert_eq!(duration_text(Duration::from_secs(2 * 86_400)), "2d");
        assert_eq!(duration_text(Duration::from_secs(90)), "90s");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration_text(Duration::ZERO), "0s");
    }

    #[test]
    fn lengths_and_sizes_read_as_people_say_them() {
        assert_eq!(human(Duration::from_millis(12_500)), "12.5s");
        assert_eq!(human(Duration::from_secs(200)), "3m 20s");
        assert_eq!(human(Duration::from_secs(3720)), "1h 02m");
        assert_eq!(human(Duration::from_secs(2 * 86_400 + 3 * 3600)), "2d 03h");
        assert_eq!(human_size(812), "812 B");
        assert_eq!(human_size(1_234_567), "1.2 MB");
        assert_eq!(human_size(u64::MAX), "18446744.1 TB");
    }
}
