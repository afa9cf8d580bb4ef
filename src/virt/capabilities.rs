//! What a driver can do (nova's `ComputeDriver.capabilities`), asked of
//! the driver; Placement's `COMPUTE_*` traits are derived from it
//! (`capabilities_as_traits`).

use serde::{Deserialize, Serialize};

/// What the driver can do; each field is one of nova's
/// `ComputeDriver.capabilities` that maps to a trait (`CAPABILITY_TRAITS_MAP`).
/// A trait is reported only when its capability is true, and removed when
/// false.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    pub supports_attach_interface: bool,
    pub supports_device_tagging: bool,
    pub supports_tagged_attach_interface: bool,
    pub supports_tagged_attach_volume: bool,
    pub supports_extend_volume: bool,
    pub supports_multiattach: bool,
    pub supports_trusted_certs: bool,
    pub supports_accelerators: bool,
    pub supports_image_type_aki: bool,
    pub supports_image_type_ami: bool,
    pub supports_image_type_ari: bool,
    pub supports_image_type_iso: bool,
    pub supports_image_type_qcow2: bool,
    pub supports_image_type_raw: bool,
    pub supports_image_type_vdi: bool,
    pub supports_image_type_vhd: bool,
    pub supports_image_type_vhdx: bool,
    pub supports_image_type_vmdk: bool,
    pub supports_image_type_ploop: bool,
    pub supports_migrate_to_same_host: bool,
    pub supports_bfv_rescue: bool,
    pub supports_secure_boot: bool,
    pub supports_socket_pci_numa_affinity: bool,
    pub supports_remote_managed_ports: bool,
    pub supports_ephemeral_encryption: bool,
    pub supports_ephemeral_encryption_luks: bool,
    pub supports_ephemeral_encryption_plain: bool,
    pub supports_address_space_passthrough: bool,
    pub supports_address_space_emulated: bool,
    pub supports_stateless_firmware: bool,
    pub supports_virtio_fs: bool,
    pub supports_mem_backing_file: bool,
    /// Not a trait: the driver keeps an image cache (`manage_image_cache`).
    pub has_imagecache: bool,
    /// Not a trait: the driver can pin guests to PCPUs.
    pub supports_pcpus: bool,
}

impl Capabilities {
    /// What novakvm's KVM driver supports today: direct kernel boot from
    /// AKI/ARI kernels and ramdisks with raw, qcow2 (converted to raw) or
    /// AMI root images. Widen this as the VMM gains features; every true
    /// field becomes a trait the scheduler trusts.
    pub fn novakvm() -> Self {
        Self {
            supports_image_type_raw: true,
            supports_pcpus: true,
            ..Self::default()
        }
    }
}

/// Each capability with its trait, as nova's `capabilities_as_traits()`.
pub fn capability_traits(c: &Capabilities) -> Vec<(&'static str, bool)> {
    vec![
        ("COMPUTE_NET_ATTACH_INTERFACE", c.supports_attach_interface),
        ("COMPUTE_DEVICE_TAGGING", c.supports_device_tagging),
        (
            "COMPUTE_NET_ATTACH_INTERFACE_WITH_TAG",
            c.supports_tagged_attach_interface,
        ),
        (
            "COMPUTE_VOLUME_ATTACH_WITH_TAG",
            c.supports_tagged_attach_volume,
        ),
        ("COMPUTE_VOLUME_EXTEND", c.supports_extend_volume),
        ("COMPUTE_VOLUME_MULTI_ATTACH", c.supports_multiattach),
        ("COMPUTE_TRUSTED_CERTS", c.supports_trusted_certs),
        ("COMPUTE_ACCELERATORS", c.supports_accelerators),
        ("COMPUTE_IMAGE_TYPE_AKI", c.supports_image_type_aki),
        ("COMPUTE_IMAGE_TYPE_AMI", c.supports_image_type_ami),
        ("COMPUTE_IMAGE_TYPE_ARI", c.supports_image_type_ari),
        ("COMPUTE_IMAGE_TYPE_ISO", c.supports_image_type_iso),
        ("COMPUTE_IMAGE_TYPE_QCOW2", c.supports_image_type_qcow2),
        ("COMPUTE_IMAGE_TYPE_RAW", c.supports_image_type_raw),
        ("COMPUTE_IMAGE_TYPE_VDI", c.supports_image_type_vdi),
        ("COMPUTE_IMAGE_TYPE_VHD", c.supports_image_type_vhd),
        ("COMPUTE_IMAGE_TYPE_VHDX", c.supports_image_type_vhdx),
        ("COMPUTE_IMAGE_TYPE_VMDK", c.supports_image_type_vmdk),
        ("COMPUTE_IMAGE_TYPE_PLOOP", c.supports_image_type_ploop),
        (
            "COMPUTE_SAME_HOST_COLD_MIGRATE",
            c.supports_migrate_to_same_host,
        ),
        ("COMPUTE_RESCUE_BFV", c.supports_bfv_rescue),
        ("COMPUTE_SECURITY_UEFI_SECURE_BOOT", c.supports_secure_boot),
        (
            "COMPUTE_SOCKET_PCI_NUMA_AFFINITY",
            c.supports_socket_pci_numa_affinity,
        ),
        (
            "COMPUTE_REMOTE_MANAGED_PORTS",
            c.supports_remote_managed_ports,
        ),
        (
            "COMPUTE_EPHEMERAL_ENCRYPTION",
            c.supports_ephemeral_encryption,
        ),
        (
            "COMPUTE_EPHEMERAL_ENCRYPTION_LUKS",
            c.supports_ephemeral_encryption_luks,
        ),
        (
            "COMPUTE_EPHEMERAL_ENCRYPTION_PLAIN",
            c.supports_ephemeral_encryption_plain,
        ),
        (
            "COMPUTE_ADDRESS_SPACE_PASSTHROUGH",
            c.supports_address_space_passthrough,
        ),
        (
            "COMPUTE_ADDRESS_SPACE_EMULATED",
            c.supports_address_space_emulated,
        ),
        (
            "COMPUTE_SECURITY_STATELESS_FIRMWARE",
            c.supports_stateless_firmware,
        ),
        ("COMPUTE_STORAGE_VIRTIO_FS", c.supports_virtio_fs),
        ("COMPUTE_MEM_BACKING_FILE", c.supports_mem_backing_file),
    ]
}
