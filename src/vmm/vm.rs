//! Runtime control of a running VM shared by the vCPU threads, the control socket and the
//! main thread: lifecycle state, the exit reason, pause/resume and kicking vCPUs out of
//! KVM_RUN with a signal.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::vmm::state::{ExitReason, VmState};

/// Control errors (returned to API clients).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    /// The request is not valid in the current state.
    #[error("cannot go from {from:?} to {to:?}")]
    InvalidTransition {
        /// Current state.
        from: VmState,
        /// Requested state.
        to: VmState,
    },
    /// vCPUs did not reach the requested state in time.
    #[error("timed out waiting for vCPUs")]
    Timeout,
}

/// Signal used to kick vCPU threads out of KVM_RUN.
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

#[derive(Debug)]
struct Inner {
    state: VmState,
    exit: Option<ExitReason>,
    /// pthread ids of live vCPU threads.
    threads: Vec<(u32, libc::pthread_t)>,
    /// vCPUs currently parked.
    parked: usize,
    /// Incremented at each restart of the guest.
    boots: u64,
}

/// Shared VM control block.
#[derive(Debug)]
pub struct VmControl {
    inner: Mutex<Inner>,
    cv: Condvar,
}

/// What a vCPU does after an exit was handled.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Re-enter the guest.
    Run,
    /// Leave the run loop.
    Stop,
}

impl Default for VmControl {
    fn default() -> Self {
        Self::new()
    }
}

