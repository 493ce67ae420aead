//! One call of a component's `sluice:pipeline/transform` export: the request built from
//! the task's inputs (tables handed over in memory, or read from their CSV files; other
//! artifacts as bytes; parameters typed), and the response checked against the declared
//! outputs, whose tables are handed back in memory or written as CSV files.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::sandbox::{GUEST_INPUTS, GUEST_OUTPUTS};
use super::state::StepState;
use super::{Streams, completion, failure, typed_invocation};
use crate::exec::{Completion, Failure, FailureKind, HeldTable, Invocation, Paths, TransformCall};
use crate::table::{Column, ColumnData, Table, TextColumn};
use crate::wasm::bindings::{self, StepError, tables, transform};

pub(super) fn transform_call(
    store: &mut Store<StepState>,
    pre: &InstancePre<StepState>,
    indices: &transform::GuestIndices,
    inv: &mut Invocation,
    call: &TransformCall,
    io: &Streams,
) -> Result<Completion, Failure> {
    let request = request(inv, call)?;
    let instance = pre.instantiate(&mut *store).map_err(|e| failure(e, io))?;
    let guest = indices
        .load(&mut *store, &instance)
        .map_err(|e| failure(e, io))?;
    let response = match guest
        .call_transform(&mut *store, &request)
        .map_err(|e| failure(e, io))?
    {
        Ok(response) => response,
        Err(StepError::InvalidInput(m)) => {
            return Err(Failure {
                kind: FailureKind::InvalidInput,
                message: format!("invalid input: {m}"),
            });
        }
        Err(StepError::Failed(m)) => return Err(Failure::failed(m)),
    };
    drop(request);

    let mut held = BTreeMap::new();
    for port in response.outputs {
        let name = port.name;
        let declared = inv.component.output(&name);
        if declared.is_none_or(|o| o.param_type().is_some()) {
            return Err(Failure::failed(format!(
                "the transform returned '{name}', which is not a declared artifact output"
            )));
        }
        let is_table = call.tables.contains(&name);
        match (port.data, is_table) {
            (transform::Data::Table(table), true) => {
                let table = from_wit(table)
                    .and_then(|t| t.check().map(|()| t).map_err(|e| e.to_string()))
                    .map_err(|m| Failure::failed(format!("output '{name}': {m}")))?;
                if call.in_memory.contains(&name) {
                    if call.also_written.contains(&name) {
                        write(inv, &name, &table.to_csv())?;
                    }
                    let (digest, size) = table.digest();
                    held.insert(
                        name.clone(),
                        HeldTable {
                            table: Arc::new(table),
                            digest,
                            size,
                        },
                    );
                } else {
                    write(inv, &name, &table.to_csv())?;
                }
            }
            (transform::Data::Bytes(bytes), false) => write(inv, &name, &bytes)?,
            (_, true) => {
                return Err(Failure::failed(format!(
                    "output '{name}' is declared a table but came back as bytes"
                )));
            }
            (_, false) => {
                return Err(Failure::failed(format!(
                    "output '{name}' is declared bytes but came back as a table"
                )));
            }
        }
    }
    for output in &inv.component.spec.outputs {
        let returned =
            held.contains_key(&output.name) || inv.dir.output_file(&output.name).exists();
        if output.param_type().is_none() && !returned {
            return Err(Failure::failed(format!(
                "the transform did not return output '{}'",
                output.name
            )));
        }
    }
    let mut metrics = std::mem::take(&mut store.data_mut().metrics);
    let mut done = completion(
        inv,
        bindings::Outcome {
            params: response.params,
            metrics: response.metrics,
        },
        &mut metrics,
    )?;
    done.tables = held;
    Ok(done)
}

/// Parameters as a typed step gets them; artifact inputs as tables or bytes.
fn request(inv: &mut Invocation, call: &TransformCall) -> Result<transform::Request, Failure> {
    let typed = typed_invocation(
        inv,
        Paths::Under {
            inputs: GUEST_INPUTS,
            outputs: GUEST_OUTPUTS,
        },
    )?;
    let mut inputs = Vec::with_capacity(typed.inputs.len());
    for artifact in typed.inputs {
        let name = artifact.name;
        let handed = inv.inputs.get_mut(&name).and_then(|arg| arg.table.take());
        let data = if call.tables.contains(&name) {
            let table = match handed {
                // Shared only when another attempt may need it again.
                Some(table) => {
                    Arc::try_unwrap(table).unwrap_or_else(|shared| Table::clone(&shared))
                }
                None => {
                    let bytes = read(inv, &name)?;
                    Table::from_csv(&bytes).map_err(|m| Failure {
                        kind: FailureKind::InvalidInput,
                        message: format!("input '{name}' is not a CSV table: {m}"),
                    })?
                }
            };
            transform::Data::Table(to_wit(table))
        } else {
            transform::Data::Bytes(read(inv, &name)?)
        };
        inputs.push(transform::Port { name, data });
    }
    Ok(transform::Request {
        params: typed.params,
        inputs,
    })
}

fn read(inv: &Invocation, name: &str) -> Result<Vec<u8>, Failure> {
    let path = inv.dir.input_file(name);
    std::fs::read(&path).map_err(|e| {
        Failure::failed(format!(
            "cannot read input '{name}' ({}): {e}",
            path.display()
        ))
    })
}

fn write(inv: &Invocation, name: &str, bytes: &[u8]) -> Result<(), Failure> {
    let path = inv.dir.output_file(name);
    std::fs::write(&path, bytes).map_err(|e| {
        Failure::failed(format!(
            "cannot write output '{name}' ({}): {e}",
            path.display()
        ))
    })
}

fn to_wit(table: Table) -> tables::Table {
    use tables::ColumnData as Wit;
    let mut columns = Vec::with_capacity(table.columns.len());
    for c in table.columns {
        let data = match c.data {
            ColumnData::Float64(v) => Wit::Float64(v),
            ColumnData::Int64(v) => Wit::Int64(v),
            ColumnData::Boolean(v) => Wit::Boolean(v),
            ColumnData::Text(v) => {
                let (data, offsets) = v.into_parts();
                Wit::Text(tables::TextColumn { data, offsets })
            }
        };
        columns.push(tables::Column { name: c.name, data });
    }
    tables::Table {
        rows: table.rows,
        columns,
    }
}

fn from_wit(table: tables::Table) -> Result<Table, String> {
    use tables::ColumnData as Wit;
    let mut columns = Vec::with_capacity(table.columns.len());
    for c in table.columns {
        let data = match c.data {
            Wit::Float64(v) => ColumnData::Float64(v),
            Wit::Int64(v) => ColumnData::Int64(v),
            Wit::Boolean(v) => ColumnData::Boolean(v),
            Wit::Text(text) => ColumnData::Text(
                TextColumn::new(text.data, text.offsets)
                    .map_err(|m| format!("column '{}': {m}", c.name))?,
            ),
        };
        columns.push(Column { name: c.name, data });
    }
    Ok(Table {
        rows: table.rows,
        columns,
    })
}
