#include "safetensors.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fileio.h"

/* Tensor bytes are copied as-is, so the host must match the format. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors I/O assumes a little-endian host"
#endif

static const struct {
    const char *name;
    size_t size;
} DTYPES[SAFETENSORS_DTYPE_COUNT] = {
    [SAFETENSORS_F32] = {"F32", 4},         [SAFETENSORS_F64] = {"F64", 8},
    [SAFETENSORS_F16] = {"F16", 2},         [SAFETENSORS_BF16] = {"BF16", 2},
    [SAFETENSORS_F8_E4M3] = {"F8_E4M3", 1}, [SAFETENSORS_F8_E5M2] = {"F8_E5M2", 1},
    [SAFETENSORS_I64] = {"I64", 8},         [SAFETENSORS_I32] = {"I32", 4},
    [SAFETENSORS_I16] = {"I16", 2},         [SAFETENSORS_I8] = {"I8", 1},
    [SAFETENSORS_U64] = {"U64", 8},         [SAFETENSORS_U32] = {"U32", 4},
    [SAFETENSORS_U16] = {"U16", 2},         [SAFETENSORS_U8] = {"U8", 1},
    [SAFETENSORS_BOOL] = {"BOOL", 1},
};

static const char METADATA_KEY[] = "__metadata__";

const char *safetensors_dtype_name(safetensors_dtype d) {
    return (unsigned)d < SAFETENSORS_DTYPE_COUNT ? DTYPES[d].name : NULL;
}

size_t safetensors_dtype_size(safetensors_dtype d) {
    return (unsigned)d < SAFETENSORS_DTYPE_COUNT ? DTYPES[d].size : 0;
}

static int dtype_from_name(const char *s) {
    for (int i = 0; i < SAFETENSORS_DTYPE_COUNT; i++)
        if (strcmp(s, DTYPES[i].name) == 0) return i;
    return -1;
}

/* a*b without wrapping; false on overflow. */
static bool mul_ok(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

/* ---- Writing ---------------------------------------------------------- */

static moda_status check_entry(const safetensors_entry *e, int i, size_t *nbytes, char *err, size_t errlen) {
    if (!e->name || !e->name[0]) {
        fileio_errf(err, errlen, "safetensors: tensor %d has no name", i);
        return MODA_ERR_ARG;
    }
    if (strcmp(e->name, METADATA_KEY) == 0) {
        fileio_errf(err, errlen, "safetensors: tensor name \"%s\" is reserved", e->name);
        return MODA_ERR_ARG;
    }
    if ((unsigned)e->dtype >= SAFETENSORS_DTYPE_COUNT) {
        fileio_errf(err, errlen, "safetensors: tensor \"%s\": invalid dtype %d", e->name, (int)e->dtype);
        return MODA_ERR_ARG;
    }
    if (e->ndim < 0 || e->ndim > SAFETENSORS_MAX_DIMS || (e->ndim > 0 && !e->shape)) {
        fileio_errf(err, errlen, "safetensors: tensor \"%s\": invalid ndim %d or NULL shape", e->name, e->ndim);
        return MODA_ERR_ARG;
    }
    size_t n = DTYPES[e->dtype].size;
    for (int d = 0; d < e->ndim; d++) {
        if (e->shape[d] < 0) {
            fileio_errf(err, errlen, "safetensors: tensor \"%s\": negative dim %d", e->name, e->shape[d]);
            return MODA_ERR_ARG;
        }
        if (!mul_ok(n, (size_t)e->shape[d], &n)) {
            fileio_errf(err, errlen, "safetensors: tensor \"%s\": size overflows", e->name);
            return MODA_ERR_ARG;
        }
    }
    if (n > 0 && !e->data) {
        fileio_errf(err, errlen, "safetensors: tensor \"%s\": NULL data", e->name);
        return MODA_ERR_ARG;
    }
    *nbytes = n;
    return MODA_OK;
}

/* Build the header object; offsets[i] is tensor i's begin. */
static moda_status build_header(const safetensors_entry *t, int n, const size_t *offsets, const size_t *nbytes,
                                const safetensors_kv *meta, int n_meta, json_t **out, char *err, size_t errlen) {
    json_t *root = json_object();
    if (!root) goto nomem;
    if (n_meta > 0) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, METADATA_KEY, m) != 0) goto nomem;
        for (int i = 0; i < n_meta; i++) {
            if (!meta[i].key || !meta[i].value) {
                fileio_errf(err, errlen, "safetensors: metadata entry %d has a NULL key or value", i);
                json_decref(root);
                return MODA_ERR_ARG;
            }
            if (json_object_get(m, meta[i].key)) {
                fileio_errf(err, errlen, "safetensors: duplicate metadata key \"%s\"", meta[i].key);
                json_decref(root);
                return MODA_ERR_ARG;
            }
            json_t *v = json_string(meta[i].value);
            if (!v || json_object_set_new(m, meta[i].key, v) != 0) {
                fileio_errf(err, errlen, "safetensors: metadata \"%s\" is not valid UTF-8", meta[i].key);
                json_decref(root);
                return MODA_ERR_ARG;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (json_object_get(root, t[i].name)) {
            fileio_errf(err, errlen, "safetensors: duplicate tensor name \"%s\"", t[i].name);
            json_decref(root);
            return MODA_ERR_ARG;
        }
        json_t *o = json_object();
        json_t *shape = json_array();
        json_t *offs = json_array();
        if (!o || !shape || !offs) {
            json_decref(o);
            json_decref(shape);
            json_decref(offs);
            goto nomem;
        }
        int bad = json_object_set_new(o, "dtype", json_string(DTYPES[t[i].dtype].name));
        for (int d = 0; d < t[i].ndim; d++) bad |= json_array_append_new(shape, json_integer(t[i].shape[d]));
        bad |= json_array_append_new(offs, json_integer((json_int_t)offsets[i]));
        bad |= json_array_append_new(offs, json_integer((json_int_t)(offsets[i] + nbytes[i])));
        bad |= json_object_set_new(o, "shape", shape);
        bad |= json_object_set_new(o, "data_offsets", offs);
        if (bad) {
            json_decref(o);
            goto nomem;
        }
        if (json_object_set_new(root, t[i].name, o) != 0) {
            fileio_errf(err, errlen, "safetensors: tensor name \"%s\" is not valid UTF-8", t[i].name);
            json_decref(root);
            return MODA_ERR_ARG;
        }
    }
    *out = root;
    return MODA_OK;
nomem:
    json_decref(root);
    fileio_errf(err, errlen, "safetensors: out of memory building the header");
    return MODA_ERR_NOMEM;
}

