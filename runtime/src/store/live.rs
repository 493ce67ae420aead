//! What a running task writes, as it writes it, for other processes to follow (the UI):
//! `runs/<run>/.live/<task>.log`, one line per line the task wrote, `o ` or `e ` (stdout,
//! stderr) first. A task's file is removed when the task ends, once its logs are in the
//! run record; the record keeps what the capture kept (the first and last part).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use super::{Store, path_segment};

/// Bytes [`Store::live_log`] reads per call at most.
const READ_LIMIT: u64 = 256 * 1024;

pub(super) const LIVE: &str = ".live";

/// The live log files of one run's tasks, written as lines arrive.
#[derive(Debug)]
pub struct LiveLogs {
    dir: PathBuf,
    files: Mutex<HashMap<String, File>>,
}

impl LiveLogs {
    /// The live logs of `run`; nothing is created until a task writes a line.
    pub fn new(store: &Store, run: &str) -> LiveLogs {
        LiveLogs {
            dir: store.home().join("runs").join(path_segment(run)).join(LIVE),
            files: Mutex::new(HashMap::new()),
        }
    }

    /// Appends one line `task` wrote to `stream` (`stdout` or `stderr`). A file that
    /// cannot be written loses the line: the run record still gets the task's logs.
    pub fn line(&self, task: &str, stream: &str, line: &str) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if !files.contains_key(task) {
            let _ = fs::create_dir_all(&self.dir);
            let path = self.dir.join(format!("{}.log", path_segment(task)));
            match File::options().create(true).append(true).open(path) {
                Ok(file) => {
                    files.insert(task.to_owned(), file);
                }
                Err(_) => return,
            }
        }
        let tag = if stream == "stderr" { "e " } else { "o " };
        let mut text = String::with_capacity(line.len() + 3);
        text.push_str(tag);
        // One line stays one line.
        text.extend(line.chars().map(|c| if c == '\n' { ' ' } else { c }));
        text.push('\n');
        if let Some(file) = files.get_mut(task) {
            let _ = file.write_all(text.as_bytes());
        }
    }

    /// `task` has ended: its file goes.
    pub fn finish(&self, task: &str) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if files.remove(task).is_some() {
            let _ = fs::remove_file(self.dir.join(format!("{}.log", path_segment(task))));
        }
    }

    /// The run has ended: every file goes, and the folder.
    pub fn finish_all(&self) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files.clear();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Store {
    /// The lines `task` of `run` has written since byte `offset` of its live log, as
    /// (`stdout`|`stderr`, line), and the offset to read from next. Only whole lines
    /// are returned, at most 256 KiB of them per call; nothing when the task has no live
    /// log (it has not written, or it has ended).
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
            .join(format!("{}.log", path_segment(task)));
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::new();
        file.take(READ_LIMIT).read_to_end(&mut bytes)?;
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let lines = String::from_utf8_lossy(&bytes[..whole])
            .lines()
            .map(|l| {
                let (tag, text) = l.split_at(l.len().min(2));
                let stream = if tag == "e " { "stderr" } else { "stdout" };
                (stream.to_owned(), text.to_owned())
            })
            .collect();
        Ok((lines, offset + whole as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_reads_whole_lines_as_they_come_and_nothing_once_the_task_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let live = LiveLogs::new(&store, "r1");
        assert_eq!(store.live_log("r1", "a/b", 0).unwrap(), (vec![], 0));
        live.line("a/b", "stdout", "first");
        live.line("a/b", "stderr", "two\nlines");
        let (lines, next) = store.live_log("r1", "a/b", 0).unwrap();
        assert_eq!(
            lines,
            vec![
                ("stdout".to_owned(), "first".to_owned()),
                ("stderr".to_owned(), "two lines".to_owned())
            ]
        );
        live.line("a/b", "stdout", "third");
        let (lines, _) = store.live_log("r1", "a/b", next).unwrap();
        assert_eq!(lines, vec![("stdout".to_owned(), "third".to_owned())]);
        live.finish("a/b");
        assert_eq!(store.live_log("r1", "a/b", 0).unwrap().0, vec![]);
        live.finish_all();
        assert!(!dir.path().join("runs/r1/.live").exists());
    }
}
