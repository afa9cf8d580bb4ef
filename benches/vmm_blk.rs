//! virtio-blk read benchmark: the test guest's polled virtio-blk driver reads N MiB in
//! 4 KiB requests (queue depth 1), sequentially and at random 4 KiB-aligned offsets,
//! against `pread` of the same pattern on the host in the same run. Run with:
//!
//! ```text
//! cargo bench --bench vmm_blk
//! ```
//!
//! Env: `NOVAKVM_BENCH_BLK_MIB` (MiB read per mode, default 64), `NOVAKVM_BENCH_ITERS`
//! (runs per mode, default 3; the best run counts), `NOVAKVM_BIN` (default: the release
//! binary cargo builds for the bench).
//!
//! Method: a 256 MiB raw image of pseudo-random bytes in target/. Guest: 1 vCPU, 64 MiB,
//! `blkbench=seq|rand blkbench_mib=N exit=poweroff`; the time is measured on the host
//! between the guest's `blkbench start` line and its result line on the serial pipe
//! (the guest also reports its own TSC count). The VMM reads the image through the host
//! page cache (buffered pread), and the image is read once before the runs, so the
//! guest numbers are "warm cache". Host anchors, same offsets and 4 KiB reads:
//! buffered pread with a warm page cache (what the VMM itself does) and O_DIRECT pread
//! (the device, no page cache; no cache dropping needed).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE_MIB: u64 = 256;
const BLOCK: usize = 4096;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The guest's random pattern (xorshift64, same seed).
fn offsets(rand: bool, n: u64, blocks: u64) -> Vec<u64> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|i| {
            if rand {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % blocks
            } else {
                i % blocks
            }
        })
        .map(|b| b * BLOCK as u64)
        .collect()
}

fn make_image(path: &Path) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == IMAGE_MIB << 20) {
        return;
    }
    let mut f = File::create(path).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..IMAGE_MIB {
        for c in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    f.sync_all().unwrap();
}

fn host_pread(path: &Path, direct: bool, offs: &[u64]) -> Duration {
    let mut o = OpenOptions::new();
    o.read(true);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    let f = o.open(path).unwrap();
    let mut raw = vec![0u8; 2 * BLOCK];
    let skip = (BLOCK - raw.as_ptr() as usize % BLOCK) % BLOCK;
    let buf = &mut raw[skip..skip + BLOCK];
    let t0 = Instant::now();
    for &off in offs {
        f.read_exact_at(buf, off).unwrap();
    }
    t0.elapsed()
}

struct GuestRun {
    host: Duration,
    guest_us: u64,
    tsc_mhz: u64,
    errors: u64,
}

fn guest_run(bin: &Path, dir: &Path, image: &Path, mode: &str, mib: u64) -> GuestRun {
    let spec = serde_json::json!({
        "cpus": {"count": 1},
        "memory": {"size_mib": 64},
        "boot": {"kernel": env!("NOVAKVM_TEST_GUEST"),
                 "cmdline": format!("blkbench={mode} blkbench_mib={mib} exit=poweroff")},
        "disks": [{"path": image, "read_only": true}],
    });
    let sp = dir.join("bench-spec.json");
    std::fs::write(&sp, spec.to_string()).unwrap();
    let mut child = Command::new(bin)
        .args(["--log-filter", "error", "vmm", "--spec"])
        .arg(&sp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut start = None;
    let mut result = None;
    for line in out.lines() {
        let line = line.unwrap();
        let now = Instant::now();
        if line.contains("blkbench start") {
            start = Some(now);
        } else if line.contains("blkbench mode=") {
            result = Some((now, line));
        }
    }
    let st = child.wait().unwrap();
    assert!(st.success(), "VMM exited with {st}");
    let (end, line) = result.expect("no blkbench result line");
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    GuestRun {
        host: end - start.expect("no blkbench start line"),
        guest_us: field("us="),
        tsc_mhz: field("tsc_mhz="),
        errors: field("errors="),
    }
}

fn main() {
    let mib = env_u64("NOVAKVM_BENCH_BLK_MIB", 64);
    let iters = env_u64("NOVAKVM_BENCH_ITERS", 3).max(1);
    let bin = std::env::var_os("NOVAKVM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_novakvm")));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-blk");
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("image.raw");
    make_image(&image);
    let blocks = (IMAGE_MIB << 20) / BLOCK as u64;
    let n = mib * 256;
    // Warm the page cache with the whole image.
    host_pread(&image, false, &offsets(false, blocks, blocks));

    println!(
        "virtio-blk 4 KiB reads, QD1, {mib} MiB per mode, best of {iters}; image {IMAGE_MIB} MiB"
    );
    println!(
        "{:<6} {:>14} {:>14} {:>14} {:>14} {:>12} {:>12}",
        "mode",
        "guest MiB/s",
        "host-buf MiB/s",
        "host-odir MiB/s",
        "guest us/req",
        "guest/buf",
        "guest/odir"
    );
    for mode in ["seq", "rand"] {
        let offs = offsets(mode == "rand", n, blocks);
        let mut g_best: Option<GuestRun> = None;
        let mut buf_best = Duration::MAX;
        let mut odir_best = Duration::MAX;
        for _ in 0..iters {
            let g = guest_run(&bin, &dir, &image, mode, mib);
            assert_eq!(g.errors, 0, "guest read errors");
            if g_best.as_ref().map_or(true, |b| g.host < b.host) {
                g_best = Some(g);
            }
            buf_best = buf_best.min(host_pread(&image, false, &offs));
            odir_best = odir_best.min(host_pread(&image, true, &offs));
        }
        let g = g_best.unwrap();
        let rate = |d: Duration| mib as f64 / d.as_secs_f64();
        println!(
            "{:<6} {:>14.1} {:>14.1} {:>14.1} {:>14.1} {:>12.3} {:>12.3}",
            mode,
            rate(g.host),
            rate(buf_best),
            rate(odir_best),
            g.host.as_secs_f64() * 1e6 / n as f64,
            rate(g.host) / rate(buf_best),
            rate(g.host) / rate(odir_best),
        );
        println!(
            "       (guest's own TSC count: {} us at tsc_mhz={}; host-measured {} us)",
            g.guest_us,
            g.tsc_mhz,
            g.host.as_micros()
        );
    }
}
