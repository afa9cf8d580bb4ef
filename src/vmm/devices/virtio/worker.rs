//! The device thread: owns the queues while the driver is ready and waits (poll) on the
//! queue notification eventfds, a control eventfd and the backend's own fd (tap).

use std::os::fd::AsRawFd;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::{Backend, Shared, VirtioError};
use crate::vmm::memory::GuestMem;

/// Control messages from the transport.
pub enum Ctl {
    /// DRIVER_OK: start serving these queues.
    Activate(Vec<Queue>),
    /// Device reset: drop the queues; the sender waits for the reply.
    Reset(SyncSender<()>),
    /// Tear the worker down.
    Stop,
}

/// Handle on a running worker; dropping it stops and joins the thread.
pub struct WorkerHandle {
    tx: Sender<Ctl>,
    kick: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Send a control message and wake the worker.
    pub fn send(&self, msg: Ctl) {
        if self.tx.send(msg).is_ok() {
            let _ = self.kick.write(1);
        }
    }

    /// Reset the device's queues; waits (bounded) until the worker dropped them.
    pub fn reset(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Ctl::Reset(tx));
        if rx.recv_timeout(Duration::from_secs(5)).is_err() {
            tracing::warn!("virtio worker did not acknowledge a reset in time");
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.send(Ctl::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start the worker thread `name` for `backend`; `notify` are the queue notification
/// eventfds (one per queue).
pub fn spawn<B: Backend>(
    name: String,
    backend: B,
    mem: Arc<GuestMem>,
    shared: Arc<Shared>,
    notify: Vec<EventFd>,
) -> Result<WorkerHandle, VirtioError> {
    let kick = EventFd::new(EFD_NONBLOCK).map_err(VirtioError::EventFd)?;
    let kick2 = kick.try_clone().map_err(VirtioError::EventFd)?;
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            // Confine this I/O thread before it touches guest memory.
            if let Err(e) = crate::vmm::jail::enter(crate::vmm::jail::ThreadClass::Io) {
                tracing::error!(error = %e, "virtio worker not confined; not started");
                return;
            }
            Worker {
                backend,
                mem,
                shared,
                notify,
                kick: kick2,
                rx,
                queues: None,
            }
            .run()
        })
        .map_err(VirtioError::Spawn)?;
    Ok(WorkerHandle {
        tx,
        kick,
        thread: Some(thread),
    })
}

/// Poll slot marker of the resample eventfd.
const RESAMPLE: usize = usize::MAX - 1;

struct Worker<B: Backend> {
    backend: B,
    mem: Arc<GuestMem>,
    shared: Arc<Shared>,
    notify: Vec<EventFd>,
    kick: EventFd,
    rx: Receiver<Ctl>,
    queues: Option<Vec<Queue>>,
}

impl<B: Backend> Worker<B> {
    fn run(mut self) {
        loop {
            let mut fds = vec![libc::pollfd {
                fd: self.kick.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // (poll index -> queue index or the backend fd)
            let mut what = vec![usize::MAX];
            if let Some(r) = &self.shared.resample {
                fds.push(libc::pollfd {
                    fd: r.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                what.push(RESAMPLE);
            }
            if self.queues.is_some() {
                for (i, e) in self.notify.iter().enumerate() {
                    fds.push(libc::pollfd {
                        fd: e.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    });
                    what.push(i);
                }
                if let (true, Some(fd)) = (self.backend.wants_poll_fd(), self.backend.poll_fd()) {
                    fds.push(libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    });
                    what.push(self.notify.len());
                }
            }
            // SAFETY: `fds` is a valid array of pollfd of the given length for the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                tracing::error!(error = %e, "virtio worker poll");
                return;
            }
            if fds[0].revents != 0 {
                let _ = self.kick.read();
                if !self.control() {
                    return;
                }
            }
            for (pfd, &idx) in fds.iter().zip(&what).skip(1) {
                if pfd.revents == 0 {
                    continue;
                }
                if idx == RESAMPLE {
                    self.shared.resampled();
                    continue;
                }
                if let Some(e) = self.notify.get(idx) {
                    let _ = e.read();
                }
                self.service(idx);
            }
        }
    }

    /// Handle pending control messages; false means stop.
    fn control(&mut self) -> bool {
        loop {
            let msg = match self.rx.try_recv() {
                Ok(m) => m,
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            };
            match msg {
                Ctl::Activate(q) => {
                    self.queues = Some(q);
                    // Serve anything the driver queued before the notification arrived.
                    for i in 0..self.notify.len() {
                        self.service(i);
                    }
                }
                Ctl::Reset(ack) => {
                    self.queues = None;
                    self.backend.reset();
                    let _ = ack.send(());
                }
                Ctl::Stop => return false,
            }
        }
    }

    fn service(&mut self, idx: usize) {
        let Some(queues) = self.queues.as_mut() else {
            return;
        };
        if idx < queues.len() && !queues[idx].ready() {
            return;
        }
        match self.backend.process(&self.mem, queues, idx) {
            Ok(true) => self.shared.signal_used(),
            Ok(false) => {}
            Err(e) => {
                self.shared.fail(&e.to_string());
                // Stop serving the broken queues until the driver resets the device.
                self.queues = None;
            }
        }
    }
}
