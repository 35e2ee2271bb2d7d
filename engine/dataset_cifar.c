/* CIFAR-10 / CIFAR-100 binary readers. A record is label byte(s) then
 * 3072 pixel bytes, channel-major (R plane, G plane, B plane, 32x32 each),
 * which is already the NCHW layout we store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"
#include "fileio.h"
#include "gz_reader.h"

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_MAX_FILES 5
#define CIFAR_BATCH_BYTES ((size_t)(CIFAR_PIXELS + 2) * 10000) /* one official batch file */

static const char *const cifar10_names[10] = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
};

typedef struct cifar_format {
    const char *kind;         /* for messages and the source line */
    const char *subdir;       /* the directory the official archive unpacks to */
    const char *train[CIFAR_MAX_FILES];
    const char *test;
    int label_bytes;          /* bytes before the pixels */
    int label_index;          /* which of them is the label we use */
    int num_classes;
    const char *names_file;   /* optional, in the same directory */
    const char *const *names; /* built-in names, or NULL for class_<k> */
} cifar_format;

static const cifar_format cifar10 = {
    .kind = "cifar10",
    .subdir = "cifar-10-batches-bin",
    .train = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
    .test = "test_batch.bin",
    .label_bytes = 1,
    .label_index = 0,
    .num_classes = 10,
    .names_file = "batches.meta.txt",
    .names = cifar10_names,
};

static const cifar_format cifar100 = {
    .kind = "cifar100",
    .subdir = "cifar-100-binary",
    .train = {"train.bin"},
    .test = "test.bin",
    .label_bytes = 2,
    .label_index = 1, /* coarse label first, then fine */
    .num_classes = 100,
    .names_file = "fine_label_names.txt",
    .names = NULL,
};

static int path_join(char *out, size_t outlen, const char *a, const char *b, const char *c) {
    int len = c ? snprintf(out, outlen, "%s/%s/%s", a, b, c) : snprintf(out, outlen, "%s/%s", a, b);
    return len >= 0 && (size_t)len < outlen;
}

static moda_status load_cifar(dataset *ds, const cifar_format *fmt, const char *dir, dataset_split split,
                              char *err, size_t errlen) {
    if (!ds) return MODA_ERR_NULL;
    memset(ds, 0, sizeof *ds);
    if (!dir) {
        fileio_errf(err, errlen, "%s: a data directory is required", fmt->kind);
        return MODA_ERR_ARG;
    }
    const char *files[CIFAR_MAX_FILES];
    int nfiles = 0;
    if (split == DATASET_TRAIN)
        for (int i = 0; i < CIFAR_MAX_FILES && fmt->train[i]; i++) files[nfiles++] = fmt->train[i];
    else
        files[nfiles++] = fmt->test;

    /* Accept both the directory holding the .bin files and its parent. */
    char base[4096], path[4096], sub[4096];
    if (!path_join(path, sizeof path, dir, files[0], NULL) ||
        !path_join(sub, sizeof sub, dir, fmt->subdir, files[0])) {
        fileio_errf(err, errlen, "%s: path too long", dir);
        return MODA_ERR_ARG;
    }
    if (access(path, F_OK) != 0 && access(sub, F_OK) == 0)
        snprintf(base, sizeof base, "%s/%s", dir, fmt->subdir);
    else
        snprintf(base, sizeof base, "%s", dir);

    const size_t rec = (size_t)fmt->label_bytes + CIFAR_PIXELS;
    unsigned char *raw[CIFAR_MAX_FILES] = {0};
    size_t len[CIFAR_MAX_FILES] = {0};
    char **names = NULL;
    int nnames = 0;
    size_t total = 0;
    moda_status st = MODA_OK;
    for (int fi = 0; fi < nfiles; fi++) {
        if (!path_join(path, sizeof path, base, files[fi], NULL)) {
            fileio_errf(err, errlen, "%s: path too long", base);
            st = MODA_ERR_ARG;
            goto done;
        }
        if ((st = gz_read_whole(path, CIFAR_BATCH_BYTES, &raw[fi], &len[fi], err, errlen)) != MODA_OK) goto done;
        if (len[fi] == 0 || len[fi] % rec != 0) {
            fileio_errf(err, errlen, "%s: size %zu bytes is not a positive multiple of the %zu-byte %s record", path,
                    len[fi], rec, fmt->kind);
            st = MODA_ERR_FORMAT;
            goto done;
        }
        const size_t nrec = len[fi] / rec;
        for (size_t r = 0; r < nrec; r++) {
            int y = raw[fi][r * rec + (size_t)fmt->label_index];
            if (y >= fmt->num_classes) {
                fileio_errf(err, errlen, "%s: record %zu has label %d, expected 0..%d", path, r, y,
                        fmt->num_classes - 1);
                st = MODA_ERR_FORMAT;
                goto done;
            }
        }
        total += nrec;
        if (total > (size_t)1 << 30) {
            fileio_errf(err, errlen, "%s: too many records", path);
            st = MODA_ERR_FORMAT;
            goto done;
        }
    }

    if (path_join(path, sizeof path, base, fmt->names_file, NULL) && access(path, F_OK) == 0) {
        if ((st = dataset_read_names(path, &names, &nnames, err, errlen)) != MODA_OK) goto done;
        if (nnames != fmt->num_classes) {
            fileio_errf(err, errlen, "%s: %d class names, expected %d", path, nnames, fmt->num_classes);
            st = MODA_ERR_FORMAT;
            goto done;
        }
    }

    if ((st = dataset_alloc(ds, (int)total, 3, CIFAR_SIDE, CIFAR_SIDE, fmt->num_classes)) != MODA_OK) {
        fileio_errf(err, errlen, "%s: out of memory for %zu images", base, total);
        goto done;
    }
    for (int k = 0; k < fmt->num_classes && st == MODA_OK; k++) {
        const char *name = names ? names[k] : fmt->names ? fmt->names[k] : NULL;
        if (name) st = dataset_set_class_name(ds, k, name);
    }
    if (st != MODA_OK) {
        fileio_errf(err, errlen, "%s: out of memory", base);
        dataset_free(ds);
        goto done;
    }
    size_t at = 0;
    for (int fi = 0; fi < nfiles; fi++) {
        const size_t nrec = len[fi] / rec;
        const unsigned char *src = raw[fi];
        float *dst = ds->images + at * CIFAR_PIXELS;
#pragma omp parallel for schedule(static) if (nrec >= 64)
        for (size_t r = 0; r < nrec; r++) {
            const unsigned char *px = src + r * rec + (size_t)fmt->label_bytes;
            float *o = dst + r * CIFAR_PIXELS;
            for (int j = 0; j < CIFAR_PIXELS; j++) o[j] = (float)px[j] / 255.0f;
        }
        for (size_t r = 0; r < nrec; r++) ds->labels[at + r] = src[r * rec + (size_t)fmt->label_index];
        at += nrec;
    }
    snprintf(ds->source, sizeof ds->source, "%s %s %.480s", fmt->kind, split == DATASET_TRAIN ? "train" : "test",
             base);

done:
    for (int fi = 0; fi < nfiles; fi++) free(raw[fi]);
    dataset_free_names(names, nnames);
    return st;
}

moda_status dataset_load_cifar10(dataset *ds, const char *dir, dataset_split split, char *err, size_t errlen) {
    return load_cifar(ds, &cifar10, dir, split, err, errlen);
}

moda_status dataset_load_cifar100(dataset *ds, const char *dir, dataset_split split, char *err, size_t errlen) {
    return load_cifar(ds, &cifar100, dir, split, err, errlen);
}
