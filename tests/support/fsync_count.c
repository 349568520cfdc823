/* LD_PRELOAD shim for the durability tests: every fsync or fdatasync of a
 * database file (the SQLite file or its WAL) appends its path to the file
 * named by $HERALD_FSYNC_LOG, then syncs as usual. Nothing else changes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static void note(int fd) {
    const char *log = getenv("HERALD_FSYNC_LOG");
    if (!log) return;
    char link[64], path[1024];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 2);
    if (n <= 0) return;
    path[n] = 0;
    if (strstr(path, ".db") == NULL) return;
    path[n] = '\n';
    int out = open(log, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (out < 0) return;
    ssize_t ignored = write(out, path, (size_t)n + 1);
    (void)ignored;
    close(out);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    note(fd);
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    note(fd);
    return real(fd);
}
