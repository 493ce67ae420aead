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
/// Larger artifacts are previewed only by their first bytes, unread past them; the
/// download checks the whole against its digest.
const WHOLE_LIMIT: u64 = 16 << 20;

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
    let mut lines = text.lines().take(5);
    if let Some(header) = lines.next() {
        let columns = header.matches(',').count();
        if columns > 0
            && lines.clone().count() > 0
            && lines.all(|l| l.matches(',').count() == columns)
        {
            return Kind::Csv;
        }
    }
    Kind::Text
}

/// A preview of the artifact `io` names, read from the store.
pub(crate) fn render(store: &Store, io: &IoRecord) -> Markup {
    if io.digest.starts_with("sha256-tree:") {
        return html! { p.note { "A folder." } };
    }
    if io.digest.starts_with("sha256-table:") {
        return html! { p.note { "A table passed in memory between fused steps; not stored." } };
    }
    let path = match store.artifact_path(&io.digest) {
        Ok(path) => path,
        Err(e) => return html! { p.note { "No preview: " (e) } },
    };
    let head = match read_head(&path) {
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
            let pretty = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| text.into_owned());
            html! { pre.preview tabindex="0" { (pretty) } }
        }
        Kind::Csv => csv_table(&head, cut),
        Kind::Text => html! {
            pre.preview tabindex="0" { (String::from_utf8_lossy(&head)) }
            @if cut { p.note { "The first " (layout::size(head.len() as u64)) " of " (layout::size(io.size)) "." } }
        },
        Kind::Binary => html! { p.note { "Binary data; download it to look inside." } },
    }
}

fn read_head(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut head = Vec::with_capacity(PREVIEW_BYTES.min(size.min(WHOLE_LIMIT) as usize));
    file.take(PREVIEW_BYTES as u64).read_to_end(&mut head)?;
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
    }
}
