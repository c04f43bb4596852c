# Fault injection (included by _core.pyx): the C half of zerocopy._faults.
#
# One slot per system call the loops make.  Every call site asks _fault() first; when
# nothing is armed that is one load of a C int and a branch, so the seam costs nothing
# measurable in production.  When a failure is due, _fault() sets errno and the call
# site takes its normal error path, exactly as if the kernel had said so.  The slot
# numbers are the positions in zerocopy._faults.SYSCALLS.

from cpython.pythread cimport (
    PyThread_type_lock, PyThread_allocate_lock, PyThread_acquire_lock,
    PyThread_release_lock, WAIT_LOCK,
)

cdef extern from *:
    """
    #include <errno.h>
    static inline void zc_set_errno(int err) { errno = err; }
    """
    void zc_set_errno(int err) nogil

cdef enum:
    FAULT_SENDFILE = 0
    FAULT_SPLICE = 1
    FAULT_COPY_FILE_RANGE = 2
    FAULT_READ = 3
    FAULT_WRITE = 4
    FAULT_POLL = 5
    FAULT_SLOTS = 6

cdef struct FaultSlot:
    int err              # the errno to fail with
    long long skip       # calls still to let through before failing
    long long times      # calls still to fail

cdef FaultSlot _fault_slots[FAULT_SLOTS]
# Non-zero while any slot has failures to come.  Read without the lock: a stale read
# only delays or adds one lock round trip, it never loses a count (counts change under
# the lock).
cdef int _faults_armed = 0
cdef PyThread_type_lock _faults_lock = PyThread_allocate_lock()


cdef void _faults_rearm() noexcept nogil:
    global _faults_armed
    cdef int i
    _faults_armed = 0
    for i in range(FAULT_SLOTS):
        if _fault_slots[i].times > 0:
            _faults_armed = 1


cdef int _fault_take(int which) noexcept nogil:
    """Count one call of slot *which*: its errno when this call must fail, else 0."""
    cdef int err = 0
    if which < 0 or which >= FAULT_SLOTS:
        return 0
    PyThread_acquire_lock(_faults_lock, WAIT_LOCK)
    if _fault_slots[which].times > 0:
        if _fault_slots[which].skip > 0:
            _fault_slots[which].skip -= 1
        else:
            _fault_slots[which].times -= 1
            err = _fault_slots[which].err
            _faults_rearm()
    PyThread_release_lock(_faults_lock)
    return err


cdef inline bint _fault(int which) noexcept nogil:
    """True, with errno set, when an injected failure is due for this call."""
    cdef int err
    if not _faults_armed:
        return False
    err = _fault_take(which)
    if err == 0:
        return False
    zc_set_errno(err)
    return True


def fault_set(int syscall, int err, long long times, long long skip):
    """Let the next *skip* calls of slot *syscall* through, then fail *times* calls
    with *err* (replacing what the slot held; *times* 0 clears it)."""
    if syscall < 0 or syscall >= FAULT_SLOTS:
        raise ValueError(f"no fault slot {syscall}")
    if err <= 0 or times < 0 or skip < 0:
        raise ValueError("err must be > 0, times and skip >= 0")
    with nogil:
        PyThread_acquire_lock(_faults_lock, WAIT_LOCK)
        _fault_slots[syscall].err = err
        _fault_slots[syscall].times = times
        _fault_slots[syscall].skip = skip
        _faults_rearm()
        PyThread_release_lock(_faults_lock)


def fault_take(int syscall):
    """Count one call of slot *syscall* (for the pure-Python backends): the errno it
    must fail with, or 0."""
    return _fault_take(syscall)


def fault_pending(int syscall):
    """``(skip, times)`` still set in slot *syscall*."""
    cdef long long skip, times
    if syscall < 0 or syscall >= FAULT_SLOTS:
        raise ValueError(f"no fault slot {syscall}")
    with nogil:
        PyThread_acquire_lock(_faults_lock, WAIT_LOCK)
        skip = _fault_slots[syscall].skip
        times = _fault_slots[syscall].times
        PyThread_release_lock(_faults_lock)
    return (skip, times)


def fault_clear():
    """Disarm every slot."""
    cdef int i
    with nogil:
        PyThread_acquire_lock(_faults_lock, WAIT_LOCK)
        for i in range(FAULT_SLOTS):
            _fault_slots[i].err = 0
            _fault_slots[i].times = 0
            _fault_slots[i].skip = 0
        _faults_rearm()
        PyThread_release_lock(_faults_lock)
