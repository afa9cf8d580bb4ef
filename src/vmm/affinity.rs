//! Host CPU affinity of threads (sched_setaffinity) and thread naming.

use std::collections::BTreeSet;

/// Affinity errors.
#[derive(Debug, thiserror::Error)]
pub enum AffinityError {
    /// sched_setaffinity/sched_getaffinity failed.
    #[error("CPU affinity {cpus:?}: {source}")]
    Affinity {
        /// Requested CPUs.
        cpus: Vec<u32>,
        /// Cause.
        source: std::io::Error,
    },
    /// A CPU number does not fit the kernel's CPU set.
    #[error("host CPU {0} is out of range")]
    OutOfRange(u32),
}

const SET_BITS: u32 = (std::mem::size_of::<libc::cpu_set_t>() * 8) as u32;

/// Pin the calling thread to `cpus` (no-op when empty).
pub fn pin_current_thread(cpus: &[u32]) -> Result<(), AffinityError> {
    if cpus.is_empty() {
        return Ok(());
    }
    // SAFETY: cpu_set_t is a plain bit array; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        if c >= SET_BITS {
            return Err(AffinityError::OutOfRange(c));
        }
        // SAFETY: c is below the set's capacity (checked above).
        unsafe { libc::CPU_SET(c as usize, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the given size.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(AffinityError::Affinity {
            cpus: cpus.to_vec(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// CPUs the calling thread may run on.
pub fn allowed_cpus() -> Result<BTreeSet<u32>, AffinityError> {
    // SAFETY: all-zero is a valid empty cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `set` is writable and of the given size.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(AffinityError::Affinity {
            cpus: Vec::new(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: every index is below the set's capacity.
    Ok((0..SET_BITS)
        .filter(|&c| unsafe { libc::CPU_ISSET(c as usize, &set) })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_and_read_back() {
        let before = allowed_cpus().unwrap();
        let first = *before.iter().next().unwrap();
        std::thread::spawn(move || {
            pin_current_thread(&[first]).unwrap();
            assert_eq!(
                allowed_cpus().unwrap().into_iter().collect::<Vec<_>>(),
                vec![first]
            );
            assert!(matches!(
                pin_current_thread(&[1 << 20]),
                Err(AffinityError::OutOfRange(_))
            ));
        })
        .join()
        .unwrap();
    }
}
