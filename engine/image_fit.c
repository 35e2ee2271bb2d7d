/* The fit rule of image.h: channels (luma or replication), then a cover
 * resize with an antialiased triangle filter and a centre crop. The
 * resize is separable and computes only the cropped window: horizontal
 * pass over every source row into doubles, vertical pass into bytes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

/* Taps of one output sample along an axis: src[first + j] * weight[j]. */
typedef struct taps {
    int first, count;
    double *weight; /* (count), summing to 1 */
} taps;

typedef struct axis {
    taps *t;        /* (out) */
    double *pool;   /* the weights of all taps */
    int out;
} axis;

static void axis_free(axis *a) {
    free(a->t);
    free(a->pool);
}

static double triangle(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Output samples offset .. offset + out - 1 of a resize from in to
 * scaled samples (scaled >= out), as PIL's BILINEAR: the centre of output
 * sample i lies at (i + 0.5) * in / scaled in source coordinates, and when
 * downscaling the triangle widens by in / scaled, so every source sample
 * contributes. */
static moda_status axis_init(axis *a, int in, int scaled, int offset, int out) {
    memset(a, 0, sizeof *a);
    const double scale = (double)in / scaled, fs = scale > 1.0 ? scale : 1.0, support = fs;
    const int max_taps = (int)ceil(support) * 2 + 1;
    a->t = calloc((size_t)out, sizeof *a->t);
    a->pool = malloc((size_t)out * max_taps * sizeof(double));
    if (!a->t || !a->pool) {
        axis_free(a);
        return MODA_ERR_NOMEM;
    }
    a->out = out;
    for (int i = 0; i < out; i++) {
        const double centre = (i + offset + 0.5) * scale;
        int lo = (int)floor(centre - support + 0.5), hi = (int)floor(centre + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        if (hi - lo > max_taps) hi = lo + max_taps;
        taps *t = &a->t[i];
        t->first = lo;
        t->weight = a->pool + (size_t)i * max_taps;
        double sum = 0.0;
        for (int j = lo; j < hi; j++) sum += t->weight[t->count++] = triangle((j + 0.5 - centre) / fs);
        if (sum <= 0.0) { /* cannot happen for in >= 1: the nearest sample always weighs */
            t->count = 1;
            t->weight[0] = sum = 1.0;
            t->first = lo < in ? lo : in - 1;
        }
        for (int j = 0; j < t->count; j++) t->weight[j] /= sum;
    }
    return MODA_OK;
}

static uint8_t to_byte(double v) {
    v = floor(v + 0.5);
    return (uint8_t)(v < 0.0 ? 0.0 : v > 255.0 ? 255.0 : v);
}

/* src (c, h, w) -> dst (c, th, tw): cover-resize and centre-crop. */
static moda_status resize_cover(const image *src, image *dst) {
    const int h = src->h, w = src->w, th = dst->h, tw = dst->w;
    const double s = fmax((double)th / h, (double)tw / w);
    int sh = (int)lround(h * s), sw = (int)lround(w * s);
    if (sh < th) sh = th;
    if (sw < tw) sw = tw;
    axis ax, ay;
    double *tmp = malloc((size_t)h * tw * sizeof(double));
    moda_status st = tmp ? axis_init(&ax, w, sw, (sw - tw) / 2, tw) : MODA_ERR_NOMEM;
    if (st == MODA_OK) {
        st = axis_init(&ay, h, sh, (sh - th) / 2, th);
        if (st != MODA_OK) axis_free(&ax);
    }
    if (st != MODA_OK) {
        free(tmp);
        return st;
    }
    for (int c = 0; c < src->c; c++) {
        const uint8_t *plane = src->pixels + (size_t)c * h * w;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < tw; x++) {
                const taps *t = &ax.t[x];
                const uint8_t *row = plane + (size_t)y * w + t->first;
                double v = 0.0;
                for (int j = 0; j < t->count; j++) v += row[j] * t->weight[j];
                tmp[(size_t)y * tw + x] = v;
            }
        uint8_t *out = dst->pixels + (size_t)c * th * tw;
        for (int y = 0; y < th; y++) {
            const taps *t = &ay.t[y];
            for (int x = 0; x < tw; x++) {
                double v = 0.0;
                for (int j = 0; j < t->count; j++) v += tmp[(size_t)(t->first + j) * tw + x] * t->weight[j];
                out[(size_t)y * tw + x] = to_byte(v);
            }
        }
    }
    axis_free(&ax);
    axis_free(&ay);
    free(tmp);
    return MODA_OK;
}

/* src's pixels with `channels` channels at src's size. */
static moda_status convert_channels(const image *src, int channels, image *dst) {
    MODA_TRY(image_alloc(dst, channels, src->h, src->w));
    const size_t plane = (size_t)src->h * src->w;
    const uint8_t *p = src->pixels;
    if (src->c == channels) {
        memcpy(dst->pixels, p, (size_t)channels * plane);
    } else if (channels == 3) { /* gray -> RGB */
        for (int c = 0; c < 3; c++) memcpy(dst->pixels + c * plane, p, plane);
    } else { /* RGB -> luma, BT.601 in integers */
        for (size_t i = 0; i < plane; i++)
            dst->pixels[i] = (uint8_t)((299u * p[i] + 587u * p[plane + i] + 114u * p[2 * plane + i] + 500u) / 1000u);
    }
    return MODA_OK;
}

moda_status image_fit(const image *src, int channels, int height, int width, image *dst) {
    if (!src || !src->pixels || !dst) return MODA_ERR_NULL;
    memset(dst, 0, sizeof *dst);
    if ((channels != 1 && channels != 3) || height < 1 || width < 1) return MODA_ERR_ARG;
    if ((src->c != 1 && src->c != 3) || src->h < 1 || src->w < 1) return MODA_ERR_ARG;
    image conv;
    MODA_TRY(convert_channels(src, channels, &conv));
    if (conv.h == height && conv.w == width) {
        *dst = conv;
        return MODA_OK;
    }
    moda_status st = image_alloc(dst, channels, height, width);
    if (st == MODA_OK) st = resize_cover(&conv, dst);
    if (st != MODA_OK) image_free(dst);
    image_free(&conv);
    return st;
}
