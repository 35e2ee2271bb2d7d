/* Dataset container, preprocessing, subsets, augmentation and the batch
 * iterator. The format readers live in dataset_idx.c and dataset_cifar.c. */
#include "dataset.h"
#include "fileio.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

#define ALIGN 64

/* Work below this many floats is not worth waking a second thread. */
#define PAR_MIN_FLOATS 32768
/* A batch copy is memory-bound and takes well under a millisecond for a
 * CIFAR batch of 128; a parallel region costs more than it saves there
 * (and much more when the cores are busy), so only very large batches
 * are split. */
#define PAR_MIN_BATCH_FLOATS (1u << 20)

/* Uninitialised; callers write every element. */
static float *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + ALIGN - 1) / ALIGN * ALIGN;
    return aligned_alloc(ALIGN, bytes ? bytes : ALIGN);
}

static void fill_floats(float *x, int n, float v) {
    for (int i = 0; i < n; i++) x[i] = v;
}

static size_t image_floats(const dataset *ds) { return (size_t)ds->c * ds->h * ds->w; }

moda_status dataset_alloc(dataset *ds, int n, int c, int h, int w, int num_classes) {
    if (!ds) return MODA_ERR_NULL;
    memset(ds, 0, sizeof *ds);
    if (n <= 0 || c <= 0 || c > DATASET_MAX_CHANNELS || h <= 0 || w <= 0 || num_classes <= 0)
        return MODA_ERR_ARG;
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->num_classes = num_classes;
    for (int i = 0; i < DATASET_MAX_CHANNELS; i++) ds->std[i] = 1.0f;
    ds->images = alloc_floats((size_t)n * c * h * w);
    if (ds->images) memset(ds->images, 0, (size_t)n * c * h * w * sizeof(float));
    ds->labels = calloc((size_t)n, sizeof(int32_t));
    ds->class_names = calloc((size_t)num_classes, sizeof(char *));
    if (!ds->images || !ds->labels || !ds->class_names) goto nomem;
    for (int k = 0; k < num_classes; k++) {
        char buf[32];
        snprintf(buf, sizeof buf, "class_%d", k);
        if (!(ds->class_names[k] = strdup(buf))) goto nomem;
    }
    return MODA_OK;
nomem:
    dataset_free(ds);
    return MODA_ERR_NOMEM;
}

void dataset_free(dataset *ds) {
    if (!ds) return;
    free(ds->images);
    free(ds->labels);
    if (ds->class_names)
        for (int k = 0; k < ds->num_classes; k++) free(ds->class_names[k]);
    free(ds->class_names);
    memset(ds, 0, sizeof *ds);
}

moda_status dataset_set_class_name(dataset *ds, int k, const char *name) {
    if (!ds || !name) return MODA_ERR_NULL;
    if (k < 0 || k >= ds->num_classes) return MODA_ERR_ARG;
    char *copy = strdup(name);
    if (!copy) return MODA_ERR_NOMEM;
    free(ds->class_names[k]);
    ds->class_names[k] = copy;
    return MODA_OK;
}

moda_status dataset_copy(dataset *dst, const dataset *src) {
    if (!dst || !src || !src->images) return MODA_ERR_NULL;
    MODA_TRY(dataset_alloc(dst, src->n, src->c, src->h, src->w, src->num_classes));
    memcpy(dst->images, src->images, (size_t)src->n * image_floats(src) * sizeof(float));
    memcpy(dst->labels, src->labels, (size_t)src->n * sizeof(int32_t));
    for (int k = 0; k < src->num_classes; k++) {
        moda_status st = dataset_set_class_name(dst, k, src->class_names[k]);
        if (st != MODA_OK) {
            dataset_free(dst);
            return st;
        }
    }
    dst->pad = src->pad;
    dst->normalized = src->normalized;
    memcpy(dst->mean, src->mean, sizeof dst->mean);
    memcpy(dst->std, src->std, sizeof dst->std);
    memcpy(dst->source, src->source, sizeof dst->source);
    return MODA_OK;
}

void dataset_free_names(char **names, int count) {
    if (!names) return;
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
}

