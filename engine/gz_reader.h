/* Reading dataset files that may be gzip-compressed. zlib's gz* functions
 * read gzip and, transparently, uncompressed files, so one path serves
 * both. Errors carry the file's name: "<path>: cannot open: ...",
 * "<path>: corrupt gzip data: ..." (MODA_ERR_FORMAT). */
#ifndef MODA_GZ_READER_H
#define MODA_GZ_READER_H

#include <stddef.h>

#include "status.h"

typedef struct gz_reader {
    void *f;          /* zlib's gzFile, owned */
    const char *path; /* not owned; for messages */
} gz_reader;

moda_status gz_reader_open(gz_reader *r, const char *path, char *err, size_t errlen);
void gz_reader_close(gz_reader *r); /* accepts a reader that failed to open */
/* Reads up to n bytes; *got says how many arrived before the end. */
moda_status gz_reader_read(gz_reader *r, void *buf, size_t n, size_t *got, char *err, size_t errlen);

/* The whole (decompressed) file in a malloc'd buffer, grown from
 * initial_cap bytes as needed. */
moda_status gz_read_whole(const char *path, size_t initial_cap, unsigned char **out, size_t *len, char *err,
                          size_t errlen);

#endif