impl VmControl {
    /// A control block in state `Created`.
    pub fn new() -> VmControl {
        VmControl {
            inner: Mutex::new(Inner {
                state: VmState::Created,
                exit: None,
                threads: Vec::new(),
                parked: 0,
                boots: 0,
            }),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Current state.
    pub fn state(&self) -> VmState {
        self.lock().state
    }

    /// Guest boots so far (1 after the first start; +1 per restart).
    pub fn boots(&self) -> u64 {
        self.lock().boots
    }

    /// Move to `to` if the transition table allows it.
    pub fn transition(&self, to: VmState) -> Result<VmState, ControlError> {
        let mut g = self.lock();
        Self::transition_locked(&mut g, to)?;
        self.cv.notify_all();
        Ok(to)
    }

    fn transition_locked(g: &mut Inner, to: VmState) -> Result<(), ControlError> {
        if !g.state.valid_transition(to) {
            return Err(ControlError::InvalidTransition { from: g.state, to });
        }
        tracing::info!(from = ?g.state, ?to, "VM state");
        if to == VmState::Running && g.state != VmState::Paused {
            g.boots += 1;
        }
        g.state = to;
        Ok(())
    }

    /// Record why the VM ends (the first reason wins) and kick the vCPUs.
    pub fn request_exit(&self, reason: ExitReason) {
        let mut g = self.lock();
        // The first reason wins, except that a stop request beats a pending reset (which
        // would otherwise restart the guest and lose the request).
        let replace = match &g.exit {
            None => true,
            Some(ExitReason::Reset) => reason != ExitReason::Reset,
            Some(_) => false,
        };
        if replace {
            tracing::info!(?reason, "VM exit requested");
            g.exit = Some(reason);
        }
        Self::kick_locked(&g);
        self.cv.notify_all();
    }

    /// The recorded exit reason, if any.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.lock().exit.clone()
    }

    /// Block until an exit reason is recorded.
    pub fn wait_exit(&self) -> ExitReason {
        let mut g = self.lock();
        loop {
            if let Some(r) = &g.exit {
                return r.clone();
            }
            g = match self.cv.wait(g) {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
        }
    }

    /// Wait up to `timeout` for an exit reason.
    pub fn wait_exit_timeout(&self, timeout: Duration) -> Option<ExitReason> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if let Some(r) = &g.exit {
                return Some(r.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            g = match self.cv.wait_timeout(g, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// If the VM ended with a guest reset, move to `Resetting` and clear the exit reason
    /// (atomically, so a concurrent stop request is not lost). Returns whether to restart.
    pub fn begin_restart(&self) -> bool {
        let mut g = self.lock();
        if g.exit != Some(ExitReason::Reset)
            || Self::transition_locked(&mut g, VmState::Resetting).is_err()
        {
            return false;
        }
        g.exit = None;
        g.parked = 0;
        true
    }

    /// A vCPU thread registers itself (to be kicked).
    pub fn register_vcpu(&self, index: u32) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        self.lock().threads.push((index, me));
    }

    /// A vCPU thread leaves (before it exits, so it is never signalled after).
    pub fn unregister_vcpu(&self, index: u32) {
        let mut g = self.lock();
        g.threads.retain(|(i, _)| *i != index);
        self.cv.notify_all();
    }

    /// Number of registered vCPU threads.
    pub fn live_vcpus(&self) -> usize {
        self.lock().threads.len()
    }

    fn kick_locked(g: &Inner) {
        for (_, t) in &g.threads {
            // SAFETY: `t` is a live thread: threads unregister (under this lock) before
            // exiting. The signal has a no-op handler installed by `install_kick_handler`.
            unsafe { libc::pthread_kill(*t, kick_signal()) };
        }
    }

    /// Called by a vCPU after each exit: parks while paused, says whether to go on.
    pub fn checkpoint(&self) -> Next {
        let mut g = self.lock();
        loop {
            if g.exit.is_some() {
                return Next::Stop;
            }
            if g.state != VmState::Paused {
                return Next::Run;
            }
            g.parked += 1;
            self.cv.notify_all();
            while g.state == VmState::Paused && g.exit.is_none() {
                g = match self.cv.wait(g) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
            }
            g.parked -= 1;
        }
    }

    /// Pause: park every vCPU outside KVM_RUN.
    pub fn pause(&self, timeout: Duration) -> Result<(), ControlError> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        Self::transition_locked(&mut g, VmState::Paused)?;
        loop {
            if g.parked >= g.threads.len() || g.exit.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ControlError::Timeout);
            }
            // Re-kick: a signal that lands just before KVM_RUN is lost.
            Self::kick_locked(&g);
            g = match self.cv.wait_timeout(g, Duration::from_millis(5)) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Resume paused vCPUs.
    pub fn resume(&self) -> Result<(), ControlError> {
        let mut g = self.lock();
        Self::transition_locked(&mut g, VmState::Running)?;
        self.cv.notify_all();
        Ok(())
    }

    /// Kick vCPUs until they have all left their run loops.
    pub fn stop_vcpus(&self, timeout: Duration) -> Result<(), ControlError> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if g.threads.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ControlError::Timeout);
            }
            Self::kick_locked(&g);
            g = match self.cv.wait_timeout(g, Duration::from_millis(5)) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Install the no-op kick handler (once per process).
pub fn install_kick_handler() -> Result<(), std::io::Error> {
    vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick)
        .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn pause_resume_and_exit_with_threads() {
        install_kick_handler().unwrap();
        let c = Arc::new(VmControl::new());
        c.transition(VmState::Running).unwrap();
        let mut hs = Vec::new();
        for i in 0..2 {
            let c = c.clone();
            hs.push(std::thread::spawn(move || {
                c.register_vcpu(i);
                while c.checkpoint() == Next::Run {
                    std::thread::sleep(Duration::from_millis(1));
                }
                c.unregister_vcpu(i);
            }));
        }
        while c.live_vcpus() < 2 {
            std::thread::yield_now();
        }
        c.pause(Duration::from_secs(5)).unwrap();
        assert_eq!(c.state(), VmState::Paused);
        assert_eq!(
            c.pause(Duration::from_secs(1)),
            Err(ControlError::InvalidTransition {
                from: VmState::Paused,
                to: VmState::Paused
            })
        );
        c.resume().unwrap();
        assert!(c.resume().is_err());
        c.request_exit(ExitReason::PowerOff);
        c.request_exit(ExitReason::ForcedOff);
        c.stop_vcpus(Duration::from_secs(5)).unwrap();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(c.wait_exit(), ExitReason::PowerOff);
        assert_eq!(c.boots(), 1);
        assert!(!c.begin_restart());
    }

    #[test]
    fn stop_request_beats_pending_reset() {
        let c = VmControl::new();
        c.transition(VmState::Running).unwrap();
        c.request_exit(ExitReason::Reset);
        c.request_exit(ExitReason::ForcedOff);
        assert_eq!(c.exit_reason(), Some(ExitReason::ForcedOff));
        assert!(!c.begin_restart());

        let c = VmControl::new();
        c.transition(VmState::Running).unwrap();
        c.request_exit(ExitReason::Reset);
        assert!(c.begin_restart());
        assert_eq!(c.state(), VmState::Resetting);
        assert_eq!(c.exit_reason(), None);
        c.transition(VmState::Running).unwrap();
        assert_eq!(c.boots(), 2);
    }
}
