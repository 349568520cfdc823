/* LD_PRELOAD shim for the fault tests: while the file named by
 * $HERALD_FAULT_FLAG exists, every write to a database file (the SQLite file,
 * its WAL or journal, not the shared-memory index) fails with ENOSPC, as on a
 * full disk. Nothing else changes. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int disk_full(int fd) {
    const char *flag = getenv("HERALD_FAULT_FLAG");
    if (!flag || access(flag, F_OK) != 0) return 0;
    char link[64], path[1024];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return strstr(path, ".db") != NULL && strstr(path, "-shm") == NULL
        && strstr(path, "jwt-secret") == NULL;
}

#define WRAP(name, ret, params, args)                                   \
    ret name params {                                                   \
        static ret (*real) params;                                      \
        if (!real) real = (ret (*) params) dlsym(RTLD_NEXT, #name);     \
        if (disk_full(fd)) { errno = ENOSPC; return -1; }               \
        return real args;                                               \
    }

WRAP(write, ssize_t, (int fd, const void *buf, size_t count), (fd, buf, count))
WRAP(pwrite, ssize_t, (int fd, const void *buf, size_t count, off_t offset), (fd, buf, count, offset))
WRAP(pwrite64, ssize_t, (int fd, const void *buf, size_t count, off_t offset), (fd, buf, count, offset))
