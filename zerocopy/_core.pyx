# cython: language_level=3, embedsignature=True, autotestdict=False
# cython: boundscheck=False, wraparound=False, cdivision=True
"""The compiled core: one loop per method, in C, with the GIL released around each
system call only.

Each function takes a ``zerocopy._job.Job``, copies its numbers into a C struct, runs
the loop and writes the numbers back after every call that delivered bytes (before
the progress callback) and on every way out, so the transfer layer always sees how
far the loop got.  Errors are raised as plain ``OSError`` (the transfer layer turns
them into zerocopy's own tree).  ``EINTR`` runs Python's signal handlers
(``PyErr_CheckSignals``, PEP 475) and retries; ``EAGAIN`` waits with ``poll`` on the
side that blocked, bounded by the per-wait timeout and the deadline.
"""

from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport errno, EINTR, EAGAIN, ETIMEDOUT
from libc.stdlib cimport malloc, free
from posix.types cimport off_t

from zerocopy._syscalls cimport (
    sendfile as c_sendfile, splice as c_splice, copy_file_range as c_copy_file_range,
    read as c_read, write as c_write, pread as c_pread, pwrite as c_pwrite,
    poll as c_poll, pollfd, POLLIN, POLLOUT, SPLICE_F_MOVE, SPLICE_F_NONBLOCK,
    clock_gettime, timespec, CLOCK_MONOTONIC,
)

import os

from zerocopy._errors import MethodDeclined

# Linux's MAX_RW_COUNT (fs/read_write.c): the most one read/write-like call moves.
cdef enum:
    MAX_SYSCALL = 0x7ffff000
    RW_BUFFER_MAX = 1 << 20
    BLOCKED_SRC = 1     # the values of Job.blocked
    BLOCKED_DST = 2

include "_faults.pxi"   # _fault(FAULT_x): the fault-injection seam before each syscall
include "_probe.pxi"    # probe_syscalls(): which syscalls this kernel has

cdef struct State:
    int src_fd
    int dst_fd
    long long src_off      # -1: the source fd's own position
    long long dst_off      # -1: the destination fd's own position
    long long remaining    # -1: until end of file
    long long transferred
    long long chunk
    bint eof
    bint src_poll
    bint dst_poll
    double src_wait        # seconds, -1: no per-wait limit
    double dst_wait
    double deadline        # CLOCK_MONOTONIC seconds (time.monotonic), -1: none
    int pipe_r
    int pipe_w
    long long pipe_size
    long long in_pipe
    bint nowait
    int blocked


cdef int _load(State *st, object job) except -1:
    st.src_fd = job.src_fd
    st.dst_fd = job.dst_fd
    st.src_off = job.src_offset
    st.dst_off = job.dst_offset
    st.remaining = job.remaining
    st.transferred = job.transferred
    st.chunk = min(<long long>job.chunk_size, MAX_SYSCALL)
    st.eof = False
    st.src_poll = job.src_pollable
    st.dst_poll = job.dst_pollable
    st.src_wait = job.src_wait
    st.dst_wait = job.dst_wait
    st.deadline = job.deadline
    st.pipe_r = job.pipe_r
    st.pipe_w = job.pipe_w
    st.pipe_size = job.pipe_size
    st.in_pipe = job.in_pipe
    st.nowait = job.nowait
    st.blocked = 0
    return 0


cdef int _store(State *st, object job) except -1:
    job.src_offset = st.src_off
    job.dst_offset = st.dst_off
    job.remaining = st.remaining
    job.transferred = st.transferred
    job.in_pipe = st.in_pipe
    job.blocked = st.blocked
    if st.eof:
        job.eof = True
    return 0


cdef int _report(State *st, object job) except -1:
    """After each chunk: call the progress callback, and enforce the deadline even when
    nothing ever blocks (file to file, a fast peer): it bounds the whole transfer."""
    progress = job.progress
    if progress is not None:
        _store(st, job)
        progress(st.transferred)
    if st.deadline >= 0 and st.remaining != 0 and _now() >= st.deadline:
        raise OSError(ETIMEDOUT, "transfer deadline passed")
    return 0


cdef inline long long _next_chunk(State *st) noexcept nogil:
    if st.remaining < 0 or st.remaining > st.chunk:
        return st.chunk
    return st.remaining


cdef inline void _delivered(State *st, long long n) noexcept nogil:
    st.transferred += n
    if st.remaining >= 0:
        st.remaining -= n
    if st.dst_off >= 0:
        st.dst_off += n


cdef inline int _moved(State *st, long long n) except -1:
    """Account *n* delivered bytes, then run pending signal handlers.

    A blocking call that a signal interrupts after moving some bytes returns the
    partial count, not EINTR (e.g. sendfile or write to a full socket): without this
    check a handler that raises (Ctrl-C) would wait for an EINTR that may never come,
    as the next call blocks again.  Checking here keeps the count exact.
    """
    _delivered(st, n)
    PyErr_CheckSignals()
    return 0


cdef inline off_t *_offset_ptr(long long *value, off_t *slot) noexcept nogil:
    # -1 means "use and advance the fd's own position": pass NULL to the kernel.
    if value[0] < 0:
        return NULL
    slot[0] = <off_t>value[0]
    return slot


