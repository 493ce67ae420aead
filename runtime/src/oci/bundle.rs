//! Bundles for sites with no registry in reach: one tar archive in the OCI image-layout
//! format holding a pipeline, every file it needs and every registry component it names.
//!
//! ```text
//! oci-layout           {"imageLayoutVersion": "1.0.0"}
//! index.json           one manifest per registry component (annotated with its
//!                      reference, `org.opencontainers.image.ref.name`), and one for the
//!                      pipeline's files
//! blobs/sha256/<hex>   manifests, configs, layers
//! ```
//!
//! The pipeline's manifest (artifact type `application/vnd.sluice.pipeline.v1`) has one
//! layer per file — the pipeline, its component files, their wasm files, the defaults of
//! its artifact parameters, the deploy section's predictor — each titled with its path
//! relative to the files' common folder, so relative paths keep working once unpacked.
//! Registry components keep their own manifests, configs and layers, byte for byte.
//!
//! Opening a bundle checks every blob against its digest, imports the registry
//! components into the cache (with their tags, for `--offline`) and unpacks the files
//! under the Sluice home, keyed by the bundle's own digest.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Component as PathPart, Path, PathBuf};

use oci_client::manifest::{OciDescriptor, OciImageManifest};
use serde_json::{Value, json};

use super::{MANIFEST_MEDIA_TYPE, OciRef, Registries, sha256};
use crate::plan::{ParamValue, Plan};

const PIPELINE_ARTIFACT: &str = "application/vnd.sluice.pipeline.v1";
const IMAGES_ARTIFACT: &str = "application/vnd.sluice.container-images.v1";
/// Most bytes of a bundle, or of a file put into one; bundles are read whole.
const BUNDLE_MAX: u64 = 16 << 30;
/// The engine's export format (`docker save`), one layer holding every image.
const IMAGES_MEDIA_TYPE: &str = "application/vnd.docker.image.archive.v1+tar";
const IMAGES: &str = "dev.sluice.images";
const FILE_MEDIA_TYPE: &str = "application/vnd.sluice.file.v1";
const PIPELINE_PATH: &str = "dev.sluice.pipeline.path";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const TITLE: &str = "org.opencontainers.image.title";

/// Whether a file is a bundle: a tar archive whose first entry is `oci-layout`.
pub fn is_bundle(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut archive = tar::Archive::new(file);
    let Ok(mut entries) = archive.entries() else {
        return false;
    };
    matches!(entries.next(), Some(Ok(entry)) if entry.path().is_ok_and(|p| p == Path::new("oci-layout")))
}

/// What went into a bundle.
#[derive(Debug)]
pub struct Written {
    pub files: usize,
    pub components: usize,
    pub bytes: u64,
}

