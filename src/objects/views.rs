//! Typed views over [`NovaObject`]: one Rust type per nova object the compute
//! agent handles, with a getter and a setter per field (generated into
//! `views_data.rs` from nova's own field definitions).
//!
//! A view is a checked [`NovaObject`]: building one validates the object
//! (name, readable version, field types, nested objects) and the view keeps
//! everything it was given, unknown fields included. Getters return `None`
//! for fields that are unset or null; setters record the change like nova's
//! `setattr` does, so `save` sends exactly the fields that were set.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::Value;

use super::isotime::{format_isotime, parse_isotime};
use super::registry;
use super::{NovaObject, ObjectError};

/// Common behaviour of every typed view.
pub trait ObjectView: Sized {
    /// Registered nova object name.
    const NAME: &'static str;
    /// Version this build reads and writes (nova 34.0.0's `VERSION`).
    const VERSION: &'static str;
    /// Wraps an object without checking it (callers check first).
    fn wrap_unchecked(obj: NovaObject) -> Self;
    /// The underlying generic object.
    fn object(&self) -> &NovaObject;
    /// The underlying generic object, mutable (changes are still tracked).
    fn object_mut(&mut self) -> &mut NovaObject;
    /// Unwraps into the generic object.
    fn into_object(self) -> NovaObject;

    /// Checks `obj` (name, readable version, deep field types) and wraps it.
    fn from_object(obj: NovaObject) -> Result<Self, ObjectError> {
        if obj.name() != Self::NAME {
            return Err(ObjectError::WrongObject {
                expected: Self::NAME,
                found: obj.name().to_owned(),
            });
        }
        registry::validate(&obj)?;
        Ok(Self::wrap_unchecked(obj))
    }

    /// Parses and checks an object primitive.
    fn from_value(v: &Value) -> Result<Self, ObjectError> {
        Self::from_object(NovaObject::from_value(v)?)
    }

    /// A new object with no field set, at [`Self::VERSION`].
    fn empty() -> Self {
        Self::wrap_unchecked(NovaObject::new(Self::NAME, Self::VERSION))
    }

    /// The wire form.
    fn to_value(&self) -> Value {
        self.object().to_value()
    }
}

pub(crate) fn get_str<'a>(o: &'a NovaObject, f: &str) -> Option<&'a str> {
    o.get(f).and_then(Value::as_str)
}

pub(crate) fn get_int(o: &NovaObject, f: &str) -> Option<i64> {
    o.get(f).and_then(Value::as_i64)
}

pub(crate) fn get_float(o: &NovaObject, f: &str) -> Option<f64> {
    o.get(f).and_then(Value::as_f64)
}

pub(crate) fn get_bool(o: &NovaObject, f: &str) -> Option<bool> {
    o.get(f).and_then(Value::as_bool)
}

pub(crate) fn get_time(o: &NovaObject, f: &str) -> Option<SystemTime> {
    o.get(f)
        .and_then(Value::as_str)
        .and_then(|s| parse_isotime(s).ok())
}

