/* Writing a model into the registry: tensor files, then the manifest, then
 * the index, each replaced atomically. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "fileio.h"
#include "zstd_io.h"
#include "registry_internal.h"

#define PATH_LEN 4096

/* The files of a model's committed version: a new version never
 * overwrites one of them, so a writer killed at any point leaves the
 * version the index names complete. */
typedef struct in_use {
    char names[1 + REGISTRY_N_FILES][REGISTRY_NAME_MAX + 1];
    int n;
    bool unknown; /* the committed manifest could not be read: avoid every fixed name */
} in_use;

static bool is_in_use(const in_use *u, const char *file) {
    for (int i = 0; i < u->n; i++)
        if (!strcmp(u->names[i], file)) return true;
    return false;
}

/* A file of the new version: the fixed name when the committed version
 * does not use it, else the name with the first 16 hex digits of the
 * content's sha256 before its extension ("weights.<hex>.safetensors.zst",
 * "manifest.<hex>.json"). Content-addressed, so a name the committed
 * version uses holds the same bytes. */
static void version_name(char *out, size_t len, const char *fixed, const char *sha_hex, const in_use *u) {
    if (!u->unknown && !is_in_use(u, fixed)) {
        snprintf(out, len, "%s", fixed);
        return;
    }
    const char *dot = strchr(fixed, '.');
    int stem = dot ? (int)(dot - fixed) : (int)strlen(fixed);
    snprintf(out, len, "%.*s.%.16s%s", stem, fixed, sha_hex, dot ? dot : "");
}

/* Compress raw, write it into dir under its version name, atomically, and
 * describe it in info. */
static moda_status write_compressed(const char *dir, const char *file, const uint8_t *raw, size_t len,
                                    const in_use *u, registry_file_info *info, char *err, size_t errlen) {
    uint8_t *z = NULL;
    size_t zlen = 0;
    char why[FILEIO_ERR_LEN] = "", path[PATH_LEN], name[REGISTRY_NAME_MAX + 1];
    moda_status s = zstdio_compress(raw, len, ZSTDIO_DEFAULT_LEVEL, &z, &zlen, why, sizeof why);
    if (s != MODA_OK) {
        fileio_errf(err, errlen, "%s/%s: %s", dir, file, why);
        return s;
    }
    sha256_hex(z, zlen, info->sha256);
    version_name(name, sizeof name, file, info->sha256, u);
    if (!registry_path(path, sizeof path, dir, name, NULL)) {
        fileio_errf(err, errlen, "%s: path too long", dir);
        s = MODA_ERR_ARG;
    }
    if (s == MODA_OK) s = fileio_write_atomic(path, z, zlen, err, errlen);
    if (s == MODA_OK) {
        snprintf(info->path, sizeof info->path, "%s", name);
        info->bytes = zlen;
    }
    free(z);
    return s;
}

/* Write a manifest text, with a final newline, into dir under its version
 * name (put in file); its sha256 into hex. */
static moda_status write_manifest(const char *dir, const char *text, const in_use *u, char file[REGISTRY_NAME_MAX + 1],
                                  char hex[SHA256_HEX_LEN], char *err, size_t errlen) {
    size_t n = strlen(text);
    char *buf = malloc(n + 2), path[PATH_LEN];
    if (!buf) {
        fileio_errf(err, errlen, "%s: out of memory", dir);
        return MODA_ERR_NOMEM;
    }
    memcpy(buf, text, n);
    buf[n] = '\n';
    sha256_hex(buf, n + 1, hex);
    version_name(file, REGISTRY_NAME_MAX + 1, REGISTRY_MANIFEST_FILE, hex, u);
    moda_status s = registry_path(path, sizeof path, dir, file, NULL) ? MODA_OK : MODA_ERR_ARG;
    if (s != MODA_OK) fileio_errf(err, errlen, "%s: path too long", dir);
    else s = fileio_write_atomic(path, buf, n + 1, err, errlen);
    free(buf);
    return s;
}

/* Write a JSON text with a final newline (the index). */
static moda_status write_json_text(const char *path, const char *text, char *err, size_t errlen) {
    size_t n = strlen(text);
    char *buf = malloc(n + 2);
    if (!buf) {
        fileio_errf(err, errlen, "%s: out of memory", path);
        return MODA_ERR_NOMEM;
    }
    memcpy(buf, text, n);
    buf[n] = '\n';
    moda_status s = fileio_write_atomic(path, buf, n + 1, err, errlen);
    free(buf);
    return s;
}

