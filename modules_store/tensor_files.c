/* The registry's two tensor files, safetensors inside zstd:
 * weights.safetensors.zst holds every graph parameter and BN buffer under
 * its PyTorch-style name; rates.safetensors.zst holds "rates.<l>" (K, N_l)
 * for each tracked layer l and "class_count" (K), with metadata
 * "num_classes" and "layers" (a JSON array of the layers' graph node
 * indices). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "zstd_io.h"
#include "registry_internal.h"

/* Class counts are stored as F32, exact up to 2^24. */
#define RATES_MAX_COUNT (1 << 24)

moda_status registry_weights_serialize(const graph *g, uint8_t **out, size_t *len, char *err, size_t errlen) {
    safetensors_entry *e = calloc((size_t)g->n_params + 1, sizeof(*e));
    if (!e) {
        fileio_errf(err, errlen, "out of memory");
        return MODA_ERR_NOMEM;
    }
    for (int i = 0; i < g->n_params; i++) {
        const graph_param *p = &g->params[i];
        for (size_t j = 0; j < graph_param_numel(p); j++)
            if (!isfinite(p->data[j])) {
                fileio_errf(err, errlen, "parameter \"%s\" has a non-finite value at %zu", p->name, j);
                free(e);
                return MODA_ERR_ARG;
            }
        e[i] = (safetensors_entry){.name = p->name, .ndim = p->ndim, .shape = p->shape, .data = p->data};
    }
    /* "pt" tells Hugging Face tools these are PyTorch tensors. */
    safetensors_kv meta = {"format", "pt"};
    moda_status s = safetensors_serialize(e, g->n_params, &meta, 1, out, len, err, errlen);
    free(e);
    return s;
}

moda_status registry_rates_check(const graph *g, const rates *r, char *err, size_t errlen) {
    rates want = {0};
    moda_status s = rates_alloc(&want, g, r->num_classes);
    if (s != MODA_OK) {
        fileio_errf(err, errlen, "cannot lay out rates for %d classes: %s", r->num_classes, moda_status_string(s));
        return s;
    }
    if (r->n_layers != want.n_layers) {
        fileio_errf(err, errlen, "rates have %d layers, the model tracks %d", r->n_layers, want.n_layers);
        s = MODA_ERR_SHAPE;
    }
    for (int l = 0; s == MODA_OK && l < r->n_layers; l++)
        if (r->node[l] != want.node[l] || r->units[l] != want.units[l] || !r->rate[l]) {
            fileio_errf(err, errlen,
                        "rates layer %d (node %d, %d units) does not match the model's (node %d, %d units)", l,
                        r->node[l], r->units[l], want.node[l], want.units[l]);
            s = MODA_ERR_SHAPE;
        }
    if (s == MODA_OK && !r->class_count) {
        fileio_errf(err, errlen, "rates have no class counts");
        s = MODA_ERR_ARG;
    }
    /* What the reader would reject is not written. */
    for (int k = 0; s == MODA_OK && k < r->num_classes; k++)
        if (r->class_count[k] < 0 || r->class_count[k] > RATES_MAX_COUNT) {
            fileio_errf(err, errlen, "class %d has a sample count of %d", k, r->class_count[k]);
            s = MODA_ERR_ARG;
        }
    for (int l = 0; s == MODA_OK && l < r->n_layers; l++)
        for (size_t j = 0; j < (size_t)r->num_classes * r->units[l]; j++)
            if (!(r->rate[l][j] >= 0.0f && r->rate[l][j] <= 1.0f)) {
                fileio_errf(err, errlen, "rates layer %d has a value outside [0, 1] at %zu", l, j);
                s = MODA_ERR_ARG;
                break;
            }
    rates_free(&want);
    return s;
}

