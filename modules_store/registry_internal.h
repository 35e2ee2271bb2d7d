/* Pieces shared by the registry reader and writer: the index, the manifest,
 * and the two tensor files. Not part of the public API. */
#ifndef MODA_REGISTRY_INTERNAL_H
#define MODA_REGISTRY_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "json_check.h"
#include "registry.h"
#include "safetensors.h"
#include "sha256.h"

/* Bounds on what a reader accepts, so a hostile file cannot make it
 * allocate without limit. */
#define REGISTRY_INDEX_MAX_BYTES ((size_t)64 << 20)
#define REGISTRY_MANIFEST_MAX_BYTES ((size_t)256 << 20)
#define REGISTRY_DATA_MAX_BYTES ((uint64_t)64 << 30)
#define REGISTRY_MAX_CLASSES 1000000 /* class indices stay below this */

/* Numbers in the manifest and index: 15 digits print every double we
 * write exactly enough and keep short values short. */
#define REGISTRY_JSON_FLAGS (JSON_INDENT(1) | JSON_REAL_PRECISION(15))

typedef struct registry_entry {
    char name[REGISTRY_NAME_MAX + 1];
    char manifest[REGISTRY_NAME_MAX + 1]; /* its file in <name>/: "manifest.json" or "manifest.<16 hex>.json" */
    char sha256[SHA256_HEX_LEN];          /* of that file */
} registry_entry;

struct registry {
    char *root;
    registry_entry *entries; /* (n), owned */
    int n;
};

/* "<a>/<b>" (or "<a>/<b>/<c>" when c is non-NULL) into buf; false if it
 * does not fit. */
bool registry_path(char *buf, size_t size, const char *a, const char *b, const char *c);
/* Exactly 64 hex digits (either case). */
bool registry_is_sha256_hex(const char *s);

/* ---- index.json (index.c) -------------------------------------------- */

/* Whether file is a manifest file name the index may give. */
bool registry_manifest_name_valid(const char *file);

/* Parse and validate index text; entries are owned by the caller. */
moda_status registry_index_parse(const char *text, size_t len, const char *file, registry_entry **entries, int *n,
                                 char *err, size_t errlen);
/* The index document for entries (malloc'd text), NULL when out of memory. */
char *registry_index_dump(const registry_entry *entries, int n);

/* ---- manifest.json (manifest.c) -------------------------------------- */

typedef struct registry_file_info {
    char path[REGISTRY_NAME_MAX + 1]; /* a plain file name inside the model directory */
    char sha256[SHA256_HEX_LEN];      /* of the file's bytes (compressed) */
    uint64_t bytes;                   /* its size */
} registry_file_info;

/* A trained or composed model lists weights and rates; a patched one only
 * its calibration layer. */
enum { REGISTRY_FILE_WEIGHTS, REGISTRY_FILE_RATES, REGISTRY_FILE_CALIBRATION, REGISTRY_N_FILES };
#define REGISTRY_CALIBRATION_FILE "calibration.safetensors.zst"

/* Module stats the manifest can hold: complete, fractions in [0, 1], tau
 * in [0, 1], layer nodes within the graph. */
bool registry_stats_valid(const module_stats *st, int n_nodes);

/* The manifest text (malloc'd), or NULL with a message (a class name that
 * is not UTF-8, or out of memory).
 * training is the training config object (borrowed); origin is NULL for a
 * trained model. patched (borrowed) is NULL but for a patched model, which
 * has no module stats (st NULL) and lists only its calibration file. */
char *registry_manifest_dump(const char *name, const graph *g, const model_info *mi, const registry_origin *origin,
                             json_t *patched, json_t *training, double test_acc, const module_stats *st,
                             const registry_file_info files[REGISTRY_N_FILES], char *err, size_t errlen);

/* The training config for a manifest from a checkpoint's metadata document
 * or a plain object (see registry_write_model); NULL text gives {}. */
moda_status registry_training_config(const char *train_json, json_t **out, char *err, size_t errlen);

/* The graph as the manifest records it. */
json_t *registry_graph_json(const graph *g);

/* Parse a manifest: m->name, info, test_acc, stats and (for a composed
 * model) composed and origin are filled; files
 * and the "architecture" object (a new reference) are returned for the
 * loader to check. `name` is the model name the index gave. */
