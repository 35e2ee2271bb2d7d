/* Image classification datasets: IDX (MNIST, Fashion-MNIST) and CIFAR
 * binary readers, folders of PNG and JPEG images, preprocessing (scale to [0,1], per-channel mean/std,
 * zero padding), per-class subsets, and a seeded batch iterator with
 * training-time augmentation.
 *
 * Pixel spaces. A loader stores raw pixels scaled to [0, 1] (byte/255).
 * dataset_normalize() maps them to (x - mean[c]) / std[c]. "Raw black" is
 * pixel 0; every padding this module writes (dataset_pad() and the random
 * crop's border) is raw black, i.e. 0 before normalisation and
 * -mean[c]/std[c] after it, as with PyTorch's Pad/RandomCrop placed before
 * Normalize. dataset_fill_value() gives that value for the current state.
 *
 * Errors. Every function that can fail on its input returns a moda_status
 * and, where it takes (err, errlen), writes "<file>: <problem>" there
 * (err may be NULL). On failure the output dataset is left empty. */
#ifndef MODA_DATASET_H
#define MODA_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "image.h"
#include "status.h"

#define DATASET_MAX_CHANNELS 3
#define DATASET_SOURCE_LEN 512
#define DATASET_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define DATASET_FOLDER_SIZE_DEFAULT 32
#define DATASET_FOLDER_FILE_MAX ((size_t)64 << 20) /* bytes of one image file */

typedef enum dataset_split { DATASET_TRAIN = 0, DATASET_TEST = 1 } dataset_split;

typedef struct dataset {
    float *images;      /* (n, c, h, w), owned, 64-byte aligned */
    int32_t *labels;    /* (n), owned, each in [0, num_classes) */
    int n, c, h, w;
    int num_classes;    /* K */
    char **class_names; /* (K) strings, owned */
    int pad;            /* zero border added by dataset_pad(), per side */
    int normalized;     /* images hold (x - mean) / std */
    float mean[DATASET_MAX_CHANNELS]; /* valid when normalized */
    float std[DATASET_MAX_CHANNELS];
    char source[DATASET_SOURCE_LEN]; /* e.g. "idx train <images file>" */
} dataset;

/* ---- Construction ---------------------------------------------------- */

/* An empty dataset with zero-filled images and labels and K unnamed
 * classes ("class_<k>"). Used by the readers and by tests. */
moda_status dataset_alloc(dataset *ds, int n, int c, int h, int w, int num_classes);
/* Frees everything and leaves ds zeroed; accepts NULL. Matches every
 * loader below. */
void dataset_free(dataset *ds);
moda_status dataset_set_class_name(dataset *ds, int k, const char *name);
/* dst becomes a deep copy of src (dst is overwritten, not freed). */
moda_status dataset_copy(dataset *dst, const dataset *src);

/* One name per line; \r and trailing blanks trimmed, blank lines skipped.
 * *names (count entries) is owned by the caller: dataset_free_names(). */
moda_status dataset_read_names(const char *path, char ***names, int *count, char *err, size_t errlen);
void dataset_free_names(char **names, int count);
/* Names the K classes from a names file (dataset_read_names), which must
 * list exactly K names: MODA_ERR_FORMAT "<file>: N class names, expected
 * K" otherwise. */
moda_status dataset_apply_names_file(dataset *ds, const char *path, char *err, size_t errlen);

/* ---- Loaders ---------------------------------------------------------- */

/* What a loader may be told; a zeroed struct (or NULL) means the defaults.
 * The folder fields apply to kind "folder" only, names_path to the IDX
 * kinds only. */
typedef struct dataset_load_options {
    const char *names_path; /* IDX: class names, one per line; NULL: the kind's own */
    int image_size;         /* folder: images are fitted to this square (0: 32) */
    int channels;           /* folder: 1 or 3; 0: 3 if any training image is colour, else 1 */
    bool strict_images;     /* folder: a file that is not a readable image fails the load */
    size_t max_bytes;       /* folder: bound on the decoded split (0: dataset_folder_max_bytes_default()) */
    image_limits limits;    /* folder: per-image size limits (zeros: image_limits_default()) */
    FILE *log;              /* folder: where skipped files are reported (NULL: stderr) */
} dataset_load_options;

/* An IDX image file (magic 0x803, N x H x W bytes) and its label file
 * (0x801, N bytes), gzip-compressed or not. K = max label + 1 over the
 * file; the classes are named "0" .. "K-1" unless names_path is given
 * (dataset_apply_names_file). */
moda_status dataset_load_idx_files(dataset *ds, const char *images_path, const char *labels_path,
                                   const char *names_path, char *err, size_t errlen);
/* {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] in dir (NULL: the
 * Fashion-MNIST default directory). Names as dataset_load_idx_files. */
moda_status dataset_load_idx(dataset *ds, const char *dir, dataset_split split, const char *names_path,
                             char *err, size_t errlen);
/* data_batch_1..5.bin or test_batch.bin (in dir or dir/cifar-10-batches-bin),
 * names from batches.meta.txt when present. K = 10. */
moda_status dataset_load_cifar10(dataset *ds, const char *dir, dataset_split split, char *err, size_t errlen);
/* train.bin or test.bin (in dir or dir/cifar-100-binary), fine labels,
 * names from fine_label_names.txt when present. K = 100. */
