# The fast path (included by _core.pyx; its Python side and purpose are in
# zerocopy/_engine/fastpath.py): classify two plain endpoints, look the first method
# up in the decision table zerocopy._engine.plan owns, and run it, in one call.
#
# It serves only a source read at explicit offsets (a regular file; a BufferedReader
# over one is positioned with tell()/seek()) and a plain destination, with no deadline,
# progress callback, chunk size, backend choice or destination offset.  Anything else,
# and any transfer that moved nothing (an error before the first byte, or an empty
# source), returns None and the full path decides from scratch: it meets the same
# answer from the kernel, so every rule lives there.

import io as _io
import socket as _socket

from posix.stat cimport struct_stat, fstat, S_ISREG, S_ISSOCK, S_ISFIFO, S_ISDIR
from posix.unistd cimport lseek, SEEK_CUR
from libc.stdlib cimport getenv
from libc.string cimport strcmp

from zerocopy._errors import (
    is_method_error as _is_method_error, is_syscall_error as _is_syscall_error,
    note_interrupted as _note_interrupted,
    transfer_error as _transfer_error,
)
from zerocopy._types import Method as _Method, fast_result as _fast_result

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    int getsockopt(int fd, int level, int name, void *value, socklen_t *length)
    enum:
        SOL_SOCKET
        SO_TYPE
        SOCK_STREAM

cdef enum:
    # zerocopy.EndpointKind, as the fast path tells them apart
    KIND_FILE = 0
    KIND_SOCKET = 1
    KIND_PIPE = 2
    KIND_OTHER = 3
    KIND_COUNT = 4
    KIND_REFUSED = -1   # a directory, a datagram socket, a closed fd: the full path says why

cdef dict _KIND_CODES = {"file": KIND_FILE, "socket": KIND_SOCKET, "pipe": KIND_PIPE,
                         "other": KIND_OTHER}
cdef dict _FAST_LOOPS = {"sendfile": LOOP_SENDFILE, "copy_file_range": LOOP_COPY_FILE_RANGE}
cdef dict _LOOP_METHODS = {LOOP_SENDFILE: _Method.SENDFILE,
                           LOOP_COPY_FILE_RANGE: _Method.COPY_FILE_RANGE}
# [source kind][destination kind] -> the loop of the pair's first step, 0 when that
# step is not one the fast path runs.  Filled by fast_path_setup() from the table.
cdef int _first_loop[KIND_COUNT][KIND_COUNT]
cdef object _set_position = None  # zerocopy._engine.endpoints.set_position

cdef object _SOCKET_TYPE = _socket.socket
cdef object _FILEIO_TYPE = _io.FileIO
cdef object _BUFFERED_READER_TYPE = _io.BufferedReader
cdef bytes _BACKEND_ENV = _constants.BACKEND_ENV.encode()
cdef bytes _DISABLE_ENV = _constants.DISABLE_ENV.encode()
# The sockfs inode of the last socket seen to be SOCK_STREAM: a server sending many
# small responses on one connection asks getsockopt once.  sockfs numbers inodes from
# a counter (get_next_ino), so a number comes back only after 2**32 new sockets.
cdef unsigned long long _last_stream_ino = 0


def fast_path_setup(dict first_methods, object set_position):
    """Take the decision table's first method per pair of kinds (``{(src kind, dst
    kind): method name}``, from zerocopy._engine.plan) and the function that leaves
    a source at its position."""
    global _set_position
    cdef int s, d
    for s in range(KIND_COUNT):
        for d in range(KIND_COUNT):
            _first_loop[s][d] = 0
    for (src, dst), method in first_methods.items():
        _first_loop[_KIND_CODES[src]][_KIND_CODES[dst]] = _FAST_LOOPS.get(method, 0)
    _set_position = set_position


cdef bint _env_allows_fast() noexcept:
    # The default route must be the native backend, with no kill switch.  C getenv
    # sees os.environ changes (os.environ calls putenv), at a fraction of the cost of
    # os.environ.get.
    cdef const char *forced = getenv(_BACKEND_ENV)
    cdef const char *disabled = getenv(_DISABLE_ENV)
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


