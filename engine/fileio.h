/* Whole-file reads and crash-safe writes for checkpoints and the registry.
 *
 * Every function returns a moda_status and, on failure, writes a message
 * naming the path and the cause into a caller buffer `err` of `errlen`
 * bytes (either may be NULL/0 when the caller does not want the text). */
#ifndef MODA_FILEIO_H
#define MODA_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* A buffer size that fits every message these modules produce. */
#define FILEIO_ERR_LEN 512

/* Read all of `path` into a new buffer (caller frees with free()). The
 * buffer has one extra NUL byte past *len so text can be parsed in place.
 * Files larger than max_bytes fail with MODA_ERR_IO; missing or unreadable
 * files with MODA_ERR_IO; allocation failure with MODA_ERR_NOMEM. */
moda_status fileio_read_all(const char *path, size_t max_bytes, uint8_t **data, size_t *len, char *err,
                            size_t errlen);

/* Replace `path` with `len` bytes of `data` so that readers see either the
 * old file or the complete new one, even across a crash: write a temp file
 * "<path>.tmp.XXXXXX" in the same directory, fsync it, rename it over the
 * target, fsync the directory. On failure the temp file is removed and the
 * old file is left as it was. A new file gets mode 0644; a replaced file
 * keeps its mode. */
moda_status fileio_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);

/* Create `path` and any missing parents (mode 0755). An existing directory
 * is fine; an existing non-directory in the way is MODA_ERR_IO. */
moda_status fileio_mkdir_p(const char *path, char *err, size_t errlen);

/* snprintf into err when err is non-NULL and errlen > 0. */
void fileio_errf(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* fileio_errf, then return s: for "return fileio_fail(err, errlen, MODA_ERR_FORMAT, ...)". */
moda_status fileio_fail(char *err, size_t errlen, moda_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#endif
