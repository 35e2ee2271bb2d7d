/* The safetensors format (as used by Hugging Face and PyTorch tools):
 *
 *   u64 little-endian N | N bytes of JSON header | data section
 *
 * The header maps tensor names to {"dtype", "shape", "data_offsets":
 * [begin, end]} with offsets relative to the data section, plus an optional
 * "__metadata__" object of string values. Data is raw little-endian.
 *
 * The writer pads the header with spaces to a multiple of 8 bytes and packs
 * tensors with no gaps, larger element types first, so every tensor is
 * aligned to its element size when the buffer is 8-byte aligned. The
 * reader validates the whole header before handing out any tensor and
 * never reads outside the buffer, whatever the input. */
#ifndef MODA_SAFETENSORS_H
#define MODA_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define SAFETENSORS_MAX_DIMS 8
/* Headers larger than this are rejected (the reference implementation's
 * limit), so a hostile length cannot make us parse gigabytes of JSON. */
#define SAFETENSORS_MAX_HEADER ((size_t)100000000)

/* Every dtype of the format, so any valid file can be parsed and its
 * offsets checked; only F32 (and I32/I64 for labels) are used by us. */
typedef enum safetensors_dtype {
    SAFETENSORS_F32 = 0, /* zero so a zero-initialised writer entry means F32 */
    SAFETENSORS_F64,
    SAFETENSORS_F16,
    SAFETENSORS_BF16,
    SAFETENSORS_F8_E4M3,
    SAFETENSORS_F8_E5M2,
    SAFETENSORS_I64,
    SAFETENSORS_I32,
    SAFETENSORS_I16,
    SAFETENSORS_I8,
    SAFETENSORS_U64,
    SAFETENSORS_U32,
    SAFETENSORS_U16,
    SAFETENSORS_U8,
    SAFETENSORS_BOOL,
    SAFETENSORS_DTYPE_COUNT
} safetensors_dtype;

const char *safetensors_dtype_name(safetensors_dtype d); /* "F32", ...; NULL if invalid */
size_t safetensors_dtype_size(safetensors_dtype d);       /* bytes per element; 0 if invalid */

/* ---- Writing ---------------------------------------------------------- */

typedef struct safetensors_entry {
    const char *name;        /* unique, non-empty, not "__metadata__" */
    safetensors_dtype dtype; /* SAFETENSORS_F32 when left zero */
    int ndim;                /* 0..SAFETENSORS_MAX_DIMS (0: a scalar) */
    const int *shape;        /* (ndim), each >= 0; may be NULL when ndim is 0 */
    const void *data;        /* numel * dtype size bytes, host (little-endian) order */
} safetensors_entry;

typedef struct safetensors_kv {
    const char *key;   /* unique */
    const char *value; /* UTF-8 */
} safetensors_kv;

/* Build a complete file image in a new buffer (caller frees with free()).
 * Tensors appear in the header in the order given. meta may be NULL when
 * n_meta is 0. Bad arguments give MODA_ERR_ARG with a message. */
moda_status safetensors_serialize(const safetensors_entry *tensors, int n_tensors, const safetensors_kv *meta,
                                  int n_meta, uint8_t **out, size_t *out_len, char *err, size_t errlen);

/* safetensors_serialize, then fileio_write_atomic to `path`. */
moda_status safetensors_write_file(const char *path, const safetensors_entry *tensors, int n_tensors,
                                   const safetensors_kv *meta, int n_meta, char *err, size_t errlen);

/* ---- Reading ---------------------------------------------------------- */

typedef struct safetensors_tensor {
    const char *name; /* owned by the file handle */
    safetensors_dtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    /* Into the parsed buffer. Reading it as the element type is only valid
     * when `aligned`; safetensors_copy() works either way. */
    const void *data;
    bool aligned;
} safetensors_tensor;

typedef struct safetensors_file safetensors_file; /* opaque */

/* Parse and validate a file image. `source` names it in error messages
 * (a path, or NULL for "safetensors data"). The buffer is borrowed and must
 * outlive the handle. Malformed input gives MODA_ERR_FORMAT. */
moda_status safetensors_parse(const void *buf, size_t len, const char *source, safetensors_file **out,
                              char *err, size_t errlen);
/* Same, but the handle takes `buf` (from malloc) and frees it in
 * safetensors_free(); on failure it is freed at once. */
moda_status safetensors_parse_owned(void *buf, size_t len, const char *source, safetensors_file **out,
                                    char *err, size_t errlen);
/* Read `path` (up to max_bytes) and parse it; the handle owns the bytes. */
moda_status safetensors_open(const char *path, size_t max_bytes, safetensors_file **out, char *err,
                             size_t errlen);
void safetensors_free(safetensors_file *f); /* accepts NULL */

/* Tensors in data-offset order. */
int safetensors_count(const safetensors_file *f);
const safetensors_tensor *safetensors_at(const safetensors_file *f, int i);
/* NULL when absent. */
const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name);

/* Metadata (in header order); value NULL when the key is absent. */
int safetensors_meta_count(const safetensors_file *f);
bool safetensors_meta_at(const safetensors_file *f, int i, const char **key, const char **value);
const char *safetensors_meta_get(const safetensors_file *f, const char *key);

/* Copy a tensor's bytes into dst (dst_bytes must equal t->nbytes). */
moda_status safetensors_copy(const safetensors_tensor *t, void *dst, size_t dst_bytes);

/* Look up `name`, require dtype F32 and, when `shape` is non-NULL, exactly
 * `ndim` dims equal to `shape`; copy numel floats to dst. Errors:
 * MODA_ERR_NOT_FOUND, MODA_ERR_FORMAT (dtype), MODA_ERR_SHAPE. */
moda_status safetensors_read_f32(const safetensors_file *f, const char *name, int ndim, const int *shape,
                                 float *dst, size_t dst_numel, char *err, size_t errlen);

#endif
