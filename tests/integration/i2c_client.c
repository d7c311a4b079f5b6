/*
 * A C program that uses /dev/i2c-N the way i2c-dev clients do, for the preload shim's tests.
 *
 * Usage: i2c_client DEVICE ADDR7      (run under `atecc emulator run`)
 *        i2c_client DEVICE --no-server (run with the shim preloaded but no emulator listening)
 * Prints "ok NAME" or "FAIL NAME: detail" per check; exits 1 if any check failed. It talks to the
 * chip with raw bytes (wake, Info revision) and checks errno values as i2c-dev reports them. No
 * Python runs in this process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/i2c-dev.h>
#include <linux/i2c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern int __open_2(const char *, int);

static int failures;

static void check(int ok, const char *name, const char *detail)
{
    if (ok) {
        printf("ok %s\n", name);
    } else {
        printf("FAIL %s: %s (errno %d %s)\n", name, detail, errno, strerror(errno));
        failures++;
    }
}

static const unsigned char INFO[] = {0x03, 0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5D};
static const unsigned char WAKE_REPLY[] = {0x04, 0x11, 0x33, 0x43};

/* Wake with plain write() to address 0, as cryptoauthlib's HAL does; returns the reply read. */
static int wake(int fd, unsigned addr, unsigned char reply[4])
{
    unsigned char one = 0x01;
    ioctl(fd, I2C_SLAVE, 0);
    errno = 0;
    if (write(fd, &one, 1) != -1 || errno != EREMOTEIO) return -2;
    usleep(1500);
    if (ioctl(fd, I2C_SLAVE, addr) < 0) return -3;
    return (int)read(fd, reply, 4);
}

/* Info revision with I2C_RDWR (one message per call, as smbus2 users do). */
static int info_rdwr(int fd, unsigned addr, unsigned char out[7])
{
    struct i2c_msg msg = {(unsigned short)addr, 0, sizeof(INFO), (unsigned char *)INFO};
    struct i2c_rdwr_ioctl_data data = {&msg, 1};
    int tries;
    if (ioctl(fd, I2C_RDWR, &data) != 1) return -1;
    for (tries = 0; tries < 100; tries++) {
        struct i2c_msg rd = {(unsigned short)addr, I2C_M_RD, 7, out};
        struct i2c_rdwr_ioctl_data rdata = {&rd, 1};
        if (ioctl(fd, I2C_RDWR, &rdata) == 1) return 0;
        if (errno != EREMOTEIO) return -1;
        usleep(1000);
    }
    return -1;
}

static void idle(int fd, unsigned addr)
{
    unsigned char word = 0x02;
    ioctl(fd, I2C_SLAVE, addr);
    (void)!write(fd, &word, 1);
}

