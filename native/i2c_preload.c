/*
 * LD_PRELOAD shim: one Linux I2C adapter node (/dev/i2c-N) served by the ATECC608 emulator.
 *
 * Owns: the client side of `atecc emulator run`. Loaded into every process that command starts,
 * it intercepts opens of exactly one path (ATECC_I2C_EMULATOR_DEVICE, e.g. "/dev/i2c-1") and
 * hands back a UNIX-socket descriptor connected to the emulator process
 * (ATECC_I2C_EMULATOR_SOCKET). On such a descriptor it answers what i2c-dev answers: ioctl
 * I2C_SLAVE / I2C_SLAVE_FORCE / I2C_FUNCS / I2C_RDWR (plus the harmless I2C_TENBIT, I2C_PEC,
 * I2C_RETRIES, I2C_TIMEOUT), read() and write() as single-message transfers to the slave address,
 * close(), dup()/dup2()/dup3(). Each transfer is forwarded to the emulator, which runs it on the
 * emulated bus: a NACK comes back as -1 with errno EREMOTEIO, as i2c-dev reports it.
 *
 * Must not: touch any other path or descriptor (they go straight to the next definition of the
 * function), run any Python, allocate on the fast path of read()/write() on other descriptors,
 * or block without bound (socket timeouts; a broken connection turns into EIO for good).
 *
 * The settings come from secure_getenv(), so a set-uid/set-gid program ignores them.
 *
 * Limits (the kernel's own i2c-dev limits): at most 42 messages per I2C_RDWR, 8192 bytes per
 * message (read()/write() are cut to 8192 bytes, as i2c-dev does). Emulated descriptors must be
 * below 1024. Not followed: opens through relative paths with a directory descriptor, stdio
 * (fopen() uses glibc-internal calls), descriptors duplicated with fcntl(F_DUPFD).
 *
 * Wire format (little-endian), one request and one reply per transfer:
 *   greeting, server to client at connect: "ATI2" version(1) status(1: 0 ok, 1 busy) 0 0
 *   request: nmsgs(1) 0 0 0, then per message addr(2) flags(2) len(2), then the bytes of the
 *            write messages in order
 *   reply:   errno(4; 0 = success) nread(4), then nread bytes for the read messages in order
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/i2c-dev.h>
#include <linux/i2c.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

#define EMU_MAX_FDS 1024
#define EMU_MAX_MSGS 42      /* I2C_RDWR_IOCTL_MAX_MSGS */
#define EMU_MAX_MSG_LEN 8192 /* i2c-dev's per-message limit */
#define EMU_TIMEOUT_S 30     /* a reply never takes this long; past it the link is broken */
#define EMU_VERSION 1

struct emu_fd {
    int active;       /* read without the lock on the fast path */
    int broken;       /* the connection lost sync: every later call fails with EIO */
    pid_t pid;        /* process that owns the connection; a forked child reconnects */
    dev_t dev;        /* identity of the socket, so a descriptor reused behind our back */
    ino_t ino;        /*   (close_range, closefrom) is recognised and released */
    unsigned addr;    /* I2C_SLAVE address; i2c-dev starts at 0 */
};

static struct emu_fd table[EMU_MAX_FDS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char device_path[256];
static char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static int enabled;

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*ioctl_fn)(int, unsigned long, ...);
typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef int (*close_fn)(int);
typedef int (*dup_fn)(int);
typedef int (*dup2_fn)(int, int);
typedef int (*dup3_fn)(int, int, int);
typedef int (*open2_fn)(const char *, int);
typedef int (*openat2_fn)(int, const char *, int);

