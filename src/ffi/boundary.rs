//! The plumbing every export goes through: the panic boundary, the thread-local last error,
//! pointer/length/UTF-8 checks and the copy-into-caller's-buffer helper.
//!
//! Nothing here knows about chats or DMs; `chats.rs` and `dm.rs` only call [`enter`],
//! [`enter_handle`], the shared bodies of `driven.rs` and the argument helpers.

use super::{MlChats, MlDm};
use crate::error::{Error, ErrorCode, Result};
use std::cell::RefCell;
use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    /// Message of the last failing call on this thread. Not cleared by successful calls.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

#[cfg(test)]
thread_local! {
    /// Test hook: the next export on this thread panics inside its boundary.
    pub(crate) static PANIC_NEXT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(crate) fn set_last_error(message: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = message);
}

pub(crate) fn with_last_error<R>(f: impl FnOnce(&str) -> R) -> R {
    LAST_ERROR.with(|e| f(&e.borrow()))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}

/// Run `f` behind the panic boundary and turn its result into a return code, recording the
/// message of a failure as this thread's last error. `name` is the export's name.
pub(crate) fn enter(name: &str, f: impl FnOnce() -> Result<()>) -> i32 {
    let result = catch_unwind(AssertUnwindSafe(|| {
        #[cfg(test)]
        if PANIC_NEXT.with(|p| p.replace(false)) {
            panic!("test hook: panic requested");
        }
        f()
    }));
    match result {
        Ok(Ok(())) => ErrorCode::Ok as i32,
        Ok(Err(e)) => {
            set_last_error(format!("{name}: {}", e.message));
            e.code as i32
        }
        Err(payload) => {
            set_last_error(format!("{name}: Rust panicked: {}", panic_message(&*payload)));
            ErrorCode::Panic as i32
        }
    }
}

/// A handle that a panic poisons.
pub(crate) trait Poisonable {
    fn poison_flag(&self) -> &std::cell::Cell<bool>;
}

impl Poisonable for MlChats {
    fn poison_flag(&self) -> &std::cell::Cell<bool> {
        &self.poisoned
    }
}

impl Poisonable for MlDm {
    fn poison_flag(&self) -> &std::cell::Cell<bool> {
        &self.poisoned
    }
}

/// [`enter`] for a call on a handle: NULL and poisoned handles are refused, and a panic
/// poisons the handle so every later call on it returns `PANIC`.
pub(crate) fn enter_handle<H: Poisonable>(name: &str, handle: *const H, f: impl FnOnce(&H) -> Result<()>) -> i32 {
    if handle.is_null() {
        set_last_error(format!("{name}: handle: NULL pointer"));
        return ErrorCode::NullPointer as i32;
    }
    // SAFETY: the caller passes a handle from `ml_*_new` that it has not freed.
    // Only shared references are ever formed; mutation goes through the handle's cells.
    let h = unsafe { &*handle };
    if h.poison_flag().get() {
        set_last_error(format!("{name}: the handle is poisoned by an earlier panic; free it and start again"));
        return ErrorCode::Panic as i32;
    }
    let code = enter(name, || f(h));
    if code == ErrorCode::Panic as i32 {
        h.poison_flag().set(true);
    }
    code
}

fn null(what: &str) -> Error {
    Error::new(ErrorCode::NullPointer, format!("{what}: NULL pointer"))
}

/// A required NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives the call.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(null(what));
    }
    // SAFETY: non-NULL and NUL-terminated per the contract above.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes
        .to_str()
        .map_err(|e| Error::new(ErrorCode::InvalidUtf8, format!("{what}: not valid UTF-8 (at byte {})", e.valid_up_to())))
}

/// An optional string argument: NULL means `None`.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(ptr: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if ptr.is_null() { Ok(None) } else { unsafe { str_arg(ptr, what) }.map(Some) }
}

/// A byte-slice argument. `ptr` may be NULL only when `len` is 0.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes that outlive the call.
pub(crate) unsafe fn bytes_arg<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8]> {
    unsafe { slice_arg(ptr, len, what) }
}

/// A slice argument of `len` elements (samples, bytes). `ptr` may be NULL only when `len` is 0.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable, aligned elements that outlive the call.
pub(crate) unsafe fn slice_arg<'a, T>(ptr: *const T, len: usize, what: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(null(what));
    }
    if len > isize::MAX as usize / size_of::<T>().max(1) {
        return Err(Error::invalid_argument(format!("{what}: length {len} is too large")));
    }
    if !ptr.is_aligned() {
        return Err(Error::invalid_argument(format!("{what}: pointer is not aligned")));
    }
    // SAFETY: non-NULL, aligned, `len` readable elements per the contract above, size in range.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The 32-byte seed every `ml_*_new` takes (from a secure random source).
///
/// # Safety
/// As [`bytes_arg`].
pub(crate) unsafe fn seed_arg(ptr: *const u8, len: usize) -> Result<[u8; 32]> {
    if ptr.is_null() {
        return Err(null("seed"));
    }
    unsafe { bytes_arg(ptr, len, "seed")? }
        .try_into()
        .map_err(|_| Error::invalid_argument(format!("seed must be 32 bytes, got {len}")))
}

/// Free a handle made by `Box::into_raw` (NULL is ignored), behind the panic boundary.
///
/// # Safety
/// `handle` is NULL or came from the matching `ml_*_new` and is freed once.
pub(crate) unsafe fn free_handle<T>(name: &str, handle: *mut T) {
    if handle.is_null() {
        return;
    }
    enter(name, || {
        drop(unsafe { Box::from_raw(handle) });
        Ok(())
    });
}

/// A writable slice argument, like [`slice_arg`].
///
/// # Safety
/// `ptr` is NULL or points to `len` writable, aligned elements not aliased during the call.
pub(crate) unsafe fn slice_mut_arg<'a, T>(ptr: *mut T, len: usize, what: &str) -> Result<&'a mut [T]> {
    unsafe { slice_arg(ptr, len, what)? };
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: checked by `slice_arg`; exclusive per the contract above.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Write `value` through a required out-pointer.
///
/// # Safety
/// `ptr` is NULL or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(ptr: *mut T, value: T, what: &str) -> Result<()> {
    if ptr.is_null() {
        return Err(null(what));
    }
    // SAFETY: non-NULL and writable per the contract above.
    unsafe { ptr.write(value) };
    Ok(())
}

/// Copy `src` into the caller's buffer. `*needed` always receives `src.len()` (no NUL
/// counted). When `cap >= src.len()` the bytes are copied, plus a NUL when `cap > src.len()`;
/// otherwise nothing is copied and the result is `BUFFER_TOO_SMALL`. `buf` may be NULL when
/// `cap` is 0 (a size query).
///
/// # Safety
/// `buf` is NULL or valid for `cap` byte writes; `needed` is NULL or valid for a write.
pub(crate) unsafe fn copy_out(src: &[u8], buf: *mut u8, cap: usize, needed: *mut usize) -> Result<()> {
    unsafe { write_out(needed, src.len(), "needed")? };
    if cap < src.len() {
        return Err(Error::new(
            ErrorCode::BufferTooSmall,
            format!("buffer of {cap} bytes is too small: {} needed", src.len()),
        ));
    }
    if cap == 0 {
        return Ok(());
    }
    if buf.is_null() {
        return Err(null("buf"));
    }
    // SAFETY: `buf` is valid for `cap >= src.len()` bytes; `src` is a Rust slice that cannot
    // overlap a caller-owned buffer we were handed.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), buf, src.len());
        if cap > src.len() {
            buf.add(src.len()).write(0);
        }
    }
    Ok(())
}
