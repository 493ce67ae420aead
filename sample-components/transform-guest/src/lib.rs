//! The guest side of the `sluice:pipeline` transform interface, shared by the sample
//! transform steps: the one place they generate bindings for the `transform-component`
//! world of `wit/pipeline.wit`, the conversion between WIT tables and
//! [`sluice_ml::table::Table`], and a [`Request`] that hands out inputs by name. A step
//! implements [`Guest`] and, in its wasm build, exports itself with
//! `sluice_transform_guest::export!(MyStep with_types_in sluice_transform_guest);`.
//! A command or typed step component exports the transform beside its own form.

/// The generated glue needs `unsafe` for the canonical ABI; no hand-written code here does.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "transform-component",
        pub_export_macro: true,
        default_bindings_module: "sluice_transform_guest",
    });
}

pub use bindings::exports::sluice::pipeline::transform::{
    Data, Guest, Port, Request as WitRequest, Response,
};
pub use bindings::sluice::pipeline::host;
pub use bindings::sluice::pipeline::tables;
pub use bindings::sluice::pipeline::types::{Metric, Param, StepError, Value};
pub use bindings::*;

use sluice_ml::table::Table;

/// A transform's request with its parts taken out by name.
pub struct Request {
    pub params: Vec<Param>,
    inputs: Vec<Port>,
}

impl From<WitRequest> for Request {
    fn from(request: WitRequest) -> Self {
        Request {
            params: request.params,
            inputs: request.inputs,
        }
    }
}

impl Request {
    fn take(&mut self, name: &str) -> Option<Data> {
        let index = self.inputs.iter().position(|port| port.name == name)?;
        Some(self.inputs.swap_remove(index).data)
    }

    /// The table input `name`; `invalid-input` when it is missing or not a table, or its
    /// columns do not all have one value per row.
    pub fn table(&mut self, name: &str) -> Result<Table, StepError> {
        match self.take(name) {
            Some(Data::Table(table)) => from_wit(table)
                .map_err(|err| StepError::InvalidInput(format!("input '{name}': {err}"))),
            Some(Data::Bytes(_)) => Err(StepError::InvalidInput(format!(
                "input '{name}' must be a table, not bytes"
            ))),
            None => Err(StepError::InvalidInput(format!(
                "input '{name}' is missing"
            ))),
        }
    }

    /// The bytes of artifact input `name`, if it was given.
    pub fn bytes(&mut self, name: &str) -> Result<Option<Vec<u8>>, StepError> {
        match self.take(name) {
            Some(Data::Bytes(bytes)) => Ok(Some(bytes)),
            Some(Data::Table(_)) => Err(StepError::InvalidInput(format!(
                "input '{name}' must be bytes, not a table"
            ))),
            None => Ok(None),
        }
    }

    pub fn param(&self, name: &str) -> Option<&Value> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| &p.value)
    }

    /// Parameter `name` as text: a string, or any other value as written.
    pub fn text(&self, name: &str) -> Option<String> {
        self.param(name).map(|value| match value {
            Value::Str(text) | Value::Json(text) => text.clone(),
            Value::Int(number) => number.to_string(),
            Value::Float(number) => number.to_string(),
            Value::Boolean(flag) => flag.to_string(),
        })
    }
}

/// A table output.
pub fn table_port(name: &str, table: Table) -> Port {
    Port {
        name: name.to_owned(),
        data: Data::Table(to_wit(table)),
    }
}

/// A bytes output.
pub fn bytes_port(name: &str, bytes: impl Into<Vec<u8>>) -> Port {
    Port {
        name: name.to_owned(),
        data: Data::Bytes(bytes.into()),
    }
}

pub fn metric(name: &str, value: f64) -> Metric {
    Metric {
        name: name.to_owned(),
        value,
    }
}

sluice_ml::wit_table_conversions!(bindings::sluice::pipeline::tables);
