/* The broker's per-connection C side: p11-kit loading and a framing relay in front of p11-kit's
 * RPC server. Built by native/build_relay.py into the extension module broker._relay; the Python
 * side is broker/relay.py.
 *
 * Owns: finding libp11-kit at run time (dlopen, so building needs no -dev package), the managed
 * module calls the broker makes (load, initialize, finalize, release), and relay_serve(): one
 * client connection, served by p11_kit_remote_serve_module() on one end of a socketpair while
 * the calling thread relays between the client and the other end. The relay checks what the
 * server cannot be asked to check: the handshake byte must arrive within a deadline, a message,
 * once begun, must arrive in full within a deadline, and a message's declared lengths must stay
 * under a limit (p11-kit allocates whatever a header declares, up to 2 x 4 GiB). Anything else
 * closes the connection; nothing here can end the process.
 *
 * Must not: parse PKCS#11 calls (p11-kit's server does), take the GIL (the Python caller releases
 * it for the whole connection), raise signals (every send is MSG_NOSIGNAL; the server's own
 * writes rely on the broker ignoring SIGPIPE, as Python does), or allocate per message.
 *
 * The wire (p11-kit rpc-transport.c, protocol versions 0 and 1): one version byte each way, then
 * messages of a 12-byte header (call code, options length, body length; big-endian uint32) and
 * the options and body bytes. A client sends one request and waits for its reply, so the relay
 * is a simple alternation: forward a request, forward the reply.
 */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define P11_KIT_SONAME "libp11-kit.so.0"
#define RELAY_CHUNK 65536
#define HEADER_LEN 12

/* ---- libp11-kit, resolved at run time ------------------------------------------------- */
typedef void *(*fn_module_load)(const char *path, int flags);
typedef unsigned long (*fn_module_call)(void *module);
typedef void (*fn_module_release)(void *module);
typedef int (*fn_serve)(void *module, int in_fd, int out_fd);
typedef const char *(*fn_message)(void);

static struct {
    fn_module_load load;
    fn_module_call initialize;
    fn_module_call finalize;
    fn_module_release release;
    fn_serve serve;
    fn_message message;
} p11k;
static char p11k_error[256];
static pthread_once_t p11k_once = PTHREAD_ONCE_INIT;

static void p11k_open(void)
{
    void *h = dlopen(P11_KIT_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(p11k_error, sizeof p11k_error, "%s", dlerror());
        return;
    }
#define SYM(field, name)                                                                  \
    do {                                                                                  \
        *(void **)&p11k.field = dlsym(h, name);                                           \
        if (!p11k.field) {                                                                \
            snprintf(p11k_error, sizeof p11k_error, "%s has no %s", P11_KIT_SONAME, name); \
            return;                                                                       \
        }                                                                                 \
    } while (0)
    SYM(load, "p11_kit_module_load");
    SYM(initialize, "p11_kit_module_initialize");
    SYM(finalize, "p11_kit_module_finalize");
    SYM(release, "p11_kit_module_release");
    SYM(serve, "p11_kit_remote_serve_module");
    SYM(message, "p11_kit_message");
#undef SYM
}

/* NULL when libp11-kit is usable, else why not. */
static const char *relay_p11kit_error(void)
{
    pthread_once(&p11k_once, p11k_open);
    return p11k.message ? NULL : p11k_error;
}

/* A managed module (p11-kit: reference-counted C_Initialize, sessions tracked per instance). */
static void *relay_module_load(const char *path)
{
    return relay_p11kit_error() ? NULL : p11k.load(path, 0);
}

static unsigned long relay_module_initialize(void *module) { return p11k.initialize(module); }
static unsigned long relay_module_finalize(void *module) { return p11k.finalize(module); }
static void relay_module_release(void *module) { p11k.release(module); }

static const char *relay_p11kit_message(void)
{
    const char *m = relay_p11kit_error() ? NULL : p11k.message();
    return m ? m : "";
}

/* ---- the relay ------------------------------------------------------------------------ */
struct relay_limits {
    uint32_t max_options;   /* bytes of a request's options part */
    uint32_t max_body;      /* bytes of a request's body */
    int handshake_ms;       /* connect -> version byte */
    int message_ms;         /* first byte of a request -> last byte; also a reply's delivery */
    int idle_ms;            /* between requests; <= 0: no limit */
};

enum relay_end {
    RELAY_CLOSED = 0,           /* the client closed between messages (normal end) */
    RELAY_HANDSHAKE_TIMEOUT = 1,
    RELAY_MESSAGE_TIMEOUT = 2,
    RELAY_IDLE_TIMEOUT = 3,
    RELAY_TOO_LARGE = 4,
    RELAY_CLIENT_LOST = 5,      /* reset, EOF inside a message, or a reply it would not take */
    RELAY_SERVER_CLOSED = 6,    /* p11-kit's server ended the connection (e.g. unparseable call) */
    RELAY_STOPPED = 7,          /* the broker is stopping */
    RELAY_SYSTEM_ERROR = 8,     /* socketpair/thread creation failed */
};

