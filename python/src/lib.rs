// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `shmq._shmq` extension: shmq's queues and topics for Python (see `python/README.md`).
//!
//! Built on shmq's public Rust API only. Three things shape it:
//! - **Handles across `fork`.** A handle inherited by a forked child is the parent's
//!   participant: the child must neither use it nor drop it (dropping it would resolve the
//!   parent's claims as abandoned). A `pthread_atfork` child handler bumps a process-wide
//!   generation; each handle records the generation it was opened in, and a handle of an older
//!   generation is reopened from its path on first use, the inherited one leaked (never used,
//!   never dropped). Guards (`Message`, `Reservation`) inherited across `fork` are leaked too.
//! - **Borrowing guards from Python objects.** `RecvGuard<'q>` and `SendGuard<'q>` borrow their
//!   queue; here they live next to an `Arc<Queue>` that outlives them (field order), with the
//!   lifetime erased to `'static`.
//! - **The buffer protocol under `abi3-py39`.** The limited API declares `Py_buffer` only from
//!   3.11, but its layout and `PyObject_GetBuffer`/`PyBuffer_Release` are the same in every
//!   CPython 3 (and part of the stable ABI since 3.11): they are declared here (`buffer`).
//!   Views of slots are `memoryview`s made with `PyMemoryView_FromMemory` (stable ABI), released
//!   by shmq when the slot goes back, so that a use after that raises `ValueError`.

// PyO3 0.22's `#[pymethods]` expansion converts each `PyResult` into itself, which newer clippy
// reports at the method's signature.
#![allow(clippy::useless_conversion)]

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple, PyType};
use shmq::topic::{Subscription, TopicOptions, WhenFull};
use shmq::{Error, OnConsumerDeath, Options, RecvGuard, SendGuard};
use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// How long a blocking call waits with the GIL released before it returns to the interpreter
/// to run signal handlers (the bound: 50 ms).
const SIGNAL_SLICE: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------------
// Fork generations

/// Bumped in every child created by `fork` (see the module doc). Relaxed: the handler runs in
/// the child's only thread before `fork` returns, and threads started later see it through the
/// happens-before of their creation.
static FORK_GEN: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
}

fn generation() -> u64 {
    FORK_GEN.load(Ordering::Relaxed)
}

/// A handle of type `T` that is reopened in a forked child (see the module doc).
struct Handle<T> {
    /// The current slot. Never null; freed only when the `Handle` drops (no call can be using
    /// it then), and only if it belongs to this process's generation.
    cur: AtomicPtr<Slot<T>>,
    path: PathBuf,
    open: fn(&std::path::Path) -> shmq::Result<T>,
}

struct Slot<T> {
    gen: u64,
    /// `None` once released (`Queue.__exit__`). A fresh lock per slot: a child never touches
    /// the lock of an inherited slot, which a parent's thread may have held at the fork.
    handle: RwLock<Option<Arc<T>>>,
}

impl<T> Handle<T> {
    fn new(handle: T, path: PathBuf, open: fn(&std::path::Path) -> shmq::Result<T>) -> Self {
        let slot = Box::new(Slot {
            gen: generation(),
            handle: RwLock::new(Some(Arc::new(handle))),
        });
        Handle {
            cur: AtomicPtr::new(Box::into_raw(slot)),
            path,
            open,
        }
    }

    /// The slot of this process, reopening the handle first if it was inherited.
    fn slot(&self) -> PyResult<&Slot<T>> {
        loop {
            let p = self.cur.load(Ordering::Acquire);
            // SAFETY: `cur` always points to a live `Slot` (boxed in `new` or below), freed only
            // in `drop`, which has `&mut self`; slots it replaces are leaked.
            let slot = unsafe { &*p };
            if slot.gen == generation() {
                return Ok(slot);
            }
            // Inherited across fork: open our own handle, and leave the parent's alone.
            let fresh = (self.open)(&self.path).map_err(to_py)?;
            let new = Box::into_raw(Box::new(Slot {
                gen: generation(),
                handle: RwLock::new(Some(Arc::new(fresh))),
            }));
            if self
                .cur
                .compare_exchange(p, new, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // Another thread reopened first: ours was never shared.
                // SAFETY: `new` came from `Box::into_raw` just above and was not published.
                drop(unsafe { Box::from_raw(new) });
            }
        }
    }

    /// Runs `f` on this process's handle; `ValueError` after `release`.
    fn with<R>(&self, f: impl FnOnce(&Arc<T>) -> PyResult<R>) -> PyResult<R> {
        let slot = self.slot()?;
        let guard = slot.handle.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(handle) => f(handle),
            None => Err(PyValueError::new_err("the handle was released")),
        }
    }

    fn arc(&self) -> PyResult<Arc<T>> {
        self.with(|h| Ok(Arc::clone(h)))
    }

    /// Drops this process's handle (its participant entry is given back).
    fn release(&self) -> PyResult<()> {
        let slot = self.slot()?;
        let taken = slot
            .handle
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(taken);
        Ok(())
    }
}

