//! The local cache of pulled components, shared by runs:
//!
//! ```text
//! oci/manifests/sha256/<hex>/manifest.json   the manifest, as pulled (its digest is the name)
//! oci/manifests/sha256/<hex>/config.json     the wasm config blob
//! oci/manifests/sha256/<hex>/component.wasm  the layer
//! oci/manifests/sha256/<hex>/layer           the layer's digest
//! oci/tags/<registry>/<repository>/<tag>     the manifest digest the tag had when last resolved
//! ```
//!
//! An entry is written in a temporary folder and renamed into place only once every blob
//! was verified, so a failed pull leaves nothing behind. Compiled code lives in the wasm
//! executor's own cache, keyed by the component's digest.

use std::fs;
use std::path::{Path, PathBuf};

use super::OciRef;

pub struct Cache {
    root: PathBuf,
}

/// One cached component.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manifest_digest: String,
    pub wasm_digest: String,
    /// The component file.
    pub path: PathBuf,
    pub size: u64,
}

impl Entry {
    fn dir(&self) -> &Path {
        self.path
            .parent()
            .expect("a cached component lives in its entry's folder")
    }
    pub fn manifest(&self) -> Result<Vec<u8>, super::OciError> {
        let path = self.dir().join("manifest.json");
        fs::read(&path).map_err(|e| fail!("cannot read {}: {e}", path.display()))
    }
    pub fn config(&self) -> Result<Vec<u8>, super::OciError> {
        let path = self.dir().join("config.json");
        fs::read(&path).map_err(|e| fail!("cannot read {}: {e}", path.display()))
    }
}