struct relay_stats {
    int end;                    /* enum relay_end */
    int sys_errno;              /* errno behind RELAY_SYSTEM_ERROR / RELAY_CLIENT_LOST */
    unsigned long requests;
};

struct serve_arg {
    void *module;
    int fd;
    int ret;
};

static void *serve_thread(void *p)
{
    struct serve_arg *a = p;
    a->ret = p11k.serve(a->module, a->fd, a->fd);
    /* Closing our end tells the relay that no more replies will come. */
    close(a->fd);
    return NULL;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for `events`, the deadline passes (0) or stop_fd fires (-2).
 * deadline < 0: no deadline. Returns 1 when ready, -1 on a poll error. */
static int wait_fd(int fd, short events, long long deadline, int stop_fd)
{
    struct pollfd p[2] = { { fd, events, 0 }, { stop_fd, POLLIN, 0 } };
    for (;;) {
        int timeout = -1, n;
        if (deadline >= 0) {
            long long left = deadline - now_ms();
            if (left <= 0)
                return 0;
            timeout = left > 0x7fffffff ? 0x7fffffff : (int)left;
        }
        n = poll(p, stop_fd >= 0 ? 2 : 1, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            continue;   /* re-check the deadline */
        if (stop_fd >= 0 && p[1].revents)
            return -2;
        if (p[0].revents)
            return 1;   /* readable, writable, or an error/hang-up the next call reports */
    }
}

/* Read exactly n bytes. 1: done; 0: EOF before the first byte, when allow_eof; else the negated
 * relay_end (timeout_end, or eof_end for an EOF or a receive error). */
static int read_full(int fd, unsigned char *buf, size_t n, long long deadline, int stop_fd,
                     int timeout_end, int eof_end, int allow_eof, struct relay_stats *st)
{
    size_t got = 0;
    while (got < n) {
        /* Try first: in a conversation the bytes are usually there already. */
        ssize_t r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0)
            return got == 0 && allow_eof ? 0 : -eof_end;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            st->sys_errno = errno;
            return -eof_end;
        }
        switch (wait_fd(fd, POLLIN, deadline, stop_fd)) {
        case 0:
            return -timeout_end;
        case -2:
            return -RELAY_STOPPED;
        case -1:
            st->sys_errno = errno;
            return -RELAY_SYSTEM_ERROR;
        }
    }
    return 1;
}

static int write_full(int fd, const unsigned char *buf, size_t n, long long deadline, int stop_fd,
                      int timeout_end, int fail_end, struct relay_stats *st)
{
    size_t put = 0;
    while (put < n) {
        ssize_t r = send(fd, buf + put, n - put, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r >= 0) {
            put += (size_t)r;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            st->sys_errno = errno;
            return -fail_end;
        }
        switch (wait_fd(fd, POLLOUT, deadline, stop_fd)) {
        case 0:
            return -timeout_end;
        case -2:
            return -RELAY_STOPPED;
        case -1:
            st->sys_errno = errno;
            return -RELAY_SYSTEM_ERROR;
        }
    }
    return 1;
}