moda_status dataset_read_names(const char *path, char ***names, int *count, char *err, size_t errlen) {
    if (!path || !names || !count) return MODA_ERR_NULL;
    *names = NULL;
    *count = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        fileio_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return MODA_ERR_IO;
    }
    moda_status st = MODA_OK;
    char **list = NULL;
    int n = 0, cap = 0;
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f)) {
            fileio_errf(err, errlen, "%s: line %d is longer than %zu characters", path, lineno, sizeof line - 2);
            st = MODA_ERR_FORMAT;
            break;
        }
        while (len > 0 && isspace((unsigned char)line[len - 1])) line[--len] = '\0';
        char *s = line;
        while (*s && isspace((unsigned char)*s)) s++;
        if (!*s) continue;
        if (n == cap) {
            int ncap = cap ? cap * 2 : 16;
            char **grown = realloc(list, (size_t)ncap * sizeof *grown);
            if (!grown) {
                st = MODA_ERR_NOMEM;
                break;
            }
            list = grown;
            cap = ncap;
        }
        if (!(list[n] = strdup(s))) {
            st = MODA_ERR_NOMEM;
            break;
        }
        n++;
    }
    if (st == MODA_OK && ferror(f)) {
        fileio_errf(err, errlen, "%s: read error", path);
        st = MODA_ERR_IO;
    }
    fclose(f);
    if (st == MODA_OK && n == 0) {
        fileio_errf(err, errlen, "%s: no class names", path);
        st = MODA_ERR_FORMAT;
    }
    if (st == MODA_ERR_NOMEM) fileio_errf(err, errlen, "%s: out of memory", path);
    if (st != MODA_OK) {
        dataset_free_names(list, n);
        return st;
    }
    *names = list;
    *count = n;
    return MODA_OK;
}

moda_status dataset_apply_names_file(dataset *ds, const char *path, char *err, size_t errlen) {
    if (!ds || !path) return MODA_ERR_NULL;
    char **names = NULL;
    int count = 0;
    MODA_TRY(dataset_read_names(path, &names, &count, err, errlen));
    moda_status st = MODA_OK;
    if (count != ds->num_classes)
        st = fileio_fail(err, errlen, MODA_ERR_FORMAT,
                         "%s: %d class names, expected %d (one per class: the labels run from 0 to %d)", path, count,
                         ds->num_classes, ds->num_classes - 1);
    for (int k = 0; st == MODA_OK && k < count; k++) st = dataset_set_class_name(ds, k, names[k]);
    dataset_free_names(names, count);
    return st;
}

static const char *const fashion_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

/* The kind's own loader, with the kind's built-in names. */
static moda_status load_kind(dataset *ds, const char *kind, const char *dir, dataset_split split,
                             const dataset_load_options *opt, char *err, size_t errlen) {
    if (!strcmp(kind, "fashion-mnist")) {
        MODA_TRY(dataset_load_idx(ds, dir ? dir : DATASET_FASHION_MNIST_DIR, split, NULL, err, errlen));
        for (int k = 0; k < ds->num_classes && k < 10; k++) {
            moda_status st = dataset_set_class_name(ds, k, fashion_names[k]);
            if (st != MODA_OK) {
                dataset_free(ds);
                return st;
            }
        }
        return MODA_OK;
    }
    if (strcmp(kind, "idx") && strcmp(kind, "mnist") && strcmp(kind, "cifar10") && strcmp(kind, "cifar100") &&
        strcmp(kind, "folder"))
        return fileio_fail(err, errlen, MODA_ERR_NOT_FOUND,
                           "unknown dataset '%s' (expected fashion-mnist, mnist, idx, cifar10, cifar100, folder)", kind);
    /* Only Fashion-MNIST has a default place; any other kind read from one
     * would be another dataset. */
    if (!dir) return fileio_fail(err, errlen, MODA_ERR_ARG, "dataset %s: a data directory is required", kind);
    if (!strcmp(kind, "cifar10")) return dataset_load_cifar10(ds, dir, split, err, errlen);
    if (!strcmp(kind, "cifar100")) return dataset_load_cifar100(ds, dir, split, err, errlen);
    if (!strcmp(kind, "folder")) return dataset_load_folder(ds, dir, split, opt, err, errlen);
    return dataset_load_idx(ds, dir, split, NULL, err, errlen); /* idx, mnist: digit names */
}

