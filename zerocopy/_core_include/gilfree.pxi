# Many system calls per GIL release (included by _core.pyx).
#
# Taking the GIL back after a system call waits, while another thread runs Python, for
# that thread's switch interval (5 ms): the convoy effect (bpo-7946).  Taken after every
# call, it made a 1 GiB file -> file copy 3.4x and a socket -> socket relay 15x slower
# beside a busy Python thread (docs/performance.md, "GIL").  So each method's calls run
# in a ``noexcept nogil`` function (a "run", _core.pyx) that goes on until Python is
# needed and returns why it stopped; _drive, holding the GIL, does what is needed and
# lets it go on.  Python is needed for:
#   - an error: EINTR (signal handlers run, then the call is retried: PEP 475), EAGAIN
#     in nowait mode (handed to the event loop) or from a side that is not pollable,
#     a wait that timed out, poll failing, anything else (raised);
#   - a progress callback (after each chunk, as before), the deadline passed (checked
#     here with the vDSO clock, raised there), the end;
#   - signals.  Their Python handlers run only when we call PyErr_CheckSignals.  The
#     kernel interrupts a blocking call when a signal arrives while it waits: with
#     EINTR if it moved nothing, else with a short count.  So a short count from a
#     call that moves all it is asked on a blocking destination stops the run
#     (_short_stops); short counts that are the nature of a call do not: reading a
#     socket or pipe returns what is queued (and tcp_splice_read, pipe_read return
#     EINTR when a signal ends a wait that found nothing).  A signal that lands while
#     no call waits is not reported by the kernel at all, so Python also runs at least
#     every PYTHON_EVERY seconds while bytes move, and a poll never waits longer than
#     that in one go.  What is left: such a signal, followed at once by a blocking
#     call on a peer that stalls, waits for that call to return or for the next
#     signal; before, the window was the few microseconds between two calls.

from zerocopy._errors import from_a_call as _from_a_call

# Seconds: Python runs at least this often while calls return (zerocopy._constants).
cdef double PYTHON_EVERY = _constants.PYTHON_EVERY
cdef int POLL_AGAIN_TRIES = _constants.POLL_AGAIN_TRIES
cdef unsigned int POLL_AGAIN_FIRST_US = _constants.POLL_AGAIN_FIRST_US

cdef enum:
    # What a run stopped for (0: nothing, go on).
    STOP_END = 1       # remaining reached 0, or the source's end of file (st.eof)
    STOP_SIGNALS = 2   # run pending signal handlers, then go on
    STOP_CHUNK = 3     # signal handlers, then the chunk's report (progress, deadline)
    STOP_FAILED = 4    # a call failed: run.err, run.call, run.side
    STOP_TIMEOUT = 5   # the wait for run.wait_side timed out

    # What _python_turn tells _drive.
    TURN_GO_ON = 0     # run again
    TURN_RETURN = 1    # return to the driver: blocked (st.blocked), or yielding

    # The loops a run drives (sendfile and copy_file_range share one).
    LOOP_SENDFILE = 1
    LOOP_COPY_FILE_RANGE = 2
    LOOP_SPLICE_DIRECT = 3
    LOOP_SPLICE_VIA_PIPE = 4
    LOOP_READ_WRITE = 5

    # What a short count from a normally full call means, learnt per call of a loop.
    SHORT_FIRST = 0     # none seen yet: the first stops (most often the source's end)
    SHORT_UNKNOWN = 1   # one seen: look at the destination at the next
    SHORT_SIGNAL = 2    # a blocking destination: it may be a signal, stop every time
    SHORT_NATURAL = 3   # the destination takes what fits (non-blocking, or a pipe)

# The system calls by their fault slot (_faults.pxi), for error messages.
_CALL_NAMES = ("sendfile", "splice", "copy_file_range", "read", "write", "poll")


cdef struct Run:
    int loop               # LOOP_x
    bint seam              # consult the fault table before each call (not on the fast path)
    bint report_each       # Python after every chunk (Job.checks_each_chunk)
    double python_at       # CLOCK_MONOTONIC time Python must run by; 0: not started
    int short_kind         # SHORT_x
    int err                # STOP_FAILED: the errno,
    int call               # the call (its fault slot),
    int side               # and the side EAGAIN was about (BLOCKED_SRC/DST, both)
    # A wait in progress, kept while signal handlers run in between.
    int wait_fd            # -1: not waiting
    short wait_events
    int wait_side          # BLOCKED_SRC or BLOCKED_DST
    double wait_end        # when it times out, -1: never
    bint then_dst          # after the source, wait for the destination (direct splice)
    int poll_again         # poll's EAGAIN retries in a row (see _wait)
    int drain_again        # EAGAIN retries in a row of the pipe -> file leg (_pipe_leg_again)
    # read_write: the bytes read and not yet written (a chunk, or a residue handed
    # back by an earlier nowait call), and the buffer the chunks are read into.
    const char *out
    long long out_len
    long long out_sent
    bint out_report        # a chunk (reported once written), not a residue
    char *buf
    long long buf_size