/* Copy n bytes from `from` to `to` in chunks. */
static int copy_bytes(int from, int to, uint64_t n, unsigned char *buf, long long read_deadline,
                      long long write_deadline, int stop_fd, int read_timeout_end,
                      int read_fail_end, int write_timeout_end, int write_fail_end,
                      struct relay_stats *st)
{
    while (n > 0) {
        size_t chunk = n > RELAY_CHUNK ? RELAY_CHUNK : (size_t)n;
        int r = read_full(from, buf, chunk, read_deadline, stop_fd, read_timeout_end,
                          read_fail_end, 0, st);
        if (r < 0)
            return r;
        r = write_full(to, buf, chunk, write_deadline, stop_fd, write_timeout_end,
                       write_fail_end, st);
        if (r <= 0)
            return r;
        n -= chunk;
    }
    return 1;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The conversation; returns a relay_end. */
static int relay_loop(int client, int server, const struct relay_limits *lim, int stop_fd,
                      unsigned char *buf, struct relay_stats *st)
{
    unsigned char header[HEADER_LEN];
    long long deadline;
    int r;

    /* Version byte from the client, within the handshake deadline, and the server's answer. */
    deadline = now_ms() + lim->handshake_ms;
    r = read_full(client, header, 1, deadline, stop_fd, RELAY_HANDSHAKE_TIMEOUT,
                  RELAY_CLIENT_LOST, 1, st);
    if (r <= 0)
        return -r;   /* 0: closed before a word, RELAY_CLOSED */
    r = write_full(server, header, 1, -1, stop_fd, RELAY_SERVER_CLOSED, RELAY_SERVER_CLOSED, st);
    if (r <= 0)
        return -r;
    r = read_full(server, header, 1, -1, stop_fd, RELAY_SERVER_CLOSED, RELAY_SERVER_CLOSED, 0,
                  st);
    if (r <= 0)
        return -r;
    r = write_full(client, header, 1, now_ms() + lim->message_ms, stop_fd, RELAY_MESSAGE_TIMEOUT,
                   RELAY_CLIENT_LOST, st);
    if (r <= 0)
        return -r;

    for (;;) {
        uint32_t options_len, body_len;

        /* Between requests: wait for the first byte (idle limit), then the message deadline. */
        if (lim->idle_ms > 0) {
            r = wait_fd(client, POLLIN, now_ms() + lim->idle_ms, stop_fd);
            if (r == 0)
                return RELAY_IDLE_TIMEOUT;
        } else {
            r = wait_fd(client, POLLIN, -1, stop_fd);
        }
        if (r == -2)
            return RELAY_STOPPED;
        deadline = now_ms() + lim->message_ms;
        r = read_full(client, header, HEADER_LEN, deadline, stop_fd, RELAY_MESSAGE_TIMEOUT,
                      RELAY_CLIENT_LOST, 1, st);
        if (r <= 0)
            return -r;   /* 0: closed between messages, RELAY_CLOSED */
        options_len = be32(header + 4);
        body_len = be32(header + 8);
        if (options_len > lim->max_options || body_len > lim->max_body)
            return RELAY_TOO_LARGE;
        st->requests++;
        r = write_full(server, header, HEADER_LEN, -1, stop_fd, RELAY_SERVER_CLOSED,
                       RELAY_SERVER_CLOSED, st);
        if (r <= 0)
            return -r;
        r = copy_bytes(client, server, (uint64_t)options_len + body_len, buf, deadline, -1,
                       stop_fd, RELAY_MESSAGE_TIMEOUT, RELAY_CLIENT_LOST, RELAY_SERVER_CLOSED,
                       RELAY_SERVER_CLOSED, st);
        if (r <= 0)
            return -r;

        /* The reply: as long as the call takes; the client must then take it in time. */
        r = read_full(server, header, HEADER_LEN, -1, stop_fd, RELAY_SERVER_CLOSED,
                      RELAY_SERVER_CLOSED, 0, st);
        if (r < 0)
            return -r;
        deadline = now_ms() + lim->message_ms;
        r = write_full(client, header, HEADER_LEN, deadline, stop_fd, RELAY_MESSAGE_TIMEOUT,
                       RELAY_CLIENT_LOST, st);
        if (r <= 0)
            return -r;
        r = copy_bytes(server, client, (uint64_t)be32(header + 4) + be32(header + 8), buf, -1,
                       deadline, stop_fd, RELAY_SERVER_CLOSED, RELAY_SERVER_CLOSED,
                       RELAY_MESSAGE_TIMEOUT, RELAY_CLIENT_LOST, st);
        if (r <= 0)
            return -r;
    }
}

/* Serve one client connection until it ends; returns the relay_end (also in st->end). The
 * caller owns client_fd (it is neither closed nor shut down here). */
static int relay_serve(void *module, int client_fd, const struct relay_limits *lim, int stop_fd,
                       struct relay_stats *st)
{
    unsigned char *buf;
    struct serve_arg arg;
    pthread_t thread;
    int sv[2];

    memset(st, 0, sizeof *st);
    if (relay_p11kit_error()) {
        st->end = RELAY_SYSTEM_ERROR;
        return st->end;
    }
    buf = malloc(RELAY_CHUNK);
    if (!buf || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        st->sys_errno = errno;
        free(buf);
        st->end = RELAY_SYSTEM_ERROR;
        return st->end;
    }
    arg.module = module;
    arg.fd = sv[1];
    arg.ret = 0;
    if (pthread_create(&thread, NULL, serve_thread, &arg) != 0) {
        st->sys_errno = errno;
        close(sv[0]);
        close(sv[1]);
        free(buf);
        st->end = RELAY_SYSTEM_ERROR;
        return st->end;
    }
    st->end = relay_loop(client_fd, sv[0], lim, stop_fd, buf, st);

    /* No more requests: the server sees EOF, finishes any call in progress and returns. Its
     * replies are drained (never forwarded) so that it cannot block on a full socket. */
    shutdown(sv[0], SHUT_WR);
    while (read(sv[0], buf, RELAY_CHUNK) > 0)
        ;
    pthread_join(thread, NULL);
    close(sv[0]);
    free(buf);
    return st->end;
}