static void *next_symbol(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

#define NEXT(type, name)                                                                       \
    static type next_##name;                                                                   \
    if (next_##name == NULL) next_##name = (type)next_symbol(#name)

static void atfork_prepare(void) { pthread_mutex_lock(&lock); }
static void atfork_release(void) { pthread_mutex_unlock(&lock); }

__attribute__((constructor)) static void emu_init(void)
{
    const char *dev = secure_getenv("ATECC_I2C_EMULATOR_DEVICE");
    const char *sock = secure_getenv("ATECC_I2C_EMULATOR_SOCKET");
    if (dev == NULL || sock == NULL || dev[0] != '/' || strlen(dev) >= sizeof(device_path) ||
        strlen(sock) >= sizeof(socket_path) || sock[0] == '\0')
        return;
    strcpy(device_path, dev);
    strcpy(socket_path, sock);
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
    enabled = 1;
}

static int is_device(const char *path)
{
    return enabled && path != NULL && strcmp(path, device_path) == 0;
}

static int tracked(int fd)
{
    return fd >= 0 && fd < EMU_MAX_FDS && __atomic_load_n(&table[fd].active, __ATOMIC_ACQUIRE);
}

static void untrack(int fd)
{
    if (fd >= 0 && fd < EMU_MAX_FDS) __atomic_store_n(&table[fd].active, 0, __ATOMIC_RELEASE);
}

static int io_full(int fd, void *buf, size_t len, int sending)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = sending ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A new connection to the emulator; returns the socket or -1 with errno set. */
static int emu_connect(int cloexec)
{
    struct sockaddr_un sa;
    struct timeval tv = {EMU_TIMEOUT_S, 0};
    unsigned char hello[8];
    int s = socket(AF_UNIX, SOCK_STREAM | (cloexec ? SOCK_CLOEXEC : 0), 0);
    if (s < 0) return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, socket_path);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        NEXT(close_fn, close);
        next_close(s);
        errno = ENODEV; /* the emulator is gone: like an adapter that was removed */
        return -1;
    }
    if (io_full(s, hello, sizeof(hello), 0) < 0 || memcmp(hello, "ATI2", 4) != 0 ||
        hello[4] != EMU_VERSION || hello[5] != 0) {
        int busy = memcmp(hello, "ATI2", 4) == 0 && hello[5] == 1;
        NEXT(close_fn, close);
        next_close(s);
        errno = busy ? EBUSY : ENODEV;
        return -1;
    }
    return s;
}

static int emu_open(int flags)
{
    struct stat st;
    int s = emu_connect((flags & O_CLOEXEC) != 0);
    if (s < 0) return -1;
    if (s >= EMU_MAX_FDS || fstat(s, &st) < 0) {
        NEXT(close_fn, close);
        next_close(s);
        errno = EMFILE;
        return -1;
    }
    pthread_mutex_lock(&lock);
    table[s].broken = 0;
    table[s].pid = getpid();
    table[s].dev = st.st_dev;
    table[s].ino = st.st_ino;
    table[s].addr = 0;
    __atomic_store_n(&table[s].active, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&lock);
    return s;
}

/*
 * Called with the lock held for a tracked fd. Returns 1 when fd is (still) ours and usable,
 * 0 when the descriptor number was reused for something else (the caller passes through), or
 * -1 with errno set.
 */
static int emu_check(int fd)
{
    struct emu_fd *e = &table[fd];
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_dev != e->dev || st.st_ino != e->ino) {
        __atomic_store_n(&e->active, 0, __ATOMIC_RELEASE);
        return 0;
    }
    if (e->pid != getpid()) {
        /* A forked child: sharing the parent's stream would interleave the two processes'
         * requests, so it gets its own connection on the same descriptor number. */
        int flags = fcntl(fd, F_GETFD);
        int cloexec = flags >= 0 && (flags & FD_CLOEXEC);
        int s = emu_connect(cloexec);
        NEXT(dup3_fn, dup3); /* ours would take the lock we hold */
        if (s < 0 || next_dup3(s, fd, cloexec ? O_CLOEXEC : 0) < 0 || fstat(fd, &st) < 0) {
            if (s >= 0) {
                NEXT(close_fn, close);
                next_close(s);
            }
            e->broken = 1;
            errno = EIO;
            return -1;
        }
        NEXT(close_fn, close);
        next_close(s);
        e->pid = getpid();
        e->dev = st.st_dev;
        e->ino = st.st_ino;
        e->broken = 0;
    }
    if (e->broken) {
        errno = EIO;
        return -1;
    }
    return 1;
}

