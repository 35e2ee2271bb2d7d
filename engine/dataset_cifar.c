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
/* Reads start this small and double: a short or damaged file costs no more
 * than its size (an official batch file, 30 MB, takes nine doublings). */
#define CIFAR_READ_START ((size_t)64 << 10)

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

/* A split's files, read whole; freed by cifar_raw_free. */
typedef struct cifar_raw {
    const char *files[CIFAR_MAX_FILES];
    int nfiles;
    char base[4096];                     /* the directory holding them */
    unsigned char *data[CIFAR_MAX_FILES];
    size_t len[CIFAR_MAX_FILES];
    size_t rec;                          /* bytes per record */
    size_t total;                        /* records in all the files */
} cifar_raw;

static void cifar_raw_free(cifar_raw *raw) {
    for (int fi = 0; fi < raw->nfiles; fi++) free(raw->data[fi]);
}

/* The split's file names, and the directory they are in: dir itself, or
 * the subdirectory the official archive unpacks to (both are accepted). */
static moda_status locate_files(const cifar_format *fmt, const char *dir, dataset_split split, cifar_raw *raw,
                                char *err, size_t errlen) {
    if (split == DATASET_TRAIN)
        for (int i = 0; i < CIFAR_MAX_FILES && fmt->train[i]; i++) raw->files[raw->nfiles++] = fmt->train[i];
    else
        raw->files[raw->nfiles++] = fmt->test;
    char path[4096], sub[4096];
    if (!path_join(path, sizeof path, dir, raw->files[0], NULL) ||
        !path_join(sub, sizeof sub, dir, fmt->subdir, raw->files[0])) {
        fileio_errf(err, errlen, "%s: path too long", dir);
        return MODA_ERR_ARG;
    }
    if (access(path, F_OK) != 0 && access(sub, F_OK) == 0)
        snprintf(raw->base, sizeof raw->base, "%s/%s", dir, fmt->subdir);
    else
        snprintf(raw->base, sizeof raw->base, "%s", dir);
    return MODA_OK;
}

/* Every file read whole and checked: whole records, labels in range, and
 * not too many of them. */
static moda_status read_records(const cifar_format *fmt, cifar_raw *raw, char *err, size_t errlen) {
    raw->rec = (size_t)fmt->label_bytes + CIFAR_PIXELS;
    const size_t rec = raw->rec;
    char path[4096];
    for (int fi = 0; fi < raw->nfiles; fi++) {
        if (!path_join(path, sizeof path, raw->base, raw->files[fi], NULL)) {
            fileio_errf(err, errlen, "%s: path too long", raw->base);
            return MODA_ERR_ARG;
        }
        MODA_TRY(gz_read_whole(path, CIFAR_READ_START, &raw->data[fi], &raw->len[fi], err, errlen));
        if (raw->len[fi] == 0 || raw->len[fi] % rec != 0) {
            fileio_errf(err, errlen, "%s: size %zu bytes is not a positive multiple of the %zu-byte %s record", path,
                    raw->len[fi], rec, fmt->kind);
            return MODA_ERR_FORMAT;
        }
        const size_t nrec = raw->len[fi] / rec;
        for (size_t r = 0; r < nrec; r++) {
            int y = raw->data[fi][r * rec + (size_t)fmt->label_index];
            if (y >= fmt->num_classes) {
                fileio_errf(err, errlen, "%s: record %zu has label %d, expected 0..%d", path, r, y,
                        fmt->num_classes - 1);
                return MODA_ERR_FORMAT;
            }
        }
        raw->total += nrec;
        if (raw->total > (size_t)1 << 30) {
            fileio_errf(err, errlen, "%s: too many records", path);
            return MODA_ERR_FORMAT;
        }
    }
    return MODA_OK;
}

/* The class names file next to the data, when there is one: one name per
 * class. *names stays NULL without it. */
static moda_status read_class_names(const cifar_format *fmt, const char *base, char ***names, int *nnames, char *err,
                                    size_t errlen) {
    char path[4096];
    if (!path_join(path, sizeof path, base, fmt->names_file, NULL) || access(path, F_OK) != 0) return MODA_OK;
    MODA_TRY(dataset_read_names(path, names, nnames, err, errlen));
    if (*nnames != fmt->num_classes) {
        fileio_errf(err, errlen, "%s: %d class names, expected %d", path, *nnames, fmt->num_classes);
        return MODA_ERR_FORMAT;
    }
    return MODA_OK;
}

/* The dataset from the checked records: pixels scaled to [0, 1], labels,
 * class names (the file's, else the format's own) and the source line. */
static moda_status fill_dataset(dataset *ds, const cifar_format *fmt, const cifar_raw *raw, char *const *names,
                                dataset_split split, char *err, size_t errlen) {
    moda_status st = dataset_alloc(ds, (int)raw->total, 3, CIFAR_SIDE, CIFAR_SIDE, fmt->num_classes);
    if (st != MODA_OK) {
        fileio_errf(err, errlen, "%s: out of memory for %zu images", raw->base, raw->total);
        return st;
    }
    for (int k = 0; k < fmt->num_classes && st == MODA_OK; k++) {
        const char *name = names ? names[k] : fmt->names ? fmt->names[k] : NULL;
        if (name) st = dataset_set_class_name(ds, k, name);
    }
    if (st != MODA_OK) {
        fileio_errf(err, errlen, "%s: out of memory", raw->base);
        dataset_free(ds);
        return st;
    }
    const size_t rec = raw->rec;
    size_t at = 0;
    for (int fi = 0; fi < raw->nfiles; fi++) {
        const size_t nrec = raw->len[fi] / rec;
        const unsigned char *src = raw->data[fi];
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
             raw->base);
    return MODA_OK;
}

static moda_status load_cifar(dataset *ds, const cifar_format *fmt, const char *dir, dataset_split split,
                              char *err, size_t errlen) {
    if (!ds) return MODA_ERR_NULL;
    memset(ds, 0, sizeof *ds);
    if (!dir) {
        fileio_errf(err, errlen, "%s: a data directory is required", fmt->kind);
        return MODA_ERR_ARG;
    }
    cifar_raw raw = {0};
    char **names = NULL;
    int nnames = 0;
    moda_status st = locate_files(fmt, dir, split, &raw, err, errlen);
    if (st == MODA_OK) st = read_records(fmt, &raw, err, errlen);
    if (st == MODA_OK) st = read_class_names(fmt, raw.base, &names, &nnames, err, errlen);
    if (st == MODA_OK) st = fill_dataset(ds, fmt, &raw, names, split, err, errlen);
    cifar_raw_free(&raw);
    dataset_free_names(names, nnames);
    return st;
}

moda_status dataset_load_cifar10(dataset *ds, const char *dir, dataset_split split, char *err, size_t errlen) {
    return load_cifar(ds, &cifar10, dir, split, err, errlen);
}

moda_status dataset_load_cifar100(dataset *ds, const char *dir, dataset_split split, char *err, size_t errlen) {
    return load_cifar(ds, &cifar100, dir, split, err, errlen);
}
