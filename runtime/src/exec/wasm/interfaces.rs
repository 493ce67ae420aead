//! What a component's binary says about its `sluice:pipeline/transform` export: the
//! interface name and the function's type written out in WIT syntax down to primitive
//! types, so that two components' exports compare by structure and a mismatch can be
//! shown to a user.

use wasmtime::Engine;
use wasmtime::component::types::{ComponentItem, Type};

use crate::exec::TransformExport;

/// The interface every transform exports, without its version.
pub const TRANSFORM: &str = "sluice:pipeline/transform";

/// The transform export this host calls: `wit/pipeline.wit`'s, spelled out by [`wit`].
/// (Wasmtime checks an export's type only when it is first called; comparing the
/// binary's type with this one tells beforehand.)
pub(crate) const CALLABLE: (&str, &str) = (
    "sluice:pipeline/transform@0.1.0",
    concat!(
        "func(request: record { params: list<record { name: string, value: variant { str(string), ",
        "int(s64), float(f64), boolean(bool), json(string) } }>, inputs: list<record { name: string, ",
        "data: variant { table(record { rows: u64, columns: list<record { name: string, data: ",
        "variant { float64(list<f64>), int64(list<s64>), boolean(list<bool>), text(record { data: ",
        "string, offsets: list<u32> }) } }> }), bytes(list<u8>) } }> }) -> result<record { outputs: ",
        "list<record { name: string, data: variant { table(record { rows: u64, columns: list<record ",
        "{ name: string, data: variant { float64(list<f64>), int64(list<s64>), boolean(list<bool>), ",
        "text(record { data: string, offsets: list<u32> }) } }> }), bytes(list<u8>) } }>, params: ",
        "list<record { name: string, value: variant { str(string), int(s64), float(f64), ",
        "boolean(bool), json(string) } }>, metrics: list<record { name: string, value: f64 }> }, ",
        "variant { invalid-input(string), failed(string) }>"
    ),
);

/// The component's transform export, if it has one, and whether this host can call it.
pub(crate) fn transform_export(
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> Option<TransformExport> {
    let ty = component.component_type();
    let (name, export) = ty
        .exports(engine)
        .find(|(name, _)| name.split('@').next() == Some(TRANSFORM))?;
    let signature = match &export.ty {
        ComponentItem::ComponentInstance(instance) => {
            match instance.get_export(engine, "transform") {
                Some(func) => match func.ty {
                    ComponentItem::ComponentFunc(f) => {
                        let params: Vec<String> = f
                            .params()
                            .map(|(name, ty)| format!("{name}: {}", wit(&ty)))
                            .collect();
                        let results: Vec<String> = f.results().map(|ty| wit(&ty)).collect();
                        format!(
                            "func({}){}",
                            params.join(", "),
                            match results.as_slice() {
                                [] => String::new(),
                                [one] => format!(" -> {one}"),
                                many => format!(" -> ({})", many.join(", ")),
                            }
                        )
                    }
                    _ => "(not a function)".into(),
                },
                None => "(no `transform` function)".into(),
            }
        }
        _ => "(not an instance)".into(),
    };
    Some(TransformExport {
        callable: (name, signature.as_str()) == CALLABLE,
        interface: name.to_owned(),
        signature,
    })
}

/// A type in WIT syntax, records and variants spelled out with their field and case names.
pub(crate) fn wit(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", wit(&l.ty())),
        Type::Map(m) => format!("map<{}, {}>", wit(&m.key()), wit(&m.value())),
        Type::FixedLengthList(l) => format!("list<{}, {}>", wit(&l.ty()), l.len()),
        Type::Record(r) => {
            let fields: Vec<String> = r
                .fields()
                .map(|f| format!("{}: {}", f.name, wit(&f.ty)))
                .collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(t) => {
            let types: Vec<String> = t.types().map(|t| wit(&t)).collect();
            format!("tuple<{}>", types.join(", "))
        }
        Type::Variant(v) => {
            let cases: Vec<String> = v
                .cases()
                .map(|c| match &c.ty {
                    Some(ty) => format!("{}({})", c.name, wit(ty)),
                    None => c.name.to_owned(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        Type::Option(o) => format!("option<{}>", wit(&o.ty())),
        Type::Result(r) => {
            let part = |t: Option<Type>| t.map_or_else(|| "_".to_owned(), |t| wit(&t));
            format!("result<{}, {}>", part(r.ok()), part(r.err()))
        }
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::Future(_) => "future".into(),
        Type::Stream(_) => "stream".into(),
        Type::ErrorContext => "error-context".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export_of(path: &str) -> TransformExport {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).unwrap();
        let component = wasmtime::component::Component::from_file(&engine, path).unwrap();
        transform_export(&engine, &component).unwrap()
    }

    #[test]
    fn sluice_calls_its_own_transforms_and_no_others() {
        let own = export_of(sluice_test_artifacts::VALIDATE);
        assert_eq!((own.interface.as_str(), own.signature.as_str()), CALLABLE);
        assert!(own.callable);
        let other = export_of(sluice_test_artifacts::TABLE_PROBE);
        assert_eq!(other.interface, CALLABLE.0);
        assert!(other.signature.contains("rows: u32"), "{}", other.signature);
        assert!(!other.callable);
    }
}