moda_status safetensors_serialize(const safetensors_entry *tensors, int n_tensors, const safetensors_kv *meta,
                                  int n_meta, uint8_t **out, size_t *out_len, char *err, size_t errlen) {
    if (!out || !out_len || (n_tensors > 0 && !tensors) || (n_meta > 0 && !meta)) {
        fileio_errf(err, errlen, "safetensors_serialize: NULL argument");
        return MODA_ERR_NULL;
    }
    if (n_tensors < 0 || n_meta < 0) {
        fileio_errf(err, errlen, "safetensors_serialize: negative count");
        return MODA_ERR_ARG;
    }
    *out = NULL;
    *out_len = 0;
    size_t nt = (size_t)n_tensors;
    size_t *nbytes = calloc(nt + 1, sizeof *nbytes);
    size_t *offsets = calloc(nt + 1, sizeof *offsets);
    json_t *root = NULL;
    char *hdr = NULL;
    moda_status st = MODA_OK;
    if (!nbytes || !offsets) {
        fileio_errf(err, errlen, "safetensors: out of memory");
        st = MODA_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < n_tensors && st == MODA_OK; i++) st = check_entry(&tensors[i], i, &nbytes[i], err, errlen);
    if (st != MODA_OK) goto done;

    /* Pack larger element types first (stable within a size): with no
     * gaps between tensors, this keeps every tensor aligned to its
     * element size. */
    size_t data_len = 0;
    for (size_t esize = 8; esize >= 1; esize /= 2) {
        for (size_t i = 0; i < nt; i++) {
            if (DTYPES[tensors[i].dtype].size != esize) continue;
            offsets[i] = data_len;
            if (nbytes[i] > SIZE_MAX - data_len || data_len + nbytes[i] > (size_t)LLONG_MAX) {
                fileio_errf(err, errlen, "safetensors: total size overflows");
                st = MODA_ERR_ARG;
                goto done;
            }
            data_len += nbytes[i];
        }
    }
    st = build_header(tensors, n_tensors, offsets, nbytes, meta, n_meta, &root, err, errlen);
    if (st != MODA_OK) goto done;
    hdr = json_dumps(root, JSON_COMPACT);
    if (!hdr) {
        fileio_errf(err, errlen, "safetensors: out of memory writing the header");
        st = MODA_ERR_NOMEM;
        goto done;
    }
    size_t hl = strlen(hdr);
    size_t padded = (hl + 7) & ~(size_t)7;
    if (data_len > SIZE_MAX - 8 - padded) {
        fileio_errf(err, errlen, "safetensors: total size overflows");
        st = MODA_ERR_ARG;
        goto done;
    }
    size_t total = 8 + padded + data_len;
    uint8_t *buf = malloc(total);
    if (!buf) {
        fileio_errf(err, errlen, "safetensors: out of memory for %zu bytes", total);
        st = MODA_ERR_NOMEM;
        goto done;
    }
    for (int b = 0; b < 8; b++) buf[b] = (uint8_t)((uint64_t)padded >> (8 * b));
    memcpy(buf + 8, hdr, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    uint8_t *data = buf + 8 + padded;
    for (size_t i = 0; i < nt; i++)
        if (nbytes[i] > 0) memcpy(data + offsets[i], tensors[i].data, nbytes[i]);
    *out = buf;
    *out_len = total;
done:
    free(hdr);
    json_decref(root);
    free(nbytes);
    free(offsets);
    return st;
}

moda_status safetensors_write_file(const char *path, const safetensors_entry *tensors, int n_tensors,
                                   const safetensors_kv *meta, int n_meta, char *err, size_t errlen) {
    uint8_t *buf;
    size_t len;
    moda_status st = safetensors_serialize(tensors, n_tensors, meta, n_meta, &buf, &len, err, errlen);
    if (st != MODA_OK) return st;
    st = fileio_write_atomic(path, buf, len, err, errlen);
    free(buf);
    return st;
}

/* ---- Reading ---------------------------------------------------------- */

struct safetensors_file {
    json_t *root;                       /* keeps name and metadata strings alive */
    void *owned;                        /* the file image, when owned */
    char *source;                       /* for messages */
    safetensors_tensor *tensors;        /* (n), in offset order */
    const safetensors_tensor **by_name; /* (n), sorted by name */
    int n;
    const char **meta_keys; /* (n_meta) */
    const char **meta_vals; /* (n_meta) */
    int n_meta;
};

void safetensors_free(safetensors_file *f) {
    if (!f) return;
    json_decref(f->root);
    free(f->owned);
    free(f->source);
    free(f->tensors);
    free(f->by_name);
    free(f->meta_keys);
    free(f->meta_vals);
    free(f);
}

static int cmp_offset(const void *a, const void *b) {
    const safetensors_tensor *x = a, *y = b;
    const uint8_t *px = x->data, *py = y->data;
    if (px != py) return px < py ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

static int cmp_name(const void *a, const void *b) {
    const safetensors_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static moda_status parse_metadata(safetensors_file *f, json_t *m, char *err, size_t errlen) {
    if (!json_is_object(m)) {
        fileio_errf(err, errlen, "%s: \"__metadata__\" is not an object", f->source);
        return MODA_ERR_FORMAT;
    }
    size_t n = json_object_size(m);
    f->meta_keys = calloc(n + 1, sizeof *f->meta_keys);
    f->meta_vals = calloc(n + 1, sizeof *f->meta_vals);
    if (!f->meta_keys || !f->meta_vals) {
        fileio_errf(err, errlen, "%s: out of memory", f->source);
        return MODA_ERR_NOMEM;
    }
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v) {
        if (!json_is_string(v)) {
            fileio_errf(err, errlen, "%s: metadata \"%s\" is not a string", f->source, key);
            return MODA_ERR_FORMAT;
        }
        f->meta_keys[f->n_meta] = key;
        f->meta_vals[f->n_meta] = json_string_value(v);
        f->n_meta++;
    }
    return MODA_OK;
}

/* Validate one header entry and fill *t; data points into the data
 * section, which has data_len bytes. */
static moda_status parse_entry(const safetensors_file *f, const char *name, json_t *o, const uint8_t *data,
                               size_t data_len, safetensors_tensor *t, char *err, size_t errlen) {
    const char *src = f->source;
    if (!json_is_object(o)) {
        fileio_errf(err, errlen, "%s: tensor \"%s\": entry is not an object", src, name);
        return MODA_ERR_FORMAT;
    }
    json_t *jd = json_object_get(o, "dtype");
    json_t *js = json_object_get(o, "shape");
    json_t *jo = json_object_get(o, "data_offsets");
    if (!jd || !js || !jo) {
        fileio_errf(err, errlen, "%s: tensor \"%s\": missing \"%s\"", src, name,
                    !jd ? "dtype" : !js ? "shape" : "data_offsets");
        return MODA_ERR_FORMAT;
    }
    if (!json_is_string(jd)) {
        fileio_errf(err, errlen, "%s: tensor \"%s\": dtype is not a string", src, name);
        return MODA_ERR_FORMAT;
    }
    int dt = dtype_from_name(json_string_value(jd));
    if (dt < 0) {
        fileio_errf(err, errlen, "%s: tensor \"%s\": unknown dtype \"%s\"", src, name, json_string_value(jd));
        return MODA_ERR_FORMAT;
    }
    if (!json_is_array(js) || json_array_size(js) > SAFETENSORS_MAX_DIMS) {
        fileio_errf(err, errlen, "%s: tensor \"%s\": shape is not an array of at most %d dims", src, name,
                    SAFETENSORS_MAX_DIMS);
        return MODA_ERR_FORMAT;
    }
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = (safetensors_dtype)dt;
    t->ndim = (int)json_array_size(js);
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        json_t *v = json_array_get(js, (size_t)d);
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            fileio_errf(err, errlen, "%s: tensor \"%s\": shape[%d] is not a non-negative integer", src, name, d);
            return MODA_ERR_FORMAT;
        }
        t->shape[d] = (int64_t)json_integer_value(v);
        if ((uint64_t)t->shape[d] > SIZE_MAX || !mul_ok(numel, (size_t)t->shape[d], &numel)) {
            fileio_errf(err, errlen, "%s: tensor \"%s\": element count overflows", src, name);
            return MODA_ERR_FORMAT;
        }
    }
    size_t nbytes;
    if (!mul_ok(numel, DTYPES[dt].size, &nbytes)) {
        fileio_errf(err, errlen, "%s: tensor \"%s\": byte size overflows", src, name);
        return MODA_ERR_FORMAT;
    }
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
        !json_is_integer(json_array_get(jo, 1))) {
        fileio_errf(err, errlen, "%s: tensor \"%s\": data_offsets is not [begin, end]", src, name);
        return MODA_ERR_FORMAT;
    }
    json_int_t b = json_integer_value(json_array_get(jo, 0));
    json_int_t e = json_integer_value(json_array_get(jo, 1));
    if (b < 0 || e < b) {
        fileio_errf(err, errlen, "%s: tensor \"%s\": invalid data_offsets [%lld, %lld]", src, name, (long long)b,
                    (long long)e);
        return MODA_ERR_FORMAT;
    }
    if ((unsigned long long)e > data_len) {
        fileio_errf(err, errlen, "%s: tensor \"%s\": data_offsets [%lld, %lld] beyond the %zu-byte data section",
                    src, name, (long long)b, (long long)e, data_len);
        return MODA_ERR_FORMAT;
    }
    if ((size_t)(e - b) != nbytes) {
        fileio_errf(err, errlen, "%s: tensor \"%s\": data_offsets span %lld bytes but %s shape needs %zu", src,
                    name, (long long)(e - b), DTYPES[dt].name, nbytes);
        return MODA_ERR_FORMAT;
    }
    t->numel = numel;
    t->nbytes = nbytes;
    t->data = data + b;
    t->aligned = (uintptr_t)t->data % DTYPES[dt].size == 0;
    return MODA_OK;
}

