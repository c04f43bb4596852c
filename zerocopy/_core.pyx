# cython: language_level=3, embedsignature=True, autotestdict=False
# cython: boundscheck=False, wraparound=False, cdivision=True
"""The compiled core: one loop per method, in C, running many system calls per
release of the GIL (``_core_include/gilfree.pxi``: it is taken back only when Python
must run).

Each loop function takes a ``zerocopy._backends.job.Job``, copies its numbers into a C
struct, runs and writes the numbers back before each progress callback and on every
way out, so the driver always sees how far the loop got.  A loop returns when the job
is finished, blocked (``nowait`` mode) or yields after a chunk (``Job.chunk_done``);
errors are raised as plain ``OSError`` (the driver turns them into zerocopy's own
tree).  ``EINTR`` runs Python's signal handlers (``PyErr_CheckSignals``, PEP 475)
and retries; ``EAGAIN`` waits with ``poll`` on the side that blocked, bounded by the
per-wait timeout and the deadline.

The includes, in ``_core_include/``: ``syscalls.pxi`` (C declarations), ``faults.pxi``
(the fault-injection seam), ``probe.pxi`` (which system calls exist),
``gilfree.pxi`` (running loops GIL-free) and ``fastpath.pxi`` (plain transfers in one
call).  Numbers shared with Python come from ``zerocopy._constants``.
"""

from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport errno, EINTR, EAGAIN, ETIMEDOUT
from libc.stdlib cimport free
from posix.fcntl cimport fcntl, F_GETFL, O_NONBLOCK
from posix.stdlib cimport posix_memalign
from posix.unistd cimport usleep
from posix.types cimport off_t

include "_core_include/syscalls.pxi"

import os

from zerocopy import _constants
from zerocopy._errors import from_a_wait as _from_a_wait

# Read once at import: the one definition is zerocopy._constants.
cdef long long MAX_SYSCALL = _constants.MAX_SYSCALL_BYTES
cdef long long RW_BUFFER_MAX = _constants.RW_BUFFER_MAX
cdef long long DEFAULT_CHUNK = _constants.DEFAULT_CHUNK_SIZE

cdef enum:
    BLOCKED_SRC = 1     # the values of Job.blocked (zerocopy._backends.job)
    BLOCKED_DST = 2

include "_core_include/faults.pxi"   # _fault(FAULT_x): the seam before each syscall
include "_core_include/probe.pxi"    # probe_syscalls(): which syscalls this kernel has

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
    int blocked            # set when a nowait loop returns to wait for a side
    long long pause_at     # yield once transferred reaches this; -1: never


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
    st.pause_at = job.pause_at
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


cdef bint _chunk_done(State *st, object job) except -1:
    """After each chunk, as Job.chunk_done: call the progress callback, enforce the
    deadline even when nothing ever blocks (file to file, a fast peer), and say
    whether to yield to the driver (a stop request, or the step budget spent)."""
    progress = job.progress
    if progress is not None:
        _store(st, job)
        progress(st.transferred)
    if st.deadline >= 0 and st.remaining != 0 and _now() >= st.deadline:
        raise _from_a_wait(OSError(ETIMEDOUT, "transfer deadline passed"))
    if job.stoppable and job.stop is not None:
        return True
    return 0 <= st.pause_at <= st.transferred


cdef long long MAX_OFFSET = _constants.MAX_OFFSET


cdef inline long long _next_chunk(State *st) noexcept nogil:
    cdef long long want = st.chunk
    if 0 <= st.remaining < want:
        want = st.remaining
    # The kernel refuses pos + count past 2**63 - 1 (rw_verify_area: EINVAL); no file
    # reaches that far, so ask only up to it: 0 bytes there reads as end of file.
    if st.src_off >= 0 and want > MAX_OFFSET - st.src_off:
        want = MAX_OFFSET - st.src_off
    if st.dst_off >= 0 and want > MAX_OFFSET - st.dst_off:
        want = MAX_OFFSET - st.dst_off
    return want


cdef inline void _delivered(State *st, long long n) noexcept nogil:
    st.transferred += n
    if st.remaining >= 0:
        st.remaining -= n
    if st.dst_off >= 0:
        st.dst_off += n


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


include "_core_include/gilfree.pxi"  # Run, _drive: many system calls per GIL release


cdef int _run_loop(object job, int loop) except -1:
    """Load *job*, drive *loop* over it, store it back however it ends."""
    cdef State st
    cdef Run run
    _load(&st, job)
    _run_init(&run, loop, job.checks_each_chunk())
    try:
        _drive(&st, &run, job)
    finally:
        _store(&st, job)
    return 0


# -- sendfile, copy_file_range ---------------------------------------------------------

