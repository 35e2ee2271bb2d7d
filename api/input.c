/* Decoding samples from JSON or binary bodies, then padding and
 * normalising them into what the network consumes. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

#define INPUT_DEPTH_MAX 4          /* [N][C][H][W] */
#define INPUT_VALUES_MAX (1L << 31) /* per request: far beyond any body limit */

void api_input_free(api_input *in) {
    if (!in) return;
    free(in->data);
    memset(in, 0, sizeof(*in));
}

bool api_dtype_parse(const char *s, api_dtype *dt) {
    if (s && !strcmp(s, "float32")) *dt = API_DTYPE_FLOAT32;
    else if (s && !strcmp(s, "uint8")) *dt = API_DTYPE_UINT8;
    else return false;
    return true;
}

static size_t dtype_size(api_dtype dt) { return dt == API_DTYPE_UINT8 ? 1 : sizeof(float); }

/* One dimension: [1-9][0-9]{0,8}, as openapi.yaml's pattern says. */
static const char *shape_dim(const char *p, int *v) {
    if (*p < '1' || *p > '9') return NULL;
    long d = 0;
    int digits = 0;
    while (isdigit((unsigned char)*p) && digits < 9) d = d * 10 + (*p++ - '0'), digits++;
    if (isdigit((unsigned char)*p)) return NULL;
    *v = (int)d;
    return p;
}

int api_shape_parse(const char *text, int shape[4], api_error *e) {
    int dims[4], n = 0;
    const char *p = text ? text : "";
    while ((p = shape_dim(p, &dims[n])) != NULL && ++n < 4 && *p == ',') p++;
    if (!p || *p || (n != 3 && n != 4))
        return api_error_set(e, "invalid_shape", "shape \"%.40s\" must be N,C,H,W (or C,H,W) of positive integers",
                             text ? text : "");
    shape[0] = 1;
    memcpy(shape + 4 - n, dims, (size_t)n * sizeof(int));
    return 0;
}

/* Values the shape holds, or -1 when beyond INPUT_VALUES_MAX. */
static long shape_count(const int shape[4]) {
    long count = 1;
    for (int i = 0; i < 4; i++) {
        if (shape[i] < 1) return -1;
        if (count > INPUT_VALUES_MAX / shape[i]) return -1;
        count *= shape[i];
    }
    return count;
}

static int check_shape(const int shape[4], int max_batch, long *count, api_error *e) {
    if (shape[0] > max_batch)
        return api_error_set(e, "batch_too_large", "%d samples exceed the limit of %d per request", shape[0],
                             max_batch);
    if ((*count = shape_count(shape)) < 0)
        return api_error_set(e, "invalid_shape", "shape [%d,%d,%d,%d] is empty or too large", shape[0], shape[1],
                             shape[2], shape[3]);
    return 0;
}

static int input_alloc(api_input *out, const int shape[4], api_dtype dt, long count, api_error *e) {
    memset(out, 0, sizeof(*out));
    out->dtype = dt;
    out->n = shape[0];
    out->c = shape[1];
    out->h = shape[2];
    out->w = shape[3];
    if (!(out->data = malloc((size_t)count * dtype_size(dt))))
        return api_error_set(e, "internal", "out of memory for %ld input values", count);
    return 0;
}

/* One number into slot i of out (checked only while out->data is NULL). */
static int store_double(double d, api_input *out, long i, api_error *e) {
    if (out->dtype == API_DTYPE_UINT8) {
        if (!(d >= 0 && d <= 255 && d == floor(d)))
            return api_error_set(e, "invalid_input", "uint8 input value %ld (%g) is not an integer in 0..255", i, d);
        if (out->data) ((uint8_t *)out->data)[i] = (uint8_t)d;
    } else {
        float f = (float)d;
        if (!isfinite(f))
            return api_error_set(e, "invalid_input", "input value %ld (%g) is not a finite float32", i, d);
        if (out->data) ((float *)out->data)[i] = f;
    }
    return 0;
}

/* One JSON number into slot i of out. */
static int store_value(const json_t *v, api_input *out, long i, api_error *e) {
    if (!json_is_number(v))
        return api_error_set(e, "invalid_type", "input values must be numbers (value %ld is %s)", i,
                             json_is_array(v) ? "an array" : "not a number");
    return store_double(json_number_value(v), out, i, e);
}