cdef object _oserror(int err, str syscall):
    return OSError(err, f"{syscall}: {os.strerror(err)}")


cdef double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef int _wait(int fd, short events, double per_wait, double deadline, str side) except -1:
    """Wait with poll (GIL released) until *fd* is ready, or raise TimeoutError."""
    cdef pollfd p
    cdef int rc = 0, err = 0, ms
    cdef double end = deadline, left
    if per_wait >= 0 and (end < 0 or _now() + per_wait < end):
        end = _now() + per_wait
    while True:
        ms = -1
        if end >= 0:
            left = end - _now()
            if left <= 0:
                raise OSError(ETIMEDOUT, f"{side}: timed out")
            ms = <int>(left * 1000.0) + 1
        p.fd = fd
        p.events = events
        p.revents = 0
        with nogil:
            rc = -1 if _fault(FAULT_POLL) else c_poll(&p, 1, ms)
            if rc < 0:
                err = errno
        if rc > 0:
            return 0
        if rc < 0 and err != EINTR:
            raise _oserror(err, "poll")
        PyErr_CheckSignals()   # EINTR, or a timeout that the loop re-checks


cdef int _blocked(int err, State *st, bint on_src, str syscall) except -1:
    """EINTR: run signal handlers.  EAGAIN: wait for the side that blocked.  Else raise."""
    if err == EINTR:
        PyErr_CheckSignals()
        return 0
    if err == EAGAIN:
        if on_src and st.src_poll:
            if st.nowait:
                return _hand_to_event_loop(st, BLOCKED_SRC)
            return _wait(st.src_fd, POLLIN, st.src_wait, st.deadline, "src")
        if not on_src and st.dst_poll:
            if st.nowait:
                return _hand_to_event_loop(st, BLOCKED_DST)
            return _wait(st.dst_fd, POLLOUT, st.dst_wait, st.deadline, "dst")
    raise _oserror(err, syscall)


cdef int _hand_to_event_loop(State *st, int side) except -1:
    """nowait mode: say which side to wait for and let the event loop do it."""
    st.blocked = side
    raise BlockingIOError(EAGAIN, "would block")


cdef int _wait_both(State *st) except -1:
    """EAGAIN from a direct splice between two pollable fds: either side may have
    blocked, so wait until the source is readable, then the destination writable."""
    if st.nowait:
        return _hand_to_event_loop(st, BLOCKED_SRC | BLOCKED_DST)
    _wait(st.src_fd, POLLIN, st.src_wait, st.deadline, "src")
    return _wait(st.dst_fd, POLLOUT, st.dst_wait, st.deadline, "dst")


def sendfile(job):
    """sendfile(2) from a regular file to any fd, until ``remaining`` or end of file."""
    cdef State st
    cdef ssize_t n
    cdef int err = 0
    cdef off_t off
    cdef off_t *offp
    _load(&st, job)
    try:
        while st.remaining != 0:
            offp = _offset_ptr(&st.src_off, &off)
            with nogil:
                n = -1 if _fault(FAULT_SENDFILE) else c_sendfile(
                    st.dst_fd, st.src_fd, offp, <size_t>_next_chunk(&st))
                if n < 0:
                    err = errno
            if n < 0:
                _blocked(err, &st, False, "sendfile")
                continue
            if n == 0:
                st.eof = True
                break
            if st.src_off >= 0:
                st.src_off += n
            _moved(&st, n)
            _report(&st, job)
    finally:
        _store(&st, job)


def copy_file_range(job):
    """copy_file_range(2) between regular files, until ``remaining`` or end of file.

    Raises MethodDeclined when the very first call copies nothing: procfs and sysfs
    files report size 0 and copy_file_range copied nothing from them before Linux
    5.19 (python/cpython#81340, golang/go#44272).
    """
    cdef State st
    cdef ssize_t n
    cdef int err = 0
    cdef off_t in_off, out_off
    cdef off_t *in_p
    cdef off_t *out_p
    _load(&st, job)
    try:
        while st.remaining != 0:
            in_p = _offset_ptr(&st.src_off, &in_off)
            out_p = _offset_ptr(&st.dst_off, &out_off)
            with nogil:
                n = -1 if _fault(FAULT_COPY_FILE_RANGE) else c_copy_file_range(
                    st.src_fd, in_p, st.dst_fd, out_p, <size_t>_next_chunk(&st), 0)
                if n < 0:
                    err = errno
            if n < 0:
                _blocked(err, &st, False, "copy_file_range")
                continue
            if n == 0:
                # Only at the start of the whole transfer: a later 0 (a resumed call in
                # an event loop, say) is end of file, and falling back would duplicate.
                if st.transferred == 0:
                    raise MethodDeclined(0, "copy_file_range copied nothing at the start")
                st.eof = True
                break
            if st.src_off >= 0:
                st.src_off += n
            _moved(&st, n)
            _report(&st, job)
    finally:
        _store(&st, job)


