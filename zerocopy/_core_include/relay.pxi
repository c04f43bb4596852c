# The two-way pump under zerocopy.relay and zerocopy.arelay (included by _core.pyx).
#
# One loop moves both directions of a connection pair: a -> b and b -> a.  Each
# direction (a "flow") goes source socket -> pipe -> destination socket with splice,
# or, when it was given no pipe, through a page-aligned buffer with recv/send.  Both
# sockets are non-blocking: a flow moves until a call says EAGAIN, and when both flows
# wait, the blocking form polls the two sockets for what the flows wait on (the GIL
# released the whole time), the nowait form returns what it waits on to the event loop.
#
# A flow reads into its pipe only when the pipe is empty, so EAGAIN while filling means
# "the socket has nothing", never "the pipe is full" (haproxy's raw_sock.c notes that
# splice cannot tell the two apart; Go's splice_linux.go keeps the same invariant).
# SPLICE_F_MORE is never passed: it held back the last segment for 200 ms in Go
# (golang/go#10948).

cimport cython
from libc.errno cimport ENOTCONN, EINVAL, ENOSYS, EOPNOTSUPP, ENOMEM

cdef extern from "<sys/socket.h>" nogil:
    # Declared under private names: other includes declare some of these themselves.
    ssize_t _relay_recv "recv"(int fd, void *buf, size_t n, int flags)
    ssize_t _relay_send "send"(int fd, const void *buf, size_t n, int flags)
    int _relay_shutdown "shutdown"(int fd, int how)
    int _relay_getsockopt "getsockopt"(int fd, int level, int name, void *value,
                                       unsigned int *length)
    int _relay_setsockopt "setsockopt"(int fd, int level, int name, const void *value,
                                       unsigned int length)
    const int _RELAY_MSG_DONTWAIT "MSG_DONTWAIT"
    const int _RELAY_MSG_NOSIGNAL "MSG_NOSIGNAL"
    const int _RELAY_SHUT_WR "SHUT_WR"
    const int _RELAY_SOL_SOCKET "SOL_SOCKET"
    const int _RELAY_SO_ERROR "SO_ERROR"
    const int _RELAY_SO_RCVLOWAT "SO_RCVLOWAT"

cdef extern from "<sys/ioctl.h>" nogil:
    int _relay_ioctl "ioctl"(int fd, unsigned long request, int *value)
    const unsigned long _RELAY_FIONREAD "FIONREAD"

cdef extern from "<poll.h>" nogil:
    const short _RELAY_POLLIN "POLLIN"
    const short _RELAY_POLLERR "POLLERR"
    const short _RELAY_POLLHUP "POLLHUP"

cdef enum:
    # What RelayPump.run returns (the Python side names them in zerocopy._relay.pump).
    PUMP_DONE = 0       # both directions saw end of file and were shut down
    PUMP_BLOCKED = 1    # nowait: both wait; RelayPump.wants says on what
    PUMP_FAILED = 2     # a call failed: RelayPump.failure
    PUMP_IDLE = 3       # nothing moved for idle_timeout seconds
    PUMP_SIGNALS = 4    # internal: let Python run its signal handlers, then go on
    PUMP_YIELD = 5      # nowait: still moving, but its slice is spent (let others run)

    # A flow moves at most this many pipe- or buffer-fulls before the other flow gets
    # its turn, so one fast direction cannot starve the other.
    FLOW_TURN = 4

    # What RelayPump._step returns for one flow (or -1: a call failed).
    STEP_IDLE = 0       # waits (want_src / want_dst say on what), nothing moved
    STEP_MOVED = 1      # moved, and now waits or is done
    STEP_MORE = 2       # moved a turn's worth and has more: step it again

    # RelayPump.failure's call names.
    RCALL_READ = 0
    RCALL_WRITE = 1
    RCALL_POLL = 2
    RCALL_SHUTDOWN = 3

_RELAY_CALLS = ("read", "write", "poll", "shutdown")

# A copying direction's first buffer; it doubles up to buf_size as reads fill it.
cdef long long COPY_FIRST = 65536

# A read of fewer bytes than this marks its socket drained (see _step); a bulk
# transfer's reads are longer, so they go on reading without waiting in between.
cdef long long SHORT_READ = 16384

# Seconds a nowait run may keep moving bytes before it hands the event loop back.
cdef double NOWAIT_SLICE = 0.002

