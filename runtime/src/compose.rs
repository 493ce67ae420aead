//! `sluice compose`: one component made of several, with the WebAssembly Compositions
//! library (`wac-graph`). Every import of the socket that a plug exports under the same
//! name (or a semver-compatible one) is satisfied by that plug's export; the socket's
//! exports become the composed component's, and whatever is left unsatisfied (the host
//! interface, WASI) is imported by the composed component. A plug export whose type does
//! not fit the import it matches by name is an error naming both ends, never skipped.

use std::path::{Path, PathBuf};

use wac_graph::types::{Package, SubtypeChecker, are_semver_compatible};
use wac_graph::{CompositionGraph, EncodeOptions};

/// What `compose` made.
#[derive(Debug)]
pub struct Composed {
    pub bytes: Vec<u8>,
    /// Each satisfied import of the socket, and the plug file it came from.
    pub plugged: Vec<(String, PathBuf)>,
    /// Imports the composed component still has.
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Plugs the plugs' exports into the socket's imports. Errors are one line each.
pub fn compose(socket: &Path, plugs: &[PathBuf]) -> Result<Composed, Vec<String>> {
    let one = |m: String| vec![m];
    let mut graph = CompositionGraph::new();
    let load = |graph: &mut CompositionGraph, name: &str, path: &Path| {
        let bytes = crate::files::read_limited(
            path,
            crate::files::WASM_FILE_MAX,
            crate::files::Follow::Yes,
        )
        .map_err(|e| format!("{}: cannot read the component: {e}", path.display()))?;
        let package = Package::from_bytes(name, None, bytes, graph.types_mut()).map_err(|e| {
            format!(
                "{}: not a component that can be composed: {}",
                path.display(),
                crate::error_chain(e.as_ref())
            )
        })?;
        graph
            .register_package(package)
            .map_err(|e| format!("{}: {}", path.display(), crate::error_chain(&e)))
    };
    let socket_id = load(&mut graph, "sluice:socket", socket).map_err(one)?;
    let mut plug_ids = Vec::new();
    for (i, plug) in plugs.iter().enumerate() {
        plug_ids.push(load(&mut graph, &format!("sluice:plug{i}"), plug).map_err(one)?);
    }

    let socket_world = graph[socket_id].ty();
    let imports: Vec<(String, wac_graph::types::ItemKind)> = graph.types()[socket_world]
        .imports
        .iter()
        .map(|(n, k)| (n.clone(), *k))
        .collect();
    let socket_instance = graph.instantiate(socket_id);
    let mut errors = Vec::new();
    let mut plugged = Vec::new();
    let mut used = vec![false; plugs.len()];
    for (import, import_kind) in &imports {
        // The first plug that exports this name satisfies it.
        let found = plug_ids.iter().enumerate().find_map(|(i, &id)| {
            let world = graph[id].ty();
            graph.types()[world]
                .exports
                .iter()
                .find(|(name, _)| *name == import || are_semver_compatible(name, import))
                .map(|(name, kind)| (i, id, name.clone(), *kind))
        });
        let Some((i, plug_id, export, export_kind)) = found else {
            continue;
        };
        let mut cache = Default::default();
        let mut checker = SubtypeChecker::new(&mut cache);
        if let Err(e) = checker.is_subtype(export_kind, graph.types(), *import_kind, graph.types())
        {
            errors.push(format!(
                "{} imports `{import}`, but {} exports `{export}` with a type that does not fit it: {}",
                socket.display(),
                plugs[i].display(),
                crate::error_chain(e.as_ref())
            ));
            continue;
        }
        let instance = graph.instantiate(plug_id);
        let linked = graph
            .alias_instance_export(instance, &export)
            .map_err(|e| crate::error_chain(&e))
            .and_then(|node| {
                graph
                    .set_instantiation_argument(socket_instance, import, node)
                    .map_err(|e| crate::error_chain(&e))
            });
        match linked {
            Ok(()) => {
                used[i] = true;
                plugged.push((import.clone(), plugs[i].clone()));
            }
            Err(e) => errors.push(format!(
                "{} imports `{import}`, and {} exports `{export}`, but they cannot be joined: {e}",
                socket.display(),
                plugs[i].display()
            )),
        }
    }
    for (i, plug) in plugs.iter().enumerate() {
        if !used[i]
            && !errors
                .iter()
                .any(|e| e.contains(&plug.display().to_string()))
        {
            let world = graph[plug_ids[i]].ty();
            let exports: Vec<&str> = graph.types()[world]
                .exports
                .keys()
                .map(String::as_str)
                .collect();
            errors.push(format!(
                "{} exports nothing {} imports (it exports {}; the socket imports {})",
                plug.display(),
                socket.display(),
                list(&exports),
                list(&imports.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let socket_exports: Vec<String> = graph.types()[socket_world]
        .exports
        .keys()
        .cloned()
        .collect();
    for name in &socket_exports {
        let node = graph
            .alias_instance_export(socket_instance, name)
            .map_err(|e| {
                one(format!(
                    "{}: export `{name}`: {}",
                    socket.display(),
                    crate::error_chain(&e)
                ))
            })?;
        graph.export(node, name).map_err(|e| {
            one(format!(
                "{}: export `{name}`: {}",
                socket.display(),
                crate::error_chain(&e)
            ))
        })?;
    }
    let bytes = graph.encode(EncodeOptions::default()).map_err(|e| {
        one(format!(
            "cannot encode the composed component: {}",
            crate::error_chain(&e)
        ))
    })?;
    // What the encoding imports: the socket's and the plugs' imports nothing satisfied.
    let (imports, exports) = crate::oci::interfaces(&bytes).map_err(|e| one(e.to_string()))?;
    Ok(Composed {
        bytes,
        plugged,
        imports,
        exports,
    })
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}
