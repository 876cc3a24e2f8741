//! JSON helpers shared by the webhook split and the payload model.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// A `T` read only from a JSON object. A derived `Deserialize` also reads a struct from an
/// array, field by field in order (`["1"]` as a webhook's metadata would be phone number id
/// `1`); that is never what Meta means, so an array (or anything but an object) is refused with
/// serde's own "invalid type" error. Zero-copy: `T` borrows from the input as it would alone.
pub(crate) struct Object<T>(pub(crate) T);

impl<T> std::ops::Deref for Object<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Default> Default for Object<T> {
    fn default() -> Self {
        Object(T::default())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Only<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Only<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        deserializer.deserialize_map(Only(std::marker::PhantomData))
    }
}
