//! Content-addressed artifacts: files named by the sha256 of their bytes under
//! `artifacts/sha256/<2 hex>/<64 hex>` (digest `sha256:<64 hex>`), folders by the sha256
//! of their manifest (see [`tree_digest`]) under `artifacts/sha256-tree/<2 hex>/<64 hex>`
//! (digest `sha256-tree:<64 hex>`), read-only once in place. The two kinds never share a
//! name: a file whose bytes happen to be a folder's manifest is a different artifact from
//! that folder, so no task can plant one in place of the other. Every write goes to a
//! temporary file on the same file system and is renamed into place after it is complete
//! and synced, so a crash never leaves a partial file under an artifact's name.
//!
//! Once in place, an artifact's file is never opened for writing again: staging links it
//! (or copies it to a new file) at a path that must not exist yet, and export writes new
//! files renamed over the destination. Whatever reads or stages an artifact checks it
//! against its digest first (once per process for a file whose inode, size and
//! modification time have not changed), so bytes changed behind the store's back are an
//! error, never an answer.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StoreError;

/// The digest algorithm of a file artifact: the sha256 of its bytes (OCI's `sha256`).
pub(super) const FILE_ALGORITHM: &str = "sha256";
/// The digest algorithm of a folder artifact: the sha256 of its manifest.
pub(super) const TREE_ALGORITHM: &str = "sha256-tree";

/// What an artifact digest names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Tree,
}

impl Kind {
    fn algorithm(self) -> &'static str {
        match self {
            Kind::File => FILE_ALGORITHM,
            Kind::Tree => TREE_ALGORITHM,
        }
    }
}

/// Splits `sha256:<64 hex>` or `sha256-tree:<64 hex>` into its kind and hex.
fn parse(digest: &str) -> Result<(Kind, &str), StoreError> {
    let (kind, hex) = match digest.split_once(':') {
        Some((FILE_ALGORITHM, hex)) => (Kind::File, hex),
        Some((TREE_ALGORITHM, hex)) => (Kind::Tree, hex),
        _ => return Err(StoreError::BadDigest(digest.to_owned())),
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::BadDigest(digest.to_owned()));
    }
    Ok((kind, hex))
}

/// An artifact in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// `sha256:<64 hex>` for a file, `sha256-tree:<64 hex>` for a folder.
    pub digest: String,
    pub size: u64,
}

pub(super) struct Artifacts {
    root: PathBuf,
    tmp: PathBuf,
    /// Files checked against their digest by this process, with what they looked like
    /// then: (inode, size, modification time in ns).
    verified: Mutex<HashMap<String, (u64, u64, i64)>>,
}

