// zc_ref: the kernel's own loop for each transfer shape, in C, with no Python, and the
// zero-copy loopback peers that `zerocopy bench` puts every method in front of.
// Build: cc -O2 -o bench/zc_ref bench/zc_ref.c -lpthread   (see bench/README.md)
//
//   zc_ref run METHOD SRC DST BYTES [CHUNK [OFFSET]]
//       Move BYTES (or until end of file) from SRC to DST with one plain loop and print
//       "<bytes> <seconds> <cpu seconds>" (user+sys of this process, during the loop only).
//       SRC: file:PATH | tcp:PORT (a peer-source: asked for BYTES with an 8-byte request)
//       DST: file:PATH (created, truncated) | over:PATH (an existing file, overwritten from
//            its start: no page allocation in the loop) | tcp:PORT | fifo:PATH
//       METHOD: rw (read/write through a buffer) | sendfile | cfr (copy_file_range) |
//               splice (direct when one side is a pipe, else through a 1 MiB pipe of ours)
//       CHUNK: bytes asked per call (default 1 MiB; rw's buffer is min(CHUNK, 128 KiB)).
//       OFFSET: start a file: source and an over: destination there (default 0).
//   zc_ref peer-sink           listen on 127.0.0.1, print the port, then drain every
//                              connection (one thread each) to EOF
//   zc_ref peer-source BLOCK   listen, print the port; for each connection read an 8-byte
//                              big-endian count and send that many bytes: BLOCK's content,
//                              repeated
//   zc_ref peer-fifo PATH      open the FIFO for reading, drain it to EOF, again and again
// A peer prints one line per connection when it is done: "<bytes> <cpu seconds> -", the CPU
// being that of the thread that served it.  Peers exit when their stdin reaches EOF.
//
// The peers copy nothing themselves, as a NIC's DMA would not: the sinks splice into
// /dev/null, the source sends with sendfile from a page-cached file.  With a reading sink the
// receiver's own copy is the bottleneck on loopback and hides what the sender costs
// (docs/performance.md, "How it measures").
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RW_BUF_MAX (128 * 1024)
#define PIPE_SZ (1 << 20)

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu(int who) {
    struct rusage u;
    getrusage(who, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

static void report_peer(long long bytes, double cpu_s) {
    pthread_mutex_lock(&out_lock);
    printf("%lld %.6f -\n", bytes, cpu_s);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

static int listener(void) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (void *)&a, sizeof a) || listen(s, 64)) die("listen");
    if (getsockname(s, (void *)&a, &len)) die("getsockname");
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    return s;
}

static int dial(int port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s < 0 || connect(s, (void *)&a, sizeof a)) die("connect");
    return s;
}

static int is_pipe(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

static void write_all(int fd, const char *b, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) die("write");
        b += k, n -= (size_t)k;
    }
}

static long long want(long long left, long long chunk) { return left < chunk ? left : chunk; }

// The loops: move until `left` is 0 or the source reports end of file; return bytes moved.
static long long loop_rw(int in, int out, long long left, long long chunk) {
    size_t size = chunk < RW_BUF_MAX ? (size_t)chunk : RW_BUF_MAX;
    char *b = malloc(size);
    long long done = 0;
    ssize_t n;
    if (!b) die("malloc");
    while (left > 0 && (n = read(in, b, (size_t)want(left, (long long)size))) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            die("read");
        }
        write_all(out, b, (size_t)n);
        done += n, left -= n;
    }
    free(b);
    return done;
}

static long long loop_sendfile(int in, int out, long long left, long long chunk) {
    long long done = 0;
    ssize_t n;
    while (left > 0 && (n = sendfile(out, in, NULL, (size_t)want(left, chunk))) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            die("sendfile");
        }
        done += n, left -= n;
    }
    return done;
}

static long long loop_cfr(int in, int out, long long left, long long chunk) {
    long long done = 0;
    ssize_t n;
    while (left > 0 && (n = copy_file_range(in, NULL, out, NULL, (size_t)want(left, chunk), 0)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            die("copy_file_range");
        }
        done += n, left -= n;
    }
    return done;
}

