//! Reading files a user or a guest names, bounded: the path must be a regular file (not a
//! device such as `/dev/zero`, a FIFO or a folder) no larger than a limit, and a file a
//! guest wrote is never followed through a symlink.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::spec::ByteSize;

/// Most bytes of a pipeline, component or compiled KFP pipeline file.
pub const SPEC_FILE_MAX: u64 = 64 << 20;
/// Most bytes of a wasm component file (componentize-py's Python components are ~40 MiB).
pub const WASM_FILE_MAX: u64 = 1 << 30;
/// Most bytes of a file a task writes for the host to read as JSON (an executor output).
pub const GUEST_JSON_MAX: u64 = 64 << 20;

/// Whether a final symlink in the path is followed. Files a task wrote are read with
/// [`Follow::No`]: a link to `/etc/shadow` inside a container's outputs must not make the
/// host read its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    Yes,
    No,
}

/// Reads a whole regular file of at most `limit` bytes.
///
/// Errors (as `io::Error`, for the caller to prefix with the path): the path is not a
/// regular file (`InvalidInput`, naming what it is), it is larger than `limit`
/// (`FileTooLarge`), or it grew past `limit` while being read.
pub fn read_limited(path: &Path, limit: u64, follow: Follow) -> io::Result<Vec<u8>> {
    let file = open_regular(path, follow)?;
    let size = file.metadata()?.len();
    if size > limit {
        return Err(too_large(size, limit));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64, limit));
    }
    Ok(bytes)
}

/// [`read_limited`], as UTF-8 text (`InvalidData` when it is not).
pub fn read_text_limited(path: &Path, limit: u64, follow: Follow) -> io::Result<String> {
    String::from_utf8(read_limited(path, limit, follow)?).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Copies a file, or a folder and everything in it, to `to` (which must not exist); a
/// symlink is copied as what it points to.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    if !from.is_dir() {
        return std::fs::copy(from, to).map(drop);
    }
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        copy_tree(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}

/// Reads at most `limit` bytes from the start of a regular file, however large it is.
pub fn read_prefix(path: &Path, limit: u64, follow: Follow) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_regular(path, follow)?
        .take(limit)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Opens `path` for reading if it is a regular file. Opening never blocks (a FIFO with no
/// writer would otherwise hang the open itself).
pub fn open_regular(path: &Path, follow: Follow) -> io::Result<File> {
    use rustix::fs::OFlags;
    let mut flags = OFlags::NONBLOCK | OFlags::NOCTTY;
    if follow == Follow::No {
        flags |= OFlags::NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code)
                if follow == Follow::No && code == rustix::io::Errno::LOOP.raw_os_error() =>
            {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "is a symbolic link, which is not followed here",
                )
            }
            _ => e,
        })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {}, not a regular file", describe(kind)),
        ));
    }
    // Back to ordinary blocking reads for a regular file.
    let status = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, status - OFlags::NONBLOCK)?;
    Ok(file)
}

fn describe(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a folder"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

fn too_large(size: u64, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!(
            "is {}, over the limit of {}",
            ByteSize(size),
            ByteSize(limit)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_folders_are_refused_without_reading() {
        let err = read_limited(Path::new("/dev/zero"), 1 << 20, Follow::Yes).unwrap_err();
        assert_eq!(err.to_string(), "is a character device, not a regular file");
        let dir = tempfile::tempdir().unwrap();
        let err = read_limited(dir.path(), 1 << 20, Follow::Yes).unwrap_err();
        assert_eq!(err.to_string(), "is a folder, not a regular file");
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = read_limited(&fifo, 1 << 20, Follow::Yes).unwrap_err();
        assert_eq!(err.to_string(), "is a FIFO, not a regular file");
    }

    #[test]
    fn a_file_over_the_limit_is_refused_and_symlinks_are_not_followed_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, vec![b'x'; 2048]).unwrap();
        assert_eq!(read_limited(&file, 2048, Follow::No).unwrap().len(), 2048);
        let err = read_limited(&file, 1024, Follow::No).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(read_prefix(&file, 10, Follow::No).unwrap().len(), 10);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_limited(&link, 4096, Follow::Yes).unwrap().len(), 2048);
        let err = read_limited(&link, 4096, Follow::No).unwrap_err();
        assert_eq!(
            err.to_string(),
            "is a symbolic link, which is not followed here"
        );
    }
}
