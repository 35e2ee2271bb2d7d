#include "gz_reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fileio.h"

#define GZ_BUFFER_BYTES (1u << 18)
#define GZ_READ_MAX (1u << 30) /* gzread takes an unsigned count */

moda_status gz_reader_open(gz_reader *r, const char *path, char *err, size_t errlen) {
    r->path = path;
    errno = 0;
    r->f = gzopen(path, "rb");
    if (!r->f)
        return fileio_fail(err, errlen, MODA_ERR_IO, "%s: cannot open: %s", path,
                           errno ? strerror(errno) : "out of memory");
    gzbuffer(r->f, GZ_BUFFER_BYTES);
    return MODA_OK;
}

void gz_reader_close(gz_reader *r) {
    if (r->f) gzclose(r->f);
    r->f = NULL;
}

moda_status gz_reader_read(gz_reader *r, void *buf, size_t n, size_t *got, char *err, size_t errlen) {
    unsigned char *p = buf;
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < GZ_READ_MAX ? n - *got : GZ_READ_MAX;
        int k = gzread(r->f, p + *got, (unsigned)want);
        if (k < 0) {
            int code;
            const char *msg = gzerror(r->f, &code);
            return fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: corrupt gzip data: %s", r->path,
                               msg ? msg : "unknown error");
        }
        if (k == 0) break;
        *got += (size_t)k;
    }
    return MODA_OK;
}

moda_status gz_read_whole(const char *path, size_t initial_cap, unsigned char **out, size_t *len, char *err,
                          size_t errlen) {
    *out = NULL;
    *len = 0;
    gz_reader r;
    MODA_TRY(gz_reader_open(&r, path, err, errlen));
    size_t cap = initial_cap ? initial_cap : 1, n = 0;
    unsigned char *buf = malloc(cap);
    moda_status st = MODA_OK;
    for (;;) {
        if (!buf) {
            st = fileio_fail(err, errlen, MODA_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        size_t got = 0;
        if ((st = gz_reader_read(&r, buf + n, cap - n, &got, err, errlen)) != MODA_OK) break;
        n += got;
        if (n < cap) break; /* the end of the file */
        unsigned char *grown = realloc(buf, cap * 2);
        if (!grown) free(buf);
        buf = grown;
        cap *= 2;
    }
    gz_reader_close(&r);
    if (st != MODA_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *len = n;
    return MODA_OK;
}