moda_status dataset_load(dataset *ds, const char *kind, const char *dir, dataset_split split,
                         const dataset_load_options *opt, char *err, size_t errlen) {
    if (!ds || !kind) return MODA_ERR_NULL;
    memset(ds, 0, sizeof *ds);
    const char *names_path = opt ? opt->names_path : NULL;
    MODA_TRY(load_kind(ds, kind, dir, split, opt, err, errlen));
    moda_status st = names_path ? dataset_apply_names_file(ds, names_path, err, errlen) : MODA_OK;
    if (st != MODA_OK) dataset_free(ds);
    return st;
}

/* ---- Preprocessing ---------------------------------------------------- */

moda_status dataset_compute_stats(const dataset *ds, float *mean, float *std) {
    if (!ds || !ds->images || !mean || !std) return MODA_ERR_NULL;
    if (ds->normalized) return MODA_ERR_STATE;
    const int n = ds->n, c = ds->c, h = ds->h, w = ds->w, p = ds->pad;
    const size_t img = image_floats(ds);
    double *part = malloc((size_t)n * c * sizeof(double)); /* per image, per channel */
    if (!part) return MODA_ERR_NOMEM;
    const double area = (double)(h - 2 * p) * (w - 2 * p) * n;
    double mu[DATASET_MAX_CHANNELS] = {0};

    /* Two passes (mean, then squared deviations) for accuracy; each image's
     * partial sum is fixed, and the final sum runs in image order. */
    for (int pass = 0; pass < 2; pass++) {
#pragma omp parallel for schedule(static) if ((size_t)n * img >= PAR_MIN_FLOATS)
        for (int i = 0; i < n; i++) {
            for (int ch = 0; ch < c; ch++) {
                const float *x = ds->images + i * img + (size_t)ch * h * w;
                const double m = mu[ch];
                double s = 0.0;
                for (int y = p; y < h - p; y++) {
                    const float *row = x + (size_t)y * w;
                    if (pass == 0)
                        for (int xx = p; xx < w - p; xx++) s += row[xx];
                    else
                        for (int xx = p; xx < w - p; xx++) s += ((double)row[xx] - m) * ((double)row[xx] - m);
                }
                part[(size_t)i * c + ch] = s;
            }
        }
        for (int ch = 0; ch < c; ch++) {
            double s = 0.0;
            for (int i = 0; i < n; i++) s += part[(size_t)i * c + ch];
            if (pass == 0) {
                mu[ch] = s / area;
                mean[ch] = (float)mu[ch];
            } else {
                double sd = sqrt(s / area);
                std[ch] = sd < 1e-6 ? 1.0f : (float)sd;
            }
        }
    }
    free(part);
    return MODA_OK;
}

moda_status dataset_normalize(dataset *ds, const float *mean, const float *std) {
    if (!ds || !ds->images || !mean || !std) return MODA_ERR_NULL;
    if (ds->normalized) return MODA_ERR_STATE;
    for (int ch = 0; ch < ds->c; ch++)
        if (!(std[ch] > 0.0f) || !isfinite(mean[ch]) || !isfinite(std[ch])) return MODA_ERR_ARG;
    const int c = ds->c;
    const size_t plane = (size_t)ds->h * ds->w, img = image_floats(ds);
    float m[DATASET_MAX_CHANNELS], inv[DATASET_MAX_CHANNELS];
    for (int ch = 0; ch < c; ch++) {
        m[ch] = mean[ch];
        inv[ch] = 1.0f / std[ch];
    }
#pragma omp parallel for schedule(static) if ((size_t)ds->n * img >= PAR_MIN_FLOATS)
    for (int i = 0; i < ds->n; i++)
        for (int ch = 0; ch < c; ch++) {
            float *x = ds->images + i * img + ch * plane;
            for (size_t j = 0; j < plane; j++) x[j] = (x[j] - m[ch]) * inv[ch];
        }
    for (int ch = 0; ch < c; ch++) {
        ds->mean[ch] = mean[ch];
        ds->std[ch] = std[ch];
    }
    ds->normalized = 1;
    return MODA_OK;
}

