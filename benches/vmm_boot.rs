//! Boot benchmark: `novakvm vmm` against QEMU (q35 with SeaBIOS's PVH option
//! ROM, and microvm with qboot when it boots here) on the same test guest
//! (guest/, built by build.rs). Run with:
//!
//! ```text
//! cargo bench --bench vmm_boot
//! ```
//!
//! Env: `NOVAKVM_BENCH_ITERS` (timing runs per VMM, default 10),
//! `NOVAKVM_BENCH_MEM_ITERS` (memory runs per VMM, default 3), `NOVAKVM_BIN`
//! (novakvm binary; default: the release binary cargo builds for the bench),
//! `NOVAKVM_BENCH_QEMU` (default `qemu-system-x86_64`).
//!
//! Method:
//! - `novakvm-seccomp-off` is novakvm with `--seccomp off` (no filters), so
//!   the ratio novakvm/novakvm-seccomp-off is the cost of the seccomp filters.
//! - Timing runs alternate the VMMs (novakvm, q35, microvm, novakvm, ...) so
//!   that load from other processes hits all of them alike. Guest: 1 vCPU,
//!   128 MiB, default cmdline (prints its banner, then resets; every VMM
//!   exits on the reset). "banner" = process spawn -> the banner line read
//!   from the serial pipe; "exit" = spawn -> the process has been reaped.
//! - Memory runs boot the guest with `ticker=1` (it stays alive printing
//!   `tick <n>`), wait for `tick 2`, then read `/proc/<pid>/status` VmHWM
//!   (peak RSS so far) and, from `/proc/<pid>/smaps`, the Rss of the guest RAM
//!   mapping (the anonymous mapping whose size is 128..136 MiB). Overhead =
//!   VmHWM - guest RAM resident: what the VMM process costs beyond the pages
//!   the guest (and, for QEMU, its firmware) touched in guest RAM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MEM_MIB: u64 = 128;
const BANNER: &str = "novakvm-test-guest: mem_mib=";
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// One VMM under test: how to start it with the test guest.
struct Vmm {
    name: &'static str,
    program: PathBuf,
    base_args: Vec<String>,
    /// How this VMM passes a guest command line.
    cmdline_flag: &'static str,
}

impl Vmm {
    fn command(&self, cmdline: Option<&str>) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.base_args);
        if let Some(s) = cmdline {
            c.args([self.cmdline_flag, s]);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }
}

#[derive(Default)]
struct Samples {
    banner_ms: Vec<f64>,
    exit_ms: Vec<f64>,
    hwm_kib: Vec<f64>,
    guest_kib: Vec<f64>,
    overhead_kib: Vec<f64>,
    failures: Vec<String>,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Reads stdout lines in a thread; sends (line, time read) for each line.
fn spawn_reader(child: &mut Child) -> mpsc::Receiver<(String, Instant)> {
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send((line.replace('\r', ""), Instant::now())).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// Drains stderr in a thread (a full pipe would stall the VMM); the handle
/// yields its last lines.
fn spawn_stderr(child: &mut Child) -> std::thread::JoinHandle<String> {
    let err = child.stderr.take();
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = err {
            use std::io::Read;
            let _ = e.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(3)..].join(" | ")
    })
}

/// One timing run: (spawn -> banner, spawn -> exit).
fn timed_run(vmm: &Vmm) -> Result<(Duration, Duration), String> {
    let mut cmd = vmm.command(None);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let rx = spawn_reader(&mut child);
    let err = spawn_stderr(&mut child);
    let pid = child.id();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    // Watchdog: kill a hung VMM after RUN_TIMEOUT.
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(RUN_TIMEOUT).is_err() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    });
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    let exit = start.elapsed();
    let _ = done_tx.send(());
    let _ = watchdog.join();
    let mut banner = None;
    let mut last = String::new();
    while let Ok((line, at)) = rx.recv_timeout(Duration::from_secs(2)) {
        if banner.is_none() && line.starts_with(BANNER) {
            banner = Some(at.duration_since(start));
        }
        last = line;
    }
    let err = err.join().unwrap_or_default();
    match banner {
        Some(b) if status.success() => Ok((b, exit)),
        Some(_) => Err(format!("exit status {status}: {err}")),
        None => Err(format!(
            "no banner (status {status}, last line {last:?}): {err}"
        )),
    }
}

