//! Build script: compiles the test guest (guest/, GNU assembly + freestanding
//! C) into `$OUT_DIR/novakvm-test-guest.elf` and exports its path as
//! `NOVAKVM_TEST_GUEST`. Without a usable gcc/ld the crate still builds: the
//! variable then names a path that does not exist, so only the tests that
//! boot the guest fail, with a message naming that path.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiler flags for a freestanding 64-bit guest without SSE or a red zone.
const CFLAGS: &[&str] = &[
    "-O2",
    "--param=min-pagesize=0",
    "-ffreestanding",
    "-fno-pic",
    "-fno-pie",
    "-mno-red-zone",
    "-mno-sse",
    "-mno-sse2",
    "-mno-mmx",
    "-mno-avx",
    "-mgeneral-regs-only",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fcf-protection=none",
    "-nostdlib",
    "-Wall",
    "-Wextra",
];

fn main() {
    println!("cargo:rerun-if-changed=guest");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=NOVAKVM_GUEST_CC");
    println!("cargo:rerun-if-env-changed=NOVAKVM_GUEST_LD");
    let out = env::var_os("OUT_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let elf = out.join("novakvm-test-guest.elf");
    let _ = std::fs::remove_file(&elf);
    match build_guest(Path::new("guest"), &out, &elf) {
        Ok(()) => println!("cargo:rustc-env=NOVAKVM_TEST_GUEST={}", elf.display()),
        Err(e) => {
            println!("cargo:warning=novakvm test guest not built: {e}");
            let missing = out.join("novakvm-test-guest.NOT-BUILT-see-cargo-warnings");
            println!("cargo:rustc-env=NOVAKVM_TEST_GUEST={}", missing.display());
        }
    }
}

fn build_guest(src: &Path, out: &Path, elf: &Path) -> Result<(), String> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch != "x86_64" {
        return Err(format!("target arch is {arch}, the guest is x86_64 only"));
    }
    let cc = env::var("NOVAKVM_GUEST_CC").unwrap_or_else(|_| "gcc".to_string());
    let ld = env::var("NOVAKVM_GUEST_LD").unwrap_or_else(|_| "ld".to_string());
    let mut objs = Vec::new();
    for name in ["boot.S", "main.c"] {
        let obj = out.join(format!("guest-{name}.o"));
        run(Command::new(&cc)
            .args(CFLAGS)
            .arg("-c")
            .arg(src.join(name))
            .arg("-o")
            .arg(&obj))?;
        objs.push(obj);
    }
    run(Command::new(&ld)
        .args(["-m", "elf_x86_64", "-nostdlib", "-static"])
        .args(["-z", "max-page-size=0x1000", "--build-id=none"])
        .arg("--no-warn-rwx-segments")
        .arg("-T")
        .arg(src.join("guest.ld"))
        .arg("-o")
        .arg(elf)
        .args(&objs))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {shown}: {e} (install gcc and binutils)"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "{shown} failed ({}): {}",
        out.status,
        stderr.lines().take(5).collect::<Vec<_>>().join(" | ")
    ))
}
