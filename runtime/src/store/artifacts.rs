//! Content-addressed artifacts: files named by the sha256 of their bytes under
//! `artifacts/sha256/<2 hex>/<64 hex>`, read-only once in place. Every write goes to a
//! temporary file on the same file system and is renamed into place after it is complete
//! and synced, so a crash never leaves a partial file under an artifact's name.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StoreError;

/// An artifact in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// `sha256:<64 hex>`.
    pub digest: String,
    pub size: u64,
}

pub(super) struct Artifacts {
    root: PathBuf,
    tmp: PathBuf,
}

impl Artifacts {
    pub(super) fn open(root: PathBuf, tmp: PathBuf) -> Result<Artifacts, StoreError> {
        for dir in [&root, &tmp] {
            fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, e))?;
        }
        Ok(Artifacts { root, tmp })
    }

    pub(super) fn path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| StoreError::BadDigest(digest.to_owned()))?;
        Ok(self.root.join("sha256").join(&hex[..2]).join(hex))
    }

    pub(super) fn contains(&self, digest: &str) -> bool {
        self.path(digest).is_ok_and(|p| p.is_file())
    }

    /// Stores bytes.
    pub(super) fn put_bytes(&self, bytes: &[u8]) -> Result<ArtifactRef, StoreError> {
        self.put_reader(&mut &bytes[..], Path::new("(bytes)"))
    }

    /// Copies a file into the store; the original is left alone.
    pub(super) fn import(&self, source: &Path) -> Result<ArtifactRef, StoreError> {
        let meta = fs::metadata(source).map_err(|e| StoreError::io("read", source, e))?;
        if !meta.is_file() {
            return Err(StoreError::NotAFile(source.to_owned()));
        }
        let mut file = File::open(source).map_err(|e| StoreError::io("read", source, e))?;
        self.put_reader(&mut file, source)
    }

    fn put_reader(&self, reader: &mut dyn Read, source: &Path) -> Result<ArtifactRef, StoreError> {
        let mut tmp = tempfile::NamedTempFile::new_in(&self.tmp)
            .map_err(|e| StoreError::io("create a temporary file in", &self.tmp, e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::io("read", source, e)),
            };
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])
                .map_err(|e| StoreError::io("write", tmp.path(), e))?;
            size += n as u64;
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        let dest = self.path(&digest)?;
        if !dest.is_file() {
            tmp.as_file()
                .sync_all()
                .map_err(|e| StoreError::io("sync", tmp.path(), e))?;
            make_read_only(tmp.path())?;
            create_parent(&dest)?;
            tmp.persist(&dest)
                .map_err(|e| StoreError::io("move an artifact to", &dest, e.error))?;
        }
        Ok(ArtifactRef { digest, size })
    }

    /// Moves a file a task wrote into the store. The file must be a regular file: a symlink
    /// is refused, so a guest cannot make the host import something outside its sandbox.
    pub(super) fn ingest(&self, path: &Path) -> Result<ArtifactRef, StoreError> {
        let meta = fs::symlink_metadata(path).map_err(|e| StoreError::io("read", path, e))?;
        if !meta.file_type().is_file() {
            return Err(StoreError::NotAFile(path.to_owned()));
        }
        let mut file = File::open(path).map_err(|e| StoreError::io("read", path, e))?;
        let mut hasher = Sha256::new();
        let size = io::copy(&mut file, &mut HashWriter(&mut hasher))
            .map_err(|e| StoreError::io("read", path, e))?;
        file.sync_all()
            .map_err(|e| StoreError::io("sync", path, e))?;
        drop(file);
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        let dest = self.path(&digest)?;
        if dest.is_file() {
            fs::remove_file(path).map_err(|e| StoreError::io("remove", path, e))?;
        } else {
            make_read_only(path)?;
            create_parent(&dest)?;
            fs::rename(path, &dest).map_err(|e| StoreError::io("move an artifact to", &dest, e))?;
        }
        Ok(ArtifactRef { digest, size })
    }

    /// Makes an artifact appear at `dest`: a hard link when possible (artifacts are
    /// read-only, so sharing the inode is safe), else a copy.
    pub(super) fn stage(&self, digest: &str, dest: &Path) -> Result<(), StoreError> {
        let src = self.path(digest)?;
        if !src.is_file() {
            return Err(StoreError::MissingArtifact(digest.to_owned()));
        }
        if fs::hard_link(&src, dest).is_err() {
            fs::copy(&src, dest).map_err(|e| StoreError::io("copy an artifact to", dest, e))?;
            make_read_only(dest)?;
        }
        Ok(())
    }
}

fn create_parent(dest: &Path) -> Result<(), StoreError> {
    let parent = dest.parent().expect("artifact paths have a parent");
    fs::create_dir_all(parent).map_err(|e| StoreError::io("create", parent, e))
}

fn make_read_only(path: &Path) -> Result<(), StoreError> {
    let mut perms = fs::metadata(path)
        .map_err(|e| StoreError::io("read", path, e))?
        .permissions();
    perms.set_readonly(true);
    fs::set_permissions(path, perms).map_err(|e| StoreError::io("protect", path, e))
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Artifacts) {
        let dir = tempfile::tempdir().unwrap();
        let a = Artifacts::open(dir.path().join("artifacts"), dir.path().join("tmp")).unwrap();
        (dir, a)
    }

    #[test]
    fn same_bytes_same_digest_one_file() {
        let (_d, a) = store();
        let x = a.put_bytes(b"hello").unwrap();
        let y = a.put_bytes(b"hello").unwrap();
        assert_eq!(x, y);
        assert_eq!(
            x.digest,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let path = a.path(&x.digest).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        assert!(fs::metadata(&path).unwrap().permissions().readonly());
    }

    #[test]
    fn ingest_moves_and_refuses_symlinks() {
        let (d, a) = store();
        let out = d.path().join("out");
        fs::write(&out, b"model").unwrap();
        let r = a.ingest(&out).unwrap();
        assert!(!out.exists(), "ingest moves the file");
        assert!(a.contains(&r.digest));

        let secret = d.path().join("secret");
        fs::write(&secret, b"do not import").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        assert!(matches!(a.ingest(&link), Err(StoreError::NotAFile(_))));
    }

    #[test]
    fn staging_links_read_only_copies() {
        let (d, a) = store();
        let r = a.put_bytes(b"data").unwrap();
        let dest = d.path().join("staged");
        a.stage(&r.digest, &dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"data");
        assert!(fs::metadata(&dest).unwrap().permissions().readonly());
    }

    #[test]
    fn digests_are_validated() {
        let (_d, a) = store();
        assert!(matches!(
            a.path("sha256:../../etc"),
            Err(StoreError::BadDigest(_))
        ));
    }

    #[test]
    fn no_temporary_file_survives_a_write() {
        let (d, a) = store();
        a.put_bytes(b"x").unwrap();
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }
}