impl<T> Drop for Handle<T> {
    fn drop(&mut self) {
        let p = *self.cur.get_mut();
        // SAFETY: see `slot`; `&mut self` means no call is using it.
        if unsafe { (*p).gen } == generation() {
            // SAFETY: from `Box::into_raw`, and ours (this process's generation).
            drop(unsafe { Box::from_raw(p) });
        }
        // Otherwise the parent's handle: leaked, never dropped in this process.
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

static ERRORS: GILOnceCell<Py<PyModule>> = GILOnceCell::new();

fn exception(py: Python<'_>, name: &str, msg: String) -> PyErr {
    let module = ERRORS.get_or_try_init(py, || {
        PyModule::import_bound(py, "shmq._errors").map(|m| m.unbind())
    });
    match module.and_then(|m| m.bind(py).getattr(name)) {
        Ok(class) => match class.call1((msg,)) {
            Ok(value) => PyErr::from_value_bound(value),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

/// `OSError` subclass `class` with `errno`, message and file name, as `open()` raises them.
fn os_error(py: Python<'_>, class: &str, errno: i32, msg: String, path: &std::path::Path) -> PyErr {
    let builtins = PyModule::import_bound(py, "builtins");
    let made = builtins.and_then(|b| {
        b.getattr(class)?
            .call1((errno, msg, path.to_string_lossy().into_owned()))
    });
    match made {
        Ok(value) => PyErr::from_value_bound(value),
        Err(e) => e,
    }
}

/// Maps shmq's error to Python's own exception where one fits, else to shmq's.
fn to_py(err: Error) -> PyErr {
    Python::with_gil(|py| to_py_in(py, err))
}

fn to_py_in(py: Python<'_>, err: Error) -> PyErr {
    let msg = err.to_string();
    match err {
        Error::NotFound(path) => os_error(py, "FileNotFoundError", libc::ENOENT, msg, &path),
        Error::AlreadyExists(path) => os_error(py, "FileExistsError", libc::EEXIST, msg, &path),
        Error::PermissionDenied { path, .. } => {
            os_error(py, "PermissionError", libc::EACCES, msg, &path)
        }
        Error::Full => exception(py, "Full", msg),
        Error::Empty => exception(py, "Empty", msg),
        Error::Closed => exception(py, "Closed", msg),
        Error::Timeout => exception(py, "Timeout", msg),
        Error::Expired => exception(py, "Expired", msg),
        Error::Corrupt { .. } => exception(py, "Corrupt", msg),
        Error::Incompatible { .. } => exception(py, "Incompatible", msg),
        Error::TooLarge { .. } => exception(py, "MessageTooLarge", msg),
        Error::TooManyHandles { .. } => exception(py, "TooManyHandles", msg),
        Error::InvalidOptions(_) => PyValueError::new_err(msg),
        Error::Io(e) => match e.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, msg)),
            None => PyOSError::new_err(msg),
        },
        _ => exception(py, "Error", msg),
    }
}

// ---------------------------------------------------------------------------------------------
// Buffers

mod buffer {
    //! `Py_buffer` and the two calls on it (see the module doc of the crate).
    use pyo3::ffi::PyObject;
    use std::os::raw::{c_char, c_int, c_void};

    /// CPython's `Py_buffer` (Include/pybuffer.h, unchanged since 3.3).
    #[repr(C)]
    pub struct RawBuffer {
        pub buf: *mut c_void,
        pub obj: *mut PyObject,
        pub len: isize,
        pub itemsize: isize,
        pub readonly: c_int,
        pub ndim: c_int,
        pub format: *mut c_char,
        pub shape: *mut isize,
        pub strides: *mut isize,
        pub suboffsets: *mut isize,
        pub internal: *mut c_void,
    }

    pub const PYBUF_SIMPLE: c_int = 0;
    pub const PYBUF_READ: c_int = 0x100;
    pub const PYBUF_WRITE: c_int = 0x200;

    extern "C" {
        pub fn PyObject_GetBuffer(obj: *mut PyObject, view: *mut RawBuffer, flags: c_int) -> c_int;
        pub fn PyBuffer_Release(view: *mut RawBuffer);
        pub fn PyMemoryView_FromMemory(
            mem: *mut c_char,
            size: isize,
            flags: c_int,
        ) -> *mut PyObject;
    }
}

/// The bytes of a Python object with the buffer protocol (C-contiguous), held while it lives.
struct Data {
    raw: Box<buffer::RawBuffer>,
}

// SAFETY: the exported buffer is plain memory that stays valid until `PyBuffer_Release`, which
// `drop` calls with the GIL held; reading it from a thread without the GIL is what every C
// extension that releases the GIL around I/O does.
unsafe impl Send for Data {}

impl Data {
    fn get(obj: &Bound<'_, PyAny>) -> PyResult<Data> {
        let mut raw = Box::new(buffer::RawBuffer {
            buf: std::ptr::null_mut(),
            obj: std::ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 0,
            ndim: 0,
            format: std::ptr::null_mut(),
            shape: std::ptr::null_mut(),
            strides: std::ptr::null_mut(),
            suboffsets: std::ptr::null_mut(),
            internal: std::ptr::null_mut(),
        });
        // SAFETY: `obj` is a live object (we hold the GIL through `Bound`); `raw` is a
        // `Py_buffer` to fill. PyBUF_SIMPLE asks for one contiguous run of bytes and refuses
        // anything else (a non-contiguous numpy view: `BufferError`).
        let rc =
            unsafe { buffer::PyObject_GetBuffer(obj.as_ptr(), &mut *raw, buffer::PYBUF_SIMPLE) };
        if rc != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(Data { raw })
    }

    fn bytes(&self) -> &[u8] {
        if self.raw.len <= 0 || self.raw.buf.is_null() {
            return &[];
        }
        // SAFETY: a successful PyBUF_SIMPLE export is `len` contiguous bytes at `buf`, valid
        // until released (in `drop`).
        unsafe { std::slice::from_raw_parts(self.raw.buf as *const u8, self.raw.len as usize) }
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        Python::with_gil(|_| {
            // SAFETY: `raw` was filled by a successful `PyObject_GetBuffer`, released once.
            unsafe { buffer::PyBuffer_Release(&mut *self.raw) }
        });
    }
}

/// Calls `f` with the bytes of `obj`: `bytes` directly, anything else through its buffer.
fn with_bytes<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(b) = obj.downcast::<PyBytes>() {
        return Ok(f(b.as_bytes()));
    }
    let data = Data::get(obj)?;
    Ok(f(data.bytes()))
}

/// A `memoryview` of `len` bytes at `ptr`, read-only or writable.
fn memoryview(py: Python<'_>, ptr: *mut u8, len: usize, writable: bool) -> PyResult<PyObject> {
    let flags = if writable {
        buffer::PYBUF_WRITE
    } else {
        buffer::PYBUF_READ
    };
    // SAFETY: `ptr..ptr+len` is a slot's payload inside a mapping that the caller keeps alive
    // (and the slot claimed) until it releases the view (`release_view`).
    let view = unsafe { buffer::PyMemoryView_FromMemory(ptr.cast(), len as isize, flags) };
    // SAFETY: a new reference or null with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, view) }.map(|v| v.unbind())
}

/// Releases a view made by `memoryview`: later uses raise `ValueError`. `BufferError` if an
/// export of it (a numpy array over it, say) is still alive.
fn release_view(py: Python<'_>, view: &PyObject) -> PyResult<()> {
    view.bind(py).call_method0("release").map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Timeouts and blocking

/// Refuses a negative or non-finite timeout before anything is sent or received.
fn check_timeout(timeout: Option<f64>) -> PyResult<()> {
    match timeout {
        Some(t) => duration(t, "timeout").map(|_| ()),
        None => Ok(()),
    }
}

fn duration(seconds: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        PyValueError::new_err(format!("{what} must be a finite number >= 0 of seconds"))
    })
}

