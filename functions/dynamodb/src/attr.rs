//! Attribute values in and out, and the mapping of SDK errors to [`StoreError`].

use std::collections::HashMap;
use std::error::Error;
use std::fmt::Debug;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use wa_domain::ports::StoreError;

/// An item as the SDK sees it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Any failure to talk to DynamoDB, with its source kept.
pub(crate) fn unavailable<E>(e: E) -> StoreError
where
    E: Error + Send + Sync + 'static,
{
    StoreError::Unavailable(Box::new(e))
}

/// The result of a conditional write: `Ok(true)` when written, `Ok(false)` when the condition
/// failed, `Err` for anything else.
pub(crate) fn conditional<T, E, R>(r: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(unavailable(e)),
    }
}

fn corrupt(name: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("attribute `{name}`: {what}"))
}

/// A string attribute that may be absent; present with another type is corrupt.
pub(crate) fn opt_s<'a>(item: &'a Item, name: &str) -> Result<Option<&'a str>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v)),
        Some(_) => Err(corrupt(name, "not a string")),
    }
}

/// A string attribute that must be present.
pub(crate) fn req_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    opt_s(item, name)?.ok_or_else(|| corrupt(name, "missing"))
}

/// A number attribute that may be absent.
pub(crate) fn opt_n(item: &Item, name: &str) -> Result<Option<i64>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| corrupt(name, "not an integer")),
        Some(_) => Err(corrupt(name, "not a number")),
    }
}

/// A number attribute that must be present.
pub(crate) fn req_n(item: &Item, name: &str) -> Result<i64, StoreError> {
    opt_n(item, name)?.ok_or_else(|| corrupt(name, "missing"))
}

/// A boolean attribute; absent is `false`.
pub(crate) fn flag(item: &Item, name: &str) -> Result<bool, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(false),
        Some(AttributeValue::Bool(b)) => Ok(*b),
        Some(_) => Err(corrupt(name, "not a boolean")),
    }
}

/// Builds an UpdateItem expression and its names and values, so optional attributes can be
/// added one by one without hand-counting placeholders.
#[derive(Default)]
pub(crate) struct Update {
    sets: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    /// `#name = :value`, always overwriting.
    pub(crate) fn set(&mut self, name: &str, value: AttributeValue) -> &mut Self {
        let (n, v) = self.bind(name, value);
        self.sets.push(format!("{n} = {v}"));
        self
    }

    /// `#name = if_not_exists(#name, :value)`: the first value written is kept.
    pub(crate) fn set_once(&mut self, name: &str, value: AttributeValue) -> &mut Self {
        let (n, v) = self.bind(name, value);
        self.sets.push(format!("{n} = if_not_exists({n}, {v})"));
        self
    }

    /// Adds a clause built from placeholders returned by [`Update::bind`].
    pub(crate) fn set_raw(&mut self, clause: String) -> &mut Self {
        self.sets.push(clause);
        self
    }

    /// Binds a name and a value for use in a condition; returns their placeholders.
    pub(crate) fn bind(&mut self, name: &str, value: AttributeValue) -> (String, String) {
        let n = self.name(name);
        let v = format!(":v{}", self.values.len());
        self.values.insert(v.clone(), value);
        (n, v)
    }

    /// Binds a name only (the same name always gets the same placeholder).
    pub(crate) fn name(&mut self, name: &str) -> String {
        if let Some((n, _)) = self.names.iter().find(|(_, v)| v.as_str() == name) {
            return n.clone();
        }
        let n = format!("#n{}", self.names.len());
        self.names.insert(n.clone(), name.to_owned());
        n
    }

    /// Whether nothing is set.
    pub(crate) fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// The `SET …` expression, the names and the values.
    pub(crate) fn finish(
        self,
    ) -> (
        String,
        HashMap<String, String>,
        HashMap<String, AttributeValue>,
    ) {
        (
            format!("SET {}", self.sets.join(", ")),
            self.names,
            self.values,
        )
    }
}
