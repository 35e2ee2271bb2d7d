/* The dataset record: fingerprints of decoded splits, their JSON form and
 * the check a command makes before it uses data for a model. */
#include "dataset_record.h"

#include <stdio.h>
#include <string.h>

#include "fileio.h"

#define FINGERPRINT_TAG "moda-dataset-fingerprint-1\n"
#define CHUNK 4096 /* values converted to little-endian bytes per update */

const char *dataset_split_name(dataset_split split) { return split == DATASET_TRAIN ? "train" : "test"; }

static void put_le32(uint8_t *b, uint32_t v) {
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

/* n 32-bit words as little-endian bytes, whatever the host's order. */
static void hash_words(sha256_ctx *c, const void *words, size_t n) {
    uint8_t buf[CHUNK * 4];
    const uint8_t *src = words;
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        for (size_t i = 0; i < m; i++) {
            uint32_t v;
            memcpy(&v, src + (off + i) * 4, 4);
            put_le32(buf + i * 4, v);
        }
        sha256_update(c, buf, m * 4);
    }
}

moda_status dataset_fingerprint(const dataset *ds, char hex[SHA256_HEX_LEN]) {
    if (!ds || !hex || !ds->images || !ds->labels || !ds->class_names) return MODA_ERR_NULL;
    if (ds->pad || ds->normalized) return MODA_ERR_STATE;
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, FINGERPRINT_TAG, strlen(FINGERPRINT_TAG));
    uint8_t shape[20];
    const int dims[5] = {ds->n, ds->c, ds->h, ds->w, ds->num_classes};
    for (int i = 0; i < 5; i++) put_le32(shape + 4 * i, (uint32_t)dims[i]);
    sha256_update(&c, shape, sizeof shape);
    for (int k = 0; k < ds->num_classes; k++) sha256_update(&c, ds->class_names[k], strlen(ds->class_names[k]) + 1);
    hash_words(&c, ds->labels, (size_t)ds->n);
    hash_words(&c, ds->images, (size_t)ds->n * ds->c * ds->h * ds->w);
    uint8_t digest[SHA256_DIGEST_LEN];
    sha256_final(&c, digest);
    sha256_to_hex(digest, hex);
    return MODA_OK;
}

moda_status dataset_record_split(dataset_record *rec, dataset_split split, const dataset *ds) {
    if (!rec) return MODA_ERR_NULL;
    MODA_TRY(dataset_fingerprint(ds, rec->split[split].sha256));
    rec->split[split].samples = ds->n;
    return MODA_OK;
}

json_t *dataset_record_splits_json(const dataset_record *rec) {
    json_t *o = json_object();
    for (int s = DATASET_TRAIN; o && s <= DATASET_TEST; s++) {
        json_t *split = json_pack("{si,ss}", "samples", rec->split[s].samples, "sha256", rec->split[s].sha256);
        if (!split || json_object_set_new(o, dataset_split_name((dataset_split)s), split) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static bool is_hex64(const char *s) {
    if (!s || strlen(s) != 64) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}

bool dataset_record_splits_parse(json_t *splits, dataset_record *rec, char *why, size_t whylen) {
    if (!json_is_object(splits)) {
        snprintf(why, whylen, "is not an object");
        return false;
    }
    for (int s = DATASET_TRAIN; s <= DATASET_TEST; s++) {
        const char *name = dataset_split_name((dataset_split)s);
        json_t *o = json_object_get(splits, name);
        json_t *n = json_object_get(o, "samples");
        const char *hex = json_string_value(json_object_get(o, "sha256"));
        if (!json_is_integer(n) || json_integer_value(n) < 1 || json_integer_value(n) > INT32_MAX || !is_hex64(hex)) {
            snprintf(why, whylen, "needs \"%s\" with a positive \"samples\" and a lower-case hex \"sha256\"", name);
            return false;
        }
        rec->split[s].samples = (int)json_integer_value(n);
        snprintf(rec->split[s].sha256, sizeof rec->split[s].sha256, "%s", hex);
    }
    rec->present = true;
    return true;
}

moda_status dataset_record_check(const dataset_record *rec, const char *kind, const char *model, dataset_split split,
                                 const dataset_split_record *read, const char *where, char *err, size_t errlen) {
    if (!rec || !kind || !model || !read || !where) return MODA_ERR_NULL;
    const dataset_split_record *want = &rec->split[split];
    if (want->samples == read->samples && !strcmp(want->sha256, read->sha256)) return MODA_OK;
    char at[DATASET_LOCATION_LEN + 32];
    if (rec->location[0]) snprintf(at, sizeof at, "%s", rec->location);
    else snprintf(at, sizeof at, "its default location");
    fileio_errf(err, errlen,
                "%s: the %s data read does not match the data it was trained on: recorded %s data at %s, %d samples, "
                "sha256 %.*s; read %s: %d samples, sha256 %.*s",
                model, dataset_split_name(split), kind, at, want->samples, DATASET_FINGERPRINT_SHOWN, want->sha256,
                where, read->samples, DATASET_FINGERPRINT_SHOWN, read->sha256);
    return MODA_ERR_STATE;
}