/* Nested array v at depth d of a tensor of shape[ndim]: every sub-array
 * must have exactly its dimension's length. */
static int store_nested(const json_t *v, int d, const int *shape, int ndim, api_input *out, long *pos,
                        api_error *e) {
    if (d == ndim) return store_value(v, out, (*pos)++, e);
    if (!json_is_array(v))
        return api_error_set(e, json_is_number(v) ? "invalid_shape" : "invalid_type",
                             "inputs are ragged: expected an array of %d at depth %d", shape[d], d);
    if ((int)json_array_size(v) != shape[d])
        return api_error_set(e, "invalid_shape", "inputs are ragged: an array at depth %d has %zu entries, not %d", d,
                             json_array_size(v), shape[d]);
    for (int i = 0; i < shape[d]; i++)
        if (store_nested(json_array_get(v, (size_t)i), d + 1, shape, ndim, out, pos, e)) return -1;
    return 0;
}

/* The shape a nested array claims, read along its first entries. */
static int nested_shape(const json_t *v, int *shape, int *ndim, api_error *e) {
    *ndim = 0;
    while (json_is_array(v)) {
        if (*ndim == INPUT_DEPTH_MAX)
            return api_error_set(e, "invalid_shape", "inputs are nested more than %d deep", INPUT_DEPTH_MAX);
        size_t len = json_array_size(v);
        if (len == 0) return api_error_set(e, "invalid_shape", "inputs contain an empty array");
        if (len > INT32_MAX) return api_error_set(e, "invalid_shape", "inputs are too large");
        shape[(*ndim)++] = (int)len;
        v = json_array_get(v, 0);
    }
    return 0;
}

int api_input_from_json(const json_t *values, const int *shape, api_dtype dt, int max_batch, api_input *out,
                        api_error *e) {
    return api_input_from_json_packed(values, NULL, shape, dt, max_batch, out, e);
}

int api_input_from_json_packed(const json_t *values, const json_fast_packed *packed, const int *shape,
                               api_dtype dt, int max_batch, api_input *out, api_error *e) {
    memset(out, 0, sizeof(*out));
    /* Packed arrays are rectangular and all numbers: only the checks on
     * their shape and values remain, in the tree's order. */
    const json_fast_packed *pk = packed && packed->node && packed->node == values ? packed : NULL;
    if (!pk && !json_is_array(values)) return api_error_set(e, "invalid_type", "inputs must be an array");
    int claimed[INPUT_DEPTH_MAX], ndim, full[4];
    if (pk) {
        ndim = pk->ndim;
        memcpy(claimed, pk->shape, sizeof claimed);
    } else if (nested_shape(values, claimed, &ndim, e)) {
        return -1;
    }
    if (shape) {
        memcpy(full, shape, sizeof full);
    } else if (ndim == 4 || ndim == 3) {
        full[0] = 1;
        memcpy(full + 4 - ndim, claimed, (size_t)ndim * sizeof(int));
    } else {
        return api_error_set(e, "invalid_shape",
                             "inputs must be nested [N][C][H][W] or [C][H][W], or flat with a \"shape\" (got %d "
                             "levels)",
                             ndim);
    }
    long count;
    if (check_shape(full, max_batch, &count, e)) return -1;
    const bool flat = shape && ndim == 1;
    const int depth = ndim == 3 && full[0] == 1 ? 3 : 4; /* nested: [C][H][W] stands for one sample */
    if (flat) {
        size_t have = pk ? pk->count : json_array_size(values);
        if ((long)have != count)
            return api_error_set(e, "invalid_shape", "%zu input values do not fill shape [%d,%d,%d,%d] (%ld values)",
                                 have, full[0], full[1], full[2], full[3], count);
    } else {
        if (ndim != depth)
            return api_error_set(e, "invalid_shape", "inputs nested %d deep do not match shape [%d,%d,%d,%d]", ndim,
                                 full[0], full[1], full[2], full[3]);
        if (pk) {
            /* The tree reports the first array whose length differs. */
            for (int d = 0; d < depth; d++)
                if (pk->shape[d] != full[4 - depth + d])
                    return api_error_set(e, "invalid_shape",
                                         "inputs are ragged: an array at depth %d has %d entries, not %d", d,
                                         pk->shape[d], full[4 - depth + d]);
        } else {
            /* Check the whole structure first: the shape read from first
             * entries alone could claim far more values than the body holds. */
            api_input probe = {.dtype = dt};
            long pos = 0;
            if (store_nested(values, 0, full + 4 - depth, depth, &probe, &pos, e)) return -1;
        }
    }
    if (input_alloc(out, full, dt, count, e)) return -1;
    int rc = 0;
    if (pk) {
        for (long i = 0; i < count && !rc; i++) rc = store_double(pk->values[i], out, i, e);
    } else if (flat) {
        for (long i = 0; i < count && !rc; i++) rc = store_value(json_array_get(values, (size_t)i), out, i, e);
    } else {
        long pos = 0;
        rc = store_nested(values, 0, full + 4 - depth, depth, out, &pos, e);
    }
    if (rc) api_input_free(out);
    return rc;
}

