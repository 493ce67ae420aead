//! Wasm components in OCI registries, in the layout the wasm ecosystem agreed on (CNCF TAG
//! Runtime's wasm OCI artifact): a manifest whose config has media type
//! `application/vnd.wasm.config.v0+json` (`architecture: wasm`, `os: wasip2`,
//! `layerDigests`, the component's imports and exports) and exactly one
//! `application/wasm` layer, the component itself.
//!
//! `oci://registry/repository:tag` or `oci://registry/repository@sha256:...` names one.
//! A pull resolves a tag to a manifest digest, checks the manifest and the layer, and
//! verifies every blob's digest before anything is kept; the [`cache`] keeps components by
//! digest and remembers which digest each tag had, so `--offline` runs need no registry.

/// `format!` into an [`$crate::oci::OciError::Other`].
macro_rules! fail {
    ($($t:tt)*) => {
        $crate::oci::OciError::Other(format!($($t)*))
    };
}

pub mod auth;
pub mod bundle;
pub mod cache;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use self::cache::Cache;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The registry did not answer, or kept failing (connection refused, DNS, TLS, timeouts,
    /// 5xx and 429 after retries): the environment's fault, not the reference's.
    #[error("cannot reach the registry {registry} for {reference}: {detail}")]
    Unreachable {
        registry: String,
        reference: String,
        detail: String,
    },
    /// The registry answered and refused: credentials (401), access (403), or nothing at
    /// that reference (404). One line saying which.
    #[error("{0}")]
    Refused(String),
    /// Anything else: a malformed reference, `--offline` without the component cached,
    /// a manifest, config or layer that is not a wasm component's, a digest that does not
    /// match, a cache that cannot be written. One line naming the reference.
    #[error("{0}")]
    Other(String),
    /// No HTTPS client could be made: this machine has no CA certificates.
    #[error("cannot set up HTTPS for registries: {0} (a system CA certificate bundle is needed)")]
    Tls(String),
}

impl From<String> for OciError {
    fn from(message: String) -> OciError {
        OciError::Other(message)
    }
}

pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index: a list of manifests, one per platform.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's manifest list, an image index by another name.
const DOCKER_LIST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// What a pull accepts for a reference: a manifest, or an index to follow to one.
const ACCEPTED: &[&str] = &[
    MANIFEST_MEDIA_TYPE,
    INDEX_MEDIA_TYPE,
    DOCKER_LIST_MEDIA_TYPE,
];
const SCHEME: &str = "oci://";
/// The manifest annotation holding the component file (`component.yaml`) pushed with a
/// component, so a pipeline task can name the registry reference alone.
pub const COMPONENT_ANNOTATION: &str = "dev.sluice.component.yaml";

/// Whether a component path names a registry reference rather than a file.
pub fn is_reference(text: &str) -> bool {
    text.starts_with(SCHEME)
}

/// A parsed `oci://` reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciRef {
    inner: Reference,
}

impl OciRef {
    pub fn parse(text: &str) -> Result<OciRef, OciError> {
        let bare = text.strip_prefix(SCHEME).unwrap_or(text);
        // Without a registry host, a reference would silently mean Docker Hub.
        let host = bare.split('/').next().unwrap_or("");
        if !bare.contains('/') || !(host.contains('.') || host.contains(':') || host == "localhost")
        {
            return Err(fail!(
                "'{text}' is not a registry reference: expected oci://registry/repository:tag or oci://registry/repository@sha256:<digest>"
            ));
        }
        let inner: Reference = bare
            .parse()
            .map_err(|e| fail!("'{text}' is not a registry reference: {e}"))?;
        Ok(OciRef { inner })
    }

    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// The same repository at `digest`.
    pub fn at(&self, digest: &str) -> OciRef {
        OciRef {
            inner: Reference::with_digest(
                self.registry().to_owned(),
                self.repository().to_owned(),
                digest.to_owned(),
            ),
        }
    }
}

