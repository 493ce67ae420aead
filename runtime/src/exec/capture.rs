//! Bounded capture of a task's output streams. Keeps the first and the last part of what
//! a program writes (errors tend to be at the end), counts what was dropped in between,
//! and forwards complete lines to the task's event sink, at a bounded rate. Knows
//! nothing of wasmtime or Docker; executors adapt it to their streams.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::events::{Stream, TaskSink};
use crate::store::LogRecord;

/// Bytes of the beginning and of the end of a stream that are kept.
pub const DEFAULT_KEEP: usize = 512 * 1024;

/// Lines forwarded live per stream and second; the rest are still captured.
const LINES_PER_SECOND: u32 = 100;
/// A line longer than this is forwarded in pieces.
const MAX_LINE: usize = 8 * 1024;

/// The stdout and stderr of one attempt.
#[derive(Clone, Debug)]
pub struct StdStreams {
    pub stdout: Capture,
    pub stderr: Capture,
}

impl StdStreams {
    pub fn new(sink: &TaskSink, keep: usize) -> StdStreams {
        StdStreams {
            stdout: Capture::with_limit(Stream::Stdout, sink.clone(), keep),
            stderr: Capture::with_limit(Stream::Stderr, sink.clone(), keep),
        }
    }

    /// `message`, with the last line the program wrote to stderr, which usually says why
    /// it failed.
    pub fn explain(&self, message: impl Into<String>) -> String {
        let message = message.into();
        match self.stderr.last_line() {
            Some(line) => format!("{message} (stderr: {line})"),
            None => message,
        }
    }

    /// What was kept of both streams and of `more`, leaving out empty ones.
    pub fn finish(&self, more: &[&Capture]) -> Vec<LogRecord> {
        [&self.stdout, &self.stderr]
            .into_iter()
            .chain(more.iter().copied())
            .map(Capture::finish)
            .filter(|log| !log.content.is_empty())
            .collect()
    }
}

#[derive(Clone)]
pub struct Capture {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").finish_non_exhaustive()
    }
}

struct State {
    stream: Stream,
    sink: TaskSink,
    keep: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    omitted: u64,
    line: Vec<u8>,
    window: Instant,
    forwarded: u32,
}

impl Capture {
    pub fn new(stream: Stream, sink: TaskSink) -> Capture {
        Capture::with_limit(stream, sink, DEFAULT_KEEP)
    }

    /// Keeps `keep` bytes of the head and `keep` bytes of the tail.
    pub fn with_limit(stream: Stream, sink: TaskSink, keep: usize) -> Capture {
        Capture {
            state: Arc::new(Mutex::new(State {
                stream,
                sink,
                keep,
                head: Vec::new(),
                tail: VecDeque::new(),
                omitted: 0,
                line: Vec::new(),
                window: Instant::now(),
                forwarded: 0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self, bytes: &[u8]) {
        let mut s = self.lock();
        let room = s.keep.saturating_sub(s.head.len());
        let (to_head, rest) = bytes.split_at(room.min(bytes.len()));
        s.head.extend_from_slice(to_head);
        if !rest.is_empty() {
            let keep = s.keep;
            let rest = &rest[rest.len().saturating_sub(keep)..];
            let dropped_here = (bytes.len() - to_head.len() - rest.len()) as u64;
            let overflow = (s.tail.len() + rest.len()).saturating_sub(keep);
            s.tail.drain(..overflow);
            s.tail.extend(rest);
            s.omitted += dropped_here + overflow as u64;
        }
        s.forward(bytes);
    }

    /// Sends any unterminated last line and returns what was kept.
    pub fn finish(&self) -> LogRecord {
        let mut s = self.lock();
        if !s.line.is_empty() {
            let line = std::mem::take(&mut s.line);
            s.emit(&line);
        }
        let mut content = s.head.clone();
        if s.omitted > 0 {
            content
                .extend_from_slice(format!("\n[... {} bytes omitted ...]\n", s.omitted).as_bytes());
        }
        content.extend(s.tail.iter());
        LogRecord {
            attempt: 0,
            stream: s.stream.as_str().to_owned(),
            content: String::from_utf8_lossy(&content).into_owned(),
            omitted: s.omitted,
        }
    }

    /// The last non-empty line written so far, for error messages.
    pub fn last_line(&self) -> Option<String> {
        let s = self.lock();
        let tail: Vec<u8> = if s.tail.is_empty() {
            s.head.clone()
        } else {
            s.tail.iter().copied().collect()
        };
        let text = String::from_utf8_lossy(&tail).into_owned();
        text.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .map(|l| {
                const MAX: usize = 200;
                match l.char_indices().nth(MAX) {
                    Some((at, _)) => format!("{}...", &l[..at]),
                    None => l.to_owned(),
                }
            })
    }
}

impl State {
    fn forward(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.line);
            line.extend_from_slice(&rest[..nl]);
            self.emit(&line);
            rest = &rest[nl + 1..];
        }
        self.line.extend_from_slice(rest);
        if self.line.len() >= MAX_LINE {
            let line = std::mem::take(&mut self.line);
            self.emit(&line);
        }
    }

    fn emit(&mut self, line: &[u8]) {
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.forwarded = 0;
        }
        if self.forwarded >= LINES_PER_SECOND {
            return;
        }
        self.forwarded += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.sink.log(self.stream, String::from_utf8_lossy(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, Observer};

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);
    impl Observer for Lines {
        fn event(&self, e: &Event) {
            if let Event::TaskLog { line, .. } = e {
                self.0.lock().unwrap().push(line.clone());
            }
        }
    }

    #[test]
    fn keeps_head_and_tail_and_counts_the_rest() {
        let lines = Arc::new(Lines::default());
        let c = Capture::with_limit(Stream::Stdout, TaskSink::new("t", lines.clone()), 4);
        c.write(b"abcdefghijkl");
        let log = c.finish();
        assert_eq!(log.content, "abcd\n[... 4 bytes omitted ...]\nijkl");
        assert_eq!(log.omitted, 4);
    }

    #[test]
    fn forwards_whole_lines() {
        let lines = Arc::new(Lines::default());
        let c = Capture::new(Stream::Stderr, TaskSink::new("t", lines.clone()));
        c.write(b"one\ntw");
        c.write(b"o\r\nthree");
        c.finish();
        assert_eq!(*lines.0.lock().unwrap(), ["one", "two", "three"]);
    }

    #[test]
    fn live_lines_are_rate_limited_but_all_are_kept() {
        let lines = Arc::new(Lines::default());
        let c = Capture::new(Stream::Stdout, TaskSink::new("t", lines.clone()));
        for i in 0..1000 {
            c.write(format!("{i}\n").as_bytes());
        }
        assert_eq!(lines.0.lock().unwrap().len(), LINES_PER_SECOND as usize);
        assert!(c.finish().content.ends_with("999\n"));
    }
}