static char *layers_json(const rates *r) {
    json_t *a = json_array();
    for (int l = 0; a && l < r->n_layers; l++) json_array_append_new(a, json_integer(r->node[l]));
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

moda_status registry_rates_serialize(const rates *r, uint8_t **out, size_t *len, char *err, size_t errlen) {
    int L = r->n_layers, K = r->num_classes;
    safetensors_entry *e = calloc((size_t)L + 1, sizeof(*e));
    int (*shapes)[2] = calloc((size_t)L + 1, sizeof(*shapes));
    char (*names)[32] = calloc((size_t)L + 1, sizeof(*names));
    float *counts = calloc((size_t)K, sizeof(float));
    char *layers = layers_json(r);
    moda_status s = MODA_OK;
    if (!e || !shapes || !names || !counts || !layers) {
        fileio_errf(err, errlen, "out of memory");
        s = MODA_ERR_NOMEM;
    }
    for (int l = 0; s == MODA_OK && l < L; l++) {
        snprintf(names[l], sizeof names[l], "rates.%d", l);
        shapes[l][0] = K;
        shapes[l][1] = r->units[l];
        e[l] = (safetensors_entry){.name = names[l], .ndim = 2, .shape = shapes[l], .data = r->rate[l]};
    }
    if (s == MODA_OK) {
        /* F32 keeps the file to one dtype; counts up to 2^24 are exact. */
        for (int k = 0; k < K; k++) counts[k] = (float)r->class_count[k];
        e[L] = (safetensors_entry){.name = "class_count", .ndim = 1, .shape = &r->num_classes, .data = counts};
        char k_text[16];
        snprintf(k_text, sizeof k_text, "%d", K);
        safetensors_kv meta[2] = {{"num_classes", k_text}, {"layers", layers}};
        s = safetensors_serialize(e, L + 1, meta, 2, out, len, err, errlen);
    }
    free(e);
    free(shapes);
    free(names);
    free(counts);
    free(layers);
    return s;
}

moda_status registry_open_tensor_file(const char *path, const registry_file_info *info, size_t max_out,
                                      safetensors_file **out, char *err, size_t errlen) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        const char *why = errno == ENOENT ? "missing (listed in the manifest)" : strerror(errno);
        fileio_errf(err, errlen, "%s: %s", path, why);
        return MODA_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        fileio_errf(err, errlen, "%s: not a regular file", path);
        return MODA_ERR_IO;
    }
    if ((uint64_t)st.st_size != info->bytes) {
        fileio_errf(err, errlen, "%s: %jd bytes but the manifest says %" PRIu64 " (truncated or replaced)", path,
                    (intmax_t)st.st_size, info->bytes);
        return MODA_ERR_FORMAT;
    }
    uint8_t *z = NULL;
    size_t zlen = 0;
    moda_status s = fileio_read_all(path, (size_t)info->bytes, &z, &zlen, err, errlen);
    if (s != MODA_OK) return s;
    uint8_t digest[SHA256_DIGEST_LEN];
    sha256(z, zlen, digest);
    if (!sha256_hex_matches(digest, info->sha256)) {
        char have[SHA256_HEX_LEN];
        sha256_to_hex(digest, have);
        fileio_errf(err, errlen, "%s: sha256 mismatch: the file has %s, the manifest says %s", path, have,
                    info->sha256);
        free(z);
        return MODA_ERR_FORMAT;
    }
    uint8_t *raw = NULL;
    size_t rawlen = 0;
    s = zstdio_decompress(z, zlen, max_out, path, &raw, &rawlen, err, errlen);
    free(z);
    if (s != MODA_OK) return s == MODA_ERR_NOMEM ? s : MODA_ERR_FORMAT;
    s = safetensors_parse_owned(raw, rawlen, path, out, err, errlen);
    return s == MODA_OK || s == MODA_ERR_NOMEM ? s : MODA_ERR_FORMAT;
}

/* The first tensor in f that `known` does not accept, or NULL. */
static const char *unexpected_tensor(const safetensors_file *f, bool (*known)(const char *, const void *),
                                     const void *ctx) {
    for (int i = 0; i < safetensors_count(f); i++) {
        const char *name = safetensors_at(f, i)->name;
        if (!known(name, ctx)) return name;
    }
    return NULL;
}

static bool is_param(const char *name, const void *ctx) { return graph_find_param(ctx, name) >= 0; }

/* Tensor errors from safetensors_read_f32 are all format problems of the
 * file here (a missing tensor is not an unknown model). */