fn hex_of(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Cache {
    pub fn new(cache_dir: &Path) -> Cache {
        Cache {
            root: cache_dir.join("oci"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entry_dir(&self, manifest_digest: &str) -> Option<PathBuf> {
        Some(
            self.root
                .join("manifests/sha256")
                .join(hex_of(manifest_digest)?),
        )
    }

    pub fn entry(&self, manifest_digest: &str) -> Option<Entry> {
        let dir = self.entry_dir(manifest_digest)?;
        let wasm_digest = fs::read_to_string(dir.join("layer"))
            .ok()?
            .trim()
            .to_owned();
        let path = dir.join("component.wasm");
        let size = fs::metadata(&path).ok()?.len();
        Some(Entry {
            manifest_digest: manifest_digest.to_owned(),
            wasm_digest,
            path,
            size,
        })
    }

    /// Keeps a verified component; the entry appears whole or not at all.
    pub fn insert(
        &self,
        manifest_digest: &str,
        manifest: &[u8],
        config: &[u8],
        wasm: &[u8],
        wasm_digest: &str,
    ) -> Result<Entry, super::OciError> {
        let dir = self
            .entry_dir(manifest_digest)
            .ok_or_else(|| fail!("'{manifest_digest}' is not a sha256 digest"))?;
        let parent = dir.parent().expect("entries live in a folder");
        fs::create_dir_all(parent).map_err(|e| fail!("cannot create {}: {e}", parent.display()))?;
        let write = || -> std::io::Result<()> {
            let tmp = tempfile::Builder::new()
                .prefix(".pull-")
                .tempdir_in(parent)?;
            fs::write(tmp.path().join("manifest.json"), manifest)?;
            fs::write(tmp.path().join("config.json"), config)?;
            fs::write(tmp.path().join("component.wasm"), wasm)?;
            fs::write(tmp.path().join("layer"), wasm_digest)?;
            let tmp = tmp.keep();
            if let Err(e) = fs::rename(&tmp, &dir) {
                let _ = fs::remove_dir_all(&tmp);
                // Another run cached the same digest first: same bytes, nothing to do.
                if !dir.is_dir() {
                    return Err(e);
                }
            }
            Ok(())
        };
        write().map_err(|e| fail!("cannot write {}: {e}", dir.display()))?;
        self.entry(manifest_digest)
            .ok_or_else(|| fail!("{} is incomplete", dir.display()))
    }

    fn tag_path(&self, reference: &OciRef) -> Option<PathBuf> {
        let tag = reference.tag()?;
        Some(
            self.root
                .join("tags")
                .join(reference.registry())
                .join(reference.repository())
                .join(tag),
        )
    }

    /// The manifest digest a tag had when last resolved.
    pub fn tag(&self, reference: &OciRef) -> Option<String> {
        let text = fs::read_to_string(self.tag_path(reference)?).ok()?;
        let digest = text.trim();
        hex_of(digest)?;
        Some(digest.to_owned())
    }

    pub fn remember_tag(
        &self,
        reference: &OciRef,
        manifest_digest: &str,
    ) -> Result<(), super::OciError> {
        let Some(path) = self.tag_path(reference) else {
            return Ok(());
        };
        let dir = path.parent().expect("tags live in a folder");
        let write = || -> std::io::Result<()> {
            fs::create_dir_all(dir)?;
            let tmp = tempfile::NamedTempFile::new_in(dir)?;
            fs::write(tmp.path(), manifest_digest)?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|e| fail!("cannot write {}: {e}", path.display()))
    }

    /// Every cached component, with the tags that point at it (`registry/repo:tag`).
    pub fn list(&self) -> Vec<(Entry, Vec<String>)> {
        let mut tags: Vec<(String, String)> = Vec::new();
        let tag_root = self.root.join("tags");
        collect_tags(&tag_root, &tag_root, &mut tags);
        let mut out = Vec::new();
        let Ok(read) = fs::read_dir(self.root.join("manifests/sha256")) else {
            return out;
        };
        for item in read.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            let digest = format!("sha256:{name}");
            if let Some(entry) = self.entry(&digest) {
                let named = tags
                    .iter()
                    .filter(|(_, d)| *d == digest)
                    .map(|(t, _)| t.clone())
                    .collect();
                out.push((entry, named));
            }
        }
        out.sort_by(|a, b| {
            a.1.cmp(&b.1)
                .then(a.0.manifest_digest.cmp(&b.0.manifest_digest))
        });
        out
    }

    /// Removes every cached component and tag, and leftovers of interrupted pulls.
    /// Returns how many components and bytes went.
    pub fn prune(&self) -> Result<(usize, u64), super::OciError> {
        let entries = self.list();
        let bytes = entries.iter().map(|(e, _)| e.size).sum();
        if self.root.exists() {
            fs::remove_dir_all(&self.root)
                .map_err(|e| fail!("cannot remove {}: {e}", self.root.display()))?;
        }
        Ok((entries.len(), bytes))
    }
}

fn collect_tags(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(read) = fs::read_dir(dir) else { return };
    for item in read.flatten() {
        let path = item.path();
        if path.is_dir() {
            collect_tags(root, &path, out);
        } else if let (Ok(rel), Ok(digest)) = (path.strip_prefix(root), fs::read_to_string(&path)) {
            let rel = rel.to_string_lossy();
            if let Some((repo, tag)) = rel.rsplit_once('/') {
                out.push((format!("{repo}:{tag}"), digest.trim().to_owned()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_tags_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let manifest_digest = super::super::sha256(b"manifest");
        assert_eq!(cache.entry(&manifest_digest), None);
        let entry = cache
            .insert(&manifest_digest, b"manifest", b"{}", b"\0asm", "sha256:w")
            .unwrap();
        assert_eq!(fs::read(&entry.path).unwrap(), b"\0asm");
        assert_eq!(entry.wasm_digest, "sha256:w");
        let r = OciRef::parse("oci://127.0.0.1:5000/sluice/validate:1").unwrap();
        assert_eq!(cache.tag(&r), None);
        cache.remember_tag(&r, &manifest_digest).unwrap();
        assert_eq!(cache.tag(&r), Some(manifest_digest.clone()));
        let listed = cache.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].1,
            vec!["127.0.0.1:5000/sluice/validate:1".to_owned()]
        );
        // A second insert of the same digest keeps the first.
        cache
            .insert(&manifest_digest, b"manifest", b"{}", b"\0asm", "sha256:w")
            .unwrap();
        assert_eq!(cache.prune().unwrap(), (1, 4));
        assert_eq!(cache.entry(&manifest_digest), None);
        assert!(cache.list().is_empty());
        // No temporary folder is left by a write.
        assert!(!dir.path().join("oci").exists());
    }
}
