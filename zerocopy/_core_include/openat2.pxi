# openat2(2) for zerocopy.http's path resolution: RESOLVE_BENEATH makes the kernel
# refuse every path (``..``, absolute or escaping symlinks, mount crossings of magic
# links) that would leave the directory fd, atomically, so that no string check or
# race between lookups can open a file outside a served root (aiohttp CVE-2024-23334).
# Linux 5.6+; older kernels answer ENOSYS and the caller walks the path itself.

cdef extern from *:
    """
    #include <stdint.h>
    #include <unistd.h>
    #include <sys/syscall.h>
    #ifndef SYS_openat2
    #  if defined(__NR_openat2)
    #    define SYS_openat2 __NR_openat2
    #  else
    #    define SYS_openat2 437  /* the same number on every architecture */
    #  endif
    #endif
    struct zc_open_how { uint64_t flags; uint64_t mode; uint64_t resolve; };
    static long zc_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode,
                           uint64_t resolve) {
        struct zc_open_how how = {flags, mode, resolve};
        return syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    }
    """
    long zc_openat2(int dirfd, const char *path, unsigned long long flags,
                    unsigned long long mode, unsigned long long resolve) nogil


def openat2(int dir_fd, path, int flags, int resolve, int mode=0):
    """Open *path* relative to *dir_fd* with openat2(2) and the ``RESOLVE_*`` bits in
    *resolve*; returns the new fd (the caller owns it).  Raises OSError (ENOSYS where
    the kernel lacks the call, EXDEV or ELOOP for a path the bits refuse)."""
    cdef bytes encoded = os.fsencode(path)
    cdef const char *c_path = encoded
    cdef long fd
    while True:
        with nogil:
            fd = zc_openat2(dir_fd, c_path, <unsigned long long>flags,
                            <unsigned long long>mode, <unsigned long long>resolve)
        if fd >= 0:
            return fd
        if errno != EINTR:
            raise _oserror(errno, "openat2")
        PyErr_CheckSignals()
