/* The model registry on disk (docs/design.md section 6):
 *
 *   <root>/index.json                {"format":1,"models":[{"name","manifest","sha256"}]}
 *   <root>/<model>/manifest.json     (or manifest.<16 hex>.json, as the index says)
 *                                    architecture and its graph, input shape and
 *                                    normalisation, class names, the training data's
 *                                    record (optional), training config,
 *                                    test accuracy, module stats, files + sha256
 *   <root>/<model>/weights.safetensors.zst  every parameter and BN buffer
 *   <root>/<model>/rates.safetensors.zst    "rates.<l>" (K, N_l) per tracked layer,
 *                                           "class_count" (K)
 *
 * Every file is written atomically (temp file, fsync, rename); a model's
 * data files come first, then its manifest, and index.json last: the index
 * is the commit point. A new version of a model never overwrites a file of
 * the version the index names: a file name in use gets the first 16 hex
 * digits of the new content's sha256 before its extension
 * ("weights.<hex>.safetensors.zst", "manifest.<hex>.json"; the index
 * names the manifest file), so a writer killed at any moment leaves the
 * old version whole or the new one committed. After the commit the old
 * version's files, and temp files of killed writers, are removed. Writers
 * in any process take turns through a lock on <root>/.lock. A reader that
 * read the index just before a replacement may find the old files gone
 * (never mixed data); it can retry.
 *
 * Reading verifies everything before handing anything out: JSON types and
 * required keys, the manifest's sha256 against the index, each file's size
 * and sha256 against the manifest, decompression, safetensors structure,
 * every tensor's shape against the model rebuilt from the manifest's
 * architecture fields, and the manifest's graph against that model. Each
 * failure returns MODA_ERR_FORMAT (bad content), MODA_ERR_NOT_FOUND (no
 * registry, unknown model) or MODA_ERR_IO (unreadable file) with a message
 * "<file>: <problem>".
 *
 * A composed model (docs/design.md section 3) is stored like any other, with an
 * "origin" object in its manifest: the parent model's name and manifest
 * sha256, the parent's class index of each output, and tau. Its
 * architecture fields are the parent's (num_classes: its own), and since
 * they cannot describe per-layer channel counts, its graph is rebuilt from
 * the manifest's node list and checked against the stored shapes and
 * parameter names as for any model. Its rates are the parent's sliced to
 * the kept units (compose_rates), its class names and input normalisation
 * the parent's, so it can be composed again.
 *
 * A patched model (module replacement, docs/design.md section 2) stores
 * only what is its own: a "patched" object naming its two parents (weak
 * and strong, each by name and manifest sha256, both in the same
 * registry), the class (its name and its index in each parent), tau, how
 * the calibration layer was trained and the accuracies measured, and the
 * file calibration.safetensors.zst ("weight" (K, K), "bias" (K)). Its
 * input, classes and data record are the weak parent's. Loading it loads
 * both parents (their manifests must still hash as recorded), composes the
 * strong parent's module for the class at tau and joins the three into one
 * graph (registry_patched_graph), which must equal the node list the
 * manifest stores. It has no rates: it cannot be composed. */
#ifndef MODA_REGISTRY_H
#define MODA_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "compose.h"
#include "decompose.h"
#include "graph.h"
#include "model_info.h"
#include "sha256.h"

#define REGISTRY_FORMAT 1
#define REGISTRY_NAME_MAX 64
#define REGISTRY_INDEX_FILE "index.json"
#define REGISTRY_MANIFEST_FILE "manifest.json"
#define REGISTRY_WEIGHTS_FILE "weights.safetensors.zst"
#define REGISTRY_RATES_FILE "rates.safetensors.zst"
#define REGISTRY_LOCK_FILE ".lock" /* empty; writers lock it to take turns */

/* Model names are [A-Za-z0-9._-]{1,64}, not starting with '.', and not
 * "index.json": each is a directory name under the root. */
bool registry_name_valid(const char *name);

/* Write (or replace) model `name` under root, creating directories as
 * needed, then add it to index.json (an entry of the same name is replaced
 * in place). train_json is the checkpoint's "moda" metadata document (its
 * "train" object, with the dataset, subset and epochs done, becomes the
 * manifest's training config) or any JSON object used as is; NULL for none.
 * test_acc is a fraction in [0, 1]. r must hold rates for g's tracked
 * layers and st the module stats computed from them. */