# Batching a bulk stream's reads.  Reading as soon as a socket is readable keeps a
# stream that arrives faster than one read in many small reads: each one a wake of
# the relay and a window update that wakes the sender for a little room (issue 10's
# perf counts: 82 KB per recv against socat's 247 KB, whose blocking write lets the
# queue fill meanwhile).  After BULK_READS reads in a row of at least BULK_READ bytes,
# a direction sets SO_RCVLOWAT on its source, so that poll and epoll call it readable
# only once that many bytes wait (tcp_poll honours it; end of file and errors still
# wake at once), and waits for readiness before every read.  A burst rarely ends on
# a multiple of the mark, so a wait gives up after BATCH_WAIT seconds: the direction
# reads what there is and leaves batching until the next run of long reads.  Before
# each wait, FIONREAD says whether the mark's worth came in while the last write went
# out: then the read happens at once, and the wait and its wake are saved (measured:
# 7 % less CPU per GB for the command, where each wake costs an event loop pass).
# The mark is half the direction's buffer or pipe, at most BATCH_LOWAT: measured
# against 256 KiB on loopback, 512 KiB took 3 % more Gbit/s for 1 % less CPU per GB.
# Setting it may raise the socket's receive buffer to hold twice the mark
# (tcp_set_rcvlowat, Linux 4.18); autotuning grows it from there as before.
cdef long long BULK_READ = 65536
cdef int BULK_READS = 4
cdef long long BATCH_LOWAT = 524288
cdef double BATCH_WAIT = 0.001


cdef struct Flow:
    int src
    int dst
    int pipe_r             # -1: no pipe, recv/send through buf
    int pipe_w
    long long capacity     # bytes one read may take: the pipe's size, or buf's
    char *buf
    long long buf_off      # where the pending bytes start in buf
    long long pending      # read from src, not yet written to dst (in the pipe or buf)
    long long moved        # delivered to dst
    bint eof               # src said end of file
    bint done              # eof, nothing pending, dst shut down for writing
    bint drained           # the last read was short: src is most likely empty now
    bint full              # the last read filled the copy buffer
    short want_src         # POLLIN when waiting to read, else 0
    short want_dst         # POLLOUT when waiting to write, else 0
    int bulk               # long reads in a row (at least BULK_READ bytes each)
    int lowat              # the SO_RCVLOWAT set on src while batching, else 0
    int lowat_was          # src's SO_RCVLOWAT before we set one
    bint no_lowat          # setting SO_RCVLOWAT failed once: never batch
    bint waiting           # waits for src to be readable (want_src): no read before
    double batch_until     # when that wait gives up