static moda_status parse_into(safetensors_file *f, const uint8_t *buf, size_t len, char *err, size_t errlen) {
    const char *src = f->source;
    if (!buf && len > 0) {
        fileio_errf(err, errlen, "%s: NULL buffer", src);
        return MODA_ERR_NULL;
    }
    if (len < 8) {
        fileio_errf(err, errlen, "%s: truncated: %zu bytes, the header length alone needs 8", src, len);
        return MODA_ERR_FORMAT;
    }
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)buf[i] << (8 * i);
    if (hl > SAFETENSORS_MAX_HEADER) {
        fileio_errf(err, errlen, "%s: header length %llu is over the limit of %zu bytes", src,
                    (unsigned long long)hl, SAFETENSORS_MAX_HEADER);
        return MODA_ERR_FORMAT;
    }
    if (hl > len - 8) {
        fileio_errf(err, errlen, "%s: truncated: header length %llu but only %zu bytes follow", src,
                    (unsigned long long)hl, len - 8);
        return MODA_ERR_FORMAT;
    }
    json_error_t jerr;
    f->root = json_loadb((const char *)buf + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &jerr);
    if (!f->root) {
        fileio_errf(err, errlen, "%s: header is not valid JSON: %s (at byte %d)", src, jerr.text, jerr.position);
        return MODA_ERR_FORMAT;
    }
    if (!json_is_object(f->root)) {
        fileio_errf(err, errlen, "%s: header is not a JSON object", src);
        return MODA_ERR_FORMAT;
    }
    const uint8_t *data = buf + 8 + hl;
    size_t data_len = len - 8 - (size_t)hl;

    size_t cap = json_object_size(f->root);
    f->tensors = calloc(cap + 1, sizeof *f->tensors);
    f->by_name = calloc(cap + 1, sizeof *f->by_name);
    if (!f->tensors || !f->by_name) {
        fileio_errf(err, errlen, "%s: out of memory", src);
        return MODA_ERR_NOMEM;
    }
    const char *key;
    json_t *v;
    json_object_foreach(f->root, key, v) {
        moda_status st;
        if (strcmp(key, METADATA_KEY) == 0) {
            st = parse_metadata(f, v, err, errlen);
        } else {
            st = parse_entry(f, key, v, data, data_len, &f->tensors[f->n], err, errlen);
            if (st == MODA_OK) f->n++;
        }
        if (st != MODA_OK) return st;
    }

    /* Tensors must not share bytes: sorted by start, each must begin at or
     * after the previous one's end. */
    qsort(f->tensors, (size_t)f->n, sizeof *f->tensors, cmp_offset);
    for (int i = 1; i < f->n; i++) {
        const safetensors_tensor *a = &f->tensors[i - 1], *b = &f->tensors[i];
        if ((const uint8_t *)b->data < (const uint8_t *)a->data + a->nbytes) {
            fileio_errf(err, errlen, "%s: tensors \"%s\" and \"%s\" overlap", src, a->name, b->name);
            return MODA_ERR_FORMAT;
        }
    }
    for (int i = 0; i < f->n; i++) f->by_name[i] = &f->tensors[i];
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_name);
    return MODA_OK;
}