impl Artifacts {
    pub(super) fn open(root: PathBuf, tmp: PathBuf) -> Result<Artifacts, StoreError> {
        for dir in [&root, &tmp] {
            fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, e))?;
        }
        Ok(Artifacts {
            root,
            tmp,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub(super) fn path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        let (kind, hex) = parse(digest)?;
        Ok(self.root.join(kind.algorithm()).join(&hex[..2]).join(hex))
    }

    pub(super) fn contains(&self, digest: &str) -> bool {
        self.path(digest).is_ok_and(|p| p.exists())
    }

    /// A file artifact's bytes, checked against its digest.
    pub(super) fn read(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path(digest)?;
        if parse(digest)?.0 == Kind::Tree {
            return Err(StoreError::NotAFile(path));
        }
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingArtifact(digest.to_owned()),
            _ => StoreError::io("read", &path, e),
        })?;
        if format!("sha256:{}", hex::encode(Sha256::digest(&bytes))) != digest {
            return Err(StoreError::Corrupt {
                digest: digest.to_owned(),
                path,
            });
        }
        Ok(bytes)
    }

    /// Checks that the file or folder stored under `digest` still hashes to it.
    pub(super) fn verify(&self, digest: &str) -> Result<(), StoreError> {
        let path = self.path(digest)?;
        let kind = parse(digest)?.0;
        let meta = fs::metadata(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingArtifact(digest.to_owned()),
            _ => StoreError::io("read", &path, e),
        })?;
        let seen = (
            meta.ino(),
            meta.size(),
            meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        );
        let verified = |this: &Self| {
            this.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(digest)
                == Some(&seen)
        };
        if meta.is_file() && verified(self) {
            return Ok(());
        }
        let actual = match kind {
            Kind::Tree if meta.is_dir() => tree_digest(&path, false)?.0,
            Kind::File if meta.is_file() => format!("sha256:{}", hash_file(&path, false)?.0),
            // A folder under a file's name, or the reverse, is no longer what was stored.
            _ => String::new(),
        };
        if actual != digest {
            return Err(StoreError::Corrupt {
                digest: digest.to_owned(),
                path,
            });
        }
        if meta.is_file() {
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(digest.to_owned(), seen);
        }
        Ok(())
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
        // A file already under this digest is kept only if its bytes still match it: one
        // that was changed is replaced by these, which do.
        if self.verify(&digest).is_err() {
            if dest.is_dir() {
                fs::remove_dir_all(&dest).map_err(|e| StoreError::io("remove", &dest, e))?;
            }
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
        let (hex, size) = hash_file(path, true)?;
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

    /// Moves a folder into the store under its digest (see [`tree_digest`]).
    fn ingest_tree(&self, root: &Path) -> Result<ArtifactRef, StoreError> {
        let (digest, size, files) = tree_digest(root, true)?;
        for file in &files {
            make_read_only(&root.join(file))?;
        }
        self.place(root, &digest)?;
        Ok(ArtifactRef { digest, size })
    }

    /// Renames a complete, synced file or folder into place under its digest, or drops it
    /// when the store already holds that digest with bytes that still match it (what is
    /// there and no longer matches is replaced).
    fn place(&self, path: &Path, digest: &str) -> Result<(), StoreError> {
        let dest = self.path(digest)?;
        if dest.exists() {
            if self.verify(digest).is_ok() {
                let removed = if path.is_dir() {
                    fs::remove_dir_all(path)
                } else {
                    fs::remove_file(path)
                };
                return removed.map_err(|e| StoreError::io("remove", path, e));
            }
            let removed = if dest.is_dir() {
                fs::remove_dir_all(&dest)
            } else if path.is_dir() {
                fs::remove_file(&dest)
            } else {
                Ok(()) // renamed over below
            };
            removed.map_err(|e| StoreError::io("remove", &dest, e))?;
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
        if !src.exists() {
            return Err(StoreError::MissingArtifact(digest.to_owned()));
        }
        self.verify(digest)?;
        if src.is_dir() {
            return link_tree(&src, dest);
        }
        link_file(&src, dest)
    }

    /// Every artifact in the store: its digest, path, size in bytes and when it was last
    /// written.
    pub(super) fn list(&self) -> Result<Vec<Stored>, StoreError> {
        let mut all = Vec::new();
        for kind in [Kind::File, Kind::Tree] {
            for (hex, path) in self.entries(kind)? {
                let meta =
                    fs::symlink_metadata(&path).map_err(|e| StoreError::io("read", &path, e))?;
                let size = if meta.is_dir() {
                    tree_size(&path)
                } else {
                    meta.len()
                };
                all.push(Stored {
                    digest: format!("{}:{hex}", kind.algorithm()),
                    path,
                    size,
                    modified: meta.modified().ok(),
                });
            }
        }
        Ok(all)
    }

    /// The names and paths of everything under one kind's folder.
    fn entries(&self, kind: Kind) -> Result<Vec<(String, PathBuf)>, StoreError> {
        let mut all = Vec::new();
        let base = self.root.join(kind.algorithm());
        let shards = match fs::read_dir(&base) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(all),
            Err(e) => return Err(StoreError::io("read", &base, e)),
        };
        for shard in shards {
            let shard = shard.map_err(|e| StoreError::io("read", &base, e))?.path();
            let entries = fs::read_dir(&shard).map_err(|e| StoreError::io("read", &shard, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::io("read", &shard, e))?;
                if let Some(hex) = entry.file_name().to_str() {
                    all.push((hex.to_owned(), entry.path()));
                }
            }
        }
        Ok(all)
    }

    /// Moves the folders an older store kept beside the files (under `sha256/`, named
    /// `sha256:`) to `sha256-tree/`. Returns the hex of every folder artifact, moved now
    /// or before, so the records' names for them can be rewritten (which is idempotent,
    /// so a move interrupted by a crash is finished by the next open).
    pub(super) fn move_trees(&self) -> Result<Vec<String>, StoreError> {
        for (hex, path) in self.entries(Kind::File)? {
            if !path.is_dir() {
                continue;
            }
            let dest = self.path(&format!("{TREE_ALGORITHM}:{hex}"))?;
            if dest.exists() {
                fs::remove_dir_all(&path).map_err(|e| StoreError::io("remove", &path, e))?;
                continue;
            }
            create_parent(&dest)?;
            fs::rename(&path, &dest)
                .map_err(|e| StoreError::io("move an artifact to", &dest, e))?;
        }
        Ok(self
            .entries(Kind::Tree)?
            .into_iter()
            .map(|(hex, _)| hex)
            .collect())
    }

    /// Removes an artifact (a file, or a folder's tree) from the store.
    pub(super) fn remove(&self, stored: &Stored) -> Result<(), StoreError> {
        let removed = if stored.path.is_dir() {
            fs::remove_dir_all(&stored.path)
        } else {
            fs::remove_file(&stored.path)
        };
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&stored.digest);
        removed.map_err(|e| StoreError::io("remove", &stored.path, e))
    }

    /// Temporary files left by writes that never finished (a process that died).
    pub(super) fn leftovers(&self) -> Vec<(PathBuf, Option<std::time::SystemTime>)> {
        fs::read_dir(&self.tmp)
            .map(|r| {
                r.flatten()
                    .map(|e| (e.path(), e.metadata().ok().and_then(|m| m.modified().ok())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Copies an artifact out to a user's path: new files with the process's umask,
    /// renamed over whatever was there.
    pub(super) fn export(&self, digest: &str, dest: &Path) -> Result<(), StoreError> {
        let src = self.path(digest)?;
        if !src.exists() {
            return Err(StoreError::MissingArtifact(digest.to_owned()));
        }
        self.verify(digest)?;
        copy_out(&src, dest)
    }
}

/// An artifact as the store holds it.
#[derive(Clone, Debug)]
pub struct Stored {
    pub digest: String,
    pub path: PathBuf,
    /// Bytes, over every file of a folder artifact.
    pub size: u64,
    pub modified: Option<std::time::SystemTime>,
}

fn tree_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => tree_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

enum Entry {
    Dir,
    File { hex: String, size: u64 },
}

fn walk(
    dir: &Path,
    prefix: &str,
    sync: bool,
    out: &mut Vec<(String, Entry)>,
) -> Result<(), StoreError> {
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
            walk(&path, &relative, sync, out)?;
            out.push((relative, Entry::Dir));
        } else if kind.is_file() {
            let (hex, size) = hash_file(&path, sync)?;
            out.push((relative, Entry::File { hex, size }));
        } else {
            return Err(StoreError::NotAFile(path));
        }
    }
    Ok(())
}

/// A folder's digest is `sha256-tree:` and the sha256 of its manifest: one line per
/// entry, in byte order of the relative path, `d <path>` for a folder and
/// `f <sha256> <size> <path>` for a file, after the line `sluice-tree-v1`. Same files,
/// same names: same digest. Returns
/// the digest, the files' total size and their relative paths; `sync` syncs each file
/// (before it is moved into the store).
fn tree_digest(root: &Path, sync: bool) -> Result<(String, u64, Vec<String>), StoreError> {
    let mut entries = Vec::new();
    walk(root, "", sync, &mut entries)?;
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut manifest = String::from("sluice-tree-v1\n");
    let mut size = 0;
    let mut files = Vec::new();
    for (relative, entry) in entries {
        match entry {
            Entry::Dir => manifest.push_str(&format!("d {relative}\n")),
            Entry::File { hex, size: n } => {
                size += n;
                manifest.push_str(&format!("f {hex} {n} {relative}\n"));
                files.push(relative);
            }
        }
    }
    let digest = format!(
        "{TREE_ALGORITHM}:{}",
        hex::encode(Sha256::digest(manifest.as_bytes()))
    );
    Ok((digest, size, files))
}

/// The digest and size an artifact at `path` would be stored under: `sha256:` of a file's
/// bytes, `sha256-tree:` of a folder's manifest (see [`tree_digest`]); symlinks are not
/// followed. Errors name the path that could not be read.
pub fn digest_of(path: &Path) -> Result<(String, u64), StoreError> {
    let meta = fs::symlink_metadata(path).map_err(|e| StoreError::io("read", path, e))?;
    if meta.is_dir() {
        let (digest, size, _) = tree_digest(path, false)?;
        Ok((digest, size))
    } else if meta.is_file() {
        let (hex, size) = hash_file(path, false)?;
        Ok((format!("sha256:{hex}"), size))
    } else {
        Err(StoreError::io(
            "read",
            path,
            io::Error::other("neither a regular file nor a folder"),
        ))
    }
}

/// Hashes a file; with `sync`, also syncs it to disk, so it may be renamed into the store.
fn hash_file(path: &Path, sync: bool) -> Result<(String, u64), StoreError> {
    let mut file = File::open(path).map_err(|e| StoreError::io("read", path, e))?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut HashWriter(&mut hasher))
        .map_err(|e| StoreError::io("read", path, e))?;
    if sync {
        file.sync_all()
            .map_err(|e| StoreError::io("sync", path, e))?;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Links a store file at `dest`, which must not exist; across file systems, copies it
/// to a new file there instead.
fn link_file(src: &Path, dest: &Path) -> Result<(), StoreError> {
    match fs::hard_link(src, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(StoreError::io("stage an artifact at", dest, e))
        }
        Err(_) => {
            let copy = || -> io::Result<()> {
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(dest)?;
                io::copy(&mut File::open(src)?, &mut out)?;
                Ok(())
            };
            copy().map_err(|e| StoreError::io("copy an artifact to", dest, e))?;
            make_read_only(dest)
        }
    }
}

fn link_tree(src: &Path, dest: &Path) -> Result<(), StoreError> {
    fs::create_dir(dest).map_err(|e| StoreError::io("create", dest, e))?;
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

/// Copies a stored file or folder out to `dest`, replacing whatever was there: a folder is
/// built complete beside `dest` and then renamed into its place, so what `dest` held
/// before (a file, or a folder with other files) never mixes with what is exported.
fn copy_out(src: &Path, dest: &Path) -> Result<(), StoreError> {
    if !src.is_dir() {
        return write_new_file(src, dest);
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, e))?;
    let beside = |what: &str| dir.join(format!(".sluice-{what}-{}", uuid::Uuid::new_v4().simple()));
    let fresh = beside("export");
    let built = fs::create_dir(&fresh)
        .map_err(|e| StoreError::io("create", &fresh, e))
        .and_then(|()| copy_tree(src, &fresh));
    if let Err(e) = built {
        let _ = fs::remove_dir_all(&fresh);
        return Err(e);
    }
    // What was at `dest` steps aside first (a folder cannot be renamed over one that is
    // not empty), and is removed once the new one is in place.
    let old = match fs::symlink_metadata(dest) {
        Ok(_) => {
            let old = beside("replaced");
            fs::rename(dest, &old).map_err(|e| StoreError::io("replace", dest, e))?;
            Some(old)
        }
        Err(_) => None,
    };
    if let Err(e) = fs::rename(&fresh, dest) {
        if let Some(old) = &old {
            let _ = fs::rename(old, dest);
        }
        let _ = fs::remove_dir_all(&fresh);
        return Err(StoreError::io("write", dest, e));
    }
    if let Some(old) = old {
        let removed = if old.is_dir() {
            fs::remove_dir_all(&old)
        } else {
            fs::remove_file(&old)
        };
        removed.map_err(|e| StoreError::io("remove", &old, e))?;
    }
    Ok(())
}

/// Copies the folder `src` into the empty folder `dest`: new files with the process's
/// umask, new folders.
fn copy_tree(src: &Path, dest: &Path) -> Result<(), StoreError> {
    for entry in fs::read_dir(src).map_err(|e| StoreError::io("read", src, e))? {
        let entry = entry.map_err(|e| StoreError::io("read", src, e))?;
        let target = dest.join(entry.file_name());
        if entry.path().is_dir() {
            fs::create_dir(&target).map_err(|e| StoreError::io("create", &target, e))?;
            copy_tree(&entry.path(), &target)?;
        } else {
            write_new_file(&entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Copies `src` to a new file beside `dest`, created with mode 0666 less the process's
/// umask (0644 under umask 022) like any file a program writes, then renamed over `dest`.
/// An existing `dest` is replaced, never opened for writing: it may be a hard link into
/// the store.
pub(crate) fn write_new_file(src: &Path, dest: &Path) -> Result<(), StoreError> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".sluice-")
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| StoreError::io("write", dest, e))?;
    let mut file = File::open(src).map_err(|e| StoreError::io("read", src, e))?;
    io::copy(&mut file, tmp.as_file_mut()).map_err(|e| StoreError::io("write", dest, e))?;
    tmp.persist(dest)
        .map_err(|e| StoreError::io("write", dest, e.error))?;
    Ok(())
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
        // Exported again over a folder holding other files: it is replaced, not merged.
        fs::write(out.join("stale"), b"from before").unwrap();
        a.export(&first.digest, &out).unwrap();
        assert!(!out.join("stale").exists());
        assert_eq!(fs::read(out.join("saved_model.pb")).unwrap(), b"graph");
        // And over a file.
        let file_there = d.path().join("was-a-file");
        fs::write(&file_there, b"x").unwrap();
        a.export(&first.digest, &file_there).unwrap();
        assert_eq!(
            fs::read(file_there.join("variables/data")).unwrap(),
            b"weights"
        );
        let leftovers: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".sluice-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_file_holding_a_folders_manifest_is_not_that_folder() {
        let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
        let manifest = format!(
            "sluice-tree-v1\nd variables\nf {} 7 variables/data\n",
            sha(b"weights")
        );
        // Either order: the file planted first, or the folder stored first.
        for file_first in [true, false] {
            let (d, a) = store();
            let folder = d.path().join("model");
            fs::create_dir_all(folder.join("variables")).unwrap();
            fs::write(folder.join("variables/data"), b"weights").unwrap();
            let planted = d.path().join("planted");
            fs::write(&planted, &manifest).unwrap();
            let (file, tree) = if file_first {
                let file = a.ingest(&planted).unwrap();
                (file, a.ingest(&folder).unwrap())
            } else {
                let tree = a.ingest(&folder).unwrap();
                (a.ingest(&planted).unwrap(), tree)
            };
            // The same sha256, two artifacts.
            let hex = sha(manifest.as_bytes());
            assert_eq!(file.digest, format!("sha256:{hex}"));
            assert_eq!(tree.digest, format!("sha256-tree:{hex}"));
            let staged = d.path().join("staged");
            a.stage(&tree.digest, &staged).unwrap();
            assert_eq!(fs::read(staged.join("variables/data")).unwrap(), b"weights");
            assert_eq!(a.read(&file.digest).unwrap(), manifest.as_bytes());
            assert!(matches!(a.read(&tree.digest), Err(StoreError::NotAFile(_))));
            a.verify(&file.digest).unwrap();
            a.verify(&tree.digest).unwrap();
        }
    }

    #[test]
    fn digests_are_validated() {
        let (_d, a) = store();
        for bad in [
            "sha256:../../etc",
            "sha256-tree:../../etc",
            "tree:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(
                matches!(a.path(bad), Err(StoreError::BadDigest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn no_temporary_file_survives_a_write() {
        let (d, a) = store();
        a.put_bytes(b"x").unwrap();
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }
}