/// Runs the waiting call `f` (given at most one slice of the remaining time) with the GIL
/// released, slice after slice, returning to the interpreter between slices for its signal
/// handlers (so Ctrl-C raises `KeyboardInterrupt`). `timeout` `None`: no deadline.
fn blocking<T: Send>(
    py: Python<'_>,
    timeout: Option<f64>,
    mut f: impl FnMut(Duration) -> shmq::Result<T> + Send,
) -> PyResult<T> {
    let deadline = match timeout {
        Some(t) => Some(Instant::now() + duration(t, "timeout")?),
        None => None,
    };
    loop {
        let slice = match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(SIGNAL_SLICE),
            None => SIGNAL_SLICE,
        };
        match py.allow_threads(|| f(slice)) {
            Err(Error::Timeout) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(to_py_in(py, Error::Timeout));
                }
                py.check_signals()?;
            }
            other => return other.map_err(|e| to_py_in(py, e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Queue

type QueueHandle = Handle<shmq::Queue>;

/// A handle on a queue file shared by processes (see the module docstring of `shmq`).
#[pyclass(frozen, module = "shmq", name = "Queue")]
struct Queue {
    handle: QueueHandle,
}

thread_local! {
    /// Receive buffer of the copying receives (grown to the largest message size seen).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn options(
    capacity: u32,
    max_message_size: u32,
    mode: u32,
    visibility_timeout: Option<f64>,
    max_deliveries: Option<u32>,
    dead_letter: Option<PathBuf>,
    on_consumer_death: &str,
) -> PyResult<Options> {
    let mut o = Options::new(capacity, max_message_size).mode(mode);
    if let Some(v) = visibility_timeout {
        o = o.visibility_timeout(duration(v, "visibility_timeout")?);
    }
    if let Some(m) = max_deliveries {
        o = o.max_deliveries(m);
    }
    if let Some(d) = dead_letter {
        o = o.dead_letter_queue(d);
    }
    o = o.on_consumer_death(match on_consumer_death {
        "redeliver" => OnConsumerDeath::Redeliver,
        "drop" => OnConsumerDeath::Drop,
        other => {
            return Err(PyValueError::new_err(format!(
                "on_consumer_death must be \"redeliver\" or \"drop\", not {other:?}"
            )))
        }
    });
    Ok(o)
}

fn open_queue(path: &std::path::Path) -> shmq::Result<shmq::Queue> {
    shmq::Queue::open(path)
}

fn wrap_queue(q: shmq::Queue) -> Queue {
    let path = q.path().to_path_buf();
    Queue {
        handle: Handle::new(q, path, open_queue),
    }
}

fn stats_dict<'py>(py: Python<'py>, s: &shmq::Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new_bound(py);
    d.set_item("version", s.version)?;
    d.set_item("platform", s.platform)?;
    d.set_item("flags", s.flags)?;
    d.set_item("capacity", s.capacity)?;
    d.set_item("max_message_size", s.max_message_size)?;
    d.set_item("file_len", s.file_len)?;
    d.set_item("created_unix_ns", s.created_unix_ns)?;
    d.set_item("len", s.len)?;
    d.set_item("sent", s.sent)?;
    d.set_item("received", s.received)?;
    d.set_item("cancelled_sends", s.cancelled_sends)?;
    d.set_item("abandoned_sends", s.abandoned_sends)?;
    d.set_item("abandoned_receives", s.abandoned_receives)?;
    d.set_item("redelivered", s.redelivered)?;
    d.set_item("dead_lettered", s.dead_lettered)?;
    d.set_item("expired", s.expired)?;
    d.set_item("dead_letter_failures", s.dead_letter_failures)?;
    d.set_item("in_flight", s.in_flight)?;
    d.set_item("oldest_hold_ns", s.oldest_hold_ns)?;
    d.set_item("visibility_timeout_ns", s.visibility_timeout_ns)?;
    d.set_item(
        "dead_letter_queue",
        s.dead_letter_queue
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
    )?;
    d.set_item(
        "on_consumer_death",
        match s.on_consumer_death {
            OnConsumerDeath::Drop => "drop",
            _ => "redeliver",
        },
    )?;
    d.set_item("max_deliveries", s.max_deliveries)?;
    d.set_item("full_waits", s.full_waits)?;
    d.set_item("empty_waits", s.empty_waits)?;
    d.set_item("send_sleepers", s.send_sleepers)?;
    d.set_item("recv_sleepers", s.recv_sleepers)?;
    d.set_item("closed", s.closed)?;
    let participants = PyList::empty_bound(py);
    for p in &s.participants {
        let e = PyDict::new_bound(py);
        e.set_item("index", p.index)?;
        e.set_item("pid", p.pid)?;
        e.set_item("alive", p.alive)?;
        e.set_item("sender", p.sender)?;
        e.set_item("receiver", p.receiver)?;
        e.set_item("holding", p.holding)?;
        e.set_item("holding_since_unix_ns", p.holding_since_unix_ns)?;
        participants.append(e)?;
    }
    d.set_item("participants", participants)?;
    d.set_item("unattributed_holds", s.unattributed_holds)?;
    Ok(d)
}

/// Receives one message by copy into `bytes`, without waiting (`Empty` when there is none).
fn try_recv_bytes(py: Python<'_>, q: &shmq::Queue) -> Result<Py<PyBytes>, Error> {
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        let max = q.max_message_size();
        if buf.len() < max {
            buf.resize(max, 0);
        }
        let n = q.try_recv(&mut buf[..max])?;
        Ok(PyBytes::new_bound(py, &buf[..n]).unbind())
    })
}

/// A receive by copy: the non-blocking attempt under the handle's lock, then (the queue
/// empty) the wait on a clone of the handle, so that a wait never holds the lock that
/// `release` takes.
fn recv_bytes(py: Python<'_>, h: &QueueHandle, timeout: Option<f64>) -> PyResult<Py<PyBytes>> {
    check_timeout(timeout)?;
    match h.with(|q| Ok(try_recv_bytes(py, q)))? {
        Err(Error::Empty) if timeout != Some(0.0) => {}
        other => return other.map_err(|e| to_py_in(py, e)),
    }
    let q = h.arc()?;
    let mut buf = vec![0u8; q.max_message_size()];
    let n = blocking(py, timeout, |slice| q.recv_timeout(&mut buf, slice))?;
    Ok(PyBytes::new_bound(py, &buf[..n]).unbind())
}