static moda_status parse_common(const void *buf, size_t len, void *owned, const char *source,
                                safetensors_file **out, char *err, size_t errlen) {
    if (!out) {
        free(owned);
        fileio_errf(err, errlen, "safetensors_parse: NULL argument");
        return MODA_ERR_NULL;
    }
    *out = NULL;
    safetensors_file *f = calloc(1, sizeof *f);
    if (f) f->source = strdup(source ? source : "safetensors data");
    if (!f || !f->source) {
        free(f);
        free(owned);
        fileio_errf(err, errlen, "safetensors: out of memory");
        return MODA_ERR_NOMEM;
    }
    f->owned = owned;
    moda_status st = parse_into(f, buf, len, err, errlen);
    if (st != MODA_OK) {
        safetensors_free(f);
        return st;
    }
    *out = f;
    return MODA_OK;
}

moda_status safetensors_parse(const void *buf, size_t len, const char *source, safetensors_file **out,
                              char *err, size_t errlen) {
    return parse_common(buf, len, NULL, source, out, err, errlen);
}

moda_status safetensors_parse_owned(void *buf, size_t len, const char *source, safetensors_file **out,
                                    char *err, size_t errlen) {
    return parse_common(buf, len, buf, source, out, err, errlen);
}

moda_status safetensors_open(const char *path, size_t max_bytes, safetensors_file **out, char *err,
                             size_t errlen) {
    if (out) *out = NULL;
    uint8_t *buf;
    size_t len;
    moda_status st = fileio_read_all(path, max_bytes, &buf, &len, err, errlen);
    if (st != MODA_OK) return st;
    return safetensors_parse_owned(buf, len, path, out, err, errlen);
}