moda_status dataset_normalize_pair(dataset *train, dataset *test) {
    if (!train) return MODA_ERR_NULL;
    float mean[DATASET_MAX_CHANNELS], std[DATASET_MAX_CHANNELS];
    MODA_TRY(dataset_compute_stats(train, mean, std));
    if (test && test->c != train->c) return MODA_ERR_SHAPE;
    MODA_TRY(dataset_normalize(train, mean, std));
    if (test) MODA_TRY(dataset_normalize(test, mean, std));
    return MODA_OK;
}

float dataset_fill_value(const dataset *ds, int c) {
    MODA_ASSERT(ds && c >= 0 && c < ds->c);
    return ds->normalized ? -ds->mean[c] / ds->std[c] : 0.0f;
}

moda_status dataset_pad(dataset *ds, int pad) {
    if (!ds || !ds->images) return MODA_ERR_NULL;
    if (pad < 0 || pad > 4096) return MODA_ERR_ARG;
    if (pad == 0) return MODA_OK;
    const int c = ds->c, h = ds->h, w = ds->w, ph = h + 2 * pad, pw = w + 2 * pad;
    const size_t img = image_floats(ds), pimg = (size_t)c * ph * pw;
    float *out = alloc_floats((size_t)ds->n * pimg);
    if (!out) return MODA_ERR_NOMEM;
    float fill[DATASET_MAX_CHANNELS];
    for (int ch = 0; ch < c; ch++) fill[ch] = dataset_fill_value(ds, ch);
#pragma omp parallel for schedule(static) if ((size_t)ds->n * pimg >= PAR_MIN_FLOATS)
    for (int i = 0; i < ds->n; i++)
        for (int ch = 0; ch < c; ch++) {
            const float *src = ds->images + i * img + (size_t)ch * h * w;
            float *dst = out + i * pimg + (size_t)ch * ph * pw;
            const float v = fill[ch];
            fill_floats(dst, pad * pw + pad, v);
            for (int y = 0; y < h; y++) {
                float *row = dst + (size_t)(y + pad) * pw + pad;
                memcpy(row, src + (size_t)y * w, (size_t)w * sizeof(float));
                /* right border of this row and left border of the next */
                fill_floats(row + w, 2 * pad, v);
            }
            fill_floats(dst + (size_t)(h + pad) * pw + pad, pad * pw - pad, v);
        }
    free(ds->images);
    ds->images = out;
    ds->h = ph;
    ds->w = pw;
    ds->pad += pad;
    return MODA_OK;
}

void dataset_class_counts(const dataset *ds, int *counts) {
    MODA_ASSERT(ds && counts);
    for (int k = 0; k < ds->num_classes; k++) counts[k] = 0;
    for (int i = 0; i < ds->n; i++) counts[ds->labels[i]]++;
}

moda_status dataset_sort_by_class(dataset *ds, int *class_start) {
    if (!ds || !ds->images || !class_start) return MODA_ERR_NULL;
    const int k = ds->num_classes;
    const size_t img = image_floats(ds);
    int *next = calloc((size_t)k + 1, sizeof(int));
    float *images = alloc_floats((size_t)ds->n * img);
    int32_t *labels = malloc((size_t)(ds->n ? ds->n : 1) * sizeof(int32_t));
    if (!next || !images || !labels) {
        free(next);
        free(images);
        free(labels);
        return MODA_ERR_NOMEM;
    }
    /* A counting sort: stable, so each class keeps its samples' order. */
    for (int i = 0; i < ds->n; i++) next[ds->labels[i] + 1]++;
    for (int c = 0; c < k; c++) next[c + 1] += next[c];
    memcpy(class_start, next, (size_t)(k + 1) * sizeof(int));
    for (int i = 0; i < ds->n; i++) {
        int j = next[ds->labels[i]]++;
        memcpy(images + (size_t)j * img, ds->images + (size_t)i * img, img * sizeof(float));
        labels[j] = ds->labels[i];
    }
    free(next);
    free(ds->images);
    free(ds->labels);
    ds->images = images;
    ds->labels = labels;
    return MODA_OK;
}

