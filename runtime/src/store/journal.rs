//! A run's record written in batches. Its tasks hand their attempts' starts, their
//! attempts' ends and their own ends to a writer thread, which records all those waiting
//! in one transaction: recording is off the path of the tasks (none waits for a commit),
//! and what happens together costs one commit (the writer sleeps a few milliseconds after
//! the first entry of a batch, so an attempt that ends within them is recorded with its
//! start). Entries are written in the order they were handed over, so a task's end is
//! never on record before the ends of the tasks it waited for, nor an attempt's end before
//! its start; [`Journal::finish`] returns once every entry handed over is written, and
//! says which could not be.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Store;
use super::records::JournalEntry;

/// Most entries written in one transaction.
const BATCH: usize = 512;

/// How long the writer waits for more entries after the first of a batch: an attempt that
/// starts alone is on record this much later, and a chain of short tasks shares a commit.
const LINGER: Duration = Duration::from_millis(5);

/// The writer of one run's record.
pub struct Journal {
    sender: Sender<JournalEntry>,
    thread: JoinHandle<Vec<String>>,
}

/// Where a task hands its end to its run's [`Journal`].
#[derive(Clone, Debug)]
pub struct JournalSender {
    sender: Sender<JournalEntry>,
    store: Arc<Store>,
}

impl Journal {
    pub fn start(store: Arc<Store>) -> Journal {
        let (sender, receiver) = channel();
        let thread = std::thread::Builder::new()
            .name("sluice-journal".into())
            .spawn(move || write(&store, &receiver))
            .expect("a thread can be started");
        Journal { sender, thread }
    }

    pub fn sender(&self, store: Arc<Store>) -> JournalSender {
        JournalSender {
            sender: self.sender.clone(),
            store,
        }
    }

    /// Waits until every entry handed over so far is written; those that could not be,
    /// one line each (`task 'x': why`).
    pub fn finish(self) -> Vec<String> {
        drop(self.sender);
        self.thread
            .join()
            .unwrap_or_else(|_| vec!["the run record's writer stopped".to_owned()])
    }
}

impl JournalSender {
    /// Hands an entry over to be written. Should the writer be gone, it is written here
    /// and now.
    pub fn record(&self, entry: JournalEntry) -> Result<(), super::StoreError> {
        match self.sender.send(entry) {
            Ok(()) => Ok(()),
            Err(unsent) => self.store.records().journal(&[unsent.0]),
        }
    }
}

/// Writes what arrives, in batches, until every sender is gone.
fn write(store: &Store, receiver: &Receiver<JournalEntry>) -> Vec<String> {
    let mut failures = Vec::new();
    while let Ok(first) = receiver.recv() {
        // Asleep rather than waiting on the channel: an end handed over meanwhile is
        // queued without waking this thread (one wake per batch, not one per end).
        std::thread::sleep(LINGER);
        let mut batch = vec![first];
        batch.extend(receiver.try_iter().take(BATCH - 1));
        if store.records().journal(&batch).is_ok() {
            continue;
        }
        // One of them cannot be written: the others are, one at a time.
        for entry in &batch {
            if let Err(e) = store.records().journal(std::slice::from_ref(entry)) {
                failures.push(format!(
                    "task '{}': {}",
                    entry.task(),
                    crate::error_chain(&e)
                ));
            }
        }
    }
    failures
}
