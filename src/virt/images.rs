//! PLACE-HOLDER of the image layer's API (issue #10): every call fails.
//! The real module (Glance download, cache, format inspection) is being
//! written on branch `images`; it replaces this file.
#![allow(missing_docs, dead_code, clippy::all)]
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct ImageError;
pub struct ImageAuth;
impl ImageAuth {
    pub fn from_context(_c: &crate::rpc::RequestContext) -> Self {
        ImageAuth
    }
}
pub struct GlanceImage {
    pub id: String,
    pub properties: BTreeMap<String, Value>,
}
impl GlanceImage {
    pub fn from_nova_image_dict(_v: &Value) -> Result<Self, ImageError> {
        Err(ImageError)
    }
    pub fn property_str(&self, _k: &str) -> Option<&str> {
        None
    }
}
pub struct BaseImage {
    pub path: PathBuf,
    pub virtual_size: u64,
}
#[derive(Debug)]
pub struct CleanupReport;
pub struct ImageService;
impl ImageService {
    pub fn new(_c: &crate::config::Config) -> Result<Self, ImageError> {
        Ok(ImageService)
    }
    pub async fn fetch_to_raw(
        &self,
        _a: &ImageAuth,
        _i: &GlanceImage,
    ) -> Result<BaseImage, ImageError> {
        Err(ImageError)
    }
    pub async fn fetch_file(&self, _a: &ImageAuth, _i: &str, _d: &Path) -> Result<(), ImageError> {
        Err(ImageError)
    }
    pub fn cleanup(&self, _u: &HashSet<String>) -> Result<CleanupReport, ImageError> {
        Err(ImageError)
    }
}
pub fn create_root_disk(_b: &BaseImage, _d: &Path, _g: u64) -> Result<(), ImageError> {
    Err(ImageError)
}
pub fn create_ephemeral(_d: &Path, _g: u64) -> Result<(), ImageError> {
    Err(ImageError)
}
pub fn create_swap(_d: &Path, _g: u64) -> Result<(), ImageError> {
    Err(ImageError)
}
