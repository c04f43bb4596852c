# The fast path (included by _core.pyx): one compiled call that checks, classifies,
# plans and runs the commonest shapes, so a small transfer costs little more than its
# syscall (SPEC: "classify endpoints and pick the plan in the core, not in slow Python").
#
# It serves only the plain cases: a source read at explicit offsets (a regular file),
# and a regular-file destination (copy_file_range) or a stream socket or pipe
# destination (sendfile), with no deadline, progress callback, chunk size or backend
# choice, and endpoints that carry no Python buffer (but for a BufferedReader source,
# whose buffer only moves its position).  Anything else, and any error
# before the first byte moved, returns None and the full path in _transfer.py decides:
# it redoes the classification and meets the same error, so every rule lives there.

import io as _io
import socket as _socket

from posix.stat cimport struct_stat, fstat, S_ISREG, S_ISSOCK, S_ISFIFO
from posix.unistd cimport lseek, SEEK_CUR, SEEK_SET
from libc.stdlib cimport getenv
from libc.string cimport strcmp

from zerocopy import _backend as _backend_module
from zerocopy import _plan as _plan_module
from zerocopy._errors import transfer_error as _transfer_error
from zerocopy._types import Method as _Method, fast_result as _fast_result

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    int getsockopt(int fd, int level, int name, void *value, socklen_t *length)
    enum:
        SOL_SOCKET
        SO_TYPE
        SOCK_STREAM

cdef enum:
    FAST_COPY_FILE_RANGE = 1
    FAST_SENDFILE = 2

cdef object _SOCKET_TYPE = _socket.socket
cdef object _FILEIO_TYPE = _io.FileIO
cdef object _BUFFERED_READER_TYPE = _io.BufferedReader
cdef object _COPY_FILE_RANGE = _Method.COPY_FILE_RANGE
cdef object _SENDFILE = _Method.SENDFILE
# The sockfs inode of the last socket seen to be SOCK_STREAM: a server sending many
# small responses on one connection asks getsockopt once.  sockfs numbers inodes from
# a counter (get_next_ino), so a number comes back only after 2**32 new sockets.
cdef unsigned long long _last_stream_ino = 0


cdef bint _env_allows_fast() noexcept:
    # C getenv sees os.environ changes (os.environ calls putenv), at a fraction of the
    # cost of os.environ.get.
    cdef const char *forced = getenv("ZEROCOPY_BACKEND")
    cdef const char *disabled = getenv("ZEROCOPY_DISABLE")
    if disabled != NULL and disabled[0] != 0:
        return False
    return forced == NULL or forced[0] == 0 or strcmp(forced, "native") == 0


cdef int _plain_fd(object obj) except -2:
    """The fd of an endpoint without a Python buffer or timeout, else -1."""
    cdef object kind = type(obj)
    if kind is int:
        return obj if 0 <= obj < 0x7fffffff else -1
    if kind is _SOCKET_TYPE and obj.gettimeout() is None:
        return obj.fileno()
    if kind is _FILEIO_TYPE and not obj.closed:
        return obj.fileno()
    return -1


cdef long long _plain_number(object value) except -3:
    """-1 for None, the value for a non-negative int, -2 for anything else."""
    if value is None:
        return -1
    if type(value) is int and 0 <= value < 0x7fffffffffffffff:
        return value
    return -2


cdef int _fast_method(int src_fd, int dst_fd, bint bounded, bint dst_offset_given,
                      bint *dst_poll) noexcept:
    """The method for the pair, or 0 when the full path must decide.

    Only what the kernel would not refuse by itself is checked.  A source that is not
    a regular file fails the initial lseek (ESPIPE) or the first sendfile/copy (EINVAL);
    a destination not open for writing or O_APPEND fails it with EBADF/EINVAL: either
    way nothing moved and the full path classifies properly.  Each syscall saved is a
    tenth of a small sendfile.
    """
    global _last_stream_ino
    cdef struct_stat src_st, dst_st
    cdef int sock_type = 0
    cdef socklen_t length = sizeof(sock_type)
    if fstat(dst_fd, &dst_st) != 0:
        return 0
    if S_ISREG(dst_st.st_mode):
        if fstat(src_fd, &src_st) != 0 or not S_ISREG(src_st.st_mode):
            return 0
        if src_st.st_dev == dst_st.st_dev and src_st.st_ino == dst_st.st_ino and not bounded:
            return 0  # copying a file into itself: the full path bounds it
        return FAST_COPY_FILE_RANGE
    if dst_offset_given:
        return 0
    dst_poll[0] = True  # EAGAIN from a socket or pipe can only mean "full": wait
    if S_ISFIFO(dst_st.st_mode):
        return FAST_SENDFILE
    if not S_ISSOCK(dst_st.st_mode):
        return 0
    if <unsigned long long>dst_st.st_ino != _last_stream_ino:
        # sendfile would happily send datagrams; SPEC refuses non-stream sockets.
        if getsockopt(dst_fd, SOL_SOCKET, SO_TYPE, &sock_type, &length) != 0:
            return 0
        if sock_type != SOCK_STREAM:
            return 0
        _last_stream_ino = dst_st.st_ino
    return FAST_SENDFILE


