//! Writing results to stdout and one-line failures to stderr.

use std::fmt::Display;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use super::OutputFormat;

/// Prints `value` to stdout in the chosen format.
pub(super) fn print(format: OutputFormat, value: &impl Serialize) -> anyhow::Result<()> {
    let text = match format {
        OutputFormat::Yaml => serde_yaml::to_string(value)?,
        OutputFormat::Json => serde_json::to_string_pretty(value)? + "\n",
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// Reports a failure as one line on stderr and returns `code`.
pub(super) fn fail(code: u8, error: &dyn Display) -> ExitCode {
    let line = error.to_string().replace('\n', " ");
    eprintln!("error: {line}");
    ExitCode::from(code)
}

/// A duration the way Kubernetes tools print one (`1h2m3.5s`, `250ms`).
pub(super) fn go_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let (hours, rest) = (millis / 3_600_000, millis % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (seconds, millis) = (rest / 1000, rest % 1000);
    let mut text = String::new();
    if hours > 0 {
        text += &format!("{hours}h");
    }
    if hours > 0 || minutes > 0 {
        text += &format!("{minutes}m");
    }
    if millis == 0 {
        text += &format!("{seconds}s");
    } else {
        let fraction = format!("{millis:03}");
        text += &format!("{seconds}.{}s", fraction.trim_end_matches('0'));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_durations_like_go() {
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(go_duration(Duration::from_secs(5)), "5s");
        assert_eq!(go_duration(Duration::from_millis(61_500)), "1m1.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
    }
}
