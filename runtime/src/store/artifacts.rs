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
        self.path(digest).is_ok_and(|p| p.exists())
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

    /// Moves what a task wrote, a file or a folder, into the store. Symlinks and special
    /// files are refused, so a guest cannot make the host import anything outside its
    /// sandbox.
    pub(super) fn ingest(&self, path: &Path) -> Result<ArtifactRef, StoreError> {
        let meta = fs::symlink_metadata(path).map_err(|e| StoreError::io("read", path, e))?;
        if meta.file_type().is_dir() {
            return self.ingest_tree(path);
        }
        if !meta.file_type().is_file() {
            return Err(StoreError::NotAFile(path.to_owned()));
        }
        let (hex, size) = hash_file(path)?;
        let digest = format!("sha256:{hex}");
        match self.place(path, &digest) {
            Ok(()) => Ok(ArtifactRef { digest, size }),
            // A file another user owns (a container's root, say) cannot be made read-only
            // in place; the store keeps a copy of its own instead.
            Err(StoreError::Io { source, .. })
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                let copied = self.import(path)?;
                let _ = fs::remove_file(path);
                Ok(copied)
            }
            Err(e) => Err(e),
        }
    }

    /// A folder's digest is the sha256 of its manifest: one line per entry, in byte order
    /// of the relative path, `d <path>` for a folder and `f <sha256> <size> <path>` for a
    /// file, after the line `sluice-tree-v1`. Same files, same names: same digest.
    fn ingest_tree(&self, root: &Path) -> Result<ArtifactRef, StoreError> {
        let mut entries = Vec::new();
        walk(root, "", &mut entries)?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut manifest = String::from("sluice-tree-v1\n");
        let mut size = 0;
        for (relative, entry) in &entries {
            match entry {
                Entry::Dir => manifest.push_str(&format!("d {relative}\n")),
                Entry::File { hex, size: n } => {
                    size += n;
                    manifest.push_str(&format!("f {hex} {n} {relative}\n"));
                }
            }
        }
        let digest = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(manifest.as_bytes()))
        );
        for (relative, entry) in &entries {
            if matches!(entry, Entry::File { .. }) {
                make_read_only(&root.join(relative))?;
            }
        }
        self.place(root, &digest)?;
        Ok(ArtifactRef { digest, size })
    }

    /// Renames a complete, synced file or folder into place under its digest, or drops it
    /// when the store already holds that digest.
    fn place(&self, path: &Path, digest: &str) -> Result<(), StoreError> {
        let dest = self.path(digest)?;
        if dest.exists() {
            let removed = if path.is_dir() {
                fs::remove_dir_all(path)
            } else {
                fs::remove_file(path)
            };
            return removed.map_err(|e| StoreError::io("remove", path, e));
        }
        if path.is_file() {
            make_read_only(path)?;
        }
        create_parent(&dest)?;
        fs::rename(path, &dest).map_err(|e| StoreError::io("move an artifact to", &dest, e))
    }

    /// Makes an artifact appear at `dest`: hard links when possible (artifact files are
    /// read-only, so sharing their inodes is safe), else copies. A folder artifact
    /// appears as a folder of the same shape.
    pub(super) fn stage(&self, digest: &str, dest: &Path) -> Result<(), StoreError> {
        let src = self.path(digest)?;
        if src.is_dir() {
            return link_tree(&src, dest);
        }
        if !src.is_file() {
            return Err(StoreError::MissingArtifact(digest.to_owned()));
        }
        link_file(&src, dest)
    }

    /// Copies an artifact out to a user's path, writable.
    pub(super) fn export(&self, digest: &str, dest: &Path) -> Result<(), StoreError> {
        let src = self.path(digest)?;
        if !src.exists() {
            return Err(StoreError::MissingArtifact(digest.to_owned()));
        }
        copy_out(&src, dest)
    }
}

