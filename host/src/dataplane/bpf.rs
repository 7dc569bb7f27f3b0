//! The map element commands of `bpf(2)` that aya 0.14 does not offer: on
//! keys and values whose sizes are known only at run time (a plugin's
//! bytes), and in batches (`BPF_MAP_UPDATE_BATCH`, the only way to put a
//! full table into an LPM trie at the kernel's pace). aya loads, pins and
//! attaches; these act on the fds of the maps it pinned. The attribute
//! layout is the kernel's own (`aya_obj::generated::bpf_attr`), not a copy.
//!
//! Every command is `unsafe`: the kernel reads (or writes) exactly the
//! map's key and value sizes at the pointers given, whatever the slices'
//! lengths, so the caller must have checked them against the kernel's
//! definition of the map (`maps.rs` does, before each call).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use aya_obj::generated::{bpf_attr, bpf_cmd};

/// `BPF_ANY`: create or replace.
const BPF_ANY: u64 = 0;

fn sys_bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<()> {
    // SAFETY: `attr` is a valid, initialised `bpf_attr` that outlives the
    // call, and its size is passed with it; every pointer in it is to
    // memory the caller keeps alive and sized as the map requires.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            std::mem::size_of::<bpf_attr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn zeroed() -> bpf_attr {
    // SAFETY: `bpf_attr` is a C union of plain integers; all zeroes is the
    // value the kernel expects in every field a command does not use.
    unsafe { std::mem::zeroed() }
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    fd.as_raw_fd() as u32
}

fn elem(fd: BorrowedFd<'_>, key: &[u8], value: u64, flags: u64) -> bpf_attr {
    let mut attr = zeroed();
    attr.__bindgen_anon_2.map_fd = fd_u32(fd);
    attr.__bindgen_anon_2.key = key.as_ptr() as u64;
    attr.__bindgen_anon_2.__bindgen_anon_1.value = value;
    attr.__bindgen_anon_2.flags = flags;
    attr
}

/// The value under `key` into `value`; false when there is none.
///
/// # Safety
/// `key` is the map's key size and `value` its value size (for a per-CPU
/// map, the whole per-CPU array).
pub unsafe fn lookup(fd: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut attr = elem(fd, key, value.as_mut_ptr() as u64, 0);
    match sys_bpf(bpf_cmd::BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates or replaces the entry.
///
/// # Safety
/// `key` and `value` are the map's key and value sizes.
pub unsafe fn update(fd: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = elem(fd, key, value.as_ptr() as u64, BPF_ANY);
    sys_bpf(bpf_cmd::BPF_MAP_UPDATE_ELEM, &mut attr)
}

/// Deletes the entry; false when there was none.
///
/// # Safety
/// `key` is the map's key size.
pub unsafe fn delete(fd: BorrowedFd<'_>, key: &[u8]) -> io::Result<bool> {
    let mut attr = elem(fd, key, 0, 0);
    match sys_bpf(bpf_cmd::BPF_MAP_DELETE_ELEM, &mut attr) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The key after `key` (the first with `None`) into `next`; false past
/// the last.
///
/// # Safety
/// `key` (when given) and `next` are the map's key size.
pub unsafe fn next_key(
    fd: BorrowedFd<'_>,
    key: Option<&[u8]>,
    next: &mut [u8],
) -> io::Result<bool> {
    let mut attr = elem(fd, key.unwrap_or(&[]), next.as_mut_ptr() as u64, 0);
    if key.is_none() {
        attr.__bindgen_anon_2.key = 0;
    }
    match sys_bpf(bpf_cmd::BPF_MAP_GET_NEXT_KEY, &mut attr) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `count` entries in one command: `keys` and `values` laid end to end.
/// On failure, how many were applied before it.
///
/// # Safety
/// `keys` is `count` times the map's key size, `values` `count` times its
/// value size.
pub unsafe fn update_batch(
    fd: BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: u32,
) -> Result<(), (u32, io::Error)> {
    let mut attr = zeroed();
    attr.batch.map_fd = fd_u32(fd);
    attr.batch.keys = keys.as_ptr() as u64;
    attr.batch.values = values.as_ptr() as u64;
    attr.batch.count = count;
    attr.batch.elem_flags = BPF_ANY;
    sys_bpf(bpf_cmd::BPF_MAP_UPDATE_BATCH, &mut attr).map_err(|e| {
        // SAFETY: the batch member is the one written, plain integers.
        let left = unsafe { attr.batch.count };
        // The kernel writes back how many it processed, except when it
        // refuses the command before the first (no batch command, no
        // access): then the count is still the one given.
        (if left == count { 0 } else { left }, e)
    })
}
