# C declarations of the system calls the core drives.  Linux only: meson builds the
# core on Linux alone.  pyconfig.h defines _GNU_SOURCE, which exposes splice and
# copy_file_range (glibc >= 2.27) in <fcntl.h> / <unistd.h>.  Each call is named c_x in
# Cython (the C name in quotes), so the Python-level loops can be called sendfile etc.
from posix.types cimport off_t

cdef extern from "<sys/sendfile.h>" nogil:
    ssize_t c_sendfile "sendfile"(int out_fd, int in_fd, off_t *offset, size_t count)

cdef extern from "<fcntl.h>" nogil:
    ssize_t c_splice "splice"(int fd_in, off_t *off_in, int fd_out, off_t *off_out,
                   size_t length, unsigned int flags)
    enum:
        SPLICE_F_MOVE
        SPLICE_F_NONBLOCK
        F_GETPIPE_SZ  # fcntl fails (EBADF) on anything but a pipe

cdef extern from "<unistd.h>" nogil:
    ssize_t c_copy_file_range "copy_file_range"(int fd_in, off_t *off_in, int fd_out, off_t *off_out,
                            size_t length, unsigned int flags)
    ssize_t c_read "read"(int fd, void *buf, size_t count)
    ssize_t c_write "write"(int fd, const void *buf, size_t count)
    ssize_t c_pread "pread"(int fd, void *buf, size_t count, off_t offset)
    ssize_t c_pwrite "pwrite"(int fd, const void *buf, size_t count, off_t offset)

cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int c_poll "poll"(pollfd *fds, unsigned long nfds, int timeout)
    enum:
        POLLIN
        POLLOUT

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    enum:
        CLOCK_MONOTONIC
    int clock_gettime(int clk_id, timespec *tp)