moda_status registry_write_model(const char *root, const char *name, const graph *g, const model_info *mi,
                                 const char *train_json, double test_acc, const rates *r, const module_stats *st,
                                 char *err, size_t errlen);

/* Where a composed model came from: its manifest's "origin". */
typedef struct registry_origin {
    char model[REGISTRY_NAME_MAX + 1];    /* the parent model's name */
    char manifest_sha256[SHA256_HEX_LEN]; /* the parent's manifest it was composed from */
    int n_classes;
    int *classes; /* (n_classes) the parent's class index of each output, owned */
    float tau;    /* activation-rate threshold of the composition */
    compose_mode mode; /* "origin.mode"; absent in the manifest for tied */
} registry_origin;

void registry_origin_free(registry_origin *o); /* accepts NULL; leaves *o zeroed */

/* Write a composed model: as registry_write_model, plus its origin (with
 * one class per output of g). */
moda_status registry_write_composed(const char *root, const char *name, const graph *g, const model_info *mi,
                                    const registry_origin *origin, const char *train_json, double test_acc,
                                    const rates *r, const module_stats *st, char *err, size_t errlen);

/* A model a patched model depends on. */
typedef struct registry_parent {
    char model[REGISTRY_NAME_MAX + 1];
    char manifest_sha256[SHA256_HEX_LEN];
} registry_parent;

/* Rows of a patched model's measured accuracies, in percent (fractions in
 * the manifest): the weak
 * model, patched (uncalibrated), the weak model calibrated alone (the
 * control), patched and calibrated (the model as served), and CNNSplitter's
 * untrained strategy; each overall and on the class. */
enum { PATCH_ACC_WEAK, PATCH_ACC_PATCHED, PATCH_ACC_WEAK_CALIBRATED, PATCH_ACC_PATCHED_CALIBRATED, PATCH_ACC_BASELINE,
       PATCH_ACC_ROWS };

/* A patched model's manifest object "patched". */
typedef struct registry_patch {
    registry_parent weak, strong;
    char class_name[256];
    int weak_class, strong_class;
    float tau;
    double module_params; /* the module's share of the strong model's parameters */
    /* How the calibration layer was trained, and on what. */
    char optimizer[8]; /* "adam" | "sgd" */
    int epochs, batch_size;
    double lr;
    unsigned long long seed;
    int train_samples;
    char train_sha256[SHA256_HEX_LEN]; /* dataset_fingerprint of the training split read ("" if unknown) */
    double acc[PATCH_ACC_ROWS][2];
} registry_patch;

/* The graph of a patched model on be: weak's layers (parameters "weak.*")
 * and the module's ("module.*") side by side on one input, then
 *   logits = calibration.logits(weak logits) + calibration.module(module logit)
 * where calibration.logits is the K x K layer w with column t zeroed, and
 * bias b, and calibration.module the K x 1 column t of w: exactly
 * w . (weak logits with logit t replaced by the module's) + b. module has
 * one output; w is (K, K) and b (K) for weak's K outputs. */
moda_status registry_patched_graph(const graph *weak, const graph *module, int t, const float *w, const float *b,
                                   moda_backend *be, graph **out);

typedef struct registry registry; /* opaque: the root and the validated index */

/* Whether root is an http:// or https:// URL rather than a directory. */
bool registry_is_url(const char *root);

/* How registries behind a URL are mirrored and fetched. The library reads
 * no environment: the programs fill this from it (MODA_REGISTRY_CACHE,
 * XDG_CACHE_HOME, HOME, MODA_REGISTRY_TIMEOUT). A NULL pointer, or a NULL
 * or empty field, takes the default. The strings are not copied. */
typedef struct registry_remote_options {
    const char *cache_dir;  /* mirrors go here; default: <cache_home>/moda/registries */
    const char *cache_home; /* the user's cache directory; default: <home>/.cache */
    const char *home;       /* the user's home; default: mirrors go in /tmp/moda-registries */
    long timeout_s;         /* no connection, or no progress, for this long fails a download;
                             * 0: 15 s to connect, 60 s without progress */
} registry_remote_options;