/// A send: as `recv_bytes`.
fn send_bytes(py: Python<'_>, h: &QueueHandle, msg: &[u8], timeout: Option<f64>) -> PyResult<()> {
    check_timeout(timeout)?;
    match h.with(|q| Ok(q.try_send(msg)))? {
        Err(Error::Full) if timeout != Some(0.0) => {}
        other => return other.map_err(|e| to_py_in(py, e)),
    }
    let q = h.arc()?;
    blocking(py, timeout, |slice| q.send_timeout(msg, slice))
}

#[pymethods]
impl Queue {
    /// Creates a queue file at `path` (`FileExistsError` if anything is there) and opens it.
    #[staticmethod]
    #[pyo3(signature = (path, capacity, max_message_size, *, mode=0o600, visibility_timeout=None,
                        max_deliveries=None, dead_letter=None, on_consumer_death="redeliver"))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        path: PathBuf,
        capacity: u32,
        max_message_size: u32,
        mode: u32,
        visibility_timeout: Option<f64>,
        max_deliveries: Option<u32>,
        dead_letter: Option<PathBuf>,
        on_consumer_death: &str,
    ) -> PyResult<Queue> {
        let o = options(
            capacity,
            max_message_size,
            mode,
            visibility_timeout,
            max_deliveries,
            dead_letter,
            on_consumer_death,
        )?;
        let q = py
            .allow_threads(|| shmq::Queue::create(&path, o))
            .map_err(|e| to_py_in(py, e))?;
        Ok(wrap_queue(q))
    }

    /// Opens an existing queue file (`FileNotFoundError` if there is none).
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Queue> {
        let q = py
            .allow_threads(|| shmq::Queue::open(&path))
            .map_err(|e| to_py_in(py, e))?;
        Ok(wrap_queue(q))
    }

    /// Opens the queue at `path`, creating it with these options if no file is there.
    #[staticmethod]
    #[pyo3(signature = (path, capacity, max_message_size, *, mode=0o600, visibility_timeout=None,
                        max_deliveries=None, dead_letter=None, on_consumer_death="redeliver"))]
    #[allow(clippy::too_many_arguments)]
    fn open_or_create(
        py: Python<'_>,
        path: PathBuf,
        capacity: u32,
        max_message_size: u32,
        mode: u32,
        visibility_timeout: Option<f64>,
        max_deliveries: Option<u32>,
        dead_letter: Option<PathBuf>,
        on_consumer_death: &str,
    ) -> PyResult<Queue> {
        let o = options(
            capacity,
            max_message_size,
            mode,
            visibility_timeout,
            max_deliveries,
            dead_letter,
            on_consumer_death,
        )?;
        let q = py
            .allow_threads(|| shmq::Queue::open_or_create(&path, o))
            .map_err(|e| to_py_in(py, e))?;
        Ok(wrap_queue(q))
    }

    /// Statistics of the queue at `path`, read from the file without opening a handle.
    #[staticmethod]
    fn inspect(py: Python<'_>, path: PathBuf) -> PyResult<Py<PyDict>> {
        let s = py
            .allow_threads(|| shmq::Queue::inspect(&path))
            .map_err(|e| to_py_in(py, e))?;
        Ok(stats_dict(py, &s)?.unbind())
    }

    /// Removes the queue file; open handles keep working.
    #[staticmethod]
    fn unlink(py: Python<'_>, path: PathBuf) -> PyResult<()> {
        shmq::Queue::unlink(&path).map_err(|e| to_py_in(py, e))
    }

    /// The path the queue was opened with.
    #[getter]
    fn path(&self) -> String {
        self.handle.path.to_string_lossy().into_owned()
    }

    /// Number of slots.
    #[getter]
    fn capacity(&self) -> PyResult<u32> {
        self.handle.with(|q| Ok(q.capacity()))
    }

    /// Largest message, in bytes.
    #[getter]
    fn max_message_size(&self) -> PyResult<usize> {
        self.handle.with(|q| Ok(q.max_message_size()))
    }

    /// Sends `data` (any C-contiguous buffer), waiting while the queue is full; `timeout` in
    /// seconds (`None`: forever; `shmq.Timeout` when it passes).
    #[pyo3(signature = (data, timeout=None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        with_bytes(data, |msg| send_bytes(py, &self.handle, msg, timeout))?
    }

    /// Sends `data` if there is room now, else raises `shmq.Full`.
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.handle
            .with(|q| with_bytes(data, |msg| q.try_send(msg).map_err(|e| to_py_in(py, e)))?)
    }

    /// Receives the next message as `bytes`, waiting while the queue is empty.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyBytes>> {
        recv_bytes(py, &self.handle, timeout)
    }

    /// Receives the next message if there is one now, else raises `shmq.Empty`.
    fn try_recv(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        self.handle
            .with(|q| try_recv_bytes(py, q).map_err(|e| to_py_in(py, e)))
    }

    /// Sends every message of `messages` (an iterable of buffers), waiting for room as needed;
    /// returns how many were sent (all of them).
    fn send_batch(&self, py: Python<'_>, messages: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut datas = Vec::new();
        for item in messages.iter()? {
            datas.push(Data::get(&item?)?);
        }
        let q = self.handle.arc()?;
        {
            let slices: Vec<&[u8]> = datas.iter().map(|d| d.bytes()).collect();
            let mut sent = 0;
            while sent < slices.len() {
                match q.try_send_batch(&slices[sent..]) {
                    Ok(n) => sent += n,
                    Err(Error::Full) => {
                        let msg = slices[sent];
                        blocking(py, None, |slice| q.send_timeout(msg, slice))?;
                        sent += 1;
                    }
                    Err(e) => return Err(to_py_in(py, e)),
                }
            }
            Ok(sent)
        }
    }

    /// Receives up to `max` messages, waiting while the queue is empty; a list of `bytes`.
    #[pyo3(signature = (max, timeout=None))]
    fn recv_batch(&self, py: Python<'_>, max: usize, timeout: Option<f64>) -> PyResult<Py<PyList>> {
        check_timeout(timeout)?;
        let q = self.handle.arc()?;
        {
            let mut got: Vec<Vec<u8>> = Vec::new();
            let first = q.try_recv_batch(max, |m| got.push(m.to_vec()));
            match first {
                Ok(_) => {}
                Err(Error::Empty) if timeout != Some(0.0) && max > 0 => {
                    blocking(py, timeout, |slice| {
                        q.recv_batch_timeout(max, slice, |m| got.push(m.to_vec()))
                    })?;
                }
                Err(e) => return Err(to_py_in(py, e)),
            }
            let list = PyList::empty_bound(py);
            for m in &got {
                list.append(PyBytes::new_bound(py, m))?;
            }
            Ok(list.unbind())
        }
    }

    /// Claims the next message and lends it in place: a `Message` (use it in a `with` block;
    /// leaving the block releases the slot), waiting while the queue is empty.
    #[pyo3(signature = (timeout=None))]
    fn recv_in_place(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Message> {
        check_timeout(timeout)?;
        let q = self.handle.arc()?;
        let queue: &'static shmq::Queue = erase(&q);
        let guard = match queue.try_recv_in_place() {
            Err(Error::Empty) if timeout != Some(0.0) => {
                blocking(py, timeout, |slice| queue.recv_in_place_timeout(slice))?
            }
            other => other.map_err(|e| to_py_in(py, e))?,
        };
        Message::new(py, guard, q)
    }

    /// Reserves a slot to write a message in place: a `Reservation` (fill `.view`, then
    /// `.commit(n)`), waiting while the queue is full.
    #[pyo3(signature = (timeout=None))]
    fn reserve(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Reservation> {
        check_timeout(timeout)?;
        let q = self.handle.arc()?;
        let queue: &'static shmq::Queue = erase(&q);
        let guard = match queue.try_reserve() {
            Err(Error::Full) if timeout != Some(0.0) => {
                blocking(py, timeout, |slice| queue.reserve_timeout(slice))?
            }
            other => other.map_err(|e| to_py_in(py, e))?,
        };
        Reservation::new(py, guard, q)
    }

    /// Closes the queue for every process: sends raise `shmq.Closed` from now on; receivers get
    /// what was sent before, then `shmq.Closed`. Returns `False` if it was closed already.
    fn close(&self) -> PyResult<bool> {
        self.handle.with(|q| Ok(q.close()))
    }

    /// Whether the queue is closed.
    #[getter]
    fn closed(&self) -> PyResult<bool> {
        self.handle.with(|q| Ok(q.is_closed()))
    }

    /// Gives this handle's participant entry back; any later use raises `ValueError`. The
    /// queue and its messages stay (see `close` to close the queue itself).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        py.allow_threads(|| self.handle.release())
    }

    /// A snapshot of the queue's configuration and counters, as a `dict`.
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        self.handle
            .with(|q| Ok(stats_dict(py, &q.stats())?.unbind()))
    }

    fn __len__(&self) -> PyResult<usize> {
        self.handle.with(|q| Ok(q.len()))
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        match recv_bytes(py, &self.handle, None) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.is_instance_of::<PyClosedMarker>(py) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.release(py)?;
        Ok(false)
    }

    /// Pickled as its path: unpickled (in a child process, say) it opens the queue again.
    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<(PyObject, (String,))> {
        let open = slf.get_type().getattr("open")?.unbind();
        Ok((open, (slf.get().path(),)))
    }

    fn __repr__(&self) -> String {
        format!("<shmq.Queue {:?}>", self.handle.path)
    }

    /// The pid-independent fork generation this handle belongs to (for tests).
    #[getter]
    fn _generation(&self) -> PyResult<u64> {
        Ok(self.handle.slot()?.gen)
    }

    /// Awaitable receive: `await q.recv_async()` gives the next message as `bytes`. Woken by
    /// shmq's reactor (no thread per call, no polling); cancelling it loses no message.
    fn recv_async(slf: &Bound<'_, Self>) -> PyResult<PyObject> {
        aio(slf.py(), "recv_async", (slf,))
    }

    /// Awaitable send: `await q.send_async(data)`. Cancelling it sends nothing.
    fn send_async(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        aio(slf.py(), "send_async", (slf, data))
    }

    /// Awaitable in-place receive: `await q.recv_in_place_async()` gives a `Message`.
    fn recv_in_place_async(slf: &Bound<'_, Self>) -> PyResult<PyObject> {
        aio(slf.py(), "recv_in_place_async", (slf,))
    }

    /// Sends `pickle.dumps(obj)` (a convenience: shmq itself never pickles).
    #[pyo3(signature = (obj, timeout=None))]
    fn send_obj(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let data = PyModule::import_bound(py, "pickle")?.call_method1("dumps", (obj,))?;
        self.send(py, &data, timeout)
    }

    /// Receives a message and returns `pickle.loads` of it. Only for queues whose senders you
    /// trust: unpickling runs code.
    #[pyo3(signature = (timeout=None))]
    fn recv_obj(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyObject> {
        let data = self.recv(py, timeout)?;
        Ok(PyModule::import_bound(py, "pickle")?
            .call_method1("loads", (data,))?
            .unbind())
    }

    /// Does nothing: the bench's measure of the interpreter's cost of a method call.
    fn _nop(&self, _data: &Bound<'_, PyAny>) {}

    /// An asynchronous receive (see `recv_async` in `shmq`).
    fn _recv_op(&self) -> PyResult<AsyncOp> {
        let q = self.handle.arc()?;
        let buf = vec![0u8; q.max_message_size()].into_boxed_slice();
        AsyncOp::new(q, Op::Recv, buf)
    }

    fn _recv_in_place_op(&self) -> PyResult<AsyncOp> {
        let q = self.handle.arc()?;
        AsyncOp::new(q, Op::RecvInPlace, Box::new([]))
    }

    fn _send_op(&self, data: &Bound<'_, PyAny>) -> PyResult<AsyncOp> {
        let q = self.handle.arc()?;
        let copy: Box<[u8]> = with_bytes(data, |b| b.into())?;
        AsyncOp::new(q, Op::Send, copy)
    }
}

/// Calls `shmq._aio.<name>(*args)`: the coroutine of an async call.
fn aio(py: Python<'_>, name: &str, args: impl IntoPy<Py<PyTuple>>) -> PyResult<PyObject> {
    static AIO: GILOnceCell<Py<PyModule>> = GILOnceCell::new();
    let m = AIO.get_or_try_init(py, || {
        PyModule::import_bound(py, "shmq._aio").map(|m| m.unbind())
    })?;
    Ok(m.bind(py).getattr(name)?.call1(args)?.unbind())
}

/// `shmq.Closed`, for `is_instance_of` (looked up by name).
struct PyClosedMarker;

// SAFETY: `type_object_raw` returns the `shmq._errors.Closed` class (a type object), kept alive
// by its module, which `ERRORS` holds for the life of the interpreter.
unsafe impl pyo3::type_object::PyTypeInfo for PyClosedMarker {
    const NAME: &'static str = "Closed";
    const MODULE: Option<&'static str> = Some("shmq");
    fn type_object_raw(py: Python<'_>) -> *mut pyo3::ffi::PyTypeObject {
        static CLOSED: GILOnceCell<Py<PyType>> = GILOnceCell::new();
        CLOSED
            .get_or_init(py, || {
                PyModule::import_bound(py, "shmq._errors")
                    .and_then(|m| m.getattr("Closed"))
                    .and_then(|c| Ok(c.downcast_into::<PyType>()?.unbind()))
                    .expect("shmq._errors.Closed")
            })
            .as_ptr()
            .cast()
    }
}

/// Erases the lifetime of a borrow of a queue held in an `Arc` that the borrower keeps.
fn erase<T>(q: &Arc<T>) -> &'static T {
    // SAFETY: every caller stores the result (or guards made from it) next to a clone of `q`,
    // declared after it so that it drops first; the `Arc` keeps the value at a fixed address.
    unsafe { &*Arc::as_ptr(q) }
}