// splice needs a pipe on one side: straight across when an endpoint is one, else through a pipe
// of our own, sized with F_SETPIPE_SZ (a 64 KiB default pipe costs 16 times the calls).
static long long loop_splice(int in, int out, long long left, long long chunk) {
    long long done = 0;
    ssize_t n;
    if (is_pipe(in) || is_pipe(out)) {
        while (left > 0 && (n = splice(in, NULL, out, NULL, (size_t)want(left, chunk), SPLICE_F_MOVE)) != 0) {
            if (n < 0) {
                if (errno == EINTR) continue;
                die("splice");
            }
            done += n, left -= n;
        }
        return done;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC)) die("pipe");
    long long cap = fcntl(p[1], F_SETPIPE_SZ, PIPE_SZ);
    if (cap <= 0) cap = fcntl(p[1], F_GETPIPE_SZ);
    while (left > 0 && (n = splice(in, NULL, p[1], NULL, (size_t)want(left, cap < chunk ? cap : chunk), SPLICE_F_MOVE)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            die("splice in");
        }
        for (ssize_t w = 0; w < n;) {
            ssize_t k = splice(p[0], NULL, out, NULL, (size_t)(n - w), SPLICE_F_MOVE);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) die("splice out");
            w += k;
        }
        done += n, left -= n;
    }
    close(p[0]), close(p[1]);
    return done;
}

static int open_src(const char *spec, long long bytes) {
    if (!strncmp(spec, "file:", 5)) {
        int fd = open(spec + 5, O_RDONLY | O_CLOEXEC);
        if (fd < 0) die("open src");
        return fd;
    }
    if (!strncmp(spec, "tcp:", 4)) {
        int s = dial(atoi(spec + 4));
        uint64_t be = htobe64((uint64_t)bytes);
        write_all(s, (const char *)&be, sizeof be);
        return s;
    }
    fprintf(stderr, "bad SRC %s\n", spec);
    exit(2);
}

static int open_dst(const char *spec) {
    int fd = -1;
    if (!strncmp(spec, "file:", 5))
        fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    else if (!strncmp(spec, "over:", 5))
        fd = open(spec + 5, O_WRONLY | O_CLOEXEC);
    else if (!strncmp(spec, "fifo:", 5)) {
        fd = open(spec + 5, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) fcntl(fd, F_SETPIPE_SZ, PIPE_SZ);  // before the clock, as the bench does
    }
    else if (!strncmp(spec, "tcp:", 4))
        return dial(atoi(spec + 4));
    else {
        fprintf(stderr, "bad DST %s\n", spec);
        exit(2);
    }
    if (fd < 0) die("open dst");
    return fd;
}

static int run(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: zc_ref run METHOD SRC DST BYTES [CHUNK [OFFSET]]\n");
        return 2;
    }
    const char *m = argv[2];
    long long bytes = atoll(argv[5]);
    long long chunk = argc > 6 ? atoll(argv[6]) : (1 << 20);
    long long (*loop)(int, int, long long, long long);
    if (!strcmp(m, "rw")) loop = loop_rw;
    else if (!strcmp(m, "sendfile")) loop = loop_sendfile;
    else if (!strcmp(m, "cfr")) loop = loop_cfr;
    else if (!strcmp(m, "splice")) loop = loop_splice;
    else {
        fprintf(stderr, "unknown method %s\n", m);
        return 2;
    }
    int in = open_src(argv[3], bytes), out = open_dst(argv[4]);
    if (argc > 7) {  // start both files at OFFSET: concurrent runs on disjoint regions
        off_t off = atoll(argv[7]);
        if (!strncmp(argv[3], "file:", 5) && lseek(in, off, SEEK_SET) < 0) die("lseek src");
        if (!strncmp(argv[4], "over:", 5) && lseek(out, off, SEEK_SET) < 0) die("lseek dst");
    }
    double c0 = cpu(RUSAGE_SELF), t0 = now();
    long long n = loop(in, out, bytes, chunk);
    double t = now() - t0, c = cpu(RUSAGE_SELF) - c0;
    close(out), close(in);
    printf("%lld %.6f %.6f\n", n, t, c);
    return 0;
}