/* What the index commits for `name` now (the caller holds the lock): its
 * manifest file and the data files that manifest lists. */
static void committed_files(const char *root, const char *name, in_use *u) {
    memset(u, 0, sizeof(*u));
    char path[PATH_LEN];
    uint8_t *text = NULL;
    size_t len = 0;
    registry_entry *entries = NULL;
    int n = 0;
    if (!registry_path(path, sizeof path, root, REGISTRY_INDEX_FILE, NULL) ||
        fileio_read_all(path, REGISTRY_INDEX_MAX_BYTES, &text, &len, NULL, 0) != MODA_OK)
        return; /* no index: nothing is committed */
    if (registry_index_parse((const char *)text, len, path, &entries, &n, NULL, 0) != MODA_OK) u->unknown = true;
    free(text);
    const registry_entry *e = NULL;
    for (int i = 0; i < n; i++)
        if (!strcmp(entries[i].name, name)) e = &entries[i];
    if (e) {
        snprintf(u->names[u->n++], sizeof u->names[0], "%s", e->manifest);
        json_t *m = NULL;
        if (registry_path(path, sizeof path, root, name, e->manifest)) m = json_load_file(path, 0, NULL);
        json_t *files = json_object_get(m, "files");
        const char *key;
        json_t *f;
        if (!files) u->unknown = true;
        json_object_foreach(files, key, f) {
            const char *p = json_string_value(json_object_get(f, "path"));
            if (p && u->n < 1 + REGISTRY_N_FILES) snprintf(u->names[u->n++], sizeof u->names[0], "%.64s", p);
        }
        json_decref(m);
    }
    free(entries);
}

static void remove_stale(const char *dir, const in_use *now);

/* remove_stale for the version of manifest and files just committed. */
static void remove_stale_versions(const char *dir, const char *manifest, const registry_file_info files[REGISTRY_N_FILES]) {
    in_use now = {0};
    snprintf(now.names[now.n++], sizeof now.names[0], "%s", manifest);
    for (int f = 0; f < REGISTRY_N_FILES; f++)
        if (files[f].path[0]) snprintf(now.names[now.n++], sizeof now.names[0], "%.64s", files[f].path);
    remove_stale(dir, &now);
}

/* After the index names the new version: remove the model's files that it
 * does not use (the replaced version's, and temp files of writers killed
 * mid-write; the lock keeps out live ones). */
static void remove_stale(const char *dir, const in_use *now) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        const char *f = ent->d_name;
        size_t n = strlen(f);
        bool ours = (!strncmp(f, "manifest.", 9) && n > 5 && !strcmp(f + n - 5, ".json")) || strstr(f, ".tmp.") ||
                    ((!strncmp(f, "weights.", 8) || !strncmp(f, "rates.", 6) || !strncmp(f, "calibration.", 12)) &&
                     n > 16 && !strcmp(f + n - 16, ".safetensors.zst"));
        char path[PATH_LEN];
        if (ours && !is_in_use(now, f) && registry_path(path, sizeof path, dir, f, NULL)) (void)unlink(path);
    }
    closedir(d);
}

/* Writers of one registry take turns: an exclusive lock on a side file is
 * held from the first data file to the index update, so concurrent writes
 * of the same model cannot interleave their files and concurrent additions
 * of different models cannot lose an index entry. Returns the locked file
 * descriptor (closing it unlocks) or -1. */