/// Writes the bundle of a planned pipeline to `out`, pulling registry components that
/// the cache lacks. `task_references` are the `oci://` references tasks name as their
/// component, as the pipeline file writes them.
pub async fn write(
    plan: &Plan,
    task_references: &[String],
    registries: &Registries,
    images: Option<(&[String], Vec<u8>)>,
    out: &Path,
) -> Result<Written, super::OciError> {
    // Local files the run reads.
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    files.insert(plan.source.clone());
    let mut references: BTreeSet<String> = BTreeSet::new();
    for task in &plan.tasks {
        let component = &task.component;
        // A component pulled from a registry lives in the cache, not beside the pipeline.
        if !component.path.starts_with(registries.cache().root()) {
            files.insert(component.path.clone());
        }
        if let Some(wasm) = component.wasm_path() {
            files.insert(wasm);
        }
        if let Some(reference) = component.wasm_reference() {
            references.insert(reference.to_owned());
        }
    }
    for param in plan.params.values() {
        if let Some((ParamValue::File(path), _)) = &param.value {
            files.insert(path.clone());
        }
    }
    if let Some(deploy) = &plan.deploy {
        files.insert(deploy.predictor.clone());
    }
    references.extend(task_references.iter().cloned());

    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut index: Vec<Value> = Vec::new();
    let mut components = 0;
    for text in &references {
        let reference = OciRef::parse(text)?;
        let pulled = registries.pull(&reference).await?;
        let entry = registries
            .cache()
            .entry(&pulled.manifest_digest)
            .ok_or_else(|| fail!("{reference} vanished from the cache"))?;
        let manifest = entry.manifest()?;
        let parsed: OciImageManifest = serde_json::from_slice(&manifest)
            .map_err(|e| fail!("the cached manifest of {reference} is damaged: {e}"))?;
        blobs.insert(parsed.config.digest.clone(), entry.config()?);
        let layer = std::fs::read(&entry.path)
            .map_err(|e| fail!("cannot read {}: {e}", entry.path.display()))?;
        blobs.insert(pulled.wasm_digest.clone(), layer);
        for name in [text.clone(), pulled.pinned.to_string()] {
            index.push(json!({
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": pulled.manifest_digest,
                "size": manifest.len(),
                "annotations": { REF_NAME: name },
            }));
        }
        blobs.insert(pulled.manifest_digest.clone(), manifest);
        components += 1;
    }

    // The files, relative to their common folder.
    let absolute: Vec<PathBuf> = files
        .iter()
        .map(|f| std::path::absolute(f).map_err(|e| fail!("cannot resolve {}: {e}", f.display())))
        .collect::<Result<_, _>>()?;
    let root = common_folder(&absolute);
    let mut layers = Vec::new();
    let mut count = 0;
    for file in &absolute {
        for (path, bytes) in read_tree(file)? {
            let relative = path
                .strip_prefix(&root)
                .map_err(|_| format!("{} is outside {}", path.display(), root.display()))?
                .to_string_lossy()
                .into_owned();
            let digest = sha256(&bytes);
            layers.push(OciDescriptor {
                media_type: FILE_MEDIA_TYPE.to_owned(),
                digest: digest.clone(),
                size: bytes.len() as i64,
                annotations: Some(BTreeMap::from([(TITLE.to_owned(), relative)])),
                ..OciDescriptor::default()
            });
            blobs.insert(digest, bytes);
            count += 1;
        }
    }
    let empty_config = b"{}".to_vec();
    let config_digest = sha256(&empty_config);
    blobs.insert(config_digest.clone(), empty_config);
    let empty = || OciDescriptor {
        media_type: "application/vnd.oci.empty.v1+json".to_owned(),
        digest: config_digest.clone(),
        size: 2,
        ..OciDescriptor::default()
    };
    if let Some((names, archive)) = images {
        let digest = sha256(&archive);
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
            artifact_type: Some(IMAGES_ARTIFACT.to_owned()),
            config: empty(),
            layers: vec![OciDescriptor {
                media_type: IMAGES_MEDIA_TYPE.to_owned(),
                digest: digest.clone(),
                size: archive.len() as i64,
                ..OciDescriptor::default()
            }],
            subject: None,
            annotations: Some(BTreeMap::from([(IMAGES.to_owned(), names.join(","))])),
        };
        blobs.insert(digest, archive);
        let bytes = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
        let manifest_digest = sha256(&bytes);
        index.push(json!({
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": IMAGES_ARTIFACT,
            "digest": manifest_digest,
            "size": bytes.len(),
            "annotations": { REF_NAME: "container-images" },
        }));
        blobs.insert(manifest_digest, bytes);
    }
    let pipeline_path = std::path::absolute(&plan.source)
        .map_err(|e| e.to_string())?
        .strip_prefix(&root)
        .map_err(|e| e.to_string())?
        .to_string_lossy()
        .into_owned();
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
        artifact_type: Some(PIPELINE_ARTIFACT.to_owned()),
        config: empty(),
        layers,
        subject: None,
        annotations: Some(BTreeMap::from([
            (PIPELINE_PATH.to_owned(), pipeline_path),
            (REF_NAME.to_owned(), format!("pipeline/{}", plan.name)),
        ])),
    };
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let manifest_digest = sha256(&manifest_bytes);
    index.push(json!({
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": PIPELINE_ARTIFACT,
        "digest": manifest_digest,
        "size": manifest_bytes.len(),
        "annotations": { REF_NAME: format!("pipeline/{}", plan.name) },
    }));
    blobs.insert(manifest_digest, manifest_bytes);

    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": index,
    });
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| fail!("cannot write in {}: {e}", dir.display()))?;
    {
        let mut tar = tar::Builder::new(tmp.as_file_mut());
        let written = (|| -> std::io::Result<()> {
            append(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            let index = serde_json::to_vec_pretty(&index).map_err(std::io::Error::other)?;
            append(&mut tar, "index.json", &index)?;
            for (digest, bytes) in &blobs {
                append(
                    &mut tar,
                    &format!("blobs/sha256/{}", &digest["sha256:".len()..]),
                    bytes,
                )?;
            }
            tar.finish()
        })();
        written.map_err(|e| fail!("cannot write {}: {e}", out.display()))?;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    let bytes = tmp.as_file().metadata().map(|m| m.len()).unwrap_or(0);
    tmp.persist(out)
        .map_err(|e| fail!("cannot write {}: {}", out.display(), e.error))?;
    Ok(Written {
        files: count,
        components,
        bytes,
    })
}

/// One regular file in the archive, with fixed metadata so equal bundles are equal bytes.
fn append(
    tar: &mut tar::Builder<&mut std::fs::File>,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)
}

