//! The Linux 64-bit boot protocol path (ELF without a PVH note): the vCPU starts in long
//! mode on identity page tables with RSI = zero page. A hand-assembled 64-bit ELF prints
//! 'L', the zero page's e820 entry count and the first cmdline byte, then powers off.

mod vmm_common;

use vmm_common::*;

fn elf64(code: &[u8]) -> Vec<u8> {
    const LOAD: u64 = 0x10_0000;
    let code_off = 64 + 56;
    let entry = LOAD + code_off as u64;
    let mut f = Vec::new();
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&0x3eu16.to_le_bytes()); // x86_64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&entry.to_le_bytes());
    f.extend_from_slice(&64u64.to_le_bytes()); // phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    f.extend_from_slice(&64u16.to_le_bytes()); // ehsize
    f.extend_from_slice(&56u16.to_le_bytes()); // phentsize
    f.extend_from_slice(&1u16.to_le_bytes()); // phnum
    f.extend_from_slice(&[0; 6]); // shentsize, shnum, shstrndx
    let size = (code_off + code.len()) as u64;
    f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // R+X
    f.extend_from_slice(&0u64.to_le_bytes()); // offset
    f.extend_from_slice(&LOAD.to_le_bytes()); // vaddr
    f.extend_from_slice(&LOAD.to_le_bytes()); // paddr
    f.extend_from_slice(&size.to_le_bytes());
    f.extend_from_slice(&size.to_le_bytes());
    f.extend_from_slice(&0x1000u64.to_le_bytes());
    f.extend_from_slice(code);
    f
}

#[test]
fn long_mode_entry_with_zero_page() {
    let code: &[u8] = &[
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xb0, b'L', 0xee, // mov al, 'L'; out dx, al
        0x8a, 0x86, 0xe8, 0x01, 0x00, 0x00, // mov al, [rsi + 0x1e8]  (e820_entries)
        0x04, b'0', 0xee, // add al, '0'; out dx, al
        0x8b, 0x9e, 0x28, 0x02, 0x00, 0x00, // mov ebx, [rsi + 0x228] (cmd_line_ptr)
        0x8a, 0x03, 0xee, // mov al, [rbx]; out dx, al
        0xb0, b'\n', 0xee, // newline
        0x66, 0xba, 0x04, 0x06, // mov dx, 0x604
        0x66, 0xb8, 0x00, 0x20, 0x66, 0xef, // mov ax, 0x2000; out dx, ax
        0xf4, // hlt
    ];
    let d = tempfile::tempdir().unwrap();
    let k = d.path().join("vmlinux");
    std::fs::write(&k, elf64(code)).unwrap();
    let (st, out, err) = run_direct(&[
        "--kernel",
        k.to_str().unwrap(),
        "--memory-mib",
        "64",
        "--cmdline",
        "Zconsole=ttyS0",
    ]);
    assert_eq!(out, "L3Z\n", "{err}");
    assert_eq!(st.code(), Some(0), "{err}");
}