impl std::fmt::Display for OciRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry(), self.repository())?;
        if let Some(tag) = self.tag() {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.digest() {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// How to reach registries.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Registries (`host:port`) spoken to over plain HTTP; every other one over HTTPS.
    pub insecure: Vec<String>,
    pub credentials: auth::Explicit,
    /// Never touch the network: the cache, or an error naming what is missing.
    pub offline: bool,
}

/// The config blob of a wasm component artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    pub layer_digests: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentInfo {
    #[serde(default)]
    pub exports: Vec<String>,
    #[serde(default)]
    pub imports: Vec<String>,
    #[serde(default)]
    pub target: Option<String>,
}

/// A component pulled (or found in the cache).
#[derive(Clone, Debug, PartialEq)]
pub struct Pulled {
    /// The reference pinned to its manifest digest.
    pub pinned: OciRef,
    pub manifest_digest: String,
    /// `sha256:` of the component's bytes (the layer).
    pub wasm_digest: String,
    /// The component in the cache.
    pub path: PathBuf,
    /// Whether it came from the cache without asking the registry.
    pub cached: bool,
}

/// Talks to registries; keeps what it pulls in the cache.
pub struct Registries {
    /// The HTTP client, or why there is none (no CA certificates on this machine).
    client: Result<Client, String>,
    options: RegistryOptions,
    cache: Cache,
}