int safetensors_count(const safetensors_file *f) { return f ? f->n : 0; }

const safetensors_tensor *safetensors_at(const safetensors_file *f, int i) {
    return f && i >= 0 && i < f->n ? &f->tensors[i] : NULL;
}

const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name) {
    if (!f || !name || f->n == 0) return NULL;
    safetensors_tensor key = {.name = name};
    const safetensors_tensor *kp = &key;
    const safetensors_tensor **hit = bsearch(&kp, f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_name);
    return hit ? *hit : NULL;
}

int safetensors_meta_count(const safetensors_file *f) { return f ? f->n_meta : 0; }

bool safetensors_meta_at(const safetensors_file *f, int i, const char **key, const char **value) {
    if (!f || i < 0 || i >= f->n_meta) return false;
    if (key) *key = f->meta_keys[i];
    if (value) *value = f->meta_vals[i];
    return true;
}

const char *safetensors_meta_get(const safetensors_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

moda_status safetensors_copy(const safetensors_tensor *t, void *dst, size_t dst_bytes) {
    if (!t || (!dst && dst_bytes > 0)) return MODA_ERR_NULL;
    if (dst_bytes != t->nbytes) return MODA_ERR_SHAPE;
    if (t->nbytes > 0) memcpy(dst, t->data, t->nbytes);
    return MODA_OK;
}

moda_status safetensors_read_f32(const safetensors_file *f, const char *name, int ndim, const int *shape,
                                 float *dst, size_t dst_numel, char *err, size_t errlen) {
    if (!f || !name || (!dst && dst_numel > 0)) {
        fileio_errf(err, errlen, "safetensors_read_f32: NULL argument");
        return MODA_ERR_NULL;
    }
    const safetensors_tensor *t = safetensors_find(f, name);
    if (!t) {
        fileio_errf(err, errlen, "%s: no tensor \"%s\"", f->source, name);
        return MODA_ERR_NOT_FOUND;
    }
    if (t->dtype != SAFETENSORS_F32) {
        fileio_errf(err, errlen, "%s: tensor \"%s\" is %s, expected F32", f->source, name, DTYPES[t->dtype].name);
        return MODA_ERR_FORMAT;
    }
    bool same = true;
    if (shape) {
        same = ndim == t->ndim;
        for (int d = 0; same && d < ndim; d++) same = shape[d] >= 0 && (int64_t)shape[d] == t->shape[d];
    }
    if (!same || t->numel != dst_numel) {
        char have[160] = "", want[160] = "";
        size_t hl = 0, wl = 0;
        for (int d = 0; d < t->ndim && hl < sizeof have; d++)
            hl += (size_t)snprintf(have + hl, sizeof have - hl, d ? ", %lld" : "%lld", (long long)t->shape[d]);
        if (shape)
            for (int d = 0; d < ndim && d < SAFETENSORS_MAX_DIMS && wl < sizeof want; d++)
                wl += (size_t)snprintf(want + wl, sizeof want - wl, d ? ", %d" : "%d", shape[d]);
        else
            snprintf(want, sizeof want, "%zu elements", dst_numel);
        fileio_errf(err, errlen, "%s: tensor \"%s\" has shape (%s), expected (%s)", f->source, name, have, want);
        return MODA_ERR_SHAPE;
    }
    if (t->nbytes > 0) memcpy(dst, t->data, t->nbytes);
    return MODA_OK;
}