fn status_kib(pid: u32, key: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Rss (KiB) of the guest RAM mapping(s): anonymous, 128..136 MiB large.
fn guest_ram_rss_kib(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let lo = MEM_MIB * 1024;
    let hi = lo + 8 * 1024;
    let (mut total, mut found) = (0u64, false);
    let mut in_guest = false;
    for line in s.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            let path = line.split_whitespace().nth(5).unwrap_or("");
            let (a, b) = first.split_once('-').unwrap_or(("0", "0"));
            let size_kib = (u64::from_str_radix(b, 16).unwrap_or(0)
                - u64::from_str_radix(a, 16).unwrap_or(0))
                / 1024;
            let anon = path.is_empty() || path.starts_with("[anon") || path.starts_with("/memfd:");
            in_guest = anon && (lo..=hi).contains(&size_kib);
        } else if in_guest && first == "Rss:" {
            total += f.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            found = true;
        }
    }
    found.then_some(total as f64)
}

/// One memory run: (VmHWM, guest RAM Rss) in KiB after boot, guest ticking.
fn memory_run(vmm: &Vmm) -> Result<(f64, f64), String> {
    let mut child = vmm
        .command(Some("ticker=1"))
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let rx = spawn_reader(&mut child);
    let err = spawn_stderr(&mut child);
    let pid = child.id();
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut ticked = false;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((line, _)) if line == "tick 2" => {
                ticked = true;
                break;
            }
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let sample = if ticked {
        match (status_kib(pid, "VmHWM:"), guest_ram_rss_kib(pid)) {
            (Some(h), Some(g)) => Ok((h, g)),
            (Some(_), None) => Err("no guest RAM mapping found in smaps".to_string()),
            _ => Err("cannot read /proc/<pid>/status".to_string()),
        }
    } else {
        Err("guest never printed `tick 2`".to_string())
    };
    let _ = child.kill();
    let _ = child.wait();
    let err = err.join().unwrap_or_default();
    sample.map_err(|e| format!("{e}: {err}"))
}

fn stats(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let med = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Some((med, s[0], s[n - 1]))
}

fn fmt_stat(v: &[f64], unit_div: f64, prec: usize) -> String {
    match stats(v) {
        Some((m, lo, hi)) => format!(
            "{:.p$} ({:.p$}..{:.p$})",
            m / unit_div,
            lo / unit_div,
            hi / unit_div,
            p = prec
        ),
        None => "n/a".to_string(),
    }
}

fn median(v: &[f64]) -> Option<f64> {
    stats(v).map(|s| s.0)
}

fn find_novakvm() -> PathBuf {
    if let Some(p) = std::env::var_os("NOVAKVM_BIN") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_BIN_EXE_novakvm"))
}

fn on_path(prog: &str) -> bool {
    if prog.contains('/') {
        return Path::new(prog).exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).exists()))
        .unwrap_or(false)
}

