//! What running tasks write, as they write it, for other processes to follow (the UI):
//! `runs/<run>/.live/log`, one line per line a task wrote: `o ` or `e ` (stdout, stderr),
//! the task's name as a path segment ([`path_segment`]: no spaces, tabs or newlines), a
//! tab, the line. One file per run, opened once and appended to, so a task that writes
//! costs a `write` per line and a task that writes nothing costs nothing; the file goes
//! when the run ends, and the run record keeps what each task's capture kept.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use super::{Store, path_segment};

/// Bytes [`Store::live_log`] reads per call at most.
const READ_LIMIT: u64 = 256 * 1024;

pub(super) const LIVE: &str = ".live";
const LOG: &str = "log";

/// The live log of one run, written as lines arrive.
#[derive(Debug)]
pub struct LiveLogs {
    dir: PathBuf,
    file: Mutex<Option<File>>,
}

impl LiveLogs {
    /// The live log of `run`; nothing is created until a task writes a line.
    pub fn new(store: &Store, run: &str) -> LiveLogs {
        LiveLogs {
            dir: store.home().join("runs").join(path_segment(run)).join(LIVE),
            file: Mutex::new(None),
        }
    }

    /// Appends one line `task` wrote to `stream` (`stdout` or `stderr`). A file that
    /// cannot be written loses the line: the run record still gets the task's logs.
    pub fn line(&self, task: &str, stream: &str, line: &str) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if file.is_none() {
            let _ = fs::create_dir_all(&self.dir);
            *file = File::options()
                .create(true)
                .append(true)
                .open(self.dir.join(LOG))
                .ok();
        }
        let Some(file) = file.as_mut() else {
            return;
        };
        let tag = if stream == "stderr" { "e " } else { "o " };
        let task = path_segment(task);
        let mut text = String::with_capacity(line.len() + task.len() + 4);
        text.push_str(tag);
        text.push_str(&task);
        text.push('\t');
        // One line stays one line.
        text.extend(line.chars().map(|c| if c == '\n' { ' ' } else { c }));
        text.push('\n');
        let _ = file.write_all(text.as_bytes());
    }

    /// The run has ended: the file goes, and its folder.
    pub fn finish_all(&self) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        *file = None;
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Store {
    /// The lines `task` of `run` has written, found in the run's live log from byte
    /// `offset` on, as (`stdout`|`stderr`, line), and the offset to read from next. Only
    /// whole lines are read, at most 256 KiB of the log per call (call again from the
    /// returned offset for more); nothing when the run has no live log (no task has
    /// written, or the run has ended).
    pub fn live_log(
        &self,
        run: &str,
        task: &str,
        offset: u64,
    ) -> std::io::Result<(Vec<(String, String)>, u64)> {
        let path = self
            .home()
            .join("runs")
            .join(path_segment(run))
            .join(LIVE)
            .join(LOG);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::new();
        file.take(READ_LIMIT).read_to_end(&mut bytes)?;
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let key = path_segment(task);
        let lines = String::from_utf8_lossy(&bytes[..whole])
            .lines()
            .filter_map(|l| {
                let (head, text) = l.split_once('\t')?;
                let (tag, name) = head.split_at(head.len().min(2));
                (name == key).then(|| {
                    let stream = if tag == "e " { "stderr" } else { "stdout" };
                    (stream.to_owned(), text.to_owned())
                })
            })
            .collect();
        Ok((lines, offset + whole as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_reads_its_tasks_whole_lines_as_they_come_and_nothing_once_the_run_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let live = LiveLogs::new(&store, "r1");
        assert_eq!(store.live_log("r1", "a/b", 0).unwrap(), (vec![], 0));
        live.line("a/b", "stdout", "first");
        live.line("other", "stdout", "not a/b's");
        live.line("a/b", "stderr", "two\nlines\twith a tab");
        let (lines, next) = store.live_log("r1", "a/b", 0).unwrap();
        assert_eq!(
            lines,
            vec![
                ("stdout".to_owned(), "first".to_owned()),
                ("stderr".to_owned(), "two lines\twith a tab".to_owned())
            ]
        );
        live.line("a/b", "stdout", "third");
        let (lines, _) = store.live_log("r1", "a/b", next).unwrap();
        assert_eq!(lines, vec![("stdout".to_owned(), "third".to_owned())]);
        let (lines, _) = store.live_log("r1", "other", 0).unwrap();
        assert_eq!(lines, vec![("stdout".to_owned(), "not a/b's".to_owned())]);
        live.finish_all();
        assert_eq!(store.live_log("r1", "a/b", 0).unwrap().0, vec![]);
        assert!(!dir.path().join("runs/r1/.live").exists());
    }
}
