//! Who can fix a failure. Each library module has its own error type; [`blame`] reads an
//! error's chain of sources and says whether the user's input or the environment failed,
//! which the `sluice` command turns into its exit code (2 or 3).

use std::error::Error;
use std::io::ErrorKind;

use crate::exec::PrepareError;
use crate::oci::OciError;

/// What kind of failure an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The user's input or usage: a file that does not parse, an unknown run, a reference
    /// the registry says does not exist, a refused credential.
    Input,
    /// The machine or a service Sluice needs: the Docker Engine or a registry cannot be
    /// reached, the disk is full or read-only, a quota is exhausted, the run database
    /// stayed locked by another process past the wait.
    Environment,
}

/// Blames the first environmental cause found along `err`'s sources, else the input.
pub fn blame(err: &(dyn Error + 'static)) -> Blame {
    let mut next = Some(err);
    while let Some(e) = next {
        if environmental(e) {
            return Blame::Environment;
        }
        next = e.source();
    }
    Blame::Input
}

fn environmental(e: &(dyn Error + 'static)) -> bool {
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return matches!(
            io.kind(),
            ErrorKind::StorageFull
                | ErrorKind::QuotaExceeded
                | ErrorKind::ReadOnlyFilesystem
                | ErrorKind::OutOfMemory
                | ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::TimedOut
        ) || io.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error());
    }
    if let Some(db) = e.downcast_ref::<rusqlite::Error>() {
        use rusqlite::ErrorCode;
        return matches!(
            db.sqlite_error_code(),
            Some(
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::DiskFull
                    | ErrorCode::ReadOnly
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::OutOfMemory
                    | ErrorCode::DatabaseCorrupt
                    | ErrorCode::NotADatabase
            )
        );
    }
    // A home that cannot be used, or whose bytes changed behind the store's back: the
    // machine's to repair, not the command's input.
    if let Some(crate::store::StoreError::Home { .. } | crate::store::StoreError::Corrupt { .. }) =
        e.downcast_ref::<crate::store::StoreError>()
    {
        return true;
    }
    if let Some(oci) = e.downcast_ref::<OciError>() {
        return matches!(oci, OciError::Unreachable { .. } | OciError::Tls(_));
    }
    if let Some(prepare) = e.downcast_ref::<PrepareError>() {
        return matches!(
            prepare,
            PrepareError::Unreachable { .. } | PrepareError::HostLacks { .. }
        );
    }
    if let Some(serve) = e.downcast_ref::<crate::serve::ServeError>() {
        return matches!(serve, crate::serve::ServeError::Unreachable { .. });
    }
    if let Some(images) = e.downcast_ref::<crate::exec::docker::ImagesError>() {
        return matches!(images, crate::exec::docker::ImagesError::Unreachable(_));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn causes_anywhere_in_the_chain_are_blamed() {
        let full = StoreError::Io {
            action: "write",
            path: "/home/x".into(),
            source: std::io::Error::from_raw_os_error(28),
        };
        assert_eq!(blame(&full), Blame::Environment);
        let missing = StoreError::Io {
            action: "read",
            path: "/home/x".into(),
            source: std::io::Error::from(ErrorKind::NotFound),
        };
        assert_eq!(blame(&missing), Blame::Input);
        let locked = StoreError::Database(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ));
        assert_eq!(blame(&locked), Blame::Environment);
        let docker = crate::schedule::ScheduleError::Prepare {
            task: "train".into(),
            source: PrepareError::Unreachable {
                service: "the Docker Engine at unix:///nowhere".into(),
                detail: "connection refused".into(),
            },
        };
        assert_eq!(blame(&docker), Blame::Environment);
        let damaged = StoreError::Corrupt {
            digest: format!("sha256:{}", "a".repeat(64)),
            path: "/home/x/artifacts/sha256/aa/aa".into(),
        };
        assert_eq!(blame(&damaged), Blame::Environment);
        let not_a_database = StoreError::Database(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
            None,
        ));
        assert_eq!(blame(&not_a_database), Blame::Environment);
        let refused = OciError::Refused("x does not exist (404 Not Found)".into());
        assert_eq!(blame(&refused), Blame::Input);
        let no_engine = crate::exec::docker::ImagesError::Unreachable(
            "cannot reach the Docker Engine at unix:///nowhere".into(),
        );
        assert_eq!(blame(&no_engine), Blame::Environment);
    }
}