impl Registries {
    pub fn new(cache_dir: &Path, options: RegistryOptions) -> Registries {
        crate::init_tls();
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(options.insecure.clone()),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            platform_resolver: None,
            ..ClientConfig::default()
        };
        Registries {
            // Not `Client::new`, which falls back to a client that panics without CA
            // certificates (a `FROM scratch` image has none).
            client: Client::try_from(config).map_err(|e| crate::error_chain(&e)),
            cache: Cache::new(cache_dir),
            options,
        }
    }

    fn client(&self) -> Result<&Client, OciError> {
        self.client
            .as_ref()
            .map_err(|detail| OciError::Tls(detail.clone()))
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    fn auth(&self, reference: &OciRef) -> Result<RegistryAuth, OciError> {
        auth::credentials(reference.registry(), &self.options.credentials)
            .map(|(a, _)| a)
            .map_err(|e| OciError::Other(crate::error_chain(&e)))
    }

    /// The component a reference names, from the cache when its digest is there (a tag is
    /// resolved against the registry unless offline), else pulled and verified.
    pub async fn pull(&self, reference: &OciRef) -> Result<Pulled, OciError> {
        let client = self.client()?;
        let manifest_digest = match reference.digest() {
            Some(d) => d.to_owned(),
            None if self.options.offline => self.cache.tag(reference).ok_or_else(|| {
                format!("{reference} is not in the cache, and --offline forbids pulling it")
            })?,
            None => self.resolve(reference).await?,
        };
        if let Some(entry) = self.cache.entry(&manifest_digest) {
            if reference.tag().is_some() {
                self.cache.remember_tag(reference, &manifest_digest)?;
            }
            return Ok(Pulled {
                pinned: reference.at(&manifest_digest),
                manifest_digest,
                wasm_digest: entry.wasm_digest,
                path: entry.path,
                cached: true,
            });
        }
        if self.options.offline {
            return Err(fail!(
                "{reference} ({manifest_digest}) is not in the cache, and --offline forbids pulling it"
            ));
        }
        let auth = self.auth(reference)?;
        let (manifest_digest, raw) = self.manifest(reference, &manifest_digest, &auth).await?;
        let pinned = reference.at(&manifest_digest);
        if let Some(entry) = self.cache.entry(&manifest_digest) {
            if reference.tag().is_some() {
                self.cache.remember_tag(reference, &manifest_digest)?;
            }
            return Ok(Pulled {
                pinned,
                manifest_digest,
                wasm_digest: entry.wasm_digest,
                path: entry.path,
                cached: true,
            });
        }
        let manifest: OciImageManifest = serde_json::from_slice(&raw).map_err(|e| {
            format!("the manifest of {reference} is not an OCI image manifest: {e}")
        })?;
        let layer = wasm_layer(reference, &manifest)?;
        // Sizes are the registry's word: refused before pulling when too large, and the
        // bytes pulled are held to them.
        for (what, size, limit) in [
            ("config", manifest.config.size, CONFIG_MAX),
            ("component", layer.size, crate::files::WASM_FILE_MAX),
        ] {
            if u64::try_from(size).map_or(true, |s| s > limit) {
                return Err(fail!(
                    "the {what} of {reference} is {size} bytes by its manifest, over the limit of {}",
                    crate::spec::ByteSize(limit)
                ));
            }
        }
        let config = retry(reference, || async {
            let mut config = Bounded::new(manifest.config.size as u64);
            let pulled = client
                .pull_blob(&pinned.inner, &manifest.config, &mut config)
                .await;
            pulled.map(|()| config.bytes)
        })
        .await?;
        check_digest(
            &config,
            &manifest.config.digest,
            &format!("the config of {reference}"),
        )?;
        let wasm = retry(reference, || async {
            let mut wasm = Bounded::new(layer.size as u64);
            let pulled = client.pull_blob(&pinned.inner, layer, &mut wasm).await;
            pulled.map(|()| wasm.bytes)
        })
        .await?;
        check_digest(
            &wasm,
            &layer.digest,
            &format!("the component of {reference}"),
        )?;
        if !crate::wasm::is_component(&wasm) {
            return Err(fail!(
                "the layer of {reference} is not a WebAssembly component"
            ));
        }
        let entry = self
            .cache
            .insert(&manifest_digest, &raw, &config, &wasm, &layer.digest)?;
        if reference.tag().is_some() {
            self.cache.remember_tag(reference, &manifest_digest)?;
        }
        Ok(Pulled {
            pinned,
            manifest_digest,
            wasm_digest: layer.digest.clone(),
            path: entry.path,
            cached: false,
        })
    }

    /// A tag's current manifest digest; when the tag names an image index, the digest
    /// of the wasm manifest it lists.
    async fn resolve(&self, reference: &OciRef) -> Result<String, OciError> {
        let client = self.client()?;
        let auth = self.auth(reference)?;
        let (raw, digest) = retry(reference, || {
            client.pull_manifest_raw(&reference.inner, &auth, ACCEPTED)
        })
        .await?;
        check_digest(&raw, &digest, &format!("the manifest of {reference}"))?;
        match wasm_entry(reference, &raw)? {
            Some(child) => Ok(child),
            None => Ok(digest),
        }
    }

    /// The manifest at `digest`, checked against it; an image index is followed to the
    /// `wasm`/`wasip2` manifest it lists (checked too). Returns that manifest's digest
    /// and bytes.
    async fn manifest(
        &self,
        reference: &OciRef,
        digest: &str,
        auth: &RegistryAuth,
    ) -> Result<(String, Vec<u8>), OciError> {
        let client = self.client()?;
        let at = reference.at(digest);
        let (raw, _) = retry(reference, || {
            client.pull_manifest_raw(&at.inner, auth, ACCEPTED)
        })
        .await?;
        check_digest(&raw, digest, &format!("the manifest of {reference}"))?;
        let Some(child) = wasm_entry(reference, &raw)? else {
            return Ok((digest.to_owned(), raw.to_vec()));
        };
        let at = reference.at(&child);
        let (raw, _) = retry(reference, || {
            client.pull_manifest_raw(&at.inner, auth, &[MANIFEST_MEDIA_TYPE])
        })
        .await?;
        check_digest(
            &raw,
            &child,
            &format!("the manifest {reference}'s index lists"),
        )?;
        Ok((child, raw.to_vec()))
    }

    /// Pushes a component: the layer, a config naming its imports and exports, and a
    /// manifest with the standard annotations. Returns the manifest digest.
    pub async fn push(
        &self,
        wasm: &[u8],
        title: &str,
        reference: &OciRef,
        description: Option<&str>,
    ) -> Result<String, OciError> {
        let client = self.client()?;
        if self.options.offline {
            return Err(fail!("--offline forbids pushing"));
        }
        if !crate::wasm::is_component(wasm) {
            return Err(fail!("{title} is not a WebAssembly component"));
        }
        let wasm_digest = sha256(wasm);
        let created = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or(jiff::Timestamp::now())
            .to_string();
        let (imports, exports) = interfaces(wasm).map_err(|e| fail!("{title}: {e}"))?;
        let config = WasmConfig {
            created: Some(created.clone()),
            author: None,
            architecture: "wasm".into(),
            os: "wasip2".into(),
            layer_digests: vec![wasm_digest.clone()],
            component: Some(ComponentInfo {
                exports,
                imports,
                target: None,
            }),
        };
        let config_bytes = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
        let config_digest = sha256(&config_bytes);
        let mut annotations = BTreeMap::new();
        annotations.insert("org.opencontainers.image.created".to_owned(), created);
        annotations.insert(
            "org.opencontainers.image.title".to_owned(),
            title.to_owned(),
        );
        annotations.insert(
            "org.opencontainers.image.version".to_owned(),
            reference.tag().unwrap_or("").to_owned(),
        );
        if let Some(yaml) = description {
            annotations.insert(COMPONENT_ANNOTATION.to_owned(), yaml.to_owned());
        }
        annotations.retain(|_, v| !v.is_empty());
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
            artifact_type: None,
            config: OciDescriptor {
                media_type: CONFIG_MEDIA_TYPE.to_owned(),
                digest: config_digest.clone(),
                size: config_bytes.len() as i64,
                ..OciDescriptor::default()
            },
            layers: vec![OciDescriptor {
                media_type: LAYER_MEDIA_TYPE.to_owned(),
                digest: wasm_digest.clone(),
                size: wasm.len() as i64,
                annotations: Some(BTreeMap::from([(
                    "org.opencontainers.image.title".to_owned(),
                    title.to_owned(),
                )])),
                ..OciDescriptor::default()
            }],
            subject: None,
            annotations: Some(annotations),
        };
        let raw = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
        let auth = self.auth(reference)?;
        client
            .store_auth_if_needed(reference.registry(), &auth)
            .await;
        let target = &reference.inner;
        retry(reference, || {
            client.push_blob(target, wasm.to_vec(), &wasm_digest)
        })
        .await?;
        retry(reference, || {
            client.push_blob(target, config_bytes.clone(), &config_digest)
        })
        .await?;
        let content_type = reqwest::header::HeaderValue::from_static(MANIFEST_MEDIA_TYPE);
        retry(reference, || {
            client.push_manifest_raw(target, raw.clone(), content_type.clone())
        })
        .await?;
        Ok(sha256(&raw))
    }

    /// The manifest, its digest and the config of a reference, from the registry (or the
    /// cache when offline).
    pub async fn inspect(
        &self,
        reference: &OciRef,
    ) -> Result<(String, OciImageManifest, WasmConfig), OciError> {
        let pulled = self.pull(reference).await?;
        let entry = self
            .cache
            .entry(&pulled.manifest_digest)
            .ok_or_else(|| fail!("{reference} vanished from the cache"))?;
        let manifest = serde_json::from_slice(&entry.manifest()?)
            .map_err(|e| fail!("the cached manifest of {reference} is damaged: {e}"))?;
        let config = serde_json::from_slice(&entry.config()?)
            .map_err(|e| fail!("the config of {reference} is not a wasm config: {e}"))?;
        Ok((pulled.manifest_digest, manifest, config))
    }
}