cdef ssize_t _one_call(State *st, Run *run, long long want) noexcept nogil:
    """One sendfile, copy_file_range or direct splice call (errno set on -1)."""
    cdef off_t in_off, out_off
    if run.loop == LOOP_SPLICE_DIRECT:
        return _splice_once(run, st.src_fd, &st.src_off, st.dst_fd, &st.dst_off, want,
                            SPLICE_F_MOVE)
    if run.loop == LOOP_SENDFILE:
        if run.seam and _fault(FAULT_SENDFILE):
            return -1
        return c_sendfile(st.dst_fd, st.src_fd, _offset_ptr(&st.src_off, &in_off),
                          <size_t>want)
    if run.seam and _fault(FAULT_COPY_FILE_RANGE):
        return -1
    return c_copy_file_range(st.src_fd, _offset_ptr(&st.src_off, &in_off), st.dst_fd,
                             _offset_ptr(&st.dst_off, &out_off), <size_t>want, 0)


cdef int _run_one_call_per_chunk(State *st, Run *run) noexcept nogil:
    """sendfile, copy_file_range or a direct splice until Python is needed.

    sendfile and copy_file_range move the whole chunk unless the source ends, or a
    signal cuts short a wait on a blocking socket (splice_direct_to_actor stops at the
    first short write), or the destination is non-blocking or (sendfile) a pipe:
    _short_stops tells.  A direct splice (one side a pipe) is short by nature (a pipe
    holds 64 KiB to 1 MiB), so its count says nothing of signals: one that ends a wait
    before anything moved is EINTR, and the safety net (PYTHON_EVERY) covers the rest.
    Either side of a direct splice may be the one that blocked."""
    cdef ssize_t n
    cdef long long want
    cdef int why
    cdef bint direct = run.loop == LOOP_SPLICE_DIRECT
    cdef int slot = (FAULT_SPLICE if direct else
                     FAULT_SENDFILE if run.loop == LOOP_SENDFILE else FAULT_COPY_FILE_RANGE)
    cdef int side = BLOCKED_DST
    if direct:
        side = (BLOCKED_SRC | BLOCKED_DST if st.src_poll and st.dst_poll
                else BLOCKED_SRC if st.src_poll else BLOCKED_DST)
    while st.remaining != 0:
        if run.wait_fd >= 0:
            why = _wait(st, run)
            if why:
                return why
        want = _next_chunk(st)
        n = _one_call(st, run, want)
        if n < 0:
            why = _on_error(st, run, errno, slot, side)
            if why:
                return why
            continue
        if n == 0:
            st.eof = True
            return STOP_END
        if st.src_off >= 0:
            st.src_off += n
        _delivered(st, n)
        why = _after_chunk(st, run, not direct and n < want and
                           _short_stops(st, run, run.loop == LOOP_SENDFILE))
        if why:
            return why
    return STOP_END


def sendfile(job):
    """sendfile(2) from a regular file to any fd, until ``remaining`` or end of file."""
    _run_loop(job, LOOP_SENDFILE)


def copy_file_range(job):
    """copy_file_range(2) between regular files, until ``remaining`` or end of file.

    A 0 is end of file here; whether it means "cannot" at the very start (procfs and
    sysfs before Linux 5.19) is the driver's rule (``zerocopy._engine.driver``).
    """
    _run_loop(job, LOOP_COPY_FILE_RANGE)


# -- splice ------------------------------------------------------------------------------

cdef ssize_t _splice_once(Run *run, int fd_in, long long *off_in, int fd_out,
                          long long *off_out, long long length,
                          unsigned int flags) noexcept nogil:
    cdef off_t in_off, out_off
    if run.seam and _fault(FAULT_SPLICE):
        return -1
    return c_splice(fd_in, _offset_ptr(off_in, &in_off), fd_out,
                    _offset_ptr(off_out, &out_off), <size_t>length, flags)


