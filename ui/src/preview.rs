//! Previews of artifacts on a task's page: a CSV table's first rows as a table, JSON
//! pretty-printed, text as text, a raster image as an image; what the bytes are is read
//! from them, not from a name or a type a task gave.

use maud::{Markup, html};
use sluice_runtime::store::{IoRecord, Store};

use crate::layout;

/// Bytes of an artifact a preview reads at most.
const PREVIEW_BYTES: usize = 64 * 1024;
/// Rows of a CSV table shown.
const ROWS: usize = 20;
/// Files of a folder artifact listed at most.
const FILES: usize = 100;

/// What an artifact's bytes are, as far as previews and downloads care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A PNG, JPEG, GIF or WebP image, by its magic bytes, with its media type.
    Image(&'static str),
    Json,
    Csv,
    Text,
    Binary,
}

/// What `bytes` (an artifact's first bytes) are.
pub(crate) fn sniff(bytes: &[u8]) -> Kind {
    const IMAGES: [(&[u8], &str); 5] = [
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"RIFF", "image/webp"),
    ];
    for (magic, mime) in IMAGES {
        if bytes.starts_with(magic) && (mime != "image/webp" || bytes.get(8..12) == Some(b"WEBP")) {
            return Kind::Image(mime);
        }
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        // A preview cut inside a character is still text.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return Kind::Binary,
    };
    if text.contains('\0') {
        return Kind::Binary;
    }
    let trimmed = text.trim_start();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && serde_json::from_str::<serde_json::Value>(text).is_ok()
    {
        return Kind::Json;
    }
    if looks_like_csv(text) {
        return Kind::Csv;
    }
    Kind::Text
}

/// Whether text reads as a CSV table: its first five records (RFC 4180 quoting) all have
/// the same number of fields, at least two, and there are at least two records.
fn looks_like_csv(text: &str) -> bool {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut widths = Vec::new();
    for record in reader.records().take(5) {
        match record {
            Ok(r) => widths.push(r.len()),
            // The last record may be cut off by the preview's limit.
            Err(_) => break,
        }
    }
    widths.len() >= 2 && widths[0] >= 2 && widths.iter().all(|w| *w == widths[0])
}

/// JSON text indented two spaces a level, token by token: keys keep their order and
/// repeats, numbers their digits, strings their escapes, exactly as written. Text cut
/// off by the preview's limit is indented as far as it goes.
fn indent_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or list stays on its line.
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.push(chars.next().expect("peeked"));
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// The files of a folder artifact, with their sizes, by path.
fn folder(root: &std::path::Path) -> Markup {
    let mut files = Vec::new();
    let mut more = 0usize;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if files.len() < FILES {
                let name = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                files.push((name, meta.len()));
            } else {
                more += 1;
            }
        }
    }
    files.sort();
    html! {
        p.note { "A folder, stored under " code { (root.display()) } " in the home." }
        table {
            thead { tr { th scope="col" { "File" } th scope="col" { "Size" } } }
            tbody { @for (name, size) in &files { tr { td { code { (name) } } td.num { (layout::size(*size)) } } } }
        }
        @if more > 0 { p.note { "And " (more) " more files." } }
    }
}

/// A preview of the artifact `io` names, read from the store.
pub(crate) fn render(store: &Store, io: &IoRecord) -> Markup {
    if io.digest.starts_with("sha256-tree:") {
        return match store.artifact_path(&io.digest) {
            Ok(path) => folder(&path),
            Err(e) => html! { p.note { "No listing: " (e) } },
        };
    }
    if io.digest.starts_with("sha256-table:") {
        return html! { p.note { "A table passed in memory between fused steps; not stored." } };
    }
    let path = match store.artifact_path(&io.digest) {
        Ok(path) => path,
        Err(e) => return html! { p.note { "No preview: " (e) } },
    };
    let head = match read_head(&path, PREVIEW_BYTES) {
        Ok(head) => head,
        Err(e) => return html! { p.note { "No preview: " (e) } },
    };
    let cut = io.size as usize > head.len();
    match sniff(&head) {
        Kind::Image(_) => html! {
            img.preview src={ (crate::task::download_href(&io.digest, &io.name)) "&inline=1" }
                alt={ "The image " (io.name) };
        },
        Kind::Json => {
            let text = String::from_utf8_lossy(&head);
            html! { pre.preview tabindex="0" { (indent_json(&text)) } }
        }
        Kind::Csv => csv_table(&head, cut),
        Kind::Text => html! {
            pre.preview tabindex="0" { (String::from_utf8_lossy(&head)) }
            @if cut { p.note { "The first " (layout::size(head.len() as u64)) " of " (layout::size(io.size)) "." } }
        },
        Kind::Binary => html! { p.note { "Binary data; download it to look inside." } },
    }
}

/// The first `limit` bytes of a file (fewer when it is shorter).
pub(crate) fn read_head(path: &std::path::Path, limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut head = Vec::with_capacity(limit.min(size as usize));
    file.take(limit as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// The first rows of a CSV table (RFC 4180 quoting), its header as the table's head.
fn csv_table(head: &[u8], cut: bool) -> Markup {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(head);
    let header: Vec<String> = reader
        .headers()
        .map(|h| h.iter().map(str::to_owned).collect())
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = reader
        .records()
        .take(ROWS)
        .filter_map(Result::ok)
        .map(|r| r.iter().map(str::to_owned).collect())
        .collect();
    html! {
        div.scroll {
            table.csv {
                thead { tr { @for h in &header { th scope="col" { (h) } } } }
                tbody { @for r in &rows { tr { @for c in r { td { (c) } } } } }
            }
        }
        p.note { "The first " (rows.len()) " rows" @if cut { " (of a larger table)" } "." }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_say_what_they_are() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Kind::Image("image/png"));
        assert_eq!(sniff(b"RIFF1234WEBPVP8 "), Kind::Image("image/webp"));
        assert_eq!(sniff(b"RIFF1234WAVEfmt "), Kind::Text);
        assert_eq!(sniff(br#"{"a": [1, 2]}"#), Kind::Json);
        assert_eq!(sniff(b"a,b\n1,2\n3,4\n"), Kind::Csv);
        assert_eq!(sniff(b"hello\nworld\n"), Kind::Text);
        assert_eq!(sniff(b"<script>alert(1)</script>"), Kind::Text);
        assert_eq!(sniff(b"\x00\x01\x02"), Kind::Binary);
        assert_eq!(sniff(b"\xff\xfe\x00"), Kind::Binary);
        assert_eq!(sniff(b"a,\"<b>b</b>\",c\n\"x,y\",=cmd|calc,5\n"), Kind::Csv);
        assert_eq!(sniff(b"one field\nper line\n"), Kind::Text);
    }

    #[test]
    fn json_is_indented_as_written() {
        let text = r#"{"z":1,"a":12345678901234567890123,"dup":1,"dup":"x,\"y\"","e":[],"l":[1,{"k":null}]}"#;
        assert_eq!(
            indent_json(text),
            "{\n  \"z\": 1,\n  \"a\": 12345678901234567890123,\n  \"dup\": 1,\n  \"dup\": \"x,\\\"y\\\"\",\n  \"e\": [],\n  \"l\": [\n    1,\n    {\n      \"k\": null\n    }\n  ]\n}"
        );
    }
}
