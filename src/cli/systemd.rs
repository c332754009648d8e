//! The two pieces of systemd's service protocol that inline mode uses, written against the
//! documented interfaces (sd_notify(3), sd_listen_fds(3)), without libsystemd:
//! - **notify**: `READY=1`, `STOPPING=1`, `STATUS=...`, and `FDSTORE=1` with the NFQUEUE
//!   sockets attached (SCM_RIGHTS), sent as datagrams to `$NOTIFY_SOCKET`;
//! - **inherited descriptors**: `$LISTEN_PID`, `$LISTEN_FDS` and `$LISTEN_FDNAMES`, descriptors
//!   from 3 on, which is how systemd hands the stored sockets back after a restart.
//!
//! With `FileDescriptorStoreMax=` in the unit, systemd keeps the queue sockets open while
//! rmmguard restarts, even after a crash or `kill -9`: the queues stay bound, packets wait in
//! them instead of being dropped by the kernel, and the next process takes them over. Without
//! `$NOTIFY_SOCKET` every function here does nothing.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Descriptors handed over by the service manager, with their names (`nfqueue-0`, ...).
/// Takes them once: the variables are removed so that children do not see them.
pub fn take_listen_fds() -> Vec<(String, OwnedFd)> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let n = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    if !pid_ok || !(1..=1024).contains(&n) {
        return Vec::new();
    }
    let names: Vec<&str> = names.split(':').collect();
    (0..n)
        .filter_map(|i| {
            let fd = 3 + i;
            // SAFETY: fcntl on a descriptor number; F_GETFD fails harmlessly if it is not open.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                return None;
            }
            // SAFETY: as above; marks it close-on-exec like every descriptor rmmguard opens.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            // SAFETY: the service manager passed this descriptor to this process (LISTEN_PID
            // matched) and nothing else in the process has taken ownership of it.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let name = names
                .get(i as usize)
                .copied()
                .unwrap_or("unknown")
                .to_string();
            Some((name, owned))
        })
        .collect()
}

/// Whether a service manager listens for notifications.
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Sends `state` (newline-separated `KEY=VALUE` lines) to `$NOTIFY_SOCKET`, with `fds`
/// attached. Returns false (and logs) when it could not be sent; true when sent or when there
/// is no service manager.
pub fn notify(state: &str, fds: &[BorrowedFd<'_>]) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return true;
    };
    match send(path.as_encoded_bytes(), state.as_bytes(), fds) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("cannot notify the service manager ({state:?}): {e}");
            false
        }
    }
}

fn send(path: &[u8], msg: &[u8], fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    // SAFETY: a zeroed sockaddr_un is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.is_empty() || path.len() >= sa.sun_path.len() || fds.len() > 16 {
        return Err(Error::new(ErrorKind::InvalidInput, "bad NOTIFY_SOCKET"));
    }
    // '@' names an abstract socket: a leading NUL byte.
    let abstract_ns = path[0] == b'@';
    for (i, b) in path.iter().enumerate() {
        sa.sun_path[i] = if i == 0 && abstract_ns {
            0
        } else {
            *b as libc::c_char
        };
    }
    let addr_len = (std::mem::size_of::<libc::sa_family_t>() + path.len()) as libc::socklen_t;
    // SAFETY: plain socket(2), checked before it is wrapped.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut iov = libc::iovec {
        iov_base: msg.as_ptr() as *mut libc::c_void,
        iov_len: msg.len(),
    };
    let raw_fds: Vec<libc::c_int> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let data_len = std::mem::size_of_val(raw_fds.as_slice()) as u32;
    // Control buffer, u64-aligned, large enough for 16 descriptors.
    let mut control = [0u64; 16];
    // SAFETY: a zeroed msghdr is valid; every pointer set below outlives the sendmsg call.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_name = &mut sa as *mut libc::sockaddr_un as *mut libc::c_void;
    mh.msg_namelen = addr_len;
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    if !raw_fds.is_empty() {
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        debug_assert!(space <= std::mem::size_of_val(&control));
        mh.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        mh.msg_controllen = space as _;
        // SAFETY: msg_control points to `space` writable bytes, enough for one header and the
        // descriptors (16 at most, checked above), so CMSG_FIRSTHDR is non-null and CMSG_DATA
        // has room for `data_len` bytes.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&mh);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(data_len) as _;
            std::ptr::copy_nonoverlapping(
                raw_fds.as_ptr() as *const u8,
                libc::CMSG_DATA(c),
                data_len as usize,
            );
        }
    }
    // SAFETY: `mh` and everything it points to are valid for the call.
    let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &mh, libc::MSG_NOSIGNAL) };
    if r < 0 {
        return Err(Error::last_os_error());
    }
    Ok(())
}