// Drain fd into /dev/null through a pipe (or straight, when fd is a pipe); returns the count.
static long long drain(int fd) {
    long long total = 0;
    ssize_t n;
    int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (nul < 0) die("open /dev/null");
    if (is_pipe(fd)) {
        fcntl(fd, F_SETPIPE_SZ, PIPE_SZ);
        while ((n = splice(fd, NULL, nul, NULL, PIPE_SZ, SPLICE_F_MOVE)) != 0) {
            if (n < 0) {
                if (errno == EINTR) continue;
                die("sink splice");
            }
            total += n;
        }
        close(nul);
        return total;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC)) die("sink pipe");
    fcntl(p[1], F_SETPIPE_SZ, PIPE_SZ);
    while ((n = splice(fd, NULL, p[1], NULL, PIPE_SZ, SPLICE_F_MOVE)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == ECONNRESET) break;  // the sender died: report what arrived
            die("sink splice in");
        }
        for (ssize_t w = 0; w < n;) {
            ssize_t k = splice(p[0], NULL, nul, NULL, (size_t)(n - w), SPLICE_F_MOVE);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) die("sink splice out");
            w += k;
        }
        total += n;
    }
    close(p[0]), close(p[1]), close(nul);
    return total;
}

static void *sink_conn(void *arg) {
    int c = (int)(intptr_t)arg;
    double c0 = cpu(RUSAGE_THREAD);
    long long n = drain(c);
    close(c);
    report_peer(n, cpu(RUSAGE_THREAD) - c0);
    return NULL;
}

static int block_fd;
static long long block_size;

static void *source_conn(void *arg) {
    int c = (int)(intptr_t)arg;
    double c0 = cpu(RUSAGE_THREAD);
    uint64_t be = 0;
    size_t got = 0;
    while (got < sizeof be) {
        ssize_t k = read(c, (char *)&be + got, sizeof be - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) die("source request");
        got += (size_t)k;
    }
    long long left = (long long)be64toh(be), sent = 0;
    off_t off = 0;
    while (left > 0) {
        ssize_t k = sendfile(c, block_fd, &off, (size_t)want(left, block_size - off));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EPIPE || errno == ECONNRESET)) break;  // the reader went away
        if (k <= 0) die("source sendfile");
        left -= k, sent += k;
        if (off == block_size) off = 0;
    }
    close(c);
    report_peer(sent, cpu(RUSAGE_THREAD) - c0);
    return NULL;
}

static void serve(int l, void *(*conn)(void *)) {
    for (;;) {
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR) continue;
            die("accept");
        }
        pthread_t th;
        if (pthread_create(&th, NULL, conn, (void *)(intptr_t)c)) die("pthread_create");
        pthread_detach(th);
    }
}

static void *fifo_loop(void *arg) {
    const char *path = arg;
    for (;;) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);  // blocks until a writer opens it
        if (fd < 0) die("open fifo");
        double c0 = cpu(RUSAGE_THREAD);
        long long n = drain(fd);
        close(fd);
        report_peer(n, cpu(RUSAGE_THREAD) - c0);
    }
    return NULL;
}

// Exit when the parent closes our stdin (or dies): a peer never outlives its benchmark.
static void *watch_stdin(void *arg) {
    (void)arg;
    char b[64];
    while (read(0, b, sizeof b) > 0) {}
    exit(0);
}

int main(int argc, char **argv) {
    pthread_t th;
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && !strcmp(argv[1], "run")) return run(argc, argv);
    if (argc == 2 && !strcmp(argv[1], "peer-sink")) {
        int l = listener();
        pthread_create(&th, NULL, watch_stdin, NULL);
        serve(l, sink_conn);
    }
    if (argc == 3 && !strcmp(argv[1], "peer-source")) {
        struct stat st;
        block_fd = open(argv[2], O_RDONLY | O_CLOEXEC);
        if (block_fd < 0 || fstat(block_fd, &st) || st.st_size <= 0) die("open block");
        block_size = st.st_size;
        int l = listener();
        pthread_create(&th, NULL, watch_stdin, NULL);
        serve(l, source_conn);
    }
    if (argc == 3 && !strcmp(argv[1], "peer-fifo")) {
        printf("0\n");  // the same "ready" line as the socket peers
        fflush(stdout);
        pthread_create(&th, NULL, watch_stdin, NULL);
        fifo_loop(argv[2]);
    }
    fprintf(stderr, "usage: see the header of zc_ref.c\n");
    return 2;
}
