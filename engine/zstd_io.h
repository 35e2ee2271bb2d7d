/* zstd compression of whole buffers and files (registry weights are
 * stored as safetensors inside a zstd frame, readable with `zstd -d`).
 * Frames carry a content checksum, so corruption is caught on read. */
#ifndef MODA_ZSTD_IO_H
#define MODA_ZSTD_IO_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define ZSTDIO_DEFAULT_LEVEL 3

/* Compress len bytes into a new buffer (caller frees with free()). level 0
 * means ZSTDIO_DEFAULT_LEVEL; otherwise it must lie within zstd's range
 * (negative levels are the fast modes). */
moda_status zstdio_compress(const void *src, size_t len, int level, uint8_t **out, size_t *out_len, char *err,
                            size_t errlen);

/* Decompress one or more concatenated frames into a new buffer (caller
 * frees; one extra NUL byte past *out_len). Output larger than max_out,
 * corrupt or truncated input, and trailing garbage give MODA_ERR_FORMAT
 * with a message; `source` names the data in it (NULL: "zstd data"). */
moda_status zstdio_decompress(const void *src, size_t len, size_t max_out, const char *source, uint8_t **out,
                              size_t *out_len, char *err, size_t errlen);

/* Compress and write atomically to `path`. */
moda_status zstdio_write_file(const char *path, const void *data, size_t len, int level, char *err,
                              size_t errlen);

/* Read `path` and decompress it (output up to max_out bytes; the file
 * itself may be at most slightly larger than that). */
moda_status zstdio_read_file(const char *path, size_t max_out, uint8_t **out, size_t *out_len, char *err,
                             size_t errlen);

#endif
