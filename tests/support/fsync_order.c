/* LD_PRELOAD shim for the durability test under concurrency: it records,
 * in order, each HTTP request read from a socket ("R <fd>"), each fsync or
 * fdatasync of a database file once it returned ("F"), and each HTTP answer
 * written to a socket ("S <fd> <status line>"), into $HERALD_ORDER_LOG. A
 * test then checks that between every request and its answer there was an
 * fsync: no answer leaves before its data is on disk. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static void record(const char *line, size_t n) {
    const char *log = getenv("HERALD_ORDER_LOG");
    if (!log) return;
    int out = (int)syscall(SYS_open, log, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (out < 0) return;
    ssize_t ignored = syscall(SYS_write, out, line, n);
    (void)ignored;
    syscall(SYS_close, out);
}

static int is_socket(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int is_database(int fd) {
    char link[64], path[1024];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return strstr(path, ".db") != NULL;
}

static void saw_read(int fd, const void *buf, ssize_t n) {
    if (n > 5 && memcmp(buf, "POST ", 5) == 0 && is_socket(fd)) {
        char line[64];
        int len = snprintf(line, sizeof line, "R %d\n", fd);
        record(line, (size_t)len);
    }
}

static void saw_write(int fd, const void *buf, size_t n) {
    if (n > 12 && memcmp(buf, "HTTP/1.1 ", 9) == 0 && is_socket(fd)) {
        char line[96];
        const char *end = memchr(buf, '\r', n < 40 ? n : 40);
        int status = end ? (int)(end - (const char *)buf) : 12;
        int len = snprintf(line, sizeof line, "S %d %.*s\n", fd, status, (const char *)buf);
        record(line, (size_t)len);
    }
}

ssize_t recv(int fd, void *buf, size_t len, int flags) {
    static ssize_t (*real)(int, void *, size_t, int);
    if (!real) real = dlsym(RTLD_NEXT, "recv");
    ssize_t n = real(fd, buf, len, flags);
    saw_read(fd, buf, n);
    return n;
}

ssize_t read(int fd, void *buf, size_t len) {
    static ssize_t (*real)(int, void *, size_t);
    if (!real) real = dlsym(RTLD_NEXT, "read");
    ssize_t n = real(fd, buf, len);
    saw_read(fd, buf, n);
    return n;
}

ssize_t send(int fd, const void *buf, size_t len, int flags) {
    static ssize_t (*real)(int, const void *, size_t, int);
    if (!real) real = dlsym(RTLD_NEXT, "send");
    saw_write(fd, buf, len);
    return real(fd, buf, len, flags);
}

ssize_t write(int fd, const void *buf, size_t len) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = dlsym(RTLD_NEXT, "write");
    saw_write(fd, buf, len);
    return real(fd, buf, len);
}

ssize_t writev(int fd, const struct iovec *iov, int count) {
    static ssize_t (*real)(int, const struct iovec *, int);
    if (!real) real = dlsym(RTLD_NEXT, "writev");
    if (count > 0) saw_write(fd, iov[0].iov_base, iov[0].iov_len);
    return real(fd, iov, count);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int r = real(fd);
    if (is_database(fd)) record("F\n", 2);
    return r;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int r = real(fd);
    if (is_database(fd)) record("F\n", 2);
    return r;
}
