#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void fileio_errf(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

moda_status fileio_fail(char *err, size_t errlen, moda_status s, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return s;
}

moda_status fileio_read_all(const char *path, size_t max_bytes, uint8_t **data, size_t *len, char *err,
                            size_t errlen) {
    if (!path || !data || !len) {
        fileio_errf(err, errlen, "fileio_read_all: NULL argument");
        return MODA_ERR_NULL;
    }
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fileio_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return MODA_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fileio_errf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return MODA_ERR_IO;
    }
    if (S_ISDIR(st.st_mode)) {
        fileio_errf(err, errlen, "%s: is a directory", path);
        close(fd);
        return MODA_ERR_IO;
    }
    /* The size from fstat is only a hint (pipes report 0, files may grow),
     * so read to EOF and enforce the cap on what actually arrives. */
    size_t cap = 65536;
    if (S_ISREG(st.st_mode)) {
        if (st.st_size < 0 || (uintmax_t)st.st_size > (uintmax_t)max_bytes) {
            fileio_errf(err, errlen, "%s: file is %jd bytes, over the limit of %zu", path,
                        (intmax_t)st.st_size, max_bytes);
            close(fd);
            return MODA_ERR_IO;
        }
        cap = (size_t)st.st_size + 1; /* +1 sees EOF without a regrow */
    }
    if (cap > max_bytes + 1 && max_bytes < SIZE_MAX) cap = max_bytes + 1;
    uint8_t *buf = malloc(cap + 1);
    if (!buf) {
        fileio_errf(err, errlen, "%s: out of memory for %zu bytes", path, cap);
        close(fd);
        return MODA_ERR_NOMEM;
    }
    size_t n = 0;
    for (;;) {
        if (n == cap) {
            if (cap > max_bytes) break; /* read one byte past the cap: too big */
            size_t ncap = cap > SIZE_MAX / 2 - 1 ? SIZE_MAX - 1 : cap * 2;
            if (ncap > max_bytes + 1 && max_bytes < SIZE_MAX) ncap = max_bytes + 1;
            uint8_t *nb = realloc(buf, ncap + 1);
            if (!nb) {
                fileio_errf(err, errlen, "%s: out of memory for %zu bytes", path, ncap);
                free(buf);
                close(fd);
                return MODA_ERR_NOMEM;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            fileio_errf(err, errlen, "%s: read failed: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return MODA_ERR_IO;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (n > max_bytes) {
        fileio_errf(err, errlen, "%s: file is over the limit of %zu bytes", path, max_bytes);
        free(buf);
        return MODA_ERR_IO;
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return MODA_OK;
}

static int write_all(int fd, const uint8_t *p, size_t len) {
    while (len > 0) {
        size_t chunk = len > (size_t)1 << 30 ? (size_t)1 << 30 : len;
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Make the rename itself durable. Some filesystems cannot fsync a
 * directory (EINVAL); the rename is then as durable as they allow. */
static moda_status sync_parent_dir(const char *path, char *err, size_t errlen) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = strdup(".");
    } else {
        size_t dl = slash == path ? 1 : (size_t)(slash - path);
        dir = malloc(dl + 1);
        if (dir) {
            memcpy(dir, path, dl);
            dir[dl] = 0;
        }
    }
    if (!dir) {
        fileio_errf(err, errlen, "%s: out of memory", path);
        return MODA_ERR_NOMEM;
    }
    moda_status st = MODA_OK;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        fileio_errf(err, errlen, "%s: cannot open directory %s to sync it: %s", path, dir, strerror(errno));
        st = MODA_ERR_IO;
    } else {
        if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP) {
            fileio_errf(err, errlen, "%s: fsync of directory %s failed: %s", path, dir, strerror(errno));
            st = MODA_ERR_IO;
        }
        close(dfd);
    }
    free(dir);
    return st;
}

moda_status fileio_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen) {
    if (!path || (!data && len > 0)) {
        fileio_errf(err, errlen, "fileio_write_atomic: NULL argument");
        return MODA_ERR_NULL;
    }
    if (!path[0]) {
        fileio_errf(err, errlen, "fileio_write_atomic: empty path");
        return MODA_ERR_ARG;
    }
    static const char suffix[] = ".tmp.XXXXXX";
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof suffix);
    if (!tmp) {
        fileio_errf(err, errlen, "%s: out of memory", path);
        return MODA_ERR_NOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, suffix, sizeof suffix);

    int fd = mkstemp(tmp);
    if (fd < 0) {
        fileio_errf(err, errlen, "%s: cannot create temp file %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return MODA_ERR_IO;
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);

    /* mkstemp makes the file 0600; registry files must stay readable by
     * other users (e.g. a server account), and a replaced file keeps its
     * mode. */
    mode_t mode = 0644;
    struct stat old;
    if (stat(path, &old) == 0 && S_ISREG(old.st_mode)) mode = old.st_mode & 07777;

    const char *what = NULL;
    if (fchmod(fd, mode) != 0)
        what = "chmod";
    else if (write_all(fd, data, len) != 0)
        what = "write";
    else if (fsync(fd) != 0)
        what = "fsync";
    if (what) {
        int e = errno;
        close(fd);
        unlink(tmp);
        fileio_errf(err, errlen, "%s: %s of temp file %s failed: %s", path, what, tmp, strerror(e));
        free(tmp);
        return MODA_ERR_IO;
    }
    /* close can report a deferred write error (e.g. on NFS). */
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        fileio_errf(err, errlen, "%s: close of temp file %s failed: %s", path, tmp, strerror(e));
        free(tmp);
        return MODA_ERR_IO;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        fileio_errf(err, errlen, "%s: cannot rename temp file over it: %s", path, strerror(e));
        free(tmp);
        return MODA_ERR_IO;
    }
    free(tmp);
    return sync_parent_dir(path, err, errlen);
}

static moda_status mkdir_one(const char *full, const char *dir, char *err, size_t errlen) {
    if (mkdir(dir, 0755) == 0) return MODA_OK;
    int e = errno;
    struct stat st;
    /* EEXIST covers both a directory (fine) and a file in the way; other
     * errors (e.g. EACCES on "/") are also fine when the directory exists. */
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return MODA_OK;
        fileio_errf(err, errlen, "%s: cannot create directory: %s exists and is not a directory", full, dir);
        return MODA_ERR_IO;
    }
    fileio_errf(err, errlen, "%s: cannot create directory %s: %s", full, dir, strerror(e));
    return MODA_ERR_IO;
}

moda_status fileio_mkdir_p(const char *path, char *err, size_t errlen) {
    if (!path) {
        fileio_errf(err, errlen, "fileio_mkdir_p: NULL path");
        return MODA_ERR_NULL;
    }
    if (!path[0]) {
        fileio_errf(err, errlen, "fileio_mkdir_p: empty path");
        return MODA_ERR_ARG;
    }
    char *buf = strdup(path);
    if (!buf) {
        fileio_errf(err, errlen, "%s: out of memory", path);
        return MODA_ERR_NOMEM;
    }
    moda_status st = MODA_OK;
    /* Create each prefix ending before a '/', skipping the root and runs
     * of slashes, then the whole path. */
    for (char *p = buf + 1; *p && st == MODA_OK; p++) {
        if (*p != '/' || p[-1] == '/') continue;
        *p = 0;
        st = mkdir_one(path, buf, err, errlen);
        *p = '/';
    }
    if (st == MODA_OK) st = mkdir_one(path, buf, err, errlen);
    free(buf);
    return st;
}