fn main() {
    let guest = PathBuf::from(env!("NOVAKVM_TEST_GUEST"));
    if !guest.exists() {
        eprintln!(
            "vmm_boot: test guest {} was not built (gcc/ld missing? see cargo warnings)",
            guest.display()
        );
        std::process::exit(1);
    }
    let g = guest.display().to_string();
    let iters = env_usize("NOVAKVM_BENCH_ITERS", 10);
    let mem_iters = env_usize("NOVAKVM_BENCH_MEM_ITERS", 3);
    let qemu = std::env::var("NOVAKVM_BENCH_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into());
    let novakvm = find_novakvm();

    let mut vmms = vec![Vmm {
        name: "novakvm",
        program: novakvm.clone(),
        base_args: ["vmm", "--kernel", &g, "--vcpus", "1", "--memory-mib", "128"]
            .map(String::from)
            .to_vec(),
        cmdline_flag: "--cmdline",
    }];
    // The same without seccomp filters: the cost of confinement (docs/arch-jail.md).
    let mut no_filters = vmms[0].base_args.clone();
    no_filters.extend(["--seccomp".to_string(), "off".to_string()]);
    vmms.push(Vmm {
        name: "novakvm-seccomp-off",
        program: novakvm.clone(),
        base_args: no_filters,
        cmdline_flag: "--cmdline",
    });
    if on_path(&qemu) {
        for machine in ["q35", "microvm"] {
            let args = [
                "-enable-kvm",
                "-M",
                machine,
                "-m",
                "128",
                "-smp",
                "1",
                "-nodefaults",
                "-display",
                "none",
                "-serial",
                "stdio",
                "-no-reboot",
                "-kernel",
                &g,
            ];
            vmms.push(Vmm {
                name: if machine == "q35" {
                    "qemu-q35"
                } else {
                    "qemu-microvm"
                },
                program: PathBuf::from(&qemu),
                base_args: args.map(String::from).to_vec(),
                cmdline_flag: "-append",
            });
        }
    } else {
        eprintln!(
            "vmm_boot: {qemu} not found: QEMU columns skipped (apt-get install qemu-system-x86)"
        );
    }

    println!("vmm_boot: guest {g}");
    println!("vmm_boot: novakvm {}", novakvm.display());
    println!("vmm_boot: {iters} timing runs + {mem_iters} memory runs per VMM, alternating");
    let mut samples: Vec<Samples> = vmms.iter().map(|_| Samples::default()).collect();
    for i in 0..iters {
        for (v, s) in vmms.iter().zip(samples.iter_mut()) {
            match timed_run(v) {
                Ok((b, e)) => {
                    s.banner_ms.push(b.as_secs_f64() * 1e3);
                    s.exit_ms.push(e.as_secs_f64() * 1e3);
                    eprintln!(
                        "  run {i:>2} {:<13} banner {:>8.1} ms  exit {:>8.1} ms",
                        v.name,
                        b.as_secs_f64() * 1e3,
                        e.as_secs_f64() * 1e3
                    );
                }
                Err(e) => {
                    eprintln!("  run {i:>2} {:<13} FAILED: {e}", v.name);
                    s.failures.push(e);
                }
            }
        }
    }
    for i in 0..mem_iters {
        for (v, s) in vmms.iter().zip(samples.iter_mut()) {
            match memory_run(v) {
                Ok((hwm, guest)) => {
                    s.hwm_kib.push(hwm);
                    s.guest_kib.push(guest);
                    s.overhead_kib.push(hwm - guest);
                    eprintln!(
                        "  mem {i:>2} {:<13} VmHWM {:>8.0} KiB  guest RAM rss {:>8.0} KiB",
                        v.name, hwm, guest
                    );
                }
                Err(e) => {
                    eprintln!("  mem {i:>2} {:<13} FAILED: {e}", v.name);
                    s.failures.push(format!("memory run: {e}"));
                }
            }
        }
    }

    println!();
    println!("| VMM | runs ok | spawn->banner ms, median (min..max) | spawn->exit ms | VmHWM MiB | guest RAM rss MiB | VMM overhead MiB (VmHWM - guest rss) |");
    println!("|---|---|---|---|---|---|---|");
    for (v, s) in vmms.iter().zip(samples.iter()) {
        println!(
            "| {} | {}/{} | {} | {} | {} | {} | {} |",
            v.name,
            s.exit_ms.len(),
            iters,
            fmt_stat(&s.banner_ms, 1.0, 1),
            fmt_stat(&s.exit_ms, 1.0, 1),
            fmt_stat(&s.hwm_kib, 1024.0, 1),
            fmt_stat(&s.guest_kib, 1024.0, 2),
            fmt_stat(&s.overhead_kib, 1024.0, 1),
        );
    }
    println!();
    let base = &samples[0];
    for (v, s) in vmms.iter().zip(samples.iter()).skip(1) {
        let ratio = |a: &[f64], b: &[f64]| match (median(a), median(b)) {
            (Some(x), Some(y)) if y > 0.0 => format!("{:.3}", x / y),
            _ => "n/a".to_string(),
        };
        println!(
            "novakvm/{}: banner {}  exit {}  overhead {}  (median ratios; < 1 = novakvm better)",
            v.name,
            ratio(&base.banner_ms, &s.banner_ms),
            ratio(&base.exit_ms, &s.exit_ms),
            ratio(&base.overhead_kib, &s.overhead_kib),
        );
    }
    for (v, s) in vmms.iter().zip(samples.iter()) {
        if let Some(e) = s.failures.first() {
            println!("{}: {} failed run(s); first: {e}", v.name, s.failures.len());
        }
    }
}