// ---------------------------------------------------------------------------------------------
// Message (recv_in_place) and Reservation (reserve)

struct Held<G> {
    /// Dropped first: releases the slot while the queue is alive.
    guard: Option<G>,
    _queue: Arc<shmq::Queue>,
    gen: u64,
}

impl<G> Drop for Held<G> {
    fn drop(&mut self) {
        if self.gen != generation() {
            // Inherited across fork: the parent's claim, not ours to resolve.
            std::mem::forget(self.guard.take());
            std::mem::forget(Arc::clone(&self._queue));
        }
    }
}

/// A message received in place (from `Queue.recv_in_place`): its bytes stay in the queue's
/// slot, lent to you until the `with` block ends (or `ack`/`release`).
#[pyclass(frozen, module = "shmq")]
struct Message {
    held: Mutex<Option<Held<RecvGuard<'static>>>>,
    view: PyObject,
    deliveries: u32,
    id: u64,
    len: usize,
}

impl Message {
    fn new(py: Python<'_>, guard: RecvGuard<'static>, q: Arc<shmq::Queue>) -> PyResult<Message> {
        let (ptr, len) = (guard.as_ptr() as *mut u8, guard.len());
        let deliveries = guard.deliveries();
        let id = guard.id();
        let held = Held {
            guard: Some(guard),
            _queue: q,
            gen: generation(),
        };
        let view = memoryview(py, ptr, len, false)?;
        Ok(Message {
            held: Mutex::new(Some(held)),
            view,
            deliveries,
            id,
            len,
        })
    }