static int lock_registry(const char *root, char *err, size_t errlen) {
    char lock[PATH_LEN];
    if (!registry_path(lock, sizeof lock, root, REGISTRY_LOCK_FILE, NULL)) {
        fileio_errf(err, errlen, "%s: path too long", root);
        return -1;
    }
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fileio_errf(err, errlen, "%s: cannot open: %s", lock, strerror(errno));
        return -1;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET}; /* the whole file */
    int rc;
    while ((rc = fcntl(fd, F_SETLKW, &fl)) != 0 && errno == EINTR) {
    }
    if (rc != 0) {
        fileio_errf(err, errlen, "%s: cannot lock: %s", lock, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Read-modify-write of index.json (the caller holds the lock). */
static moda_status update_index(const char *root, const char *name, const char *manifest_file,
                                const char *manifest_sha, char *err, size_t errlen) {
    char index[PATH_LEN];
    if (!registry_path(index, sizeof index, root, REGISTRY_INDEX_FILE, NULL)) {
        fileio_errf(err, errlen, "%s: path too long", root);
        return MODA_ERR_ARG;
    }
    registry_entry *entries = NULL;
    int n = 0;
    moda_status s = MODA_OK;
    struct stat st;
    if (stat(index, &st) == 0 || errno != ENOENT) {
        /* An unreadable or invalid index is left alone rather than
         * replaced by one that would forget its models. */
        uint8_t *text = NULL;
        size_t len = 0;
        s = fileio_read_all(index, REGISTRY_INDEX_MAX_BYTES, &text, &len, err, errlen);
        if (s == MODA_OK) s = registry_index_parse((const char *)text, len, index, &entries, &n, err, errlen);
        free(text);
    }
    int at = -1;
    for (int i = 0; s == MODA_OK && i < n; i++)
        if (!strcmp(entries[i].name, name)) at = i;
    if (s == MODA_OK && at < 0) {
        registry_entry *grown = realloc(entries, ((size_t)n + 1) * sizeof(*grown));
        if (!grown) {
            fileio_errf(err, errlen, "%s: out of memory", index);
            s = MODA_ERR_NOMEM;
        } else {
            entries = grown;
            at = n++;
            memset(&entries[at], 0, sizeof(entries[at]));
            snprintf(entries[at].name, sizeof entries[at].name, "%s", name);
        }
    }
    if (s == MODA_OK) {
        snprintf(entries[at].sha256, sizeof entries[at].sha256, "%s", manifest_sha);
        snprintf(entries[at].manifest, sizeof entries[at].manifest, "%s", manifest_file);
        char *text = registry_index_dump(entries, n);
        if (!text) {
            fileio_errf(err, errlen, "%s: cannot encode the index", index);
            s = MODA_ERR_NOMEM;
        } else {
            s = write_json_text(index, text, err, errlen);
            free(text);
        }
    }
    free(entries);
    return s;
}

static bool is_utf8(const char *s) {
    json_t *js = s ? json_string(s) : NULL; /* Jansson validates */
    json_decref(js);
    return js != NULL;
}

static moda_status check_inputs(const char *name, const graph *g, const model_info *mi,
                                const registry_origin *origin, double test_acc, const rates *r,
                                const module_stats *st, char *err, size_t errlen) {
    if (!registry_name_valid(name)) {
        fileio_errf(err, errlen, "invalid model name \"%s\": use 1 to %d of A-Z a-z 0-9 . _ - (not starting "
                    "with '.')", name, REGISTRY_NAME_MAX);
        return MODA_ERR_ARG;
    }
    const model_config *m = &mi->model;
    if (!g->finalized || g->nodes[g->output].c != m->num_classes || g->in_c != m->in_channels ||
        g->in_h != m->input_size || g->in_w != m->input_size) {
        fileio_errf(err, errlen, "the graph does not match the model info (%s, %d classes)", model_arch_name(m->arch),
                    m->num_classes);
        return MODA_ERR_ARG;
    }
    if (!mi->class_names || mi->channels != m->in_channels) {
        fileio_errf(err, errlen, "model info lacks class names or has %d channels for %d inputs", mi->channels,
                    m->in_channels);
        return MODA_ERR_ARG;
    }
    /* JSON strings must be UTF-8; checked now so no file is written. */
    if (!is_utf8(mi->dataset)) {
        fileio_errf(err, errlen, "the dataset name is not valid UTF-8");
        return MODA_ERR_ARG;
    }
    for (int k = 0; k < m->num_classes; k++)
        if (!is_utf8(mi->class_names[k])) {
            fileio_errf(err, errlen, "class name %d is missing or not valid UTF-8", k);
            return MODA_ERR_ARG;
        }
    if (!(test_acc >= 0.0 && test_acc <= 1.0)) {
        fileio_errf(err, errlen, "test accuracy %g is not a fraction in [0, 1]", test_acc);
        return MODA_ERR_ARG;
    }
    if (r->num_classes != m->num_classes || st->num_classes != m->num_classes) {
        fileio_errf(err, errlen, "rates (%d classes) or module stats (%d) do not match the model's %d classes",
                    r->num_classes, st->num_classes, m->num_classes);
        return MODA_ERR_ARG;
    }
    if (origin && !registry_origin_valid(origin, m->num_classes)) {
        fileio_errf(err, errlen, "invalid origin: it needs a valid parent name and manifest sha256, tau in [0, 1] "
                    "and %d distinct parent classes", m->num_classes);
        return MODA_ERR_ARG;
    }
    if (!registry_stats_valid(st, g->n_nodes)) {
        fileio_errf(err, errlen, "module stats are incomplete or not fractions in [0, 1]");
        return MODA_ERR_ARG;
    }
    moda_status s = registry_rates_check(g, r, err, errlen);
    return s == MODA_OK ? s : MODA_ERR_ARG;
}

/* What a model's manifest is made of, besides its files. */
typedef struct manifest_parts {
    const graph *g;
    const model_info *mi;
    const registry_origin *origin; /* composed models */
    json_t *patched;               /* patched models */
    json_t *training;
    double test_acc;
    const module_stats *st;        /* NULL for a patched model */
} manifest_parts;

/* Write one version of model `name` and commit it: under the registry's
 * lock, each image (NULL: none) as its file kind, compressed, under a
 * name the committed version does not use, then the manifest, then the
 * index (the commit), then the replaced version's files go. */
static moda_status commit_version(const char *root, const char *name, uint8_t *const image[REGISTRY_N_FILES],
                                  const size_t len[REGISTRY_N_FILES], const manifest_parts *m, char *err,
                                  size_t errlen) {
    static const char *const fixed[REGISTRY_N_FILES] = {REGISTRY_WEIGHTS_FILE, REGISTRY_RATES_FILE,
                                                       REGISTRY_CALIBRATION_FILE};
    char dir[PATH_LEN];
    registry_file_info files[REGISTRY_N_FILES];
    memset(files, 0, sizeof files);
    if (!registry_path(dir, sizeof dir, root, name, NULL))
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: path too long", root);
    moda_status s = fileio_mkdir_p(root, err, errlen);
    int lock = -1;
    if (s == MODA_OK && (lock = lock_registry(root, err, errlen)) < 0) s = MODA_ERR_IO;
    in_use old;
    if (s == MODA_OK) committed_files(root, name, &old);
    if (s == MODA_OK) s = fileio_mkdir_p(dir, err, errlen);
    for (int f = 0; s == MODA_OK && f < REGISTRY_N_FILES; f++)
        if (image[f]) s = write_compressed(dir, fixed[f], image[f], len[f], &old, &files[f], err, errlen);
    char sha[SHA256_HEX_LEN], manifest[REGISTRY_NAME_MAX + 1];
    if (s == MODA_OK) {
        char *text = registry_manifest_dump(name, m->g, m->mi, m->origin, m->patched, m->training, m->test_acc, m->st,
                                            files, err, errlen);
        if (!text) s = MODA_ERR_ARG;
        else s = write_manifest(dir, text, &old, manifest, sha, err, errlen);
        free(text);
    }
    if (s == MODA_OK) s = update_index(root, name, manifest, sha, err, errlen); /* the commit */
    if (s == MODA_OK) remove_stale_versions(dir, manifest, files);
    if (lock >= 0) close(lock); /* releases the lock */
    return s;
}

/* A trained model when origin is NULL, else a composed one. */
static moda_status write_model(const char *root, const char *name, const graph *g, const model_info *mi,
                               const registry_origin *origin, const char *train_json, double test_acc,
                               const rates *r, const module_stats *st, char *err, size_t errlen) {
    if (registry_is_url(root))
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: a registry behind a URL is read-only; write to a directory",
                           root);
    MODA_TRY(check_inputs(name, g, mi, origin, test_acc, r, st, err, errlen));
    json_t *training = NULL;
    MODA_TRY(registry_training_config(train_json, &training, err, errlen));

    /* Both images first: serialising also validates the tensors, and
     * nothing is written for a model that cannot be stored whole. */
    uint8_t *image[REGISTRY_N_FILES] = {NULL};
    size_t len[REGISTRY_N_FILES] = {0};
    moda_status s = registry_weights_serialize(g, &image[REGISTRY_FILE_WEIGHTS], &len[REGISTRY_FILE_WEIGHTS], err,
                                               errlen);
    if (s == MODA_OK)
        s = registry_rates_serialize(r, &image[REGISTRY_FILE_RATES], &len[REGISTRY_FILE_RATES], err, errlen);
    const manifest_parts m = {.g = g, .mi = mi, .origin = origin, .training = training, .test_acc = test_acc,
                              .st = st};
    if (s == MODA_OK) s = commit_version(root, name, image, len, &m, err, errlen);
    for (int f = 0; f < REGISTRY_N_FILES; f++) free(image[f]);
    json_decref(training);
    return s;
}

moda_status registry_write_model(const char *root, const char *name, const graph *g, const model_info *mi,
                                 const char *train_json, double test_acc, const rates *r, const module_stats *st,
                                 char *err, size_t errlen) {
    if (!root || !name || !g || !mi || !r || !st) {
        fileio_errf(err, errlen, "registry_write_model: NULL argument");
        return MODA_ERR_NULL;
    }
    return write_model(root, name, g, mi, NULL, train_json, test_acc, r, st, err, errlen);
}

moda_status registry_write_composed(const char *root, const char *name, const graph *g, const model_info *mi,
                                    const registry_origin *origin, const char *train_json, double test_acc,
                                    const rates *r, const module_stats *st, char *err, size_t errlen) {
    if (!root || !name || !g || !mi || !origin || !r || !st) {
        fileio_errf(err, errlen, "registry_write_composed: NULL argument");
        return MODA_ERR_NULL;
    }
    return write_model(root, name, g, mi, origin, train_json, test_acc, r, st, err, errlen);
}

moda_status registry_write_patched(const char *root, const char *name, const registry_model *weak,
                                   const registry_model *strong, const registry_patch *patch, const float *w,
                                   const float *b, char *err, size_t errlen) {
    if (!root || !name || !weak || !strong || !patch || !w || !b || !weak->g || !strong->g) {
        fileio_errf(err, errlen, "registry_write_patched: NULL argument");
        return MODA_ERR_NULL;
    }
    if (registry_is_url(root))
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s: a registry behind a URL is read-only; write to a directory",
                           root);
    if (!registry_name_valid(name))
        return fileio_fail(err, errlen, MODA_ERR_ARG, "invalid model name \"%s\" (use [A-Za-z0-9._-], at most %d)",
                           name, REGISTRY_NAME_MAX);
    char why[512];
    if (!model_info_same_input(&weak->info, &strong->info, why, sizeof why))
        return fileio_fail(err, errlen, MODA_ERR_ARG, "%s and %s do not read the same input: %s", weak->name,
                           strong->name, why);
    const int k = weak->info.model.num_classes;
    if (patch->weak_class < 0 || patch->weak_class >= k)
        return fileio_fail(err, errlen, MODA_ERR_ARG, "class %d is out of range for %s", patch->weak_class, weak->name);
    registry_patch p = *patch;
    snprintf(p.weak.model, sizeof p.weak.model, "%s", weak->name);
    snprintf(p.weak.manifest_sha256, sizeof p.weak.manifest_sha256, "%s", weak->manifest_sha256);
    snprintf(p.strong.model, sizeof p.strong.model, "%s", strong->name);
    snprintf(p.strong.manifest_sha256, sizeof p.strong.manifest_sha256, "%s", strong->manifest_sha256);
    snprintf(p.class_name, sizeof p.class_name, "%s", weak->info.class_names[patch->weak_class]);

    /* The joined graph, for the manifest's node list, size and MACs. */
    graph *module = NULL, *g = NULL;
    moda_status s = registry_patch_module(strong, p.strong_class, p.tau, weak->g->be, &module, err, errlen);
    if (s == MODA_OK && (s = registry_patched_graph(weak->g, module, p.weak_class, w, b, weak->g->be, &g)) != MODA_OK)
        fileio_errf(err, errlen, "joining %s and %s's module: %s", weak->name, strong->name, moda_status_string(s));
    graph_free(module);
    json_t *pj = s == MODA_OK ? registry_patch_json(&p) : NULL;
    json_t *training = s == MODA_OK ? json_pack("{ss,si,sf,si,sI}", "optimizer", p.optimizer, "epochs", p.epochs,
                                                "lr", p.lr, "batch_size", p.batch_size, "seed", (json_int_t)p.seed)
                                    : NULL;
    if (s == MODA_OK && (!pj || !training)) s = fileio_fail(err, errlen, MODA_ERR_NOMEM, "out of memory");
    uint8_t *image[REGISTRY_N_FILES] = {NULL};
    size_t len[REGISTRY_N_FILES] = {0};
    const int cf = REGISTRY_FILE_CALIBRATION;
    if (s == MODA_OK) s = registry_calibration_serialize(k, w, b, &image[cf], &len[cf], err, errlen);
    const manifest_parts m = {.g = g, .mi = &weak->info, .patched = pj, .training = training,
                              .test_acc = p.acc[PATCH_ACC_PATCHED_CALIBRATED][0] / 100.0};
    if (s == MODA_OK) s = commit_version(root, name, image, len, &m, err, errlen);
    free(image[cf]);
    json_decref(pj);
    json_decref(training);
    graph_free(g);
    return s;
}