int main(int argc, char **argv)
{
    const char *dev;
    unsigned addr;
    unsigned char reply[4], info[7], buf[8];
    unsigned long funcs = 0;
    int fd, fd2, n;
    if (argc != 3) {
        fprintf(stderr, "usage: i2c_client DEVICE ADDR7|--no-server\n");
        return 2;
    }
    dev = argv[1];
    if (strcmp(argv[2], "--no-server") == 0) {
        errno = 0;
        fd = open(dev, O_RDWR);
        check(fd == -1 && errno == ENODEV, "open_without_emulator_fails_with_enodev", "open");
        fd = open("/dev/null", O_RDONLY);
        check(fd >= 0 && read(fd, buf, 1) == 0, "other_paths_pass_through_without_emulator",
              "/dev/null");
        return failures ? 1 : 0;
    }
    addr = (unsigned)strtoul(argv[2], NULL, 0);

    fd = openat(AT_FDCWD, dev, O_RDWR | O_CLOEXEC);
    check(fd >= 0, "openat_opens_the_emulated_device", "openat");
    if (fd < 0) return 1;
    check((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, "o_cloexec_is_honoured", "FD_CLOEXEC");
    check(ioctl(fd, I2C_FUNCS, &funcs) == 0 && funcs == I2C_FUNC_I2C,
          "i2c_funcs_reports_plain_i2c", "I2C_FUNCS");

    n = wake(fd, addr, reply);
    check(n == 4 && memcmp(reply, WAKE_REPLY, 4) == 0, "write_to_address_0_wakes_and_nacks",
          "wake reply");
    check(info_rdwr(fd, addr, info) == 0 && info[0] == 7 && info[3] == 0x60,
          "i2c_rdwr_runs_a_command", "Info revision");

    errno = 0;
    ioctl(fd, I2C_SLAVE, addr ^ 0x01);
    check(read(fd, buf, 4) == -1 && errno == EREMOTEIO, "absent_address_nacks_with_eremoteio",
          "read from an empty address");
    errno = 0;
    check(ioctl(fd, I2C_SLAVE, 0x80) == -1 && errno == EINVAL, "slave_address_above_0x7f_einval",
          "I2C_SLAVE 0x80");
    errno = 0;
    check(ioctl(fd, 0x0799, 0) == -1 && errno == ENOTTY, "unknown_ioctl_is_enotty", "0x0799");
    {
        struct i2c_msg msgs[43];
        struct i2c_rdwr_ioctl_data data = {msgs, 43};
        memset(msgs, 0, sizeof(msgs));
        errno = 0;
        check(ioctl(fd, I2C_RDWR, &data) == -1 && errno == EINVAL,
              "more_than_42_messages_einval", "43 messages");
    }
    {
        static unsigned char big[8193];
        struct i2c_msg msg = {(unsigned short)addr, I2C_M_RD, sizeof(big), big};
        struct i2c_rdwr_ioctl_data data = {&msg, 1};
        errno = 0;
        check(ioctl(fd, I2C_RDWR, &data) == -1 && errno == EINVAL,
              "message_over_8192_bytes_einval", "8193-byte message");
    }

    /* A duplicate shares the connection and the slave address. */
    ioctl(fd, I2C_SLAVE, addr);
    fd2 = dup(fd);
    {
        unsigned char reset = 0x00;
        check(fd2 >= 0 && write(fd2, &reset, 1) == 1 && read(fd2, info, 7) == 7 &&
                  info[0] == 7 && info[3] == 0x60,
              "dup_descriptor_reaches_the_chip", "re-read of the Info reply on a dup");
    }
    close(fd2);

    /* A forked child gets its own connection on the inherited descriptor. */
    {
        pid_t pid = fork();
        if (pid == 0) {
            unsigned char reset = 0x00, again[7];
            ioctl(fd, I2C_SLAVE, addr);
            _exit(write(fd, &reset, 1) == 1 && read(fd, again, 7) == 7 && again[3] == 0x60
                      ? 0
                      : 1);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "forked_child_uses_inherited_fd",
              "child transfer");
        ioctl(fd, I2C_SLAVE, addr);
        check(read(fd, info, 7) == 7, "parent_connection_survives_the_child", "parent read");
    }

    idle(fd, addr);
    check(close(fd) == 0, "close_releases_the_descriptor", "close");
    errno = 0;
    check(read(fd, buf, 1) == -1 && errno == EBADF, "closed_descriptor_is_not_emulated", "EBADF");

    fd = __open_2(dev, O_RDWR);
    check(fd >= 0, "fortified_open_opens_the_emulated_device", "__open_2");
    n = wake(fd, addr, reply);
    check(n == 4 && memcmp(reply, WAKE_REPLY, 4) == 0, "second_open_reaches_the_chip",
          "wake on a second open");
    idle(fd, addr);
    close(fd);

    fd = open("/dev/null", O_RDWR);
    check(fd >= 0 && write(fd, "x", 1) == 1 && read(fd, buf, 1) == 0,
          "other_paths_pass_through", "/dev/null");
    close(fd);
    return failures ? 1 : 0;
}