/* One bus transaction (Start ... Stop). Lock held. Returns 0, or an errno value. */
static int emu_transfer(int fd, struct i2c_msg *msgs, unsigned nmsgs)
{
    size_t wlen = 0, rlen = 0, size, off;
    unsigned char *req, head[8];
    unsigned i;
    uint32_t err, nread;
    if (nmsgs == 0 || nmsgs > EMU_MAX_MSGS) return EINVAL;
    for (i = 0; i < nmsgs; i++) {
        if (msgs[i].len > EMU_MAX_MSG_LEN) return EINVAL;
        if (msgs[i].addr > 0x7F) return EINVAL;
        if (msgs[i].flags & ~I2C_M_RD) return EOPNOTSUPP; /* no 10-bit, no protocol mangling */
        if (msgs[i].len > 0 && msgs[i].buf == NULL) return EFAULT;
        if (msgs[i].flags & I2C_M_RD)
            rlen += msgs[i].len;
        else
            wlen += msgs[i].len;
    }
    size = 4 + 6 * (size_t)nmsgs + wlen;
    req = malloc(size);
    if (req == NULL) return ENOMEM;
    memset(req, 0, 4);
    req[0] = (unsigned char)nmsgs;
    off = 4;
    for (i = 0; i < nmsgs; i++) {
        req[off++] = msgs[i].addr & 0xFF;
        req[off++] = msgs[i].addr >> 8;
        req[off++] = msgs[i].flags & 0xFF;
        req[off++] = msgs[i].flags >> 8;
        req[off++] = msgs[i].len & 0xFF;
        req[off++] = msgs[i].len >> 8;
    }
    for (i = 0; i < nmsgs; i++) {
        if (!(msgs[i].flags & I2C_M_RD) && msgs[i].len > 0) {
            memcpy(req + off, msgs[i].buf, msgs[i].len);
            off += msgs[i].len;
        }
    }
    if (io_full(fd, req, size, 1) < 0 || io_full(fd, head, sizeof(head), 0) < 0) {
        free(req);
        table[fd].broken = 1;
        return EIO;
    }
    free(req);
    err = head[0] | head[1] << 8 | head[2] << 16 | (uint32_t)head[3] << 24;
    nread = head[4] | head[5] << 8 | head[6] << 16 | (uint32_t)head[7] << 24;
    if (err != 0) {
        if (nread != 0 || err > 4095) {
            table[fd].broken = 1;
            return EIO;
        }
        return (int)err;
    }
    if (nread != rlen) {
        table[fd].broken = 1;
        return EIO;
    }
    for (i = 0; i < nmsgs; i++) {
        if ((msgs[i].flags & I2C_M_RD) && msgs[i].len > 0 &&
            io_full(fd, msgs[i].buf, msgs[i].len, 0) < 0) {
            table[fd].broken = 1;
            return EIO;
        }
    }
    return 0;
}

/* read()/write() on an emulated descriptor: one message to the I2C_SLAVE address. */
static ssize_t emu_rw(int fd, void *buf, size_t count, int reading, int *passthrough)
{
    struct i2c_msg msg;
    int rc, ok;
    pthread_mutex_lock(&lock);
    ok = emu_check(fd);
    if (ok <= 0) {
        pthread_mutex_unlock(&lock);
        *passthrough = ok == 0;
        return -1;
    }
    if (count > EMU_MAX_MSG_LEN) count = EMU_MAX_MSG_LEN;
    msg.addr = (uint16_t)table[fd].addr;
    msg.flags = reading ? I2C_M_RD : 0;
    msg.len = (uint16_t)count;
    msg.buf = buf;
    rc = emu_transfer(fd, &msg, 1);
    pthread_mutex_unlock(&lock);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return (ssize_t)count;
}

static int emu_ioctl(int fd, unsigned long request, void *arg, int *passthrough)
{
    int ok, rc = 0, result = 0;
    pthread_mutex_lock(&lock);
    ok = emu_check(fd);
    if (ok <= 0) {
        pthread_mutex_unlock(&lock);
        *passthrough = ok == 0;
        return -1;
    }
    switch (request) {
    case I2C_SLAVE:
    case I2C_SLAVE_FORCE:
        if ((unsigned long)arg > 0x7F)
            rc = EINVAL;
        else
            table[fd].addr = (unsigned)(unsigned long)arg;
        break;
    case I2C_TENBIT:
        if (arg != NULL) rc = EOPNOTSUPP;
        break;
    case I2C_FUNCS:
        if (arg == NULL)
            rc = EFAULT;
        else
            *(unsigned long *)arg = I2C_FUNC_I2C;
        break;
    case I2C_RDWR: {
        struct i2c_rdwr_ioctl_data *data = arg;
        if (data == NULL || data->msgs == NULL) {
            rc = data == NULL ? EFAULT : EINVAL;
            break;
        }
        rc = emu_transfer(fd, data->msgs, data->nmsgs);
        result = (int)data->nmsgs; /* i2c-dev returns the number of messages transferred */
        break;
    }
    case I2C_PEC:
    case I2C_RETRIES:
    case I2C_TIMEOUT:
        break; /* accepted and without effect on the emulated adapter */
    case I2C_SMBUS:
        rc = EOPNOTSUPP; /* I2C_FUNCS does not offer SMBus */
        break;
    default:
        rc = ENOTTY;
    }
    pthread_mutex_unlock(&lock);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return result;
}

/* After a successful dup*: the new descriptor shares the connection and the slave address. */
static void copy_entry(int from, int to)
{
    if (to < 0 || to >= EMU_MAX_FDS) return;
    pthread_mutex_lock(&lock);
    if (tracked(from) && to != from) {
        table[to] = table[from];
    } else if (to != from) {
        untrack(to);
    }
    pthread_mutex_unlock(&lock);
}