int api_input_from_binary(const void *bytes, size_t len, const int shape[4], api_dtype dt, int max_batch,
                          api_input *out, api_error *e) {
    memset(out, 0, sizeof(*out));
    long count;
    if (check_shape(shape, max_batch, &count, e)) return -1;
    size_t want = (size_t)count * dtype_size(dt);
    if (len != want)
        return api_error_set(e, "invalid_shape", "body has %zu bytes; shape [%d,%d,%d,%d] of %s needs %zu", len,
                             shape[0], shape[1], shape[2], shape[3], dt == API_DTYPE_UINT8 ? "uint8" : "float32",
                             want);
    if (input_alloc(out, shape, dt, count, e)) return -1;
    if (want) memcpy(out->data, bytes, want); /* little-endian host assumed, as the engine does */
    return 0;
}

int api_input_prepare(const api_entry_info *mi, const api_input *in, float **x, api_error *e) {
    *x = NULL;
    const int C = mi->channels, H = mi->height, W = mi->width, pad = mi->pad;
    if (in->c != C)
        return api_error_set(e, "invalid_shape", "%s takes %d channel%s, not %d", mi->id, C, C == 1 ? "" : "s", in->c);
    int off;
    if (in->h == H && in->w == W) off = 0;
    else if (pad > 0 && in->h == H - 2 * pad && in->w == W - 2 * pad) off = pad;
    else if (pad > 0)
        return api_error_set(e, "invalid_shape", "%s takes %dx%d images (or %dx%d before padding), not %dx%d", mi->id,
                             H, W, H - 2 * pad, W - 2 * pad, in->h, in->w);
    else
        return api_error_set(e, "invalid_shape", "%s takes %dx%d images, not %dx%d", mi->id, H, W, in->h, in->w);
    const size_t plane = (size_t)H * W, src_plane = (size_t)in->h * in->w;
    float *out = malloc((size_t)in->n * C * plane * sizeof(float));
    if (!out) return api_error_set(e, "internal", "out of memory");
    for (int i = 0; i < in->n; i++)
        for (int c = 0; c < C; c++) {
            /* As training normalised: (px/255 - mean) * (1/std); border = raw black. */
            const float m = mi->mean[c], inv = 1.0f / mi->std[c], border = -mi->mean[c] / mi->std[c];
            float *dst = out + ((size_t)i * C + c) * plane;
            size_t src0 = ((size_t)i * C + c) * src_plane;
            if (off)
                for (size_t j = 0; j < plane; j++) dst[j] = border;
            for (int y = 0; y < in->h; y++)
                for (int xx = 0; xx < in->w; xx++) {
                    size_t s = src0 + (size_t)y * in->w + xx;
                    float v = in->dtype == API_DTYPE_UINT8 ? ((float)((const uint8_t *)in->data)[s] / 255.0f - m) * inv
                                                           : ((const float *)in->data)[s];
                    if (!(fabsf(v) <= API_INPUT_MAX)) {
                        free(out);
                        return api_error_set(e, "invalid_input",
                                             "sample %d, channel %d, pixel (%d,%d) is %g: input values must be "
                                             "within +-1e6 (images normalised as the model was trained)",
                                             i, c, y, xx, (double)v);
                    }
                    dst[(size_t)(y + off) * W + xx + off] = v;
                }
        }
    *x = out;
    return 0;
}