impl Registries {
    /// The component file pushed with a registry component, as a file in the cache whose
    /// wasm implementation is the reference pinned to its digest: what a task naming
    /// `oci://...` as its component loads.
    pub async fn component_file(&self, reference: &OciRef) -> Result<PathBuf, OciError> {
        let pulled = self.pull(reference).await?;
        let entry = self
            .cache
            .entry(&pulled.manifest_digest)
            .ok_or_else(|| fail!("{reference} vanished from the cache"))?;
        let path = entry.path.with_file_name("component.yaml");
        if path.is_file() {
            return Ok(path);
        }
        let manifest: OciImageManifest = serde_json::from_slice(&entry.manifest()?)
            .map_err(|e| fail!("the cached manifest of {reference} is damaged: {e}"))?;
        let yaml = manifest
            .annotations
            .as_ref()
            .and_then(|a| a.get(COMPONENT_ANNOTATION))
            .ok_or_else(|| {
                format!(
                    "{reference} carries no component file; push it with `sluice push component.yaml {reference}`, or name it in a component file's implementation.wasm.component"
                )
            })?;
        let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml)
            .map_err(|e| fail!("the component file carried by {reference} is not YAML: {e}"))?;
        let wasm = doc
            .get_mut("implementation")
            .and_then(|i| i.get_mut("wasm"))
            .ok_or_else(|| {
                format!("the component file carried by {reference} has no implementation.wasm")
            })?;
        wasm["component"] = serde_yaml_ng::Value::String(pulled.pinned.to_string());
        let text = serde_yaml_ng::to_string(&doc).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("yaml.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| fail!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }
}

/// Pulls every registry component a run needs, once per reference, before it starts:
/// the run then uses exactly these bytes, and its record names them by digest. `pins`
/// replaces references with pinned ones (a re-run's). Returns, by the reference as
/// written, the cached file and the reference pinned to its digest.
pub async fn pull_for_run<'a>(
    registries: &Registries,
    references: impl IntoIterator<Item = &'a str>,
    pins: &std::collections::HashMap<String, String>,
) -> Result<std::collections::HashMap<String, (PathBuf, String)>, OciError> {
    let mut pulled = std::collections::HashMap::new();
    for text in references {
        if pulled.contains_key(text) {
            continue;
        }
        // A re-run takes the digest its recorded run resolved the reference to.
        let reference = OciRef::parse(pins.get(text).map_or(text, String::as_str))?;
        let p = registries.pull(&reference).await?;
        pulled.insert(text.to_owned(), (p.path, p.pinned.to_string()));
    }
    Ok(pulled)
}

