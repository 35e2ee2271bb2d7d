/* IDX reader (MNIST, Fashion-MNIST), gzip-compressed or not. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "fileio.h"
#include "gz_reader.h"

#define IDX_MAGIC_IMAGES 0x00000803u /* unsigned byte, 3 dims */
#define IDX_MAGIC_LABELS 0x00000801u /* unsigned byte, 1 dim */
#define IDX_MAX_SIDE 4096

typedef struct idx_file {
    gz_reader in;
    const char *path;
    uint32_t dims[3];
} idx_file;

static void idx_close(idx_file *x) { gz_reader_close(&x->in); }

/* Opens path and reads the magic and dims; ndim is implied by the magic. */
static moda_status idx_open(idx_file *x, const char *path, uint32_t magic, int ndim, char *err, size_t errlen) {
    memset(x, 0, sizeof *x);
    x->path = path;
    MODA_TRY(gz_reader_open(&x->in, path, err, errlen));
    unsigned char hdr[16];
    size_t need = 4 + 4 * (size_t)ndim, got;
    moda_status st = gz_reader_read(&x->in, hdr, 4, &got, err, errlen);
    if (st != MODA_OK) goto fail;
    if (got < 4) {
        fileio_errf(err, errlen, "%s: truncated header (%zu of %zu bytes)", path, got, need);
        st = MODA_ERR_FORMAT;
        goto fail;
    }
    uint32_t m = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (m != magic) {
        fileio_errf(err, errlen, "%s: bad magic 0x%08x (expected 0x%08x)", path, (unsigned)m, (unsigned)magic);
        st = MODA_ERR_FORMAT;
        goto fail;
    }
    if ((st = gz_reader_read(&x->in, hdr + 4, need - 4, &got, err, errlen)) != MODA_OK) goto fail;
    if (got < need - 4) {
        fileio_errf(err, errlen, "%s: truncated header (%zu of %zu bytes)", path, got + 4, need);
        st = MODA_ERR_FORMAT;
        goto fail;
    }
    for (int d = 0; d < ndim; d++) {
        const unsigned char *b = hdr + 4 + 4 * d;
        x->dims[d] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    }
    int bad = x->dims[0] == 0 || x->dims[0] > INT_MAX;
    for (int d = 1; d < ndim; d++) bad |= x->dims[d] == 0 || x->dims[d] > IDX_MAX_SIDE;
    if (bad) {
        if (ndim == 3)
            fileio_errf(err, errlen, "%s: bad dimensions %ux%ux%u", path, (unsigned)x->dims[0], (unsigned)x->dims[1],
                    (unsigned)x->dims[2]);
        else
            fileio_errf(err, errlen, "%s: bad count %u", path, (unsigned)x->dims[0]);
        st = MODA_ERR_FORMAT;
        goto fail;
    }
    return MODA_OK;
fail:
    idx_close(x);
    return st;
}

/* Payloads are read in pieces of at most this much, into a buffer grown as
 * they arrive: the header's counts are not trusted for an allocation, so a
 * short file that claims billions of images costs no more than its size. */
#define IDX_READ_STEP ((size_t)1 << 20)

/* Reads exactly n payload bytes into a new buffer (*out, caller frees) and
 * checks that nothing follows them: extra bytes mean the header's counts do
 * not describe the file. */
static moda_status idx_read_payload(idx_file *x, unsigned char **out, size_t n, const char *what, char *err,
                                    size_t errlen) {
    *out = NULL;
    unsigned char *buf = NULL;
    size_t have = 0, cap = 0, got;
    moda_status st = MODA_OK;
    while (have < n) {
        if (have == cap) {
            size_t grow = cap < IDX_READ_STEP ? IDX_READ_STEP : cap; /* doubling past the first step */
            size_t next = n - cap < grow ? n : cap + grow;
            unsigned char *p = realloc(buf, next);
            if (!p) {
                fileio_errf(err, errlen, "%s: out of memory for %zu bytes of %s", x->path, n, what);
                st = MODA_ERR_NOMEM;
                goto fail;
            }
            buf = p;
            cap = next;
        }
        if ((st = gz_reader_read(&x->in, buf + have, cap - have, &got, err, errlen)) != MODA_OK) goto fail;
        if (got == 0) {
            fileio_errf(err, errlen, "%s: truncated: %zu of %zu bytes of %s", x->path, have, n, what);
            st = MODA_ERR_FORMAT;
            goto fail;
        }
        have += got;
    }
    unsigned char extra;
    if ((st = gz_reader_read(&x->in, &extra, 1, &got, err, errlen)) != MODA_OK) goto fail;
    if (got) {
        fileio_errf(err, errlen, "%s: unexpected data after %u %s", x->path, (unsigned)x->dims[0], what);
        st = MODA_ERR_FORMAT;
        goto fail;
    }
    *out = buf;
    return MODA_OK;
fail:
    free(buf);
    return st;
}