moda_status registry_manifest_parse(const char *text, const char *file, const char *name, registry_model *m,
                                    registry_file_info files[REGISTRY_N_FILES], json_t **arch, char *err,
                                    size_t errlen);

/* Compare the manifest's architecture (parameter count and graph) with
 * the model rebuilt from it; built_from names what it was rebuilt from in
 * messages ("the architecture fields"). g need not be finalized. */
moda_status registry_manifest_check_graph(json_t *arch, const graph *g, const char *built_from, const char *file,
                                          char *err, size_t errlen);

/* ---- composed models (composed.c, graph_replay.c) -------------------- */

/* An origin a manifest can hold for a model of num_classes outputs: a
 * valid parent name and sha256, tau in [0, 1], distinct classes >= 0. */
bool registry_origin_valid(const registry_origin *o, int num_classes);

/* Rebuild a composed model's graph on be from the manifest's node list
 * (arch is the "architecture" object, mi its parsed fields): each node
 * replayed with its kind, inputs, channels, kernel, stride, padding,
 * groups and bias, then checked against the stored shapes and parameter
 * names and finalized. */
moda_status registry_graph_replay(json_t *arch, const model_info *mi, moda_backend *be, const char *file,
                                  graph **out, char *err, size_t errlen);

/* ---- patched models (patched.c) ---------------------------------------- */

/* The manifest's "patched" object; NULL when out of memory. */
json_t *registry_patch_json(const registry_patch *p);
/* Parse root's "patched" into m->patch (m->info parsed first) and set
 * m->patched. */
void registry_patch_parse(jcheck *c, json_t *root, registry_model *m);
/* The strong parent's single-class module for class cls at tau, on be. */
moda_status registry_patch_module(const registry_model *strong, int cls, float tau, moda_backend *be, graph **out,
                                  char *err, size_t errlen);
/* Finish loading patched model m (its manifest parsed from path): load
 * both parents from reg and check their hashes, compose the module, read
 * the calibration file and join them into m->g, checked against arch.
 * depth counts patched models being loaded above this one. */
moda_status registry_patched_load(const registry *reg, registry_model *m, json_t *arch, const char *path,
                                  const registry_file_info *cal_info, moda_backend *be, int depth, char *err,
                                  size_t errlen);
/* registry_load_model for a model `depth` patched models down. */
moda_status registry_load_model_depth(const registry *reg, const char *name, moda_backend *be, int depth,
                                      registry_model *out, char *err, size_t errlen);

/* ---- weights and rates files (tensor_files.c) ------------------------ */

/* The uncompressed safetensors images. */
moda_status registry_weights_serialize(const graph *g, uint8_t **out, size_t *len, char *err, size_t errlen);
moda_status registry_rates_serialize(const rates *r, uint8_t **out, size_t *len, char *err, size_t errlen);

/* r must describe g's tracked layers (the layout rates_alloc gives) with
 * rates in [0, 1] and counts in [0, 2^24]. */
moda_status registry_rates_check(const graph *g, const rates *r, char *err, size_t errlen);

/* Read `path`, check its size and sha256 against info, decompress (at most
 * max_out bytes) and parse it as safetensors. *out owns the bytes. */
moda_status registry_open_tensor_file(const char *path, const registry_file_info *info, size_t max_out,
                                      safetensors_file **out, char *err, size_t errlen);

/* Load every parameter of g from f (exact tensor set, shapes, finite). */
moda_status registry_weights_load(const safetensors_file *f, const char *path, graph *g, char *err,
                                  size_t errlen);
/* A calibration layer's safetensors image: "weight" (K, K), "bias" (K). */
moda_status registry_calibration_serialize(int k, const float *w, const float *b, uint8_t **out, size_t *len,
                                           char *err, size_t errlen);
/* Read and check the calibration file at path (as info describes it) for
 * K classes: *w (K, K) and *b (K), malloc'd, finite. */
moda_status registry_calibration_load(const char *path, const registry_file_info *info, int k, float **w, float **b,
                                      char *err, size_t errlen);
/* Allocate r for g and K classes and fill it from f. */
moda_status registry_rates_load(const safetensors_file *f, const char *path, const graph *g, int num_classes,
                                rates *r, char *err, size_t errlen);

#endif