cdef int _run_splice_via_pipe(State *st, Run *run) noexcept nogil:
    """Neither side is a pipe: src -> our pipe -> dst, until Python is needed.

    The pipe is empty whenever we fill it, so EAGAIN while filling can only mean the
    source has nothing yet, and EAGAIN while emptying only that the destination is
    full: each wait is on exactly one fd (the invariant Go's splice_linux.go uses).
    Filling is short by nature (tcp_splice_read returns what is queued, EINTR when a
    signal ends a wait that found nothing); emptying asks for exactly what the pipe
    holds, so a blocking destination takes it all unless a signal comes.
    """
    cdef ssize_t n
    cdef int why, err
    cdef long long none = -1
    cdef long long want
    while st.remaining != 0:
        if run.wait_fd >= 0:
            why = _wait(st, run)
            if why:
                return why
        if st.in_pipe == 0:
            want = _next_chunk(st)
            if want > st.pipe_size:
                want = st.pipe_size
            n = _splice_once(run, st.src_fd, &st.src_off, st.pipe_w, &none, want,
                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
            if n < 0:
                why = _on_error(st, run, errno, FAULT_SPLICE, BLOCKED_SRC)
                if why:
                    return why
                continue
            if n == 0:
                st.eof = True
                return STOP_END
            if st.src_off >= 0:
                st.src_off += n
            st.in_pipe = n
        n = _splice_once(run, st.pipe_r, &none, st.dst_fd, &st.dst_off, st.in_pipe,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
        if n < 0:
            err = errno
            if _pipe_leg_again(st, run, err):
                continue
            why = _on_error(st, run, err, FAULT_SPLICE, BLOCKED_DST)
            if why:
                return why
            continue
        run.drain_again = 0
        st.in_pipe -= n
        _delivered(st, n)
        if st.in_pipe > 0:
            if _short_stops(st, run, False):
                return STOP_SIGNALS
            continue
        why = _after_chunk(st, run, False)
        if why:
            return why
    return STOP_END


def splice_direct(job):
    """splice(2) when one side is a pipe: one call per chunk."""
    _run_loop(job, LOOP_SPLICE_DIRECT)


def splice_via_pipe(job):
    """splice(2) src -> ``job``'s pipe -> dst, when neither side is a pipe."""
    _run_loop(job, LOOP_SPLICE_VIA_PIPE)


# -- read/write --------------------------------------------------------------------------

cdef ssize_t _read_some(State *st, Run *run, long long want) noexcept nogil:
    if run.seam and _fault(FAULT_READ):
        return -1
    if st.src_off >= 0:
        return c_pread(st.src_fd, run.buf, <size_t>want, <off_t>st.src_off)
    return c_read(st.src_fd, run.buf, <size_t>want)


cdef ssize_t _write_some(State *st, Run *run) noexcept nogil:
    cdef const char *data = run.out + run.out_sent
    cdef long long length = run.out_len - run.out_sent
    if run.seam and _fault(FAULT_WRITE):
        return -1
    if st.dst_off >= 0:
        return c_pwrite(st.dst_fd, data, <size_t>length, <off_t>st.dst_off)
    return c_write(st.dst_fd, data, <size_t>length)


cdef int _write_step(State *st, Run *run) noexcept nogil:
    """One write of what is pending: 0 to go on, else a STOP code.  A blocking fd's
    write(2) takes all (pipe_write, tcp_sendmsg wait for room) unless a signal comes."""
    cdef ssize_t n = _write_some(st, run)
    if n < 0:
        return _on_error(st, run, errno, FAULT_WRITE, BLOCKED_DST)
    run.out_sent += n
    _delivered(st, n)
    if run.out_sent < run.out_len:
        return STOP_SIGNALS if _short_stops(st, run, False) else 0
    return _after_chunk(st, run, False) if run.out_report else 0


cdef int _run_read_write(State *st, Run *run) noexcept nogil:
    """read(2)/write(2) through run.buf until Python is needed."""
    cdef ssize_t n
    cdef int why
    cdef long long want
    while True:
        if run.wait_fd >= 0:
            why = _wait(st, run)
            if why:
                return why
        if run.out_sent < run.out_len:
            why = _write_step(st, run)
            if why:
                return why
            continue
        if st.remaining == 0:
            return STOP_END
        want = _next_chunk(st)
        if want > run.buf_size:
            want = run.buf_size
        n = _read_some(st, run, want)
        if n < 0:
            why = _on_error(st, run, errno, FAULT_READ, BLOCKED_SRC)
            if why:
                return why
            continue
        if n == 0:
            st.eof = True
            return STOP_END
        if st.src_off >= 0:
            st.src_off += n
        run.out, run.out_len, run.out_sent, run.out_report = run.buf, n, 0, True


def read_write(job):
    """read(2)/write(2) through one buffer: the method that serves every fd."""
    cdef State st
    cdef Run run
    _load(&st, job)
    _run_init(&run, LOOP_READ_WRITE, job.checks_each_chunk())
    run.buf_size = min(st.chunk, RW_BUFFER_MAX)
    # Page-aligned: the kernel copies page-cache pages into it with rep movsb, which
    # is up to 9x slower when the destination is off a 64-byte line (measured on AMD
    # EPYC: 0.06 s against 0.59 s for 1 GiB of tmpfs); malloc's big blocks sit 16 bytes
    # past a page boundary.
    if posix_memalign(<void **>&run.buf, 4096, <size_t>run.buf_size) != 0:
        raise MemoryError()
    pending = job.residue
    try:
        if pending:  # resuming a nowait loop that returned blocked: finish the write
            job.residue = b""
            run.out, run.out_len = pending, len(pending)
        _drive(&st, &run, job)
    finally:
        # Read and not delivered: handed back on error, written first when a nowait
        # loop is called again after it returned blocked.
        if run.out_sent < run.out_len:
            job.residue = run.out[run.out_sent:run.out_len]
        free(run.buf)
        _store(&st, job)


include "_core_include/fastpath.pxi"
include "_core_include/openat2.pxi"   # openat2(): zerocopy.http resolves paths beneath a root
include "_core_include/relay.pxi"    # RelayPump: both directions of a socket pair, one GIL-free loop