moda_status dataset_subset_per_class(dataset *ds, int n_per_class) {
    if (!ds || !ds->images) return MODA_ERR_NULL;
    if (n_per_class <= 0) return MODA_ERR_ARG;
    int *taken = calloc((size_t)ds->num_classes, sizeof(int));
    if (!taken) return MODA_ERR_NOMEM;
    int kept = 0;
    for (int i = 0; i < ds->n; i++)
        if (taken[ds->labels[i]] < n_per_class) {
            taken[ds->labels[i]]++;
            kept++;
        }
    if (kept == ds->n) {
        free(taken);
        return MODA_OK;
    }
    const size_t img = image_floats(ds);
    float *images = alloc_floats((size_t)kept * img);
    int32_t *labels = malloc((size_t)kept * sizeof(int32_t));
    if (!images || !labels) {
        free(taken);
        free(images);
        free(labels);
        return MODA_ERR_NOMEM;
    }
    memset(taken, 0, (size_t)ds->num_classes * sizeof(int));
    int j = 0;
    for (int i = 0; i < ds->n; i++) {
        int y = ds->labels[i];
        if (taken[y] >= n_per_class) continue;
        taken[y]++;
        memcpy(images + (size_t)j * img, ds->images + (size_t)i * img, img * sizeof(float));
        labels[j++] = y;
    }
    free(taken);
    free(ds->images);
    free(ds->labels);
    ds->images = images;
    ds->labels = labels;
    ds->n = kept;
    return MODA_OK;
}

/* ---- Augmentation ----------------------------------------------------- */

/* Distinct constants keep the shuffle and augmentation streams apart. */
#define TAG_SHUFFLE 0x53485546464c4531ULL
#define TAG_AUGMENT 0x4155474d454e5431ULL

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t mix3(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b) {
    uint64_t h = splitmix64(seed ^ tag);
    h = splitmix64(h ^ a);
    return splitmix64(h ^ b);
}

void dataset_transform_image(float *dst, const float *src, int c, int h, int w, int dy, int dx, int flip,
                             const float *fill) {
    /* Output columns [x0, x1) read inside src; the rest is fill. Without
     * flip column x reads src column x + dx; with flip (applied after the
     * crop) it reads w - 1 - x + dx. */
    int x0 = flip ? dx : -dx, x1 = flip ? w + dx : w - dx;
    if (x0 < 0) x0 = 0;
    if (x0 > w) x0 = w;
    if (x1 > w) x1 = w;
    if (x1 < x0) x1 = x0;
    for (int ch = 0; ch < c; ch++) {
        const float *s = src + (size_t)ch * h * w;
        float *d = dst + (size_t)ch * h * w;
        for (int y = 0; y < h; y++) {
            float *row = d + (size_t)y * w;
            const int sy = y + dy;
            if (sy < 0 || sy >= h) {
                fill_floats(row, w, fill[ch]);
                continue;
            }
            const float *srow = s + (size_t)sy * w;
            fill_floats(row, x0, fill[ch]);
            if (flip) {
                const int base = w - 1 + dx;
                for (int x = x0; x < x1; x++) row[x] = srow[base - x];
            } else if (x1 > x0) {
                memcpy(row + x0, srow + x0 + dx, (size_t)(x1 - x0) * sizeof(float));
            }
            fill_floats(row + x1, w - x1, fill[ch]);
        }
    }
}

void dataset_augment_params(const dataset_augment *aug, uint64_t seed, int epoch, int64_t pos, int *dy, int *dx,
                            int *flip) {
    rng r;
    rng_seed(&r, mix3(seed, TAG_AUGMENT, (uint64_t)(int64_t)epoch, (uint64_t)pos), 1);
    /* The flip coin is drawn first and always, so switching either part
     * on or off leaves the other's choices unchanged. */
    int f = (int)(rng_u32(&r) >> 31);
    uint32_t span = aug && aug->crop_pad > 0 ? (uint32_t)(2 * aug->crop_pad + 1) : 1;
    int oy = (int)rng_below(&r, span), ox = (int)rng_below(&r, span);
    int p = aug && aug->crop_pad > 0 ? aug->crop_pad : 0;
    *dy = oy - p;
    *dx = ox - p;
    *flip = aug && aug->flip ? f : 0;
}

