//! Nova versioned objects as nova 34.0.0 sends and expects them on the RPC
//! wire (oslo.versionedobjects primitives).
//!
//! - [`NovaObject`]: the generic wire form (`nova_object.name`, `.namespace`,
//!   `.version`, `.data`, `.changes`), keeping unknown fields and keys, with
//!   change tracking like nova's `setattr` / `obj_what_changed` /
//!   `obj_get_changes` / `obj_reset_changes`.
//! - [`registry`]: every object class of nova 34.0.0 with its version and
//!   field types (generated from nova's sources), deep validation, and the
//!   version manifests (`object_versions`) sent to the conductor.
//! - [`views`]: typed views (Instance, Flavor, ImageMeta, RequestSpec,
//!   Service, ComputeNode, NUMATopology, BlockDeviceMapping, ...).
//! - [`action`]: conductor `object_action` / `object_class_action_versions`
//!   arguments and applying their `[updates, result]` replies.
//! - [`compute`]: constructors for the Service and ComputeNode nova-compute
//!   creates itself.
//!
//! ```
//! use novakvm::objects::action::{apply_updates, object_action_args, ActionReply};
//! use novakvm::objects::views::Service;
//! use novakvm::objects::ObjectView;
//! use serde_json::{json, Map};
//!
//! // Service.create: send the object, apply the conductor's [updates, result].
//! let mut svc = Service::for_compute("cmp1");
//! let call = object_action_args(svc.object(), "create", vec![], Map::new());
//! assert_eq!(call["objinst"]["nova_object.data"]["version"], 74);
//! let reply = json!([{"id": 4, "obj_what_changed": []}, null]);
//! apply_updates(svc.object_mut(), &ActionReply::parse(&reply)?);
//! assert_eq!(svc.id(), Some(4));
//!
//! // Service.save sends only what changed.
//! svc.set_report_count(Some(1));
//! let call = object_action_args(svc.object(), "save", vec![], Map::new());
//! assert_eq!(call["objinst"]["nova_object.changes"], json!(["report_count"]));
//! # Ok::<(), novakvm::objects::ObjectError>(())
//! ```

pub mod action;
pub mod compute;
mod error;
pub mod isotime;
pub mod registry;
mod registry_data;
mod version;
pub mod views;
mod wire;

pub use error::ObjectError;
pub use version::ObjectVersion;
pub use views::ObjectView;
pub use wire::{
    equal_ignoring_changes, NovaObject, KEY_CHANGES, KEY_DATA, KEY_NAME, KEY_NAMESPACE,
    KEY_VERSION, NAMESPACE,
};