static moda_status as_format(moda_status s) { return s == MODA_OK || s == MODA_ERR_NOMEM ? s : MODA_ERR_FORMAT; }

moda_status registry_weights_load(const safetensors_file *f, const char *path, graph *g, char *err, size_t errlen) {
    for (int i = 0; i < g->n_params; i++) {
        graph_param *p = &g->params[i];
        size_t n = graph_param_numel(p);
        moda_status s = safetensors_read_f32(f, p->name, p->ndim, p->shape, p->data, n, err, errlen);
        if (s != MODA_OK) return as_format(s);
        for (size_t j = 0; j < n; j++)
            if (!isfinite(p->data[j])) {
                fileio_errf(err, errlen, "%s: tensor \"%s\" has a non-finite value at %zu", path, p->name, j);
                return MODA_ERR_FORMAT;
            }
    }
    const char *extra = unexpected_tensor(f, is_param, g);
    if (extra) {
        fileio_errf(err, errlen, "%s: unexpected tensor \"%s\" (not a parameter of the model)", path, extra);
        return MODA_ERR_FORMAT;
    }
    moda_status s = graph_check_maps(g);
    if (s == MODA_ERR_FORMAT)
        fileio_errf(err, errlen, "%s: a residual add's channel map is not a selection of its input's channels", path);
    return s;
}

static bool is_rates_tensor(const char *name, const void *ctx) {
    const rates *r = ctx;
    if (!strcmp(name, "class_count")) return true;
    char buf[32];
    for (int l = 0; l < r->n_layers; l++) {
        snprintf(buf, sizeof buf, "rates.%d", l);
        if (!strcmp(name, buf)) return true;
    }
    return false;
}

/* The "layers" metadata must list exactly r's node indices. */
static bool layers_match(const char *text, const rates *r) {
    if (!text) return false;
    json_t *a = json_loads(text, 0, NULL);
    bool ok = json_is_array(a) && json_array_size(a) == (size_t)r->n_layers;
    for (int l = 0; ok && l < r->n_layers; l++) {
        json_t *v = json_array_get(a, (size_t)l);
        ok = json_is_integer(v) && json_integer_value(v) == r->node[l];
    }
    json_decref(a);
    return ok;
}

static moda_status rates_fill(const safetensors_file *f, const char *path, rates *r, char *err, size_t errlen) {
    int K = r->num_classes;
    char k_text[16];
    snprintf(k_text, sizeof k_text, "%d", K);
    const char *meta_k = safetensors_meta_get(f, "num_classes");
    if (!meta_k || strcmp(meta_k, k_text) != 0) {
        fileio_errf(err, errlen, "%s: metadata \"num_classes\" is %s%s%s, expected %d", path, meta_k ? "\"" : "",
                    meta_k ? meta_k : "missing", meta_k ? "\"" : "", K);
        return MODA_ERR_FORMAT;
    }
    if (!layers_match(safetensors_meta_get(f, "layers"), r)) {
        fileio_errf(err, errlen, "%s: metadata \"layers\" does not list the model's %d tracked layers", path,
                    r->n_layers);
        return MODA_ERR_FORMAT;
    }
    for (int l = 0; l < r->n_layers; l++) {
        char name[32];
        snprintf(name, sizeof name, "rates.%d", l);
        int shape[2] = {K, r->units[l]};
        size_t n = (size_t)K * r->units[l];
        moda_status s = safetensors_read_f32(f, name, 2, shape, r->rate[l], n, err, errlen);
        if (s != MODA_OK) return as_format(s);
        for (size_t j = 0; j < n; j++)
            if (!(r->rate[l][j] >= 0.0f && r->rate[l][j] <= 1.0f)) {
                fileio_errf(err, errlen, "%s: tensor \"%s\" has a value outside [0, 1] at %zu", path, name, j);
                return MODA_ERR_FORMAT;
            }
    }
    float *counts = malloc((size_t)K * sizeof(float));
    if (!counts) return MODA_ERR_NOMEM;
    moda_status s = as_format(safetensors_read_f32(f, "class_count", 1, &K, counts, (size_t)K, err, errlen));
    for (int k = 0; s == MODA_OK && k < K; k++) {
        if (!(counts[k] >= 0.0f && counts[k] <= (float)RATES_MAX_COUNT) || counts[k] != floorf(counts[k])) {
            fileio_errf(err, errlen, "%s: \"class_count\"[%d] is not a sample count", path, k);
            s = MODA_ERR_FORMAT;
        } else {
            r->class_count[k] = (int)counts[k];
        }
    }
    free(counts);
    if (s != MODA_OK) return s;
    const char *extra = unexpected_tensor(f, is_rates_tensor, r);
    if (extra) {
        fileio_errf(err, errlen, "%s: unexpected tensor \"%s\"", path, extra);
        return MODA_ERR_FORMAT;
    }
    return MODA_OK;
}

