/* What a model records about the data it was trained on, so that every
 * later command can prove it reads the same data: the dataset's kind and
 * location (model_info.dataset and .data.location), and per split the
 * sample count and a fingerprint of the decoded data.
 *
 * The fingerprint is generic: it hashes what dataset_load() returns, so a
 * dataset kind is covered as soon as dataset_load() knows it. */
#ifndef MODA_DATASET_RECORD_H
#define MODA_DATASET_RECORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "dataset.h"
#include "sha256.h"
#include "status.h"

#define DATASET_LOCATION_LEN 1024
/* Fingerprints are shown shortened to this many hex digits in messages. */
#define DATASET_FINGERPRINT_SHOWN 12

typedef struct dataset_split_record {
    int samples;                     /* as loaded, before any per-class subset */
    char sha256[SHA256_HEX_LEN];     /* dataset_fingerprint() of the split */
} dataset_split_record;

typedef struct dataset_record {
    bool present; /* false: made by a version that recorded no fingerprints */
    char location[DATASET_LOCATION_LEN]; /* the data directory as given; "" = the kind's default */
    dataset_split_record split[2];       /* indexed by dataset_split */
} dataset_record;

/* The fingerprint of a split exactly as dataset_load() returned it (no
 * padding, not normalised; MODA_ERR_STATE otherwise): the lower-case hex
 * SHA-256 of
 *   "moda-dataset-fingerprint-1\n"
 *   n, c, h, w, K                 each a uint32, little-endian
 *   each class name, then a NUL   K of them, in class order
 *   labels                        n int32, little-endian
 *   images                        n*c*h*w float32 IEEE-754 bit patterns,
 *                                 little-endian, (n, c, h, w) order,
 *                                 the pixels as loaded in [0, 1]
 * Names given by a --names file are applied after fingerprinting: they
 * label the data, they do not change it. */
moda_status dataset_fingerprint(const dataset *ds, char hex[SHA256_HEX_LEN]);

/* Fills split `split` of rec from a split as loaded. */
moda_status dataset_record_split(dataset_record *rec, dataset_split split, const dataset *ds);

/* {"train": {"samples", "sha256"}, "test": {...}}; NULL when out of memory. */
json_t *dataset_record_splits_json(const dataset_record *rec);
/* The inverse; false with a reason in why on a malformed object. Sets
 * rec->present on success. */
bool dataset_record_splits_parse(json_t *splits, dataset_record *rec, char *why, size_t whylen);

/* Whether the split read (from `where`) is the split the record
 * describes. On a mismatch, MODA_ERR_STATE and a message naming both:
 * "<model>: the <split> data read does not match the data it was trained
 * on: recorded <kind> data at <location>, <n> samples, sha256 <prefix>;
 * read <where>: <n> samples, sha256 <prefix>". */
moda_status dataset_record_check(const dataset_record *rec, const char *kind, const char *model, dataset_split split,
                                 const dataset_split_record *read, const char *where, char *err, size_t errlen);

/* "train" or "test". */
const char *dataset_split_name(dataset_split split);

#endif