    /// Ends the hold: releases the view, then acknowledges (`ack`) or lets go of the slot.
    fn finish(&self, py: Python<'_>, report: bool) -> PyResult<()> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none() {
            return Ok(());
        }
        // A view still exported (a numpy array over it) keeps the slot: BufferError, nothing
        // released, so that nothing reads a slot given back.
        release_view(py, &self.view)?;
        let mut h = held.take().expect("checked above");
        let guard = h.guard.take().expect("a held message has its guard");
        // With the GIL held: releasing it while `held` is locked could deadlock with a thread
        // that holds the GIL and waits for `held` (`extend`). `ack` never waits.
        let result = guard.ack();
        drop(h);
        match result {
            Err(e) if report => Err(to_py_in(py, e)),
            _ => Ok(()),
        }
    }
}

#[pymethods]
impl Message {
    /// A read-only `memoryview` of the message in its slot (no copy). Released when the hold
    /// ends: using it after raises `ValueError`.
    #[getter]
    fn view(&self, py: Python<'_>) -> PyObject {
        self.view.clone_ref(py)
    }

    /// How many times a consumer has claimed this message, this delivery included.
    #[getter]
    fn deliveries(&self) -> u32 {
        self.deliveries
    }

    /// The message's id, the same on every delivery of it.
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }

    /// Acknowledges (deletes) the message and ends the hold. Raises `shmq.Expired` if the
    /// visibility timeout passed and the message was handed out again.
    fn ack(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, true)
    }

    /// Keeps the message for `seconds` more from now (a heartbeat, with a visibility timeout).
    fn extend(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        let d = duration(seconds, "seconds")?;
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held.as_ref().and_then(|h| h.guard.as_ref()) {
            Some(g) => g.extend(d).map_err(|e| to_py_in(py, e)),
            None => Err(PyValueError::new_err("the message was released")),
        }
    }

    /// Ends the hold without reporting `Expired` (what leaving the `with` block does).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.finish(py, false)
    }

    /// Whether the hold has ended.
    #[getter]
    fn released(&self) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    fn __bytes__(&self, py: Python<'_>) -> PyResult<PyObject> {
        self.view
            .bind(py)
            .call_method0("tobytes")
            .map(|b| b.unbind())
    }

    fn __len__(&self) -> usize {
        self.len
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.finish(py, false)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmq.Message {} bytes, deliveries={}>",
            self.len, self.deliveries
        )
    }
}

/// A slot reserved for writing a message in place (from `Queue.reserve`).
#[pyclass(frozen, module = "shmq")]
struct Reservation {
    held: Mutex<Option<Held<SendGuard<'static>>>>,
    view: PyObject,
}

impl Reservation {
    fn new(py: Python<'_>, mut guard: SendGuard<'static>, q: Arc<shmq::Queue>) -> PyResult<Self> {
        let (ptr, len) = (guard.as_mut_ptr(), guard.len());
        let held = Held {
            guard: Some(guard),
            _queue: q,
            gen: generation(),
        };
        let view = memoryview(py, ptr, len, true)?;
        Ok(Reservation {
            held: Mutex::new(Some(held)),
            view,
        })
    }