cdef ssize_t _splice_once(int fd_in, long long *off_in, int fd_out, long long *off_out,
                          long long length, unsigned int flags, int *err) noexcept nogil:
    cdef off_t in_off, out_off
    cdef ssize_t n = -1 if _fault(FAULT_SPLICE) else c_splice(
        fd_in, _offset_ptr(off_in, &in_off), fd_out, _offset_ptr(off_out, &out_off),
        <size_t>length, flags)
    if n < 0:
        err[0] = errno
    return n


cdef int _splice_direct(State *st, object job) except -1:
    """One side is a pipe: splice straight from src to dst."""
    cdef ssize_t n
    cdef int err = 0
    cdef long long none = -1
    while st.remaining != 0:
        with nogil:
            n = _splice_once(st.src_fd, &st.src_off, st.dst_fd, &st.dst_off,
                             _next_chunk(st), SPLICE_F_MOVE, &err)
        if n < 0:
            if err == EAGAIN and st.src_poll and st.dst_poll:
                _wait_both(st)
            else:
                _blocked(err, st, st.src_poll, "splice")
            continue
        if n == 0:
            st.eof = True
            break
        if st.src_off >= 0:
            st.src_off += n
        _moved(st, n)
        _report(st, job)
    return 0


cdef int _splice_via_pipe(State *st, object job) except -1:
    """Neither side is a pipe: src -> our pipe -> dst.

    The pipe is empty whenever we fill it, so EAGAIN while filling can only mean the
    source has nothing yet, and EAGAIN while emptying only that the destination is
    full: each wait is on exactly one fd (the invariant Go's splice_linux.go uses).
    """
    cdef ssize_t n
    cdef int err = 0
    cdef long long none = -1
    cdef long long want
    while st.remaining != 0:
        if st.in_pipe == 0:
            want = _next_chunk(st)
            if want > st.pipe_size:
                want = st.pipe_size
            with nogil:
                n = _splice_once(st.src_fd, &st.src_off, st.pipe_w, &none, want,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK, &err)
            if n < 0:
                _blocked(err, st, True, "splice")
                continue
            if n == 0:
                st.eof = True
                break
            if st.src_off >= 0:
                st.src_off += n
            st.in_pipe = n
        while st.in_pipe > 0:
            with nogil:
                n = _splice_once(st.pipe_r, &none, st.dst_fd, &st.dst_off, st.in_pipe,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK, &err)
            if n < 0:
                _blocked(err, st, False, "splice")
                continue
            st.in_pipe -= n
            _moved(st, n)
        _report(st, job)
    return 0


def splice(job):
    """splice(2): directly when one side is a pipe, else through ``job``'s pipe."""
    cdef State st
    _load(&st, job)
    try:
        if st.pipe_w < 0:
            _splice_direct(&st, job)
        else:
            _splice_via_pipe(&st, job)
    finally:
        _store(&st, job)


cdef ssize_t _read_some(State *st, char *buf, long long want, int *err) noexcept nogil:
    cdef ssize_t n
    if _fault(FAULT_READ):
        n = -1
    elif st.src_off >= 0:
        n = c_pread(st.src_fd, buf, <size_t>want, <off_t>st.src_off)
    else:
        n = c_read(st.src_fd, buf, <size_t>want)
    if n < 0:
        err[0] = errno
    return n


cdef ssize_t _write_some(State *st, const char *buf, long long length, int *err) noexcept nogil:
    cdef ssize_t n
    if _fault(FAULT_WRITE):
        n = -1
    elif st.dst_off >= 0:
        n = c_pwrite(st.dst_fd, buf, <size_t>length, <off_t>st.dst_off)
    else:
        n = c_write(st.dst_fd, buf, <size_t>length)
    if n < 0:
        err[0] = errno
    return n


cdef int _write_all(State *st, object job, const char *buf, long long length) except -1:
    cdef long long sent = 0
    cdef ssize_t n
    cdef int err = 0
    try:
        while sent < length:
            with nogil:
                n = _write_some(st, buf + sent, length - sent, &err)
            if n < 0:
                _blocked(err, st, False, "write")
                continue
            sent += n
            _moved(st, n)
    except BaseException:
        job.residue = buf[sent:length]
        raise
    return 0


def read_write(job):
    """read(2)/write(2) through one buffer: the method that serves every fd."""
    cdef State st
    cdef ssize_t n
    cdef int err = 0
    cdef long long size
    cdef char *buf
    _load(&st, job)
    size = min(st.chunk, RW_BUFFER_MAX)
    buf = <char *>malloc(<size_t>size)
    if buf == NULL:
        raise MemoryError()
    try:
        pending = job.residue
        if pending:  # resuming after BlockingIOError in nowait mode: finish the write
            job.residue = b""
            _write_all(&st, job, pending, len(pending))
        while st.remaining != 0:
            with nogil:
                n = _read_some(&st, buf, min(size, _next_chunk(&st)), &err)
            if n < 0:
                _blocked(err, &st, True, "read")
                continue
            if n == 0:
                st.eof = True
                break
            if st.src_off >= 0:
                st.src_off += n
            _write_all(&st, job, buf, n)
            _report(&st, job)
    finally:
        free(buf)
        _store(&st, job)


include "_fastpath.pxi"