moda_status dataset_load_idx_files(dataset *ds, const char *images_path, const char *labels_path,
                                   const char *names_path, char *err, size_t errlen) {
    if (!ds || !images_path || !labels_path) return MODA_ERR_NULL;
    memset(ds, 0, sizeof *ds);
    idx_file xi, xl;
    unsigned char *pix = NULL, *lab = NULL;
    moda_status st;

    if ((st = idx_open(&xi, images_path, IDX_MAGIC_IMAGES, 3, err, errlen)) != MODA_OK) return st;
    if ((st = idx_open(&xl, labels_path, IDX_MAGIC_LABELS, 1, err, errlen)) != MODA_OK) {
        idx_close(&xi);
        return st;
    }
    /* Counts are compared before the (large) pixel payload is read. */
    const uint32_t n = xi.dims[0], h = xi.dims[1], w = xi.dims[2];
    if (xl.dims[0] != n) {
        fileio_errf(err, errlen, "%s: %u labels but %s has %u images", labels_path, (unsigned)xl.dims[0], images_path,
                (unsigned)n);
        st = MODA_ERR_FORMAT;
        goto done;
    }
    const size_t npix = (size_t)n * h * w;
    if ((st = idx_read_payload(&xl, &lab, n, "labels", err, errlen)) != MODA_OK) goto done;
    if ((st = idx_read_payload(&xi, &pix, npix, "images", err, errlen)) != MODA_OK) goto done;
    /* The labels say how many classes there are; their names are digits
     * until a names file (or the kind, see dataset_load) says otherwise. */
    int max_label = 0;
    for (uint32_t i = 0; i < n; i++)
        if (lab[i] > max_label) max_label = lab[i];
    const int k = max_label + 1;
    if ((st = dataset_alloc(ds, (int)n, 1, (int)h, (int)w, k)) != MODA_OK) {
        fileio_errf(err, errlen, "%s: out of memory for %u images", images_path, (unsigned)n);
        goto done;
    }
    for (int c = 0; c < k && st == MODA_OK; c++) {
        char digits[16];
        snprintf(digits, sizeof digits, "%d", c);
        st = dataset_set_class_name(ds, c, digits);
    }
    if (st != MODA_OK) {
        fileio_errf(err, errlen, "%s: out of memory", images_path);
        dataset_free(ds);
        goto done;
    }
    float *img = ds->images;
#pragma omp parallel for schedule(static) if (npix >= 65536)
    for (size_t i = 0; i < npix; i++) img[i] = (float)pix[i] / 255.0f;
    for (uint32_t i = 0; i < n; i++) ds->labels[i] = lab[i];
    snprintf(ds->source, sizeof ds->source, "idx %s", images_path);
    if (names_path && (st = dataset_apply_names_file(ds, names_path, err, errlen)) != MODA_OK) dataset_free(ds);

done:
    idx_close(&xi);
    idx_close(&xl);
    free(pix);
    free(lab);
    return st;
}

/* dir/base.gz, dir/base, and the same with ".idx" spelled for the "-idx"
 * of the official names (some mirrors use "train-images.idx3-ubyte"). */
static moda_status find_idx(char *out, size_t outlen, const char *dir, const char *prefix, const char *suffix,
                            char *err, size_t errlen) {
    static const char *const seps[2] = {"-", "."};
    static const char *const exts[2] = {".gz", ""};
    for (int s = 0; s < 2; s++)
        for (int e = 0; e < 2; e++) {
            int len = snprintf(out, outlen, "%s/%s%s%s%s", dir, prefix, seps[s], suffix, exts[e]);
            if (len < 0 || (size_t)len >= outlen) {
                fileio_errf(err, errlen, "%s: path too long", dir);
                return MODA_ERR_ARG;
            }
            if (access(out, F_OK) == 0) return MODA_OK;
        }
    fileio_errf(err, errlen, "%s/%s-%s.gz: not found (nor without .gz)", dir, prefix, suffix);
    return MODA_ERR_IO;
}

moda_status dataset_load_idx(dataset *ds, const char *dir, dataset_split split, const char *names_path,
                             char *err, size_t errlen) {
    if (!ds) return MODA_ERR_NULL;
    memset(ds, 0, sizeof *ds);
    if (!dir) dir = DATASET_FASHION_MNIST_DIR;
    const char *prefix = split == DATASET_TRAIN ? "train" : "t10k";
    char base[64], images[4096], labels[4096];
    snprintf(base, sizeof base, "%s-images", prefix);
    MODA_TRY(find_idx(images, sizeof images, dir, base, "idx3-ubyte", err, errlen));
    snprintf(base, sizeof base, "%s-labels", prefix);
    MODA_TRY(find_idx(labels, sizeof labels, dir, base, "idx1-ubyte", err, errlen));
    moda_status st = dataset_load_idx_files(ds, images, labels, names_path, err, errlen);
    if (st == MODA_OK)
        snprintf(ds->source, sizeof ds->source, "idx %s %.480s", split == DATASET_TRAIN ? "train" : "test",
                 images);
    return st;
}