/// The one `application/wasm` layer of a wasm artifact manifest.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<IndexEntry>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    platform: Option<IndexPlatform>,
}

#[derive(Deserialize)]
struct IndexPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

/// When `raw` is an image index (OCI's, or Docker's manifest list), the digest of the
/// manifest it lists for `wasm`/`wasip2`, or why it has none; `None` for a manifest.
fn wasm_entry(reference: &OciRef, raw: &[u8]) -> Result<Option<String>, OciError> {
    let Ok(index) = serde_json::from_slice::<Index>(raw) else {
        return Ok(None);
    };
    let is_index = matches!(
        index.media_type.as_deref(),
        Some(INDEX_MEDIA_TYPE | DOCKER_LIST_MEDIA_TYPE)
    ) || (index.media_type.is_none() && index.manifests.is_some());
    if !is_index {
        return Ok(None);
    }
    let entries = index.manifests.unwrap_or_default();
    let wasm = entries.iter().find(|e| {
        e.platform
            .as_ref()
            .is_some_and(|p| p.architecture == "wasm" && p.os == "wasip2")
    });
    match wasm {
        Some(entry) => Ok(Some(entry.digest.clone())),
        None => {
            let platforms: Vec<String> = entries
                .iter()
                .map(|e| match &e.platform {
                    Some(p) => format!("{}/{}", p.os, p.architecture),
                    None => "no platform".to_owned(),
                })
                .collect();
            Err(fail!(
                "{reference} is an OCI image index with no wasm/wasip2 manifest (it lists {})",
                if platforms.is_empty() {
                    "nothing".to_owned()
                } else {
                    platforms.join(", ")
                }
            ))
        }
    }
}

/// Reads `raw` as a pulled manifest is read: an image index followed to its wasm entry,
/// else an image manifest checked to be a wasm component artifact.
pub(crate) fn fuzz_manifest(raw: &[u8]) {
    let reference = OciRef::parse("registry.example/fuzz:1").expect("a valid reference");
    if let Ok(None) = wasm_entry(&reference, raw)
        && let Ok(manifest) = serde_json::from_slice::<OciImageManifest>(raw)
    {
        let _ = wasm_layer(&reference, &manifest);
    }
}

pub(crate) fn wasm_layer<'m>(
    reference: &OciRef,
    manifest: &'m OciImageManifest,
) -> Result<&'m OciDescriptor, OciError> {
    if manifest.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(fail!(
            "{reference} is not a wasm component artifact: its config is {}, not {CONFIG_MEDIA_TYPE}",
            manifest.config.media_type
        ));
    }
    match manifest.layers.as_slice() {
        [layer] if layer.media_type == LAYER_MEDIA_TYPE => Ok(layer),
        [layer] => Err(fail!(
            "{reference} has a layer of type {}, not {LAYER_MEDIA_TYPE}",
            layer.media_type
        )),
        layers => Err(fail!(
            "{reference} has {} layers; a wasm component artifact has exactly one",
            layers.len()
        )),
    }
}