/* ---- Batch iterator --------------------------------------------------- */

moda_status dataset_iter_init(dataset_iter *it, const dataset *ds, int batch_size, int shuffle,
                              const dataset_augment *aug, uint64_t seed) {
    if (!it || !ds || !ds->images) return MODA_ERR_NULL;
    memset(it, 0, sizeof *it);
    if (batch_size <= 0) return MODA_ERR_ARG;
    if (aug && (aug->crop_pad < 0 || aug->crop_pad >= ds->h || aug->crop_pad >= ds->w)) return MODA_ERR_ARG;
    it->order = malloc((size_t)ds->n * sizeof(int32_t));
    if (!it->order) return MODA_ERR_NOMEM;
    it->ds = ds;
    it->batch_size = batch_size;
    it->shuffle = shuffle;
    if (aug) it->aug = *aug;
    it->seed = seed;
    it->num_batches = (int)(((int64_t)ds->n + batch_size - 1) / batch_size);
    dataset_iter_begin_epoch(it, 0);
    return MODA_OK;
}

void dataset_iter_free(dataset_iter *it) {
    if (!it) return;
    free(it->order);
    memset(it, 0, sizeof *it);
}

void dataset_iter_begin_epoch(dataset_iter *it, int epoch) {
    MODA_ASSERT(it && it->order);
    it->epoch = epoch;
    it->next_batch = 0;
    for (int i = 0; i < it->ds->n; i++) it->order[i] = i;
    if (it->shuffle) {
        rng r;
        rng_seed(&r, mix3(it->seed, TAG_SHUFFLE, (uint64_t)(int64_t)epoch, 0), 1);
        rng_shuffle_i32(&r, it->order, (uint32_t)it->ds->n);
    }
}

int dataset_iter_batch(const dataset_iter *it, int b, float *images, int32_t *labels) {
    MODA_ASSERT(it && it->order && images && labels);
    if (b < 0 || b >= it->num_batches) return 0;
    const dataset *ds = it->ds;
    const int64_t start = (int64_t)b * it->batch_size;
    const int count = (int)((int64_t)ds->n - start < it->batch_size ? (int64_t)ds->n - start : it->batch_size);
    const size_t img = image_floats(ds);
    const int augment = it->aug.crop_pad > 0 || it->aug.flip;
    float fill[DATASET_MAX_CHANNELS];
    for (int ch = 0; ch < ds->c; ch++) fill[ch] = dataset_fill_value(ds, ch);

    /* Each sample's randomness comes from its own position, so the split of
     * samples between threads cannot change the result. */
#pragma omp parallel for schedule(static) if ((size_t)count * img >= PAR_MIN_BATCH_FLOATS)
    for (int i = 0; i < count; i++) {
        const int32_t s = it->order[start + i];
        const float *src = ds->images + (size_t)s * img;
        float *dst = images + (size_t)i * img;
        labels[i] = ds->labels[s];
        if (!augment) {
            memcpy(dst, src, img * sizeof(float));
            continue;
        }
        int dy, dx, flip;
        dataset_augment_params(&it->aug, it->seed, it->epoch, start + i, &dy, &dx, &flip);
        dataset_transform_image(dst, src, ds->c, ds->h, ds->w, dy, dx, flip, fill);
    }
    return count;
}

int dataset_iter_next(dataset_iter *it, float *images, int32_t *labels) {
    MODA_ASSERT(it);
    if (it->next_batch >= it->num_batches) return 0;
    return dataset_iter_batch(it, it->next_batch++, images, labels);
}

void dataset_iter_seek(dataset_iter *it, int b) {
    MODA_ASSERT(it && b >= 0);
    it->next_batch = b;
}