    fn end(&self, py: Python<'_>, commit: Option<usize>) -> PyResult<()> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none() {
            return match commit {
                Some(_) => Err(PyValueError::new_err("the reservation has ended")),
                None => Ok(()),
            };
        }
        if let Some(n) = commit {
            let max = self.view.bind(py).len()?;
            if n > max {
                return Err(to_py_in(py, Error::TooLarge { len: n, max }));
            }
        }
        release_view(py, &self.view)?;
        let mut h = held.take().expect("checked above");
        let guard = h.guard.take().expect("a reservation has its guard");
        match commit {
            Some(n) => guard.commit(n).map_err(|e| to_py_in(py, e)),
            None => {
                drop(guard);
                Ok(())
            }
        }
    }
}

#[pymethods]
impl Reservation {
    /// A writable `memoryview` of the slot (`max_message_size` bytes). Released by `commit`
    /// and `cancel`: using it after raises `ValueError`.
    #[getter]
    fn view(&self, py: Python<'_>) -> PyObject {
        self.view.clone_ref(py)
    }

    /// Publishes the first `n` bytes written as one message.
    fn commit(&self, py: Python<'_>, n: usize) -> PyResult<()> {
        self.end(py, Some(n))
    }

    /// Gives the slot back without sending (what leaving a `with` block without `commit` does).
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        self.end(py, None)
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.view.bind(py).len()
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.end(py, None)?;
        Ok(false)
    }
}

// ---------------------------------------------------------------------------------------------
// asyncio: Rust futures polled from Python, woken through an eventfd

/// Wakes the asyncio loop by making an eventfd readable (the loop watches it with
/// `add_reader`). Callable from shmq's reactor threads, without the GIL.
struct FdWaker {
    fd: OwnedFd,
}