moda_status dataset_load_cifar100(dataset *ds, const char *dir, dataset_split split, char *err, size_t errlen);
/* A folder of images: dir/train/<class>/<file> and dir/test/<class>/<file>,
 * PNG or JPEG whatever the file names (a name starting with '.' and
 * folders inside a class folder are ignored). Classes are the class
 * folders' names in byte order, and train and test must have the same
 * ones; every training class needs an image. Files are read in byte order
 * of their names, so the dataset is deterministic. Each image is fitted
 * (image.h's rule) to channels x image_size x image_size, where channels
 * is 3 if any training image is colour (by its header) and 1 otherwise,
 * for both splits; pad is 0. A file that is not a readable image is
 * reported on the log with its path and the reason and skipped, and a
 * count is printed at the end, or with strict_images it fails the load,
 * naming the file.
 * Memory: the split is decoded whole into floats; when n x channels x
 * image_size^2 x 4 bytes is over max_bytes, the load fails before
 * allocating, with both numbers. */
moda_status dataset_load_folder(dataset *ds, const char *dir, dataset_split split,
                                const dataset_load_options *opt, char *err, size_t errlen);
/* Half the physical memory (4 GiB where it cannot be read). */
size_t dataset_folder_max_bytes_default(void);
/* By kind: "fashion-mnist" (dir NULL: DATASET_FASHION_MNIST_DIR; its ten
 * names), "mnist" and "idx" (IDX files, classes "0" .. "K-1"), "cifar10",
 * "cifar100", "folder". Every kind but fashion-mnist needs dir:
 * MODA_ERR_ARG without it, never another dataset. opt may be NULL; its
 * names_path (NULL: none) then renames the classes, see
 * dataset_apply_names_file. */
moda_status dataset_load(dataset *ds, const char *kind, const char *dir, dataset_split split,
                         const dataset_load_options *opt, char *err, size_t errlen);

/* ---- Preprocessing ---------------------------------------------------- */

/* Per-channel mean and population std of the raw [0,1] pixels, over the
 * original image area (a border added by dataset_pad() is excluded, so the
 * order of padding and statistics does not matter). A std below 1e-6 is
 * reported as 1 so normalising a constant channel stays finite. Summation
 * is in double per image and then in image order: the result does not
 * depend on the thread count. MODA_ERR_STATE if already normalised. */
moda_status dataset_compute_stats(const dataset *ds, float *mean, float *std);
/* Applies (x - mean) / std per channel and records mean/std in ds; the
 * test set and a server use the training set's values. */
moda_status dataset_normalize(dataset *ds, const float *mean, const float *std);
/* Statistics from train, applied to train and (if non-NULL) test. */
moda_status dataset_normalize_pair(dataset *train, dataset *test);
/* Adds a raw-black border of `pad` pixels on each side (28 -> 32: pad 2). */
moda_status dataset_pad(dataset *ds, int pad);
/* The value of a raw 0 pixel in channel c in the current pixel space. */
float dataset_fill_value(const dataset *ds, int c);

/* Keeps the first n_per_class samples of each class, in dataset order
 * (classes with fewer keep all of theirs). */
moda_status dataset_subset_per_class(dataset *ds, int n_per_class);
/* Reorders the samples by class, keeping their order within a class.
 * class_start (K + 1) receives where each class begins; class k is
 * samples class_start[k] .. class_start[k + 1] - 1. */
moda_status dataset_sort_by_class(dataset *ds, int *class_start);
/* counts: (K) samples per class. */
void dataset_class_counts(const dataset *ds, int *counts);

/* ---- Augmentation ----------------------------------------------------- */

typedef struct dataset_augment {
    int crop_pad; /* random crop after padding each side with raw black; 0 = off */
    int flip;     /* random horizontal flip with p = 0.5 */
} dataset_augment;

/* dst (c, h, w) = src shifted so that dst[y][x] = src[y + dy][x + dx]
 * (fill[ch] outside src), then mirrored left-right when flip. This is a
 * crop at offset (dy + pad, dx + pad) of the padded image. dst != src. */
void dataset_transform_image(float *dst, const float *src, int c, int h, int w, int dy, int dx, int flip,
                             const float *fill);
/* The random choice for the sample at position `pos` of epoch `epoch`'s
 * order: dy, dx uniform in [-crop_pad, crop_pad], flip with p = 0.5. A
 * pure function of (seed, epoch, pos), so it is the same on any thread
 * and in a resumed run. */
void dataset_augment_params(const dataset_augment *aug, uint64_t seed, int epoch, int64_t pos, int *dy, int *dx,
                            int *flip);

/* ---- Batch iterator --------------------------------------------------- */

typedef struct dataset_iter {
    const dataset *ds;  /* not owned; must outlive the iterator */
    int32_t *order;     /* (n) sample indices of the current epoch, owned */
    int batch_size;
    int shuffle;        /* 0: dataset order (evaluation) */
    dataset_augment aug;
    uint64_t seed;
    int epoch;
    int next_batch;
    int num_batches;    /* ceil(n / batch_size): the last batch may be partial */
} dataset_iter;

/* aug may be NULL (no augmentation). Starts at epoch 0, batch 0. */
moda_status dataset_iter_init(dataset_iter *it, const dataset *ds, int batch_size, int shuffle,
                              const dataset_augment *aug, uint64_t seed);
void dataset_iter_free(dataset_iter *it); /* accepts NULL */
/* Order of epoch e is a pure function of (seed, e): a fresh permutation
 * of 0..n-1, not a reshuffle of the previous epoch. Rewinds to batch 0. */
void dataset_iter_begin_epoch(dataset_iter *it, int epoch);
/* Copies batch b of the current epoch into images (count, c, h, w) and
 * labels (count), augmenting if enabled; returns count (0 if b is out of
 * range). No allocation. Buffers hold batch_size samples. */
int dataset_iter_batch(const dataset_iter *it, int b, float *images, int32_t *labels);
/* The next batch of the epoch, or 0 when the epoch is done. */
int dataset_iter_next(dataset_iter *it, float *images, int32_t *labels);
/* Resume mid-epoch: the next call to dataset_iter_next returns batch b. */
void dataset_iter_seek(dataset_iter *it, int b);

#endif
