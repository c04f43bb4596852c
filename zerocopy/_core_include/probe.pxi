# Capability probing (included by _core.pyx): the C half of zerocopy._probe.
#
# Each system call is made raw (syscall(2), so no libc emulation answers for the
# kernel: glibc 2.27-2.29 emulated copy_file_range in user space) with fd -1 and a
# length of 1, which moves no data: the kernel looks the fd up before anything else
# and fails EBADF when the call exists, ENOSYS when it does not.  A length of 0 would
# not do: splice and tee return 0 for it before looking at the fds (fs/splice.c).
# A seccomp filter may answer EPERM (Docker before 20.10 did for copy_file_range,
# golang/go#40893).

cdef extern from *:
    """
    #include <errno.h>
    #include <stddef.h>
    #include <unistd.h>
    #include <sys/syscall.h>

    /* errno of the call made with invalid fds, 0 if it (impossibly) succeeded,
       -1 if this build has no number for it (then nobody knows). */
    static int zc_probe_syscall(int which) {
        long rc;
        errno = 0;
        switch (which) {
    #ifdef SYS_sendfile
        case 0: rc = syscall(SYS_sendfile, -1, -1, NULL, (size_t)1); break;
    #endif
    #ifdef SYS_splice
        case 1: rc = syscall(SYS_splice, -1, NULL, -1, NULL, (size_t)1, 0U); break;
    #endif
    #ifdef SYS_tee
        case 2: rc = syscall(SYS_tee, -1, -1, (size_t)1, 0U); break;
    #endif
    #ifdef SYS_vmsplice
        case 3: rc = syscall(SYS_vmsplice, -1, NULL, 0UL, 0U); break;
    #endif
    #ifdef SYS_copy_file_range
        case 4: rc = syscall(SYS_copy_file_range, -1, NULL, -1, NULL, (size_t)1, 0U); break;
    #endif
        default: return -1;
        }
        return rc < 0 ? errno : 0;
    }
    """
    int zc_probe_syscall(int which) nogil

_PROBED = ("sendfile", "splice", "tee", "vmsplice", "copy_file_range")


def probe_syscalls():
    """Call each syscall with invalid fds (moving nothing) and return its errno by
    name: EBADF means present, ENOSYS absent, -1 that this build cannot ask."""
    cdef int i
    answers = {}
    for i in range(len(_PROBED)):
        answers[_PROBED[i]] = zc_probe_syscall(i)
    return answers