/* ------------------------------------------------------------------ interposed functions -- */

static mode_t mode_arg(int flags, va_list ap)
{
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) return (mode_t)va_arg(ap, int);
    return 0;
}

/* open/open64 and openat/openat64, with the mode argument only when the flags call for one. */
#define OPEN_WRAPPER(name)                                                                     \
    EXPORT int name(const char *path, int flags, ...)                                          \
    {                                                                                          \
        va_list ap;                                                                            \
        mode_t mode;                                                                           \
        va_start(ap, flags);                                                                   \
        mode = mode_arg(flags, ap);                                                            \
        va_end(ap);                                                                            \
        if (is_device(path)) return emu_open(flags);                                           \
        NEXT(open_fn, name);                                                                   \
        return next_##name(path, flags, mode);                                                 \
    }
#define OPENAT_WRAPPER(name)                                                                   \
    EXPORT int name(int dirfd, const char *path, int flags, ...)                               \
    {                                                                                          \
        va_list ap;                                                                            \
        mode_t mode;                                                                           \
        va_start(ap, flags);                                                                   \
        mode = mode_arg(flags, ap);                                                            \
        va_end(ap);                                                                            \
        if (is_device(path)) return emu_open(flags);                                           \
        NEXT(openat_fn, name);                                                                 \
        return next_##name(dirfd, path, flags, mode);                                          \
    }
/* _FORTIFY_SOURCE variants (no mode argument: the fortified caller never passes O_CREAT). */
#define OPEN2_WRAPPER(name)                                                                    \
    EXPORT int name(const char *path, int flags)                                               \
    {                                                                                          \
        if (is_device(path)) return emu_open(flags);                                           \
        NEXT(open2_fn, name);                                                                  \
        return next_##name(path, flags);                                                       \
    }
#define OPENAT2_WRAPPER(name)                                                                  \
    EXPORT int name(int dirfd, const char *path, int flags)                                    \
    {                                                                                          \
        if (is_device(path)) return emu_open(flags);                                           \
        NEXT(openat2_fn, name);                                                                \
        return next_##name(dirfd, path, flags);                                                \
    }

OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)
OPENAT_WRAPPER(openat)
OPENAT_WRAPPER(openat64)
OPEN2_WRAPPER(__open_2)
OPEN2_WRAPPER(__open64_2)
OPENAT2_WRAPPER(__openat_2)
OPENAT2_WRAPPER(__openat64_2)

EXPORT int ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    void *arg;
    va_start(ap, request);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (tracked(fd)) {
        int passthrough = 0;
        int rc = emu_ioctl(fd, request, arg, &passthrough);
        if (!passthrough) return rc;
    }
    NEXT(ioctl_fn, ioctl);
    return next_ioctl(fd, request, arg);
}

EXPORT ssize_t read(int fd, void *buf, size_t count)
{
    if (tracked(fd)) {
        int passthrough = 0;
        ssize_t n = emu_rw(fd, buf, count, 1, &passthrough);
        if (!passthrough) return n;
    }
    NEXT(read_fn, read);
    return next_read(fd, buf, count);
}

EXPORT ssize_t __read_chk(int fd, void *buf, size_t count, size_t buflen)
{
    if (count > buflen) abort(); /* what glibc's own check does (via __chk_fail) */
    return read(fd, buf, count);
}

EXPORT ssize_t write(int fd, const void *buf, size_t count)
{
    if (tracked(fd)) {
        int passthrough = 0;
        ssize_t n = emu_rw(fd, (void *)buf, count, 0, &passthrough);
        if (!passthrough) return n;
    }
    NEXT(write_fn, write);
    return next_write(fd, buf, count);
}

EXPORT int close(int fd)
{
    NEXT(close_fn, close);
    if (tracked(fd)) {
        int rc;
        pthread_mutex_lock(&lock); /* never under a transfer running on this descriptor */
        untrack(fd);
        rc = next_close(fd);
        pthread_mutex_unlock(&lock);
        return rc;
    }
    return next_close(fd);
}

EXPORT int dup(int fd)
{
    NEXT(dup_fn, dup);
    int r = next_dup(fd);
    if (r >= 0 && enabled) copy_entry(fd, r);
    return r;
}

EXPORT int dup2(int fd, int fd2)
{
    NEXT(dup2_fn, dup2);
    int r = next_dup2(fd, fd2);
    if (r >= 0 && enabled) copy_entry(fd, r);
    return r;
}

EXPORT int dup3(int fd, int fd2, int flags)
{
    NEXT(dup3_fn, dup3);
    int r = next_dup3(fd, fd2, flags);
    if (r >= 0 && enabled) copy_entry(fd, r);
    return r;
}