/// Most bytes of a wasm component artifact's config blob.
const CONFIG_MAX: u64 = 1 << 20;

/// A blob being pulled, held to the size its descriptor gives: a registry that sends more
/// fails the pull instead of filling memory.
struct Bounded {
    bytes: Vec<u8>,
    limit: u64,
}

impl Bounded {
    fn new(limit: u64) -> Bounded {
        Bounded {
            // Grown as bytes come beyond the first 64 MiB: a size is only a claim.
            bytes: Vec::with_capacity(limit.min(64 << 20) as usize),
            limit,
        }
    }
}

impl tokio::io::AsyncWrite for Bounded {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.bytes.len() as u64 + buf.len() as u64 > self.limit {
            return std::task::Poll::Ready(Err(std::io::Error::other(format!(
                "the registry sent more than the {} bytes the descriptor gives",
                self.limit
            ))));
        }
        self.bytes.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn check_digest(bytes: &[u8], expected: &str, what: &str) -> Result<(), OciError> {
    let Some(hex) = expected.strip_prefix("sha256:") else {
        return Err(fail!(
            "{what} has digest {expected}; Sluice verifies sha256 digests only"
        ));
    };
    let actual = sha256(bytes);
    if actual[7..] != *hex {
        return Err(fail!(
            "{what} does not match its digest: expected {expected}, got {actual}"
        ));
    }
    Ok(())
}

/// Retries transient failures (connection errors, 5xx, 429) with backoff; maps the
/// others to one line.
async fn retry<T, F, Fut>(reference: &OciRef, mut attempt: F) -> Result<T, OciError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, OciDistributionError>>,
{
    let mut delay = Duration::from_millis(200);
    for tries in 1.. {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if tries < 4 && transient(&e) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(describe(reference, &e)),
        }
    }
    unreachable!("the loop returns")
}

fn transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(r) => {
            r.is_connect()
                || r.is_timeout()
                || r.status()
                    .is_some_and(|s| s.is_server_error() || s.as_u16() == 429)
        }
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        _ => false,
    }
}

fn describe(reference: &OciRef, e: &OciDistributionError) -> OciError {
    let registry = reference.registry();
    // oci-client's errors often repeat their source in their own text.
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        let part = err.to_string();
        if !parts.iter().any(|p| p.contains(&part)) {
            parts.push(part);
        }
        source = err.source();
    }
    let text = parts.join(": ");
    let status = match e {
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::RequestError(r) => r.status().map(|s| s.as_u16()),
        OciDistributionError::UnauthorizedError { .. } => Some(401),
        OciDistributionError::AuthenticationFailure(_) => Some(401),
        OciDistributionError::ImageManifestNotFoundError(_) => Some(404),
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().find_map(|err| match err.code {
                oci_client::errors::OciErrorCode::Unauthorized => Some(401),
                oci_client::errors::OciErrorCode::Denied => Some(403),
                oci_client::errors::OciErrorCode::ManifestUnknown
                | oci_client::errors::OciErrorCode::BlobUnknown
                | oci_client::errors::OciErrorCode::NameUnknown => Some(404),
                _ => None,
            })
        }
        _ => None,
    };
    match status {
        Some(401) => OciError::Refused(format!(
            "{registry} refused the credentials for {reference} (401 Unauthorized); log in with `docker login {registry}` or give --username/--password"
        )),
        Some(403) => OciError::Refused(format!(
            "{registry} denies access to {reference} (403 Forbidden)"
        )),
        Some(404) => OciError::Refused(format!(
            "{reference} does not exist in {registry} (404 Not Found)"
        )),
        // rustls meeting a plain-HTTP server reads a "corrupt message": the registry
        // answered, in a protocol the user has to name.
        _ if text.contains("corrupt message") => fail!(
            "cannot reach the registry {registry} for {reference}: {text} (it does not speak HTTPS; if it is a plain-HTTP registry, name it with --insecure-registry {registry})"
        ),
        _ if transient(e) => OciError::Unreachable {
            registry: registry.to_owned(),
            reference: reference.to_string(),
            detail: text,
        },
        _ => fail!("{reference}: {text}"),
    }
}