cdef int _kind_of(int fd, struct_stat *st) noexcept:
    """The endpoint kind of *fd* (as zerocopy._engine.endpoints classifies it), or
    KIND_REFUSED for what the full path refuses or reports."""
    global _last_stream_ino
    cdef int sock_type = 0
    cdef socklen_t length = sizeof(sock_type)
    if fstat(fd, st) != 0:
        return KIND_REFUSED
    if S_ISREG(st.st_mode):
        return KIND_FILE
    if S_ISFIFO(st.st_mode):
        return KIND_PIPE
    if S_ISDIR(st.st_mode):
        return KIND_REFUSED
    if not S_ISSOCK(st.st_mode):
        return KIND_OTHER
    if <unsigned long long>st.st_ino != _last_stream_ino:
        if getsockopt(fd, SOL_SOCKET, SO_TYPE, &sock_type, &length) != 0:
            return KIND_REFUSED
        if sock_type != SOCK_STREAM:
            return KIND_REFUSED
        _last_stream_ino = st.st_ino
    return KIND_SOCKET


cdef int _fast_loop_for(int src_fd, int dst_fd) noexcept:
    """The loop for the pair, or 0 when the full path must decide.

    The source is taken to be a regular file unless the destination is one too: a
    source that is not fails the initial lseek (ESPIPE) or the first sendfile
    (EINVAL), having moved nothing, and the full path classifies it properly.  Each
    system call saved is a tenth of a small sendfile.  A file copied into itself is
    left to the full path, which bounds it."""
    cdef struct_stat src_st, dst_st
    cdef int src_kind = KIND_FILE
    cdef int dst_kind = _kind_of(dst_fd, &dst_st)
    if dst_kind == KIND_REFUSED:
        return 0
    if dst_kind == KIND_FILE:
        src_kind = _kind_of(src_fd, &src_st)
        if src_kind != KIND_FILE:
            return 0
        if src_st.st_dev == dst_st.st_dev and src_st.st_ino == dst_st.st_ino:
            return 0
    return _first_loop[src_kind][dst_kind]


def fast_transfer(object src, object dst, object count, object offset, object dst_offset):
    """Run a plain transfer in one call: a TransferResult, or None when the full path
    must decide.  Raises TransferError when it fails after delivering bytes.  The
    source position (``offset`` None) is left at start + transferred on every way out.
    """
    cdef State st
    cdef Run run
    cdef int src_fd, dst_fd, loop
    cdef long long start, n_count, n_offset
    if _faults_armed:
        # Injected faults are one-shot: the full path must meet them, or a failure
        # here would be retried there without it and never be seen (faults.pxi).
        return None
    if not _env_allows_fast() or dst_offset is not None:
        return None
    n_count, n_offset = _plain_number(count), _plain_number(offset)
    if n_count == 0 or n_count == -2 or n_offset == -2:
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
    loop = _fast_loop_for(src_fd, dst_fd)
    if loop == 0:
        return None
    start = _fast_start(src_fd, reader, n_offset)
    if start < 0:
        return None
    st.src_fd, st.dst_fd = src_fd, dst_fd
    st.src_off, st.dst_off = start, -1
    st.remaining, st.transferred = n_count, 0
    st.chunk = DEFAULT_CHUNK
    st.eof = False
    # EAGAIN from a socket, pipe or device can only mean "full": wait (Job.dst_pollable).
    st.src_poll, st.dst_poll = False, True
    st.src_wait = st.dst_wait = st.deadline = -1
    st.pipe_r = st.pipe_w = -1
    st.pipe_size = st.in_pipe = 0
    st.nowait, st.blocked, st.pause_at = False, 0, -1
    _run_init(&run, loop, False)
    run.seam = False
    try:
        _drive(&st, &run, None)
    except BaseException as exc:
        if not _is_syscall_error(exc):
            # A signal handler (Ctrl-C) raised: hand the counts over, as the full path.
            raise _note_interrupted(exc, st.transferred, b"")
        if st.transferred == 0:
            return None
        err = _transfer_error(exc.errno or 0, _LOOP_METHODS[loop], st.transferred)
        if _is_method_error(exc):
            # The method's own call failed: only then may transfer() resume part way
            # on the full path (a failed wait's EAGAIN is not "this method can't").
            _from_a_call(err)
        raise err from None
    finally:
        if n_offset < 0:
            _set_position(src_fd, reader, start + st.transferred)
    if st.transferred == 0:
        return None  # an empty source, or copy_file_range declining: the full path says
    return _fast_result(st.transferred, _LOOP_METHODS[loop], "native", st.eof)


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
