//! The terminal's two streams for every command. `outln!`/`out!` write to standard
//! output like `println!`/`print!`, and `errln!` to standard error like `eprintln!`, but
//! none of them panics: when standard output is closed (`sluice runs list | head -1`),
//! the process ends quietly with exit code 0, as a reader that has seen enough wants; a
//! closed standard error is ignored. Whatever they print passes through [`clean`], so
//! text from outside Sluice (task output, names, parameter values, guests' messages)
//! cannot drive the user's terminal.

use std::borrow::Cow;
use std::io::Write;

/// Writes formatted text to standard output; a closed pipe ends the process quietly.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let text = args.to_string();
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_all(clean(&text).as_bytes())
        .and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Writes formatted text to standard error, ignoring a closed stream.
pub fn write_err(args: std::fmt::Arguments<'_>) {
    let text = args.to_string();
    let _ = std::io::stderr().lock().write_all(clean(&text).as_bytes());
}

/// `println!` to standard output, quiet on a closed pipe.
macro_rules! outln {
    () => { $crate::output::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` to standard output, quiet on a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_out(format_args!($($arg)*)) };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    () => { $crate::output::write_err(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_err(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Text made safe for a terminal: control characters other than newline and tab, and
/// the invisible characters that reorder text (bidirectional overrides), become `\uXXXX`
/// escapes. A task cannot move the cursor, clear, recolour or retitle the terminal
/// through Sluice's output; and as JSON spells characters the same way, JSON output stays
/// valid and means the same.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`clean`] text on one line, for progress bars: newlines and tabs become spaces too.
pub fn one_line(text: &str) -> String {
    clean(text).replace(['\n', '\t'], " ")
}

/// Everything in Unicode's Cc category but `\n` and `\t` (all of it in the BMP, as is
/// the rest), and U+202A..U+202E, U+2066..U+2069.
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("plain text\n\twith tabs"), "plain text\n\twith tabs");
        assert_eq!(
            clean("\x1b[2J\x1b]0;pwned\x07"),
            "\\u001b[2J\\u001b]0;pwned\\u0007"
        );
        assert_eq!(clean("a\rb\u{85}"), "a\\u000db\\u0085");
        assert_eq!(clean("\u{202E}txt"), "\\u202etxt");
        assert!(matches!(clean("ok"), Cow::Borrowed(_)));
        assert_eq!(one_line("two\nlines\x1b"), "two lines\\u001b");
        // JSON stays JSON, with the same value.
        let json = serde_json::to_string(&serde_json::json!({"x": "a\u{7f}b\u{202e}"})).unwrap();
        let cleaned = clean(&json);
        let back: serde_json::Value = serde_json::from_str(&cleaned).unwrap();
        assert_eq!(back["x"], "a\u{7f}b\u{202e}");
        assert!(!cleaned.contains('\u{7f}'));
    }
}