/// The names a component imports and exports (`wasi:cli/environment@0.2.0`, ...), read
/// from its top level without compiling it.
pub fn interfaces(wasm: &[u8]) -> Result<(Vec<String>, Vec<String>), OciError> {
    use wasmparser::{Parser, Payload};
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| fail!("not a valid component: {e}"))? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    let import = import.map_err(|e| fail!("not a valid component: {e}"))?;
                    imports.push(import.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    let export = export.map_err(|e| fail!("not a valid component: {e}"))?;
                    exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = OciRef::parse("oci://127.0.0.1:5000/sluice/validate:0.1.0").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("127.0.0.1:5000", "sluice/validate", Some("0.1.0"))
        );
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/sluice/validate:0.1.0");
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = r.at(&digest);
        assert_eq!(
            pinned.to_string(),
            format!("oci://127.0.0.1:5000/sluice/validate@{digest}")
        );
        assert_eq!(OciRef::parse(&pinned.to_string()).unwrap(), pinned);
        assert!(
            OciRef::parse("oci://validate:1")
                .unwrap_err()
                .to_string()
                .contains("expected oci://registry/repository:tag")
        );
        assert!(OciRef::parse("oci://ghcr.io/UPPER/x").is_err());
        assert!(is_reference("oci://x") && !is_reference("x.wasm"));
    }

    #[tokio::test]
    async fn a_blob_is_held_to_the_size_its_descriptor_gives() {
        use tokio::io::AsyncWriteExt;
        let mut blob = Bounded::new(4);
        blob.write_all(b"wasm").await.unwrap();
        let err = blob.write_all(b"!").await.unwrap_err().to_string();
        assert_eq!(
            err.to_string(),
            "the registry sent more than the 4 bytes the descriptor gives"
        );
        assert_eq!(blob.bytes, b"wasm");
    }

    #[test]
    fn digests_are_checked() {
        let d = sha256(b"abc");
        assert!(check_digest(b"abc", &d, "x").is_ok());
        assert!(
            check_digest(b"abd", &d, "the component")
                .unwrap_err()
                .to_string()
                .starts_with("the component does not match its digest")
        );
        assert!(check_digest(b"abc", "sha512:00", "x").is_err());
    }

    #[test]
    fn manifests_must_be_wasm_artifacts() {
        let r = OciRef::parse("oci://localhost:5000/a:1").unwrap();
        let layer = |t: &str| OciDescriptor {
            media_type: t.into(),
            ..OciDescriptor::default()
        };
        let manifest = |config: &str, layers: Vec<OciDescriptor>| OciImageManifest {
            config: layer(config),
            layers,
            ..OciImageManifest::default()
        };
        assert!(
            wasm_layer(
                &r,
                &manifest(CONFIG_MEDIA_TYPE, vec![layer(LAYER_MEDIA_TYPE)])
            )
            .is_ok()
        );
        let e = wasm_layer(
            &r,
            &manifest("application/vnd.oci.image.config.v1+json", vec![]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("is not a wasm component artifact"), "{e}");
        let e = wasm_layer(
            &r,
            &manifest(
                CONFIG_MEDIA_TYPE,
                vec![layer(LAYER_MEDIA_TYPE), layer(LAYER_MEDIA_TYPE)],
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("has 2 layers"), "{e}");
        let e = wasm_layer(
            &r,
            &manifest(
                CONFIG_MEDIA_TYPE,
                vec![layer("application/vnd.oci.image.layer.v1.tar")],
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not application/wasm"), "{e}");
    }

    #[test]
    fn the_config_has_the_agreed_field_names() {
        let config = WasmConfig {
            created: None,
            author: None,
            architecture: "wasm".into(),
            os: "wasip2".into(),
            layer_digests: vec!["sha256:x".into()],
            component: Some(ComponentInfo::default()),
        };
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"architecture": "wasm", "os": "wasip2", "layerDigests": ["sha256:x"], "component": {"exports": [], "imports": [], "target": null}})
        );
    }
}