cdef void _run_init(Run *run, int loop, bint report_each) noexcept nogil:
    run.loop = loop
    run.seam = True
    run.report_each = report_each
    run.python_at = 0
    run.short_kind = SHORT_FIRST
    run.err = run.call = run.side = 0
    run.wait_fd = -1
    run.then_dst = False
    run.poll_again = 0
    run.drain_again = 0
    run.out = NULL
    run.buf = NULL
    run.out_len = run.out_sent = run.buf_size = 0
    run.out_report = False


cdef inline bint _python_due(Run *run, double now) noexcept nogil:
    """The safety net: True once PYTHON_EVERY has passed since Python last ran.  The
    first look starts the clock: a transfer of one chunk never needs to read it."""
    if run.python_at == 0:
        run.python_at = now + PYTHON_EVERY
    return now >= run.python_at


cdef int _after_chunk(State *st, Run *run, bint suspect) noexcept nogil:
    """A chunk is delivered: STOP_CHUNK when Python must see it (progress callback,
    a count cut short perhaps by a signal, the deadline or the safety net), else 0."""
    cdef double now
    if suspect or run.report_each:
        return STOP_CHUNK
    if st.remaining == 0:
        return 0  # the run ends now and Python runs then: no need to read the clock
    now = _now()
    if _python_due(run, now) or (st.deadline >= 0 and now >= st.deadline):
        return STOP_CHUNK
    return 0


cdef bint _short_is_natural(int fd, bint pipe_fills) noexcept nogil:
    # A non-blocking fd takes what fits and says EAGAIN next; sendfile into a pipe
    # (do_sendfile -> splice_file_to_pipe) waits for the first free slot only, then
    # moves what fits.  Any other destination (file, blocking socket, blocking pipe
    # written with write(2)) takes all, or waits until a signal comes.
    cdef int flags = fcntl(fd, F_GETFL)
    if flags >= 0 and flags & O_NONBLOCK:
        return True
    return pipe_fills and fcntl(fd, F_GETPIPE_SZ) >= 0


cdef bint _short_stops(State *st, Run *run, bint pipe_fills) noexcept nogil:
    """A normally full call moved less than asked: True when it may be a signal that
    cut a wait short, so Python must look now (the next call could block for ever).

    The first short count of a loop call always stops: it is most often the source's
    end of file, once per transfer, and costs no fcntl.  At the second the destination
    is asked once whether short counts are its nature."""
    if run.short_kind == SHORT_FIRST:
        run.short_kind = SHORT_UNKNOWN
        return True
    if run.short_kind == SHORT_UNKNOWN:
        run.short_kind = (SHORT_NATURAL if _short_is_natural(st.dst_fd, pipe_fills)
                          else SHORT_SIGNAL)
    return run.short_kind == SHORT_SIGNAL


cdef inline bint _pollable(State *st, int side) noexcept nogil:
    if side == BLOCKED_SRC | BLOCKED_DST:
        return st.src_poll and st.dst_poll
    return st.src_poll if side == BLOCKED_SRC else st.dst_poll


cdef void _start_wait(State *st, Run *run, int side) noexcept nogil:
    """Wait for *side*: at most its per-wait limit (socket timeout), and never past
    the deadline."""
    cdef double per_wait = st.src_wait if side == BLOCKED_SRC else st.dst_wait
    cdef double now
    run.wait_side = side
    run.wait_fd = st.src_fd if side == BLOCKED_SRC else st.dst_fd
    run.wait_events = POLLIN if side == BLOCKED_SRC else POLLOUT
    run.wait_end = st.deadline
    if per_wait >= 0:
        now = _now()
        if run.wait_end < 0 or now + per_wait < run.wait_end:
            run.wait_end = now + per_wait