cdef inline ssize_t _flow_read(Flow *f) noexcept nogil:
    if f.pipe_w >= 0:
        return c_splice(f.src, NULL, f.pipe_w, NULL, <size_t>f.capacity,
                        SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
    return _relay_recv(f.src, f.buf, <size_t>f.capacity, _RELAY_MSG_DONTWAIT)


cdef inline ssize_t _flow_write(Flow *f) noexcept nogil:
    if f.pipe_r >= 0:
        return c_splice(f.pipe_r, NULL, f.dst, NULL, <size_t>f.pending,
                        SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
    # MSG_NOSIGNAL: a peer that went away is EPIPE here, never a SIGPIPE.
    return _relay_send(f.dst, f.buf + f.buf_off, <size_t>f.pending,
                       _RELAY_MSG_DONTWAIT | _RELAY_MSG_NOSIGNAL)


@cython.auto_pickle(False)  # holds fds and C buffers: nothing to pickle
cdef class RelayPump:
    """Both directions between two connected, non-blocking stream sockets.

    ``RelayPump(a, b, ab_pipe_r, ab_pipe_w, ab_pipe_size, ba_pipe_r, ba_pipe_w,
    ba_pipe_size, buf_size, idle_timeout)``: a pipe fd of -1 makes that direction use
    recv/send through a buffer that starts at 64 KiB and doubles, up to *buf_size*
    bytes, each time a read fills it; *idle_timeout* < 0 is none.
    The pump owns none of the fds.
    """

    cdef Flow flows[2]
    cdef int fds[2]
    cdef bint ignored[2]       # hung up while we waited on nothing from it: poll skips it
    cdef double idle_timeout
    cdef double last_active
    cdef int fail_side         # -1, 0 (a) or 1 (b): the socket a call failed on
    cdef int fail_errno
    cdef int fail_call
    cdef long long buf_size    # a copying direction's buffer

    def __cinit__(self, int a, int b, int ab_pipe_r, int ab_pipe_w, long long ab_pipe_size,
                  int ba_pipe_r, int ba_pipe_w, long long ba_pipe_size,
                  long long buf_size, double idle_timeout):
        cdef int i
        self.fds[0] = a
        self.fds[1] = b
        self.ignored[0] = self.ignored[1] = False
        self.idle_timeout = idle_timeout
        self.last_active = _now()
        self.fail_side = -1
        self.fail_errno = 0
        self.fail_call = 0
        self.buf_size = min(buf_size, <long long>MAX_SYSCALL)
        for i in range(2):
            self.flows[i].src = self.fds[i]
            self.flows[i].dst = self.fds[1 - i]
            self.flows[i].buf = NULL
            self.flows[i].buf_off = 0
            self.flows[i].pending = 0
            self.flows[i].moved = 0
            self.flows[i].eof = False
            self.flows[i].done = False
            self.flows[i].drained = False
            self.flows[i].full = False
            self.flows[i].want_src = 0
            self.flows[i].want_dst = 0
            self.flows[i].bulk = 0
            self.flows[i].lowat = 0
            self.flows[i].lowat_was = 1
            self.flows[i].no_lowat = False
            self.flows[i].waiting = False
            self.flows[i].batch_until = 0
        self.flows[0].pipe_r, self.flows[0].pipe_w = ab_pipe_r, ab_pipe_w
        self.flows[1].pipe_r, self.flows[1].pipe_w = ba_pipe_r, ba_pipe_w
        self.flows[0].capacity = ab_pipe_size
        self.flows[1].capacity = ba_pipe_size
        for i in range(2):
            if self.flows[i].pipe_w < 0 and self._to_copy(&self.flows[i]) != 0:
                raise MemoryError()

    cdef int _to_copy(self, Flow *f) noexcept nogil:
        """Make *f* copy through a buffer of its own instead of splicing: 0, or -1
        when the buffer cannot be had."""
        f.pipe_r = f.pipe_w = -1
        return self._grow(f, min(COPY_FIRST, self.buf_size))

    cdef int _grow(self, Flow *f, long long size) noexcept nogil:
        """Give *f* an empty buffer of *size* bytes in place of its old one (which
        must hold nothing pending): 0, or -1 when it cannot be had."""
        cdef char *buf = NULL
        # Page-aligned, as read_write's buffer (see _core.pyx).
        if posix_memalign(<void **>&buf, 4096, <size_t>size) != 0:
            return -1 if f.buf == NULL else 0  # a buffer it already has still works
        free(f.buf)
        f.buf = buf
        f.capacity = size
        return 0

    def __dealloc__(self):
        free(self.flows[0].buf)
        free(self.flows[1].buf)

    def run(self, bint nowait=False, int readable=3):
        """Move bytes until both directions are done (0), a call fails (2) or nothing
        moved for the idle timeout (3); with *nowait*, also return 1 as soon as both
        directions wait (``wants`` says on what), and 5 after 2 ms of moving (call
        again once the loop ran its other callbacks).  *readable*: which sockets the
        wake said are readable (bit 0: a, bit 1: b); a direction waiting to read reads
        only then, or, batching, once its wait ran out (``batch_wait``).  The GIL is
        released throughout; Python's signal handlers run at least every 50 ms
        (PEP 475)."""
        cdef int why
        while True:
            with nogil:
                why = self._pump(nowait, readable)
            if why != PUMP_SIGNALS:
                return why
            readable = 3
            PyErr_CheckSignals()

    def settle(self):
        """Give each socket back the SO_RCVLOWAT it had (batching changes it); call
        before the sockets go back to their owner, while they are open."""
        cdef int i
        for i in range(2):
            if self.flows[i].lowat:
                self._set_lowat(&self.flows[i], 0)

    @property
    def batch_wait(self):
        """Seconds until the first batching direction stops waiting for its mark and
        reads what there is (run it then, with readable 0), or -1.0: none batches."""
        cdef double until = self._batch_until()
        return -1.0 if until < 0 else max(0.0, until - _now())

    cdef double _batch_until(self) noexcept nogil:
        """When the first batching wait gives up, or -1.0: none batches."""
        cdef double until = -1.0
        cdef int i
        for i in range(2):
            if (self.flows[i].waiting and self.flows[i].lowat
                    and (until < 0 or self.flows[i].batch_until < until)):
                until = self.flows[i].batch_until
        return until

    @property
    def moved(self):
        """Bytes delivered (a -> b, b -> a)."""
        return (self.flows[0].moved, self.flows[1].moved)

    @property
    def splicing(self):
        """Whether each direction moves through its pipe (a -> b, b -> a); False once
        splice was refused and it copies."""
        return (self.flows[0].pipe_w >= 0, self.flows[1].pipe_w >= 0)

    @property
    def eof(self):
        """Whether each direction's source said end of file (a -> b, b -> a)."""
        return (bool(self.flows[0].eof), bool(self.flows[1].eof))

    @property
    def done(self):
        """Whether each direction is finished: end of file, delivered, shut down."""
        return (bool(self.flows[0].done), bool(self.flows[1].done))

    @property
    def pending(self):
        """Bytes read and not yet delivered (a -> b, b -> a)."""
        return (self.flows[0].pending, self.flows[1].pending)

    @property
    def wants(self):
        """After run(nowait=True) returned 1: the poll events each socket waits for
        (a, b): POLLIN to read, POLLOUT to write, 0 for nothing."""
        return (self.flows[0].want_src | self.flows[1].want_dst,
                self.flows[1].want_src | self.flows[0].want_dst)

    @property
    def failure(self):
        """``None``, or (side, errno, call) of the call that failed: side 0 is a, 1 is b;
        call names the system call ("read", "write", "poll", "shutdown")."""
        if self.fail_side < 0:
            return None
        return (self.fail_side, self.fail_errno, _RELAY_CALLS[self.fail_call])

    @property
    def idle_for(self):
        """Seconds since a byte last moved (or the pump was made)."""
        return _now() - self.last_active

    def residue(self, int direction):
        """Take the bytes read and not delivered in *direction* (0: a -> b, 1: b -> a)
        out of its pipe or buffer; afterwards that direction holds none."""
        cdef Flow *f = &self.flows[direction & 1]
        cdef bytes out
        if f.pending == 0:
            return b""
        if f.pipe_r < 0:
            out = f.buf[f.buf_off:f.buf_off + f.pending]
        else:
            out = _drain_pipe(f.pipe_r, f.pending)
        f.pending = 0
        return out

    cdef int _fail(self, int side, int err, int call) noexcept nogil:
        self.fail_side = side
        self.fail_errno = err
        self.fail_call = call
        return PUMP_FAILED

    cdef void _set_lowat(self, Flow *f, long long mark) noexcept nogil:
        """Batch *f*'s reads at *mark* bytes (SO_RCVLOWAT), or with 0 stop batching
        and give the socket its old mark back."""
        cdef int value
        cdef unsigned int length = sizeof(value)
        if mark > 0 and f.lowat == 0:
            if _relay_getsockopt(f.src, _RELAY_SOL_SOCKET, _RELAY_SO_RCVLOWAT, &value,
                                 &length) < 0:
                f.no_lowat = True  # not a socket that has one: never batch
                return
            f.lowat_was = value
        value = <int>mark if mark > 0 else f.lowat_was
        if _relay_setsockopt(f.src, _RELAY_SOL_SOCKET, _RELAY_SO_RCVLOWAT, &value,
                             sizeof(value)) < 0:
            f.no_lowat = True
            if mark > 0:
                return
        f.lowat = <int>mark

    cdef bint _mark_met(self, Flow *f) noexcept nogil:
        """Whether the mark's worth waits on *f*'s source already (FIONREAD): then a
        read now takes it without a wait and a wake."""
        cdef int queued = 0
        return _relay_ioctl(f.src, _RELAY_FIONREAD, &queued) == 0 and queued >= f.lowat

    cdef void _count_read(self, Flow *f, ssize_t n) noexcept nogil:
        """After a read of *n* > 0 bytes: start batching after enough long reads, stop
        after a short one."""
        cdef long long mark
        if n < BULK_READ:
            f.bulk = 0
            if f.lowat:
                self._set_lowat(f, 0)
            return
        f.bulk += 1
        mark = min(BATCH_LOWAT, f.capacity // 2)
        if f.bulk >= BULK_READS and not f.no_lowat and f.lowat < mark:
            # Again when a copy buffer has grown, so the mark keeps to half of it.
            self._set_lowat(f, mark)

    cdef inline int _wait_src(self, Flow *f, bint moved) noexcept nogil:
        """*f* waits for its source to be readable: it reads again only on a wake that
        says so (or, batching, once its wait ran out).  The step's code."""
        f.waiting = True
        f.want_src = POLLIN
        return STEP_MOVED if moved else STEP_IDLE

    cdef int _step(self, int i, bint readable) noexcept nogil:
        """Move flow *i* until it waits or had its turn: STEP_MORE when its turn ran out
        with more to move, STEP_MOVED when it moved and now waits (or finished),
        STEP_IDLE when it waits without having moved, -1 when a call failed.
        *readable*: whether the wake said its source is readable."""
        cdef Flow *f = &self.flows[i]
        cdef ssize_t n
        cdef int turns = 0
        cdef bint moved = False
        cdef bint woke = False     # a wait just ended: read before waiting again
        f.want_src = 0
        f.want_dst = 0
        if f.done:
            return STEP_IDLE
        if f.waiting:
            # Only a wake that said the source is readable is worth a read: the other
            # direction's wakes would each cost this one a recv saying EAGAIN.
            if not readable:
                if not f.lowat or _now() < f.batch_until:
                    f.want_src = POLLIN
                    return STEP_IDLE
                # The mark was not reached in time: the burst is ending.
                self._set_lowat(f, 0)
                f.bulk = 0
            f.waiting = False
            woke = True
        while True:
            if f.pending > 0:
                n = _flow_write(f)
                if n < 0:
                    if errno == EINTR:
                        continue
                    if errno == EAGAIN:
                        f.want_dst = POLLOUT
                        return STEP_MOVED if moved else STEP_IDLE
                    self._fail(1 - i, errno, RCALL_WRITE)
                    return -1
                f.pending -= n
                f.buf_off += n
                f.moved += n
                moved = True
                if f.pending > 0:
                    continue
                if f.full and f.capacity < self.buf_size:
                    # A read filled the buffer: a bulk transfer, worth a bigger one.
                    # Connections that carry little never pay for 1 MiB each.
                    self._grow(f, min(f.capacity * 2, self.buf_size))
                f.full = False
                turns += 1
                if turns >= FLOW_TURN:
                    return STEP_MORE
            if f.lowat and not f.eof and not woke and not self._mark_met(f):
                # Batching: wait until the mark's worth waits (or BATCH_WAIT passed).
                f.batch_until = _now() + BATCH_WAIT
                return self._wait_src(f, moved)
            if f.drained and not f.eof:
                # A short read emptied the socket a moment ago: wait for readiness
                # instead of a read that would say EAGAIN (haproxy's raw_sock.c stops
                # reading a stream socket on a short read the same way).  Poll and
                # epoll are level-triggered, so bytes that came meanwhile still wake.
                f.drained = False
                return self._wait_src(f, moved)
            if f.eof:
                # Half-close: the source's end of file becomes the destination's, and
                # the other direction goes on (moby/libnetwork#1598, inetaf/tcpproxy#21
                # are Go proxies that closed both instead).  ENOTCONN: the peer is gone
                # already, and the other direction will say so.
                if _relay_shutdown(f.dst, _RELAY_SHUT_WR) < 0 and errno != ENOTCONN:
                    self._fail(1 - i, errno, RCALL_SHUTDOWN)
                    return -1
                f.done = True
                return STEP_MOVED
            n = _flow_read(f)
            woke = False
            if n < 0:
                if errno == EINTR:
                    continue
                if errno == EAGAIN:
                    return self._wait_src(f, moved)
                if (f.pipe_w >= 0 and f.moved == 0 and f.pending == 0
                        and (errno == EINVAL or errno == ENOSYS or errno == EOPNOTSUPP)):
                    # This socket type refuses splice before a byte moved: copy instead
                    # (the pipe is still the caller's to give back, and clean).
                    if self._to_copy(f) == 0:
                        continue
                    self._fail(i, ENOMEM, RCALL_READ)
                    return -1
                self._fail(i, errno, RCALL_READ)
                return -1
            if n == 0:
                f.eof = True
            else:
                f.pending = n
                f.buf_off = 0
                f.drained = n < SHORT_READ
                f.full = n == f.capacity and f.pipe_w < 0
                self._count_read(f, n)
            moved = True

    cdef int _check_error(self, int side) noexcept nogil:
        """POLLERR on *side*: the socket's pending error (a reset, say), or 0."""
        cdef int err = 0
        cdef unsigned int length = sizeof(err)
        if _relay_getsockopt(self.fds[side], _RELAY_SOL_SOCKET, _RELAY_SO_ERROR, &err,
                             &length) < 0:
            err = errno
        return err

    cdef int _pump(self, bint nowait, int readable) noexcept nogil:
        cdef pollfd pfd[2]
        cdef int i, r, err, wait_ms, poll_again = 0
        cdef bint moved
        cdef double now, python_at = _now() + PYTHON_EVERY, left, until
        cdef double slice_end = python_at - PYTHON_EVERY + NOWAIT_SLICE
        while True:
            moved = False
            more = False
            for i in range(2):
                r = self._step(i, (readable >> i) & 1)
                if r < 0:
                    return PUMP_FAILED
                if r != STEP_IDLE:
                    moved = True
                if r == STEP_MORE:
                    more = True
            if self.flows[0].done and self.flows[1].done:
                return PUMP_DONE
            now = _now()
            if moved:
                self.last_active = now
            if more:
                if nowait and now >= slice_end:
                    # An event loop runs other connections too: one whose source never
                    # runs dry must not keep it (issue 10: -P 8 through one loop).
                    return PUMP_YIELD
                if now >= python_at:
                    return PUMP_SIGNALS
                # Without a poll there is no word on readiness: a waiting flow tries a
                # read (a long turn of the other flow must not starve it).
                readable = 3
                continue
            # Both flows wait: on what, their want_src / want_dst say.
            if nowait:
                return PUMP_BLOCKED
            if now >= python_at:
                return PUMP_SIGNALS
            wait_ms = <int>(PYTHON_EVERY * 1000)
            if self.idle_timeout >= 0:
                left = self.last_active + self.idle_timeout - now
                if left <= 0:
                    return PUMP_IDLE
                if left * 1000 < wait_ms:
                    wait_ms = <int>(left * 1000) + 1
            until = self._batch_until()
            if until >= 0 and (until - now) * 1000 < wait_ms:
                wait_ms = max(0, <int>((until - now) * 1000) + 1)
            for i in range(2):
                # A socket nothing waits on is still polled: POLLERR (a reset) shows
                # even with no events asked, and must end the pair.
                pfd[i].events = (self.flows[i].want_src | self.flows[1 - i].want_dst)
                pfd[i].fd = -1 if self.ignored[i] and pfd[i].events == 0 else self.fds[i]
                pfd[i].revents = 0
            r = c_poll(pfd, 2, wait_ms)
            if r < 0:
                if errno == EINTR:
                    return PUMP_SIGNALS
                if errno == EAGAIN and poll_again < POLL_AGAIN_TRIES:
                    # poll's EAGAIN is "try again" (poll(2)): the same bounded backoff
                    # as the transfer loops' waits (issue 11).
                    poll_again += 1
                    usleep(POLL_AGAIN_FIRST_US << (poll_again - 1))
                    continue
                return self._fail(0, errno, RCALL_POLL)
            poll_again = 0
            readable = 0
            if r == 0:
                if _now() >= python_at:
                    return PUMP_SIGNALS
                continue
            for i in range(2):
                if pfd[i].revents & (_RELAY_POLLIN | _RELAY_POLLERR | _RELAY_POLLHUP):
                    readable |= 1 << i
                if pfd[i].revents & _RELAY_POLLERR:
                    err = self._check_error(i)
                    if err:
                        return self._fail(i, err, RCALL_POLL)
                if (pfd[i].revents & _RELAY_POLLHUP) and pfd[i].events == 0:
                    # Both halves shut, and no flow needs this socket now: do not let
                    # its standing POLLHUP spin the loop.
                    self.ignored[i] = True


cdef bytes _drain_pipe(int fd, long long count):
    """Read back up to *count* bytes a pipe holds (non-blocking)."""
    cdef bytearray out = bytearray()
    cdef char chunk[65536]
    cdef ssize_t n
    while count > 0:
        n = c_read(fd, chunk, <size_t>min(count, <long long>sizeof(chunk)))
        if n <= 0:
            break
        out += chunk[:n]
        count -= n
    return bytes(out)