/* timeout_s from its text (MODA_REGISTRY_TIMEOUT): whole seconds from 1 to
 * 86400; 0 (the defaults) for NULL or anything else. */
long registry_timeout_parse(const char *text);

/* The options from the programs' settings: MODA_REGISTRY_CACHE,
 * XDG_CACHE_HOME, HOME and MODA_REGISTRY_TIMEOUT. lookup names how a
 * setting is read (getenv, at the programs' edges); NULL from it means
 * unset. The strings are the lookup's, not copied. */
registry_remote_options registry_remote_options_from(char *(*lookup)(const char *name));

/* Bring the local mirror of the registry at url up to date (see
 * registry_remote.c) and put its directory in local: the options' cache
 * directory, then a directory per URL. Only what changed is downloaded;
 * every file is checked against its sha256 before it is written. Network
 * failures are MODA_ERR_IO, a missing file MODA_ERR_NOT_FOUND, bad content
 * MODA_ERR_FORMAT, each with "<url>: <problem>". */
moda_status registry_mirror(const char *url, const registry_remote_options *remote, char *local, size_t local_len,
                            char *err, size_t errlen);

/* Read and validate <root>/index.json. MODA_ERR_NOT_FOUND when it does not
 * exist. root may be a URL: registry_open then reads the mirror (fetched
 * as remote says; NULL for the defaults), which registry_root() names;
 * writing to a URL is refused. */
moda_status registry_open(const char *root, const registry_remote_options *remote, registry **out, char *err,
                          size_t errlen);
void registry_close(registry *reg); /* accepts NULL */

const char *registry_root(const registry *reg);
int registry_count(const registry *reg);
const char *registry_name(const registry *reg, int i); /* NULL when out of range */
int registry_find(const registry *reg, const char *name); /* index or -1 */

/* A model from the registry. */
typedef struct registry_model {
    char name[REGISTRY_NAME_MAX + 1];
    model_info info;       /* architecture, preprocessing, class names; owned */
    double test_acc;       /* fraction */
    module_stats stats;    /* as stored, at stats.tau; owned (freed by registry_model_free) */
    char *manifest_json;   /* the manifest's text, owned */
    graph *g;              /* weights loaded; NULL from registry_read_manifest */
    rates r;               /* zeroed from registry_read_manifest */
    char manifest_sha256[SHA256_HEX_LEN]; /* of the manifest as read (lower-case hex) */
    bool composed;         /* composed from another model; origin is then set */
    registry_origin origin; /* owned; zeroed for a trained model */
    bool patched;          /* a patched model; patch is then set, r and stats are empty */
    registry_patch patch;
} registry_model;

/* Only the manifest: verified against the index and parsed, for listing
 * models without loading their weights. */
moda_status registry_read_manifest(const registry *reg, const char *name, registry_model *out, char *err,
                                   size_t errlen);
/* The whole model: manifest, the graph rebuilt on be with its weights, and
 * the rates, all verified. */
moda_status registry_load_model(const registry *reg, const char *name, moda_backend *be, registry_model *out,
                                char *err, size_t errlen);
void registry_model_free(registry_model *m); /* accepts NULL; leaves *m zeroed */

/* Write patched model `name` into root, the registry holding both parents
 * (weak and strong, loaded from it): patch describes it (parents' names
 * and hashes are taken from the models), w (K, K) and b (K) are its
 * calibration layer. The parents must read the same input (the patched
 * graph has one); MODA_ERR_ARG says why not. Atomic like any model. */
moda_status registry_write_patched(const char *root, const char *name, const registry_model *weak,
                                   const registry_model *strong, const registry_patch *patch, const float *w,
                                   const float *b, char *err, size_t errlen);

/* The model info and origin of a model composed from `parent` (a loaded
 * model or a manifest) for its classes[0..n) in output order at tau: the
 * parent's architecture and input normalisation, n classes named as the
 * parent names them. On success the caller frees both (model_info_free,
 * registry_origin_free). */
moda_status registry_composed_info(const registry_model *parent, const int *classes, int n, float tau,
                                   model_info *mi, registry_origin *origin);

#endif
