//! The semantic proof: re-read the old and the new text with a second, independent YAML reader
//! (serde-saphyr) and show that the only difference is the intended flag in the apiserver
//! container's argument list. If the original is JSON, the result must still be JSON.

use serde_json::Value;

use super::edit::Target;
use super::flags::{self, BoolValue, EXTEND_TOKEN_EXPIRATION};
use super::{ErrorKind, ManifestError};

fn fail(why: impl Into<String>) -> ManifestError {
    ManifestError::new(ErrorKind::ProofFailed(why.into()))
}

pub fn prove(old: &str, new: &str, target: Target) -> Result<(), ManifestError> {
    let old_value: Value = serde_saphyr::from_str(old)
        .map_err(|e| fail(format!("the original does not re-read: {e}")))?;
    let new_value: Value = serde_saphyr::from_str(new)
        .map_err(|e| fail(format!("the edited text does not parse: {e}")))?;
    prove_values(old_value, new_value, target)?;
    if let Ok(old_json) = serde_json::from_str::<Value>(old) {
        let new_json = serde_json::from_str::<Value>(new)
            .map_err(|e| fail(format!("the manifest was JSON and the edit is not: {e}")))?;
        prove_values(old_json, new_json, target)?;
    }
    Ok(())
}

fn prove_values(mut old: Value, mut new: Value, target: Target) -> Result<(), ManifestError> {
    let old_index = container_index(&old).ok_or_else(|| fail("no apiserver container before"))?;
    let new_index = container_index(&new).ok_or_else(|| fail("no apiserver container after"))?;
    if old_index != new_index {
        return Err(fail("the apiserver container moved"));
    }
    let (old_command, old_args) = take_lists(&mut old, old_index);
    let (new_command, new_args) = take_lists(&mut new, new_index);
    if old != new {
        return Err(fail("something other than the argument list changed"));
    }
    if old_command.is_some() != new_command.is_some() || old_args.is_some() != new_args.is_some() {
        return Err(fail("a command or args list appeared or disappeared"));
    }
    let old_command = old_command.unwrap_or_default();
    let new_command = new_command.unwrap_or_default();
    let old_args = old_args.unwrap_or_default();
    let new_args = new_args.unwrap_or_default();
    if old_command.first() != new_command.first() {
        return Err(fail("the program name changed"));
    }
    if without_flag(&old_command) != without_flag(&new_command)
        || without_flag(&old_args) != without_flag(&new_args)
    {
        return Err(fail("an argument other than the flag changed"));
    }

    let mut arguments: Vec<&str> = Vec::new();
    for value in new_command.iter().skip(1).chain(new_args.iter()) {
        arguments.push(
            value
                .as_str()
                .ok_or_else(|| fail("a non-string argument"))?,
        );
    }
    let found = flags::occurrences(&arguments, EXTEND_TOKEN_EXPIRATION);
    match target {
        Target::Remove if found.is_empty() => Ok(()),
        Target::Remove => Err(fail("the flag is still there")),
        Target::Set(value) => match found.as_slice() {
            [only] => {
                let written = flags::split_flag(arguments[*only]).and_then(|(_, v)| v);
                if flags::bool_value(written) == BoolValue::Valid(value) {
                    Ok(())
                } else {
                    Err(fail("the flag does not have the intended value"))
                }
            }
            _ => Err(fail(format!(
                "the flag is written {} times, not once",
                found.len()
            ))),
        },
    }
}

/// Same rule as the editor: the container named kube-apiserver, else the first whose program is.
fn container_index(pod: &Value) -> Option<usize> {
    let containers = pod.pointer("/spec/containers")?.as_array()?;
    containers
        .iter()
        .position(|c| c.get("name").and_then(Value::as_str) == Some("kube-apiserver"))
        .or_else(|| {
            containers.iter().position(|c| {
                c.pointer("/command/0")
                    .and_then(Value::as_str)
                    .map(|p| p.rsplit('/').next().unwrap_or(p))
                    .is_some_and(|p| p.starts_with("kube-apiserver"))
            })
        })
}

fn take_lists(pod: &mut Value, index: usize) -> (Option<Vec<Value>>, Option<Vec<Value>>) {
    let container = pod
        .pointer_mut(&format!("/spec/containers/{index}"))
        .and_then(Value::as_object_mut)
        .expect("container_index found it");
    let mut take = |key: &str| {
        container.remove(key).map(|v| match v {
            Value::Array(items) => items,
            other => vec![other],
        })
    };
    (take("command"), take("args"))
}

/// The list with every occurrence of the flag (before a `--`) removed.
fn without_flag(list: &[Value]) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut flags_end = false;
    for value in list {
        let s = value.as_str();
        if s == Some("--") {
            flags_end = true;
        }
        let is_flag = !flags_end
            && s.and_then(flags::split_flag)
                .is_some_and(|(name, _)| name == EXTEND_TOKEN_EXPIRATION);
        if !is_flag {
            out.push(value);
        }
    }
    out
}
