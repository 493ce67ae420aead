//! On-disk cache of compiled components, keyed by the component's sha256 and the engine's
//! compatibility hash (wasmtime version, target, settings), so a second run never
//! recompiles. Entries are written to a temporary file and renamed into place.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct CompileCache {
    dir: PathBuf,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// How many components a cache served and compiled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

impl CompileCache {
    /// A cache under `root/wasm/<engine hash>/`.
    pub fn new(root: &Path, engine: &Engine) -> CompileCache {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = hex::encode(&hasher.0.finalize()[..8]);
        CompileCache {
            dir: root.join("wasm").join(engine_hash),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// The compiled form of `bytes`, whose digest is `digest` (`sha256:<hex>`), from the
    /// cache or compiled now and stored. A cache that cannot be written only costs speed.
    pub fn load(&self, engine: &Engine, digest: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let path = self.dir.join(format!("{hex}.cwasm"));
        if path.is_file()
            && let Ok(component) = deserialize(engine, &path)
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(component);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let component = Component::new(engine, bytes)?;
        if let Ok(compiled) = component.serialize() {
            let _ = self.store(&path, &compiled);
        }
        Ok(component)
    }

    fn store(&self, path: &Path, compiled: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut tmp, compiled)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize_file` trusts the file to be code that wasmtime compiled. Only
    // this cache writes into its folder, under the Sluice home, and only the output of
    // `Component::serialize` for an engine with the same compatibility hash (the folder
    // name), renamed into place once complete. wasmtime still checks the header and
    // the engine settings recorded in the file and refuses a mismatch.
    unsafe { Component::deserialize_file(engine, path) }
}

/// Feeds `Hash` into sha256, whose output, unlike `DefaultHasher`'s, is stable across
/// Rust releases.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
    }
}