moda_status registry_rates_load(const safetensors_file *f, const char *path, const graph *g, int num_classes,
                                rates *r, char *err, size_t errlen) {
    moda_status s = rates_alloc(r, g, num_classes);
    if (s != MODA_OK) {
        fileio_errf(err, errlen, "%s: cannot allocate rates: %s", path, moda_status_string(s));
        rates_free(r);
        memset(r, 0, sizeof(*r));
        return s;
    }
    s = rates_fill(f, path, r, err, errlen);
    if (s != MODA_OK) {
        rates_free(r);
        memset(r, 0, sizeof(*r));
    }
    return s;
}

moda_status registry_calibration_serialize(int k, const float *w, const float *b, uint8_t **out, size_t *len,
                                           char *err, size_t errlen) {
    for (size_t j = 0; j < (size_t)k * k + (size_t)k; j++)
        if (!isfinite(j < (size_t)k * k ? w[j] : b[j - (size_t)k * k])) {
            fileio_errf(err, errlen, "the calibration layer has a non-finite value");
            return MODA_ERR_ARG;
        }
    const int ws[2] = {k, k}, bs[1] = {k};
    safetensors_entry e[2] = {{.name = "weight", .ndim = 2, .shape = ws, .data = w},
                              {.name = "bias", .ndim = 1, .shape = bs, .data = b}};
    safetensors_kv meta = {"format", "pt"};
    return safetensors_serialize(e, 2, &meta, 1, out, len, err, errlen);
}

static bool is_calibration_tensor(const char *name, const void *ctx) {
    (void)ctx;
    return !strcmp(name, "weight") || !strcmp(name, "bias");
}

moda_status registry_calibration_load(const char *path, const registry_file_info *info, int k, float **w, float **b,
                                      char *err, size_t errlen) {
    *w = *b = NULL;
    safetensors_file *f = NULL;
    const size_t bytes = ((size_t)k * k + (size_t)k) * sizeof(float) + 4096;
    MODA_TRY(registry_open_tensor_file(path, info, bytes, &f, err, errlen));
    const int ws[2] = {k, k}, bs[1] = {k};
    float *wv = malloc((size_t)k * k * sizeof(float)), *bv = malloc((size_t)k * sizeof(float));
    moda_status s = wv && bv ? MODA_OK : MODA_ERR_NOMEM;
    if (s == MODA_OK) s = as_format(safetensors_read_f32(f, "weight", 2, ws, wv, (size_t)k * k, err, errlen));
    if (s == MODA_OK) s = as_format(safetensors_read_f32(f, "bias", 1, bs, bv, (size_t)k, err, errlen));
    for (size_t j = 0; s == MODA_OK && j < (size_t)k * k + (size_t)k; j++)
        if (!isfinite(j < (size_t)k * k ? wv[j] : bv[j - (size_t)k * k]))
            s = fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: a non-finite value", path);
    const char *extra = s == MODA_OK ? unexpected_tensor(f, is_calibration_tensor, NULL) : NULL;
    if (extra) s = fileio_fail(err, errlen, MODA_ERR_FORMAT, "%s: unexpected tensor \"%s\"", path, extra);
    safetensors_free(f);
    if (s != MODA_OK) {
        free(wv);
        free(bv);
        return s;
    }
    *w = wv;
    *b = bv;
    return MODA_OK;
}