cdef int _fast_loop(State *st, int method) except -1:
    """The full path's GIL-free sendfile / copy_file_range run (_core.pyx), without
    the fault seam: with faults armed the fast path steps aside."""
    cdef Run run
    cdef int loop = LOOP_SENDFILE if method == FAST_SENDFILE else LOOP_COPY_FILE_RANGE
    _run_init(&run, loop, False)
    run.seam = False
    _drive(st, &run, None)
    return _declined_at_start(st, loop)


def fast_transfer(object src, object dst, object count, object offset, object dst_offset):
    """Run a plain transfer in one call: a TransferResult, or None when the full path
    must decide.  Raises TransferError when it fails after delivering bytes.  The
    source position (``offset`` None) is left at start + transferred on every way out.
    """
    cdef State st
    cdef bint dst_poll = False
    cdef int src_fd, dst_fd, method
    cdef long long start, n_count, n_offset, n_dst
    if not _env_allows_fast() or _backend_module._swapped or _plan_module._absent:
        return None
    if _faults_armed:
        # Injected faults are one-shot: the full path must meet them, or a failure
        # here would be retried there without it and never be seen (_faults.pxi).
        return None
    n_count, n_offset, n_dst = (_plain_number(count), _plain_number(offset),
                                _plain_number(dst_offset))
    if n_count == 0 or n_count == -2 or n_offset == -2 or n_dst == -2:
        return None
    # open(path, "rb") is the commonest source: a BufferedReader.  Its buffer only
    # matters for the position (the logical tell() is behind the fd by the read-ahead),
    # so it is read with tell() and set with seek() instead of lseek; with an explicit
    # offset it does not matter at all.  (BufferedRandom may hold unwritten bytes: the
    # full path flushes those.)
    reader = src if type(src) is _BUFFERED_READER_TYPE and not src.closed else None
    src_fd = reader.fileno() if reader is not None else _plain_fd(src)
    dst_fd = _plain_fd(dst)
    if src_fd < 0 or dst_fd < 0:
        return None
    method = _fast_method(src_fd, dst_fd, n_count >= 0, n_dst >= 0, &dst_poll)
    if method == 0:
        return None
    start = _fast_start(src_fd, reader, n_offset)
    if start < 0:
        return None
    st.src_fd, st.dst_fd = src_fd, dst_fd
    st.src_off, st.dst_off = start, n_dst
    st.remaining, st.transferred = n_count, 0
    st.chunk = 8 << 20  # zerocopy._transfer.DEFAULT_CHUNK_SIZE
    st.eof = False
    st.src_poll, st.dst_poll = False, dst_poll
    st.src_wait = st.dst_wait = st.deadline = -1
    st.pipe_r = st.pipe_w = -1
    st.pipe_size = st.in_pipe = 0
    st.nowait, st.blocked = False, 0
    method_obj = _SENDFILE if method == FAST_SENDFILE else _COPY_FILE_RANGE
    try:
        _fast_loop(&st, method)
    except BaseException as exc:
        # A system call's error always has an errno.  A signal handler's own exception
        # may be an OSError without one (``raise TimeoutError()``): retrying it on the
        # full path would swallow it and block again, so it goes to the caller.
        if isinstance(exc, (OSError, MethodDeclined)) and exc.errno is not None:
            if st.transferred == 0:
                return None
            raise _transfer_error(exc.errno or 0, method_obj, st.transferred) from None
        # A signal handler (Ctrl-C) raised: hand the counts over, as the full path does.
        exc.transferred = st.transferred
        exc.residue = b""
        exc.add_note(f"zerocopy: {st.transferred} bytes delivered before the transfer "
                     "stopped; 0 bytes handed back as .residue")
        raise
    finally:
        if n_offset < 0:
            if reader is not None:
                reader.seek(start + st.transferred)
            else:
                lseek(src_fd, <off_t>(start + st.transferred), SEEK_SET)
    return _fast_result(st.transferred, method_obj, "native", st.eof)


cdef long long _fast_start(int src_fd, object reader, long long offset) except -2:
    """Where to read from: *offset*, else the source's logical position; -1 when it
    has none (a pipe or socket: the full path decides)."""
    if offset >= 0:
        return offset
    if reader is None:
        return lseek(src_fd, 0, SEEK_CUR)
    try:
        return reader.tell()
    except OSError:  # not seekable
        return -1