enum Entry {
    Dir,
    File { hex: String, size: u64 },
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, Entry)>) -> Result<(), StoreError> {
    let read = fs::read_dir(dir).map_err(|e| StoreError::io("read", dir, e))?;
    for entry in read {
        let entry = entry.map_err(|e| StoreError::io("read", dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name
            .to_str()
            .filter(|n| !n.contains('\n'))
            .ok_or_else(|| StoreError::NotAFile(path.clone()))?;
        let relative = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        let kind = fs::symlink_metadata(&path)
            .map_err(|e| StoreError::io("read", &path, e))?
            .file_type();
        if kind.is_dir() {
            walk(&path, &relative, out)?;
            out.push((relative, Entry::Dir));
        } else if kind.is_file() {
            let (hex, size) = hash_file(&path)?;
            out.push((relative, Entry::File { hex, size }));
        } else {
            return Err(StoreError::NotAFile(path));
        }
    }
    Ok(())
}

/// Hashes a file and syncs it to disk, so it may be renamed into the store.
fn hash_file(path: &Path) -> Result<(String, u64), StoreError> {
    let mut file = File::open(path).map_err(|e| StoreError::io("read", path, e))?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut HashWriter(&mut hasher))
        .map_err(|e| StoreError::io("read", path, e))?;
    file.sync_all()
        .map_err(|e| StoreError::io("sync", path, e))?;
    Ok((hex::encode(hasher.finalize()), size))
}

fn link_file(src: &Path, dest: &Path) -> Result<(), StoreError> {
    if fs::hard_link(src, dest).is_err() {
        fs::copy(src, dest).map_err(|e| StoreError::io("copy an artifact to", dest, e))?;
        make_read_only(dest)?;
    }
    Ok(())
}

fn link_tree(src: &Path, dest: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dest).map_err(|e| StoreError::io("create", dest, e))?;
    for entry in fs::read_dir(src).map_err(|e| StoreError::io("read", src, e))? {
        let entry = entry.map_err(|e| StoreError::io("read", src, e))?;
        let target = dest.join(entry.file_name());
        if entry.path().is_dir() {
            link_tree(&entry.path(), &target)?;
        } else {
            link_file(&entry.path(), &target)?;
        }
    }
    Ok(())
}

fn copy_out(src: &Path, dest: &Path) -> Result<(), StoreError> {
    if src.is_dir() {
        fs::create_dir_all(dest).map_err(|e| StoreError::io("create", dest, e))?;
        for entry in fs::read_dir(src).map_err(|e| StoreError::io("read", src, e))? {
            let entry = entry.map_err(|e| StoreError::io("read", src, e))?;
            copy_out(&entry.path(), &dest.join(entry.file_name()))?;
        }
        return Ok(());
    }
    fs::copy(src, dest).map_err(|e| StoreError::io("write", dest, e))?;
    let mut perms = fs::metadata(dest)
        .map_err(|e| StoreError::io("read", dest, e))?
        .permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(dest, perms).map_err(|e| StoreError::io("write", dest, e))
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
    fn folders_are_artifacts_too() {
        let (d, a) = store();
        let make = |name: &str| {
            let root = d.path().join(name);
            fs::create_dir_all(root.join("variables")).unwrap();
            fs::create_dir_all(root.join("assets")).unwrap();
            fs::write(root.join("saved_model.pb"), b"graph").unwrap();
            fs::write(root.join("variables/data"), b"weights").unwrap();
            root
        };
        let first = a.ingest(&make("one")).unwrap();
        assert_eq!(first.size, 12);
        let again = a.ingest(&make("two")).unwrap();
        assert_eq!(first, again, "same tree, same digest");
        assert!(!d.path().join("two").exists(), "a duplicate is dropped");

        let staged = d.path().join("staged");
        a.stage(&first.digest, &staged).unwrap();
        assert_eq!(fs::read(staged.join("variables/data")).unwrap(), b"weights");
        assert!(staged.join("assets").is_dir(), "empty folders are kept");

        let other = make("three");
        fs::write(other.join("variables/data"), b"other weights").unwrap();
        assert_ne!(a.ingest(&other).unwrap().digest, first.digest);

        let link = make("four");
        std::os::unix::fs::symlink("/etc/passwd", link.join("variables/escape")).unwrap();
        assert!(matches!(a.ingest(&link), Err(StoreError::NotAFile(_))));

        let out = d.path().join("exported");
        a.export(&first.digest, &out).unwrap();
        fs::write(out.join("saved_model.pb"), b"edited").unwrap();
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