pub(crate) fn get_strmap(o: &NovaObject, f: &str) -> BTreeMap<String, String> {
    o.get(f)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn get_strs(o: &NovaObject, f: &str) -> Vec<String> {
    o.get(f)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn get_ints(o: &NovaObject, f: &str) -> Vec<i64> {
    o.get(f)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

pub(crate) fn get_intsets(o: &NovaObject, f: &str) -> Vec<Vec<i64>> {
    o.get(f)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_array)
                .map(|s| s.iter().filter_map(Value::as_i64).collect())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn get_view<T: ObjectView>(o: &NovaObject, f: &str) -> Result<Option<T>, ObjectError> {
    match o.object(f)? {
        None => Ok(None),
        Some(n) => T::from_object(n).map(Some),
    }
}

pub(crate) fn get_views<T: ObjectView>(o: &NovaObject, f: &str) -> Result<Vec<T>, ObjectError> {
    o.objects(f)?.into_iter().map(T::from_object).collect()
}

pub(crate) fn opt_str(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| Value::String(s.to_owned()))
}

pub(crate) fn opt_time(v: Option<SystemTime>) -> Value {
    v.map_or(Value::Null, |t| Value::String(format_isotime(t)))
}

pub(crate) fn strmap(m: &BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

pub(crate) fn intsets(v: &[Vec<i64>]) -> Value {
    Value::Array(v.iter().map(|s| Value::from(s.clone())).collect())
}

pub(crate) fn views<T: ObjectView>(v: &[T]) -> Value {
    Value::Array(v.iter().map(ObjectView::to_value).collect())
}

/// Declares a view type.
macro_rules! view {
    ($ty:ident, $name:literal, $version:literal) => {
        #[doc = concat!("Typed view of nova's `", $name, "` object (version ", $version, ").")]
        #[derive(Debug, Clone, PartialEq)]
        pub struct $ty(NovaObject);

        impl ObjectView for $ty {
            const NAME: &'static str = $name;
            const VERSION: &'static str = $version;
            fn wrap_unchecked(obj: NovaObject) -> Self {
                Self(obj)
            }
            fn object(&self) -> &NovaObject {
                &self.0
            }
            fn object_mut(&mut self) -> &mut NovaObject {
                &mut self.0
            }
            fn into_object(self) -> NovaObject {
                self.0
            }
        }

        impl TryFrom<NovaObject> for $ty {
            type Error = ObjectError;
            fn try_from(obj: NovaObject) -> Result<Self, ObjectError> {
                <$ty as ObjectView>::from_object(obj)
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let obj = NovaObject::deserialize(d)?;
                <$ty as ObjectView>::from_object(obj).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Declares the getters and setters of a view: `getter / setter = "field": kind`.
macro_rules! fields {
    ($ty:ident { $($get:ident / $set:ident = $f:literal : $kind:tt),* $(,)? }) => {
        impl $ty {
            $( field!($get, $set, $f, $kind); )*
        }
    };
}

/// One getter/setter pair; see [`fields!`].
macro_rules! field {
    ($get:ident, $set:ident, $f:literal, str) => {
        #[doc = concat!("Field `", $f, "` (a string); `None` when unset or null.")]
        pub fn $get(&self) -> Option<&str> { get_str(&self.0, $f) }
        #[doc = concat!("Sets field `", $f, "` (`None` writes null) and records the change.")]
        pub fn $set(&mut self, v: Option<&str>) { self.0.set($f, opt_str(v)) }
    };
    ($get:ident, $set:ident, $f:literal, int) => {
        #[doc = concat!("Field `", $f, "` (an integer); `None` when unset or null.")]
        pub fn $get(&self) -> Option<i64> { get_int(&self.0, $f) }
        #[doc = concat!("Sets field `", $f, "` and records the change.")]
        pub fn $set(&mut self, v: Option<i64>) { self.0.set($f, v.map_or(Value::Null, Value::from)) }
    };
    ($get:ident, $set:ident, $f:literal, float) => {
        #[doc = concat!("Field `", $f, "` (a float); `None` when unset or null.")]
        pub fn $get(&self) -> Option<f64> { get_float(&self.0, $f) }
        #[doc = concat!("Sets field `", $f, "` and records the change.")]
        pub fn $set(&mut self, v: Option<f64>) { self.0.set($f, v.map_or(Value::Null, Value::from)) }
    };
    ($get:ident, $set:ident, $f:literal, bool) => {
        #[doc = concat!("Field `", $f, "` (a boolean); `None` when unset or null.")]
        pub fn $get(&self) -> Option<bool> { get_bool(&self.0, $f) }
        #[doc = concat!("Sets field `", $f, "` and records the change.")]
        pub fn $set(&mut self, v: Option<bool>) { self.0.set($f, v.map_or(Value::Null, Value::from)) }
    };
    ($get:ident, $set:ident, $f:literal, time) => {
        #[doc = concat!("Field `", $f, "` (a timestamp); `None` when unset, null or unreadable.")]
        pub fn $get(&self) -> Option<SystemTime> { get_time(&self.0, $f) }
        #[doc = concat!("Sets field `", $f, "` (written as `%Y-%m-%dT%H:%M:%SZ`) and records the change.")]
        pub fn $set(&mut self, v: Option<SystemTime>) { self.0.set($f, opt_time(v)) }
    };
    ($get:ident, $set:ident, $f:literal, strmap) => {
        #[doc = concat!("Field `", $f, "` (a dict of strings; null values skipped); empty when unset.")]
        pub fn $get(&self) -> BTreeMap<String, String> { get_strmap(&self.0, $f) }
        #[doc = concat!("Sets field `", $f, "` and records the change.")]
        pub fn $set(&mut self, v: &BTreeMap<String, String>) { self.0.set($f, strmap(v)) }
    };
    ($get:ident, $set:ident, $f:literal, strs) => {
        #[doc = concat!("Field `", $f, "` (a list or set of strings); empty when unset.")]
        pub fn $get(&self) -> Vec<String> { get_strs(&self.0, $f) }
        #[doc = concat!("Sets field `", $f, "` and records the change.")]
        pub fn $set(&mut self, v: &[String]) { self.0.set($f, Value::from(v.to_vec())) }
    };
    ($get:ident, $set:ident, $f:literal, ints) => {
        #[doc = concat!("Field `", $f, "` (a list or set of integers); empty when unset.")]
        pub fn $get(&self) -> Vec<i64> { get_ints(&self.0, $f) }
        #[doc = concat!("Sets field `", $f, "` and records the change.")]
        pub fn $set(&mut self, v: &[i64]) { self.0.set($f, Value::from(v.to_vec())) }
    };
    ($get:ident, $set:ident, $f:literal, intsets) => {
        #[doc = concat!("Field `", $f, "` (a list of sets of integers); empty when unset.")]
        pub fn $get(&self) -> Vec<Vec<i64>> { get_intsets(&self.0, $f) }
        #[doc = concat!("Sets field `", $f, "` and records the change.")]
        pub fn $set(&mut self, v: &[Vec<i64>]) { self.0.set($f, intsets(v)) }
    };
    ($get:ident, $set:ident, $f:literal, raw) => {
        #[doc = concat!("Field `", $f, "` as raw JSON; `None` when unset.")]
        pub fn $get(&self) -> Option<&Value> { self.0.get($f) }
        #[doc = concat!("Sets field `", $f, "` to raw JSON and records the change.")]
        pub fn $set(&mut self, v: Value) { self.0.set($f, v) }
    };
    ($get:ident, $set:ident, $f:literal, ($view:ident)) => {
        #[doc = concat!("Field `", $f, "`: the nested `", stringify!($view), "`; `None` when unset or null.")]
        pub fn $get(&self) -> Result<Option<$view>, ObjectError> { get_view(&self.0, $f) }
        #[doc = concat!("Sets field `", $f, "` (`None` writes null) and records the change.")]
        pub fn $set(&mut self, v: Option<&$view>) { self.0.set($f, v.map_or(Value::Null, ObjectView::to_value)) }
    };
    ($get:ident, $set:ident, $f:literal, [$view:ident]) => {
        #[doc = concat!("Field `", $f, "`: the nested list of `", stringify!($view), "`; empty when unset or null.")]
        pub fn $get(&self) -> Result<Vec<$view>, ObjectError> { get_views(&self.0, $f) }
        #[doc = concat!("Sets field `", $f, "` and records the change.")]
        pub fn $set(&mut self, v: &[$view]) { self.0.set($f, views(v)) }
    };
}

include!("views_data.rs");
