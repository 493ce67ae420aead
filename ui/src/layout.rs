//! The page shell every page shares, and the small pieces of text pages repeat: states,
//! durations, sizes, timestamps.

use std::time::Duration;

use jiff::Timestamp;
use maud::{DOCTYPE, Markup, html};

/// Which entry of the navigation bar the page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Runs,
    Compare,
    Models,
    None,
}

/// A whole page: `title` in the tab and `body` under the navigation bar.
pub(crate) fn page(title: &str, nav: Nav, body: Markup) -> Markup {
    let item = |target: Nav, href: &str, text: &str| {
        html! {
            @if nav == target {
                a href=(href) aria-current="page" { (text) }
            } @else {
                a href=(href) { (text) }
            }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Sluice" }
                link rel="stylesheet" href="/ui/static/ui.css";
                script src="/ui/static/ui.js" defer {}
            }
            body {
                header {
                    nav aria-label="Sections" {
                        span.brand { "Sluice" }
                        (item(Nav::Runs, "/ui/", "Runs"))
                        (item(Nav::Compare, "/ui/compare", "Compare"))
                        (item(Nav::Models, "/ui/models", "Models"))
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A state as a badge: its text, and a class that colours it (`state-succeeded`, ...).
pub(crate) fn state(text: &str) -> Markup {
    html! { span class={ "state state-" (text) } { (text) } }
}

/// A duration as people read it: `850 ms`, `12.4 s`, `3 min 05 s`, `2 h 10 min`.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        format!("{} min {:02} s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{} h {:02} min", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// From `start` to `end`, or to now while it has not ended.
pub(crate) fn span(start: Timestamp, end: Option<Timestamp>) -> Duration {
    let end = end.unwrap_or_else(Timestamp::now);
    end.duration_since(start).unsigned_abs()
}

/// A timestamp to the second, in UTC: `2026-12-02 14:03:11`.
pub(crate) fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// A byte count: `512 B`, `14.2 KiB`, `3.1 MiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A digest shortened for reading (`sha256:3f2a9c…`), whole in its title.
pub(crate) fn digest(d: &str) -> Markup {
    let (algorithm, hex) = d.split_once(':').unwrap_or(("", d));
    let short: String = hex.chars().take(12).collect();
    html! {
        a.digest href={ "/ui/lineage/" (d) } title=(d) {
            @if !algorithm.is_empty() { (algorithm) ":" } (short) "…"
        }
    }
}

/// A path segment of a URL: every byte but unreserved ones percent-encoded, so that a
/// task named `a/b?c` stays one segment.
pub(crate) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// A query-string value, encoded as [`segment`] does.
pub(crate) fn query_value(text: &str) -> String {
    segment(text)
}

/// The address of a task's page.
pub(crate) fn task_href(run: &str, task: &str) -> String {
    format!("/ui/runs/{}/tasks/{}", segment(run), segment(task))
}

/// The address of a run's page.
pub(crate) fn run_href(run: &str) -> String {
    format!("/ui/runs/{}", segment(run))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_their_scale() {
        assert_eq!(duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(duration(Duration::from_millis(12_449)), "12.4 s");
        assert_eq!(duration(Duration::from_secs(185)), "3 min 05 s");
        assert_eq!(duration(Duration::from_secs(2 * 3600 + 600)), "2 h 10 min");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(14_540), "14.2 KiB");
        assert_eq!(size(3 << 20), "3.0 MiB");
    }

    #[test]
    fn a_segment_cannot_leave_its_place_in_a_url() {
        assert_eq!(segment("train.0"), "train.0");
        assert_eq!(segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(segment("../x"), "..%2Fx");
    }
}