/// An opened bundle.
#[derive(Debug)]
pub struct Opened {
    /// The unpacked pipeline file.
    pub pipeline: PathBuf,
    /// Container images to load into the engine (`docker save` format), and their names.
    pub images: Option<(Vec<String>, Vec<u8>)>,
}

/// Opens a bundle: checks every blob, imports its registry components into the cache and
/// unpacks its files under `home/bundles/<digest>`.
pub fn open(path: &Path, home: &Path, registries: &Registries) -> Result<Opened, super::OciError> {
    let archive_bytes = crate::files::read_limited(path, BUNDLE_MAX, crate::files::Follow::Yes)
        .map_err(|e| fail!("cannot read {}: {e}", path.display()))?;
    open_bytes(path, &archive_bytes, home, registries)
}

/// [`open`], for a bundle already read; `path` names it in errors.
pub(crate) fn open_bytes(
    path: &Path,
    archive_bytes: &[u8],
    home: &Path,
    registries: &Registries,
) -> Result<Opened, super::OciError> {
    let bad = |m: String| fail!("{} is not a usable bundle: {m}", path.display());
    let bundle_digest = sha256(archive_bytes);
    let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut archive = tar::Archive::new(archive_bytes);
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| bad(e.to_string()))?;
        entries.insert(name, bytes);
    }
    let layout: Value = entries
        .get("oci-layout")
        .and_then(|b| serde_json::from_slice(b).ok())
        .ok_or_else(|| bad("no oci-layout".into()))?;
    if layout["imageLayoutVersion"] != "1.0.0" {
        return Err(bad(format!(
            "image layout version {}",
            layout["imageLayoutVersion"]
        )));
    }
    // Every blob must be what its name says before anything is used.
    for (name, bytes) in &entries {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            let actual = sha256(bytes);
            if actual[7..] != *hex {
                return Err(bad(format!(
                    "blob sha256:{hex} does not match its digest (it holds {actual})"
                )));
            }
        }
    }
    let blob = |digest: &str| -> Result<&Vec<u8>, super::OciError> {
        entries
            .get(&format!(
                "blobs/sha256/{}",
                digest.strip_prefix("sha256:").unwrap_or(digest)
            ))
            .ok_or_else(|| bad(format!("blob {digest} is missing")))
    };
    let index: Value = entries
        .get("index.json")
        .and_then(|b| serde_json::from_slice(b).ok())
        .ok_or_else(|| bad("no index.json".into()))?;
    let mut pipeline: Option<(OciImageManifest, String)> = None;
    let mut images = None;
    for item in index["manifests"]
        .as_array()
        .ok_or_else(|| bad("index.json lists no manifests".into()))?
    {
        let digest = item["digest"]
            .as_str()
            .ok_or_else(|| bad("a manifest without a digest".into()))?;
        let manifest_bytes = blob(digest)?;
        let manifest: OciImageManifest = serde_json::from_slice(manifest_bytes)
            .map_err(|e| bad(format!("manifest {digest}: {e}")))?;
        let name = item["annotations"][REF_NAME].as_str().unwrap_or_default();
        if manifest.artifact_type.as_deref() == Some(IMAGES_ARTIFACT) {
            let names = manifest
                .annotations
                .as_ref()
                .and_then(|a| a.get(IMAGES))
                .map(|n| n.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            let layer = manifest
                .layers
                .first()
                .ok_or_else(|| bad("the images manifest has no layer".into()))?;
            images = Some((names, blob(&layer.digest)?.clone()));
            continue;
        }
        if manifest.artifact_type.as_deref() == Some(PIPELINE_ARTIFACT) {
            let main = manifest
                .annotations
                .as_ref()
                .and_then(|a| a.get(PIPELINE_PATH))
                .cloned()
                .ok_or_else(|| bad("the pipeline manifest names no pipeline file".into()))?;
            pipeline = Some((manifest, main));
            continue;
        }
        let layer = super::wasm_layer(&OciRef::parse(name)?, &manifest)?;
        let reference = OciRef::parse(name)?;
        if registries.cache().entry(digest).is_none() {
            registries.cache().insert(
                digest,
                manifest_bytes,
                blob(&manifest.config.digest)?,
                blob(&layer.digest)?,
                &layer.digest,
            )?;
        }
        if reference.tag().is_some() {
            registries.cache().remember_tag(&reference, digest)?;
        }
    }
    let (manifest, main) = pipeline.ok_or_else(|| bad("it holds no pipeline".into()))?;
    let target = home.join("bundles").join(&bundle_digest[7..]);
    if !target.is_dir() {
        std::fs::create_dir_all(home.join("bundles")).map_err(|e| e.to_string())?;
        let tmp = tempfile::Builder::new()
            .prefix(".unpack-")
            .tempdir_in(home.join("bundles"))
            .map_err(|e| e.to_string())?;
        for layer in &manifest.layers {
            let title = layer
                .annotations
                .as_ref()
                .and_then(|a| a.get(TITLE))
                .ok_or_else(|| bad(format!("file {} has no title", layer.digest)))?;
            let relative = safe_relative(title)
                .ok_or_else(|| bad(format!("file path '{title}' leaves the bundle")))?;
            let dest = tmp.path().join(relative);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            std::fs::write(&dest, blob(&layer.digest)?)
                .map_err(|e| fail!("cannot write {}: {e}", dest.display()))?;
        }
        let tmp = tmp.keep();
        if std::fs::rename(&tmp, &target).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    let relative = safe_relative(&main)
        .ok_or_else(|| bad(format!("pipeline path '{main}' leaves the bundle")))?;
    Ok(Opened {
        pipeline: target.join(relative),
        images,
    })
}

/// A relative path with no `..`, no root: it stays inside the folder it is joined to.
fn safe_relative(text: &str) -> Option<PathBuf> {
    let path = Path::new(text);
    path.components()
        .all(|c| matches!(c, PathPart::Normal(_)))
        .then(|| path.to_owned())
}

fn common_folder(paths: &[PathBuf]) -> PathBuf {
    let mut common: Option<PathBuf> = None;
    for path in paths {
        let parent = path.parent().unwrap_or(Path::new("/")).to_owned();
        common = Some(match common {
            None => parent,
            Some(c) => c
                .components()
                .zip(parent.components())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    common.unwrap_or_else(|| PathBuf::from("/"))
}

/// A file, or every file under a folder.
fn read_tree(path: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, super::OciError> {
    if path.is_dir() {
        let mut out = Vec::new();
        let mut items: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| fail!("cannot read {}: {e}", path.display()))?
            .flatten()
            .map(|e| e.path())
            .collect();
        items.sort();
        for item in items {
            out.extend(read_tree(&item)?);
        }
        Ok(out)
    } else {
        let bytes = crate::files::read_limited(path, BUNDLE_MAX, crate::files::Follow::Yes)
            .map_err(|e| fail!("cannot read {}: {e}", path.display()))?;
        Ok(vec![(path.to_owned(), bytes)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        assert!(safe_relative("a/b.yaml").is_some());
        assert!(safe_relative("../x").is_none());
        assert!(safe_relative("/etc/passwd").is_none());
        assert_eq!(
            common_folder(&[
                PathBuf::from("/r/examples/p.yaml"),
                PathBuf::from("/r/sample/v/c.yaml")
            ]),
            PathBuf::from("/r")
        );
    }
}