cdef int _wait(State *st, Run *run) noexcept nogil:
    """Go on with the wait in *run*: 0 once the fd is ready, else a STOP code.

    STOP_SIGNALS leaves the wait in place to go on after the handlers: the limits
    stay those set when it began.  A signal that landed before poll began does not
    interrupt it, hence the slices of at most PYTHON_EVERY."""
    cdef pollfd p
    cdef int rc, err, ms
    cdef double now, until
    while run.wait_fd >= 0:
        now = _now()
        if run.wait_end >= 0 and now >= run.wait_end:
            return STOP_TIMEOUT
        if _python_due(run, now):
            return STOP_SIGNALS
        until = run.python_at
        if 0 <= run.wait_end < until:
            until = run.wait_end
        ms = <int>((until - now) * 1000.0) + 1
        p.fd = run.wait_fd
        p.events = run.wait_events
        p.revents = 0
        rc = -1 if _fault(FAULT_POLL) else c_poll(&p, 1, ms)
        if rc >= 0:
            run.poll_again = 0
        if rc > 0:
            if run.then_dst:
                run.then_dst = False
                _start_wait(st, run, BLOCKED_DST)
            else:
                run.wait_fd = -1
        elif rc < 0:
            err = errno
            if err == EINTR:
                return STOP_SIGNALS
            if err == EAGAIN and run.poll_again < POLL_AGAIN_TRIES:
                # poll(2): "the allocation of internal data structures failed, but
                # the request may be attempted again" - after a short backoff.
                run.poll_again += 1
                usleep(POLL_AGAIN_FIRST_US << (run.poll_again - 1))
                continue
            run.err, run.call, run.side = err, FAULT_POLL, 0
            return STOP_FAILED
        # rc == 0: a slice or the limit ran out; the clock above says which
    return 0


cdef bint _pipe_leg_again(State *st, Run *run, int err) noexcept nogil:
    """The pipe -> destination leg failed with *err*: True to retry it after a short,
    growing sleep (bounded as poll's EAGAIN) when it is EAGAIN and the destination
    cannot be polled (a regular file).  That EAGAIN is about our pipe, which holds
    bytes (iter_file_splice_write says EAGAIN only for an empty pipe with
    SPLICE_F_NONBLOCK), so it is transient; raising it would strand the bytes of a
    socket source as residue (issue 11)."""
    if err != EAGAIN or _pollable(st, BLOCKED_DST) or run.drain_again >= POLL_AGAIN_TRIES:
        return False
    run.drain_again += 1
    usleep(POLL_AGAIN_FIRST_US << (run.drain_again - 1))
    return True


cdef int _on_error(State *st, Run *run, int err, int call, int side) noexcept nogil:
    """*call* failed with *err*: 0 to retry it (EAGAIN on a pollable side, once the
    wait is over), else a STOP code.  *side* is what EAGAIN would be about."""
    if err == EINTR:
        return STOP_SIGNALS  # PEP 475: the handlers run, then the call is retried
    run.err, run.call, run.side = err, call, side
    if err != EAGAIN or st.nowait or not _pollable(st, side):
        return STOP_FAILED
    if side == BLOCKED_SRC | BLOCKED_DST:
        # Direct splice between two pollable fds cannot say which side blocked: wait
        # until the source is readable, then the destination writable.
        _start_wait(st, run, BLOCKED_SRC)
        run.then_dst = True
    else:
        _start_wait(st, run, side)
    return _wait(st, run)


cdef int _failed(State *st, Run *run) except -1:
    """STOP_FAILED: in nowait mode EAGAIN on a pollable side goes to the event loop
    (``st.blocked`` says which side to wait for: TURN_RETURN); anything else is
    raised."""
    if run.err == EAGAIN and st.nowait and _pollable(st, run.side):
        st.blocked = run.side
        return TURN_RETURN
    if run.call == FAULT_POLL:
        raise _from_a_wait(_oserror(run.err, "poll"))
    # Marked as the method's call, so a signal handler's own OSError (same class, maybe
    # the same errno), raised by PyErr_CheckSignals, is never taken for it (issue 11).
    raise _from_a_call(_oserror(run.err, _CALL_NAMES[run.call]))


cdef int _python_turn(State *st, Run *run, object job, int why) except -1:
    """Do, holding the GIL, what a run stopped for: TURN_GO_ON or TURN_RETURN."""
    if why == STOP_FAILED:
        return _failed(st, run)
    PyErr_CheckSignals()
    if why == STOP_TIMEOUT:
        side = "src" if run.wait_side == BLOCKED_SRC else "dst"
        raise _from_a_wait(OSError(ETIMEDOUT, f"{side}: timed out"))
    # The fast path has no job: nothing to report, nothing to yield for.
    if why == STOP_CHUNK and job is not None and _chunk_done(st, job):
        return TURN_RETURN
    run.python_at = _now() + PYTHON_EVERY
    return TURN_GO_ON


cdef int _drive(State *st, Run *run, object job) except -1:
    """Run *run*'s loop GIL-free until the end, a block or a yield, doing in between
    what needs Python."""
    cdef int why
    while True:
        with nogil:
            why = _run(st, run)
        if why == STOP_END:
            # What the last stretch left pending, as every chunk's check used to.
            PyErr_CheckSignals()
            return 0
        if _python_turn(st, run, job, why) == TURN_RETURN:
            return 0


cdef int _run(State *st, Run *run) noexcept nogil:
    if run.loop == LOOP_SPLICE_VIA_PIPE:
        return _run_splice_via_pipe(st, run)
    if run.loop == LOOP_READ_WRITE:
        return _run_read_write(st, run)
    return _run_one_call_per_chunk(st, run)