impl Wake for FdWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd (non-blocking: a counter at
        // its maximum fails with EAGAIN, and is readable anyway).
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

#[derive(Clone, Copy)]
enum Op {
    Recv,
    RecvInPlace,
    Send,
}

enum Pending {
    Recv(shmq::RecvFuture<'static, 'static>),
    RecvInPlace(shmq::RecvInPlaceFuture<'static>),
    Send(shmq::SendFuture<'static, 'static>),
}

struct OpState {
    /// Dropped first (by `drop`): the future borrows `data` and the queue.
    fut: std::mem::ManuallyDrop<Pin<Box<Pending>>>,
    data: Box<[u8]>,
    queue: Arc<shmq::Queue>,
    gen: u64,
}

impl Drop for OpState {
    fn drop(&mut self) {
        if self.gen != generation() {
            // Inherited across fork: the parent's registration is not ours to take back; the
            // future and its queue are leaked.
            std::mem::forget(Arc::clone(&self.queue));
            return;
        }
        // SAFETY: dropped once, here; `fut` is not used after.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.fut) };
    }
}

/// One pending asynchronous call (see `shmq._aio`).
#[pyclass(frozen, module = "shmq")]
struct AsyncOp {
    state: Mutex<Option<OpState>>,
    waker: Arc<FdWaker>,
}

impl AsyncOp {
    fn new(queue: Arc<shmq::Queue>, op: Op, data: Box<[u8]>) -> PyResult<AsyncOp> {
        // SAFETY: eventfd with flags only; returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let waker = Arc::new(FdWaker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        });
        let mut data = data;
        let q: &'static shmq::Queue = erase(&queue);
        // SAFETY: `data` is a heap allocation owned by the `OpState`, which drops the future
        // (declared first) before it; moving the `Box` does not move its bytes.
        let bytes: &'static mut [u8] = unsafe { &mut *(&mut *data as *mut [u8]) };
        let fut = Box::pin(match op {
            Op::Recv => Pending::Recv(q.recv_async(bytes)),
            Op::RecvInPlace => Pending::RecvInPlace(q.recv_in_place_async()),
            Op::Send => Pending::Send(q.send_async(bytes)),
        });
        Ok(AsyncOp {
            state: Mutex::new(Some(OpState {
                fut: std::mem::ManuallyDrop::new(fut),
                data,
                queue,
                gen: generation(),
            })),
            waker,
        })
    }
}

#[pymethods]
impl AsyncOp {
    /// The eventfd that becomes readable when the call may progress.
    #[getter]
    fn fd(&self) -> i32 {
        self.waker.fd.as_raw_fd()
    }

    /// Polls the call once: `(True, result)` when done (the operation happened), `(False,
    /// None)` when it waits (the eventfd will become readable).
    fn poll(&self, py: Python<'_>) -> PyResult<(bool, PyObject)> {
        let mut drain = 0u64;
        // SAFETY: reads at most 8 bytes into a live u64 from our non-blocking eventfd.
        unsafe {
            libc::read(
                self.waker.fd.as_raw_fd(),
                (&mut drain as *mut u64).cast(),
                8,
            )
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(st) = state.as_mut() else {
            return Err(PyValueError::new_err("the call was cancelled"));
        };
        let waker = Waker::from(Arc::clone(&self.waker));
        let mut cx = Context::from_waker(&waker);
        let done: PyResult<PyObject> = match st.fut.as_mut().get_mut() {
            Pending::Recv(f) => match Pin::new(f).poll(&mut cx) {
                Poll::Pending => return Ok((false, py.None())),
                Poll::Ready(Ok(n)) => Ok(PyBytes::new_bound(py, &st.data[..n]).into_any().unbind()),
                Poll::Ready(Err(e)) => Err(to_py_in(py, e)),
            },
            Pending::Send(f) => match Pin::new(f).poll(&mut cx) {
                Poll::Pending => return Ok((false, py.None())),
                Poll::Ready(r) => r.map(|()| py.None()).map_err(|e| to_py_in(py, e)),
            },
            Pending::RecvInPlace(f) => match Pin::new(f).poll(&mut cx) {
                Poll::Pending => return Ok((false, py.None())),
                Poll::Ready(Ok(guard)) => {
                    let q = Arc::clone(&st.queue);
                    Message::new(py, guard, q).and_then(|m| Ok(Py::new(py, m)?.into_any()))
                }
                Poll::Ready(Err(e)) => Err(to_py_in(py, e)),
            },
        };
        // Done: drop the future now (it holds nothing after completing).
        *state = None;
        done.map(|v| (true, v))
    }

    /// Drops the pending call: nothing was or will be sent or received by it.
    fn cancel(&self) {
        let taken = self.state.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(taken);
    }
}

// ---------------------------------------------------------------------------------------------
// Topic

/// A topic file: publishes fan out to one queue per subscription.
#[pyclass(frozen, module = "shmq", name = "Topic")]
struct Topic {
    handle: Handle<Mutex<shmq::Topic>>,
}

/// A topic handle is `Send` but not `Sync`: its threads take turns.
fn open_topic(path: &std::path::Path) -> shmq::Result<Mutex<shmq::Topic>> {
    shmq::Topic::open(path).map(Mutex::new)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[pymethods]
impl Topic {
    /// Creates a topic file at `path` for messages of up to `max_message_size` bytes.
    #[staticmethod]
    #[pyo3(signature = (path, max_message_size, *, mode=0o600))]
    fn create(py: Python<'_>, path: PathBuf, max_message_size: u32, mode: u32) -> PyResult<Topic> {
        let o = TopicOptions::new(max_message_size).mode(mode);
        let t = py
            .allow_threads(|| shmq::Topic::create(&path, o))
            .map_err(|e| to_py_in(py, e))?;
        Ok(Topic {
            handle: Handle::new(Mutex::new(t), path, open_topic),
        })
    }

    /// Opens an existing topic file.
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Topic> {
        let t = py
            .allow_threads(|| shmq::Topic::open(&path))
            .map_err(|e| to_py_in(py, e))?;
        Ok(Topic {
            handle: Handle::new(Mutex::new(t), path, open_topic),
        })
    }

    /// Removes the topic file (the subscriptions' queues stay).
    #[staticmethod]
    fn unlink(py: Python<'_>, path: PathBuf) -> PyResult<()> {
        shmq::Topic::unlink(&path).map_err(|e| to_py_in(py, e))
    }

    /// Subscribes the queue at `queue_path` (created with `capacity` and `max_message_size`
    /// if absent). `when_full`: `"block"` (publishers wait) or `"drop"`; `prefix`: deliver only
    /// messages that start with these bytes.
    #[pyo3(signature = (queue_path, capacity, max_message_size, when_full="block", prefix=None))]
    fn subscribe(
        &self,
        py: Python<'_>,
        queue_path: PathBuf,
        capacity: u32,
        max_message_size: u32,
        when_full: &str,
        prefix: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let mut s = Subscription::new(capacity, max_message_size).when_full(match when_full {
            "block" => WhenFull::Block,
            "drop" => WhenFull::Drop,
            other => {
                return Err(PyValueError::new_err(format!(
                    "when_full must be \"block\" or \"drop\", not {other:?}"
                )))
            }
        });
        if let Some(p) = prefix {
            let bytes: Vec<u8> = with_bytes(p, |b| b.to_vec())?;
            s = s.prefix(bytes);
        }
        self.handle.with(|t| {
            py.allow_threads(|| lock(t).subscribe(&queue_path, s))
                .map_err(|e| to_py_in(py, e))
        })
    }

    /// Removes the subscription of the queue at `queue_path` (the queue stays).
    fn unsubscribe(&self, py: Python<'_>, queue_path: PathBuf) -> PyResult<()> {
        self.handle.with(|t| {
            py.allow_threads(|| lock(t).unsubscribe(&queue_path))
                .map_err(|e| to_py_in(py, e))
        })
    }

    /// Publishes `data` to every subscription, waiting for room in blocking ones.
    #[pyo3(signature = (data, timeout=None))]
    fn publish(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        check_timeout(timeout)?;
        let t = self.handle.arc()?;
        {
            let t = &*t;
            with_bytes(data, |msg| {
                // Not in the `match`: its temporaries (the lock) would live through the wait.
                let first = lock(t).try_publish(msg);
                match first {
                    Err(Error::Full) if timeout != Some(0.0) => {
                        blocking(py, timeout, |slice| lock(t).publish_timeout(msg, slice))
                    }
                    other => other.map_err(|e| to_py_in(py, e)),
                }
            })?
        }
    }

    /// Publishes `data` if every blocking subscription has room now, else raises `shmq.Full`.
    fn try_publish(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.handle.with(|t| {
            with_bytes(data, |msg| {
                lock(t).try_publish(msg).map_err(|e| to_py_in(py, e))
            })?
        })
    }

    /// Largest message the topic accepts.
    #[getter]
    fn max_message_size(&self) -> PyResult<usize> {
        self.handle.with(|t| Ok(lock(t).max_message_size()))
    }

    /// The subscriptions' queue paths.
    fn subscriptions(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.handle.with(|t| {
            let subs = lock(t).subscriptions().map_err(|e| to_py_in(py, e))?;
            Ok(subs
                .iter()
                .map(|s| s.path.to_string_lossy().into_owned())
                .collect())
        })
    }

    /// Gives the handle back; later use raises `ValueError`.
    fn release(&self) -> PyResult<()> {
        self.handle.release()
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.handle.release()?;
        Ok(false)
    }

    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<(PyObject, (String,))> {
        let open = slf.get_type().getattr("open")?.unbind();
        Ok((
            open,
            (slf.get().handle.path.to_string_lossy().into_owned(),),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Benchmark helper: the Rust cost of the pair the Python layer wraps

/// Nanoseconds per `try_send` + `try_recv` pair of `size`-byte messages, `n` pairs, from Rust
/// (the baseline of the Python layer's own cost in `shmq.bench`).
#[pyfunction]
fn _rust_pair_ns(py: Python<'_>, queue: &Queue, n: u64, size: usize) -> PyResult<f64> {
    queue.handle.with(|q| {
        py.allow_threads(|| {
            let msg = vec![7u8; size];
            let mut buf = vec![0u8; q.max_message_size()];
            let start = Instant::now();
            for _ in 0..n {
                q.try_send(&msg)?;
                std::hint::black_box(q.try_recv(&mut buf)?);
            }
            Ok(start.elapsed().as_nanos() as f64 / n as f64)
        })
        .map_err(|e: Error| to_py_in(py, e))
    })
}

#[pymodule]
fn _shmq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // SAFETY: registers a handler that only bumps an atomic (async-signal-safe).
    let rc = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    if rc != 0 {
        return Err(PyOSError::new_err((rc, "pthread_atfork failed")));
    }
    m.add_class::<Queue>()?;
    m.add_class::<Message>()?;
    m.add_class::<Reservation>()?;
    m.add_class::<AsyncOp>()?;
    m.add_class::<Topic>()?;
    m.add_function(wrap_pyfunction!(_rust_pair_ns, m)?)?;
    Ok(())
}
