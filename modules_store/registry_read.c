/* Reading the registry: the index, a model's manifest, and the whole model,
 * each verified before use. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "registry_internal.h"

#define PATH_LEN 4096

moda_status registry_open(const char *root, const registry_remote_options *remote, registry **out, char *err,
                          size_t errlen) {
    if (!root || !out) {
        fileio_errf(err, errlen, "registry_open: NULL argument");
        return MODA_ERR_NULL;
    }
    *out = NULL;
    char mirror[PATH_LEN];
    if (registry_is_url(root)) { /* read through an up-to-date local copy */
        MODA_TRY(registry_mirror(root, remote, mirror, sizeof mirror, err, errlen));
        root = mirror;
    }
    char index[PATH_LEN];
    if (!registry_path(index, sizeof index, root, REGISTRY_INDEX_FILE, NULL)) {
        fileio_errf(err, errlen, "%s: path too long", root);
        return MODA_ERR_ARG;
    }
    struct stat st;
    if (stat(index, &st) != 0 && errno == ENOENT) {
        fileio_errf(err, errlen, "%s: no such file (not a registry)", index);
        return MODA_ERR_NOT_FOUND;
    }
    uint8_t *text = NULL;
    size_t len = 0;
    MODA_TRY(fileio_read_all(index, REGISTRY_INDEX_MAX_BYTES, &text, &len, err, errlen));
    registry *reg = calloc(1, sizeof(*reg));
    moda_status s = reg && (reg->root = strdup(root)) ? MODA_OK : MODA_ERR_NOMEM;
    if (s != MODA_OK) fileio_errf(err, errlen, "%s: out of memory", index);
    if (s == MODA_OK) s = registry_index_parse((const char *)text, len, index, &reg->entries, &reg->n, err, errlen);
    free(text);
    if (s != MODA_OK) {
        registry_close(reg);
        return s;
    }
    *out = reg;
    return MODA_OK;
}

void registry_close(registry *reg) {
    if (!reg) return;
    free(reg->root);
    free(reg->entries);
    free(reg);
}

const char *registry_root(const registry *reg) { return reg ? reg->root : NULL; }
int registry_count(const registry *reg) { return reg ? reg->n : 0; }

const char *registry_name(const registry *reg, int i) {
    return reg && i >= 0 && i < reg->n ? reg->entries[i].name : NULL;
}

int registry_find(const registry *reg, const char *name) {
    for (int i = 0; reg && name && i < reg->n; i++)
        if (!strcmp(reg->entries[i].name, name)) return i;
    return -1;
}

void registry_model_free(registry_model *m) {
    if (!m) return;
    model_info_free(&m->info);
    module_stats_free(&m->stats);
    free(m->manifest_json);
    graph_free(m->g);
    rates_free(&m->r);
    registry_origin_free(&m->origin);
    memset(m, 0, sizeof(*m));
}

/* Read, verify against the index and parse the manifest of `name`. */
static moda_status load_manifest(const registry *reg, const char *name, registry_model *m,
                                 registry_file_info files[REGISTRY_N_FILES], json_t **arch, char *path,
                                 size_t path_len, char *err, size_t errlen) {
    int i = registry_find(reg, name);
    if (i < 0) {
        fileio_errf(err, errlen, "%s/%s: no model \"%s\"", reg->root, REGISTRY_INDEX_FILE, name ? name : "(null)");
        return MODA_ERR_NOT_FOUND;
    }
    if (!registry_path(path, path_len, reg->root, name, reg->entries[i].manifest)) {
        fileio_errf(err, errlen, "%s: path too long", reg->root);
        return MODA_ERR_ARG;
    }
    uint8_t *text = NULL;
    size_t len = 0;
    MODA_TRY(fileio_read_all(path, REGISTRY_MANIFEST_MAX_BYTES, &text, &len, err, errlen));
    uint8_t digest[SHA256_DIGEST_LEN];
    sha256(text, len, digest);
    if (!sha256_hex_matches(digest, reg->entries[i].sha256)) {
        char have[SHA256_HEX_LEN];
        sha256_to_hex(digest, have);
        fileio_errf(err, errlen, "%s: sha256 mismatch: the file has %s, %s says %s", path, have, REGISTRY_INDEX_FILE,
                    reg->entries[i].sha256);
        free(text);
        return MODA_ERR_FORMAT;
    }
    if (memchr(text, 0, len)) {
        fileio_errf(err, errlen, "%s: contains a NUL byte", path);
        free(text);
        return MODA_ERR_FORMAT;
    }
    moda_status s = registry_manifest_parse((const char *)text, path, name, m, files, arch, err, errlen);
    if (s == MODA_OK) {
        m->manifest_json = (char *)text;
        sha256_to_hex(digest, m->manifest_sha256);
    } else {
        free(text);
    }
    return s;
}

moda_status registry_read_manifest(const registry *reg, const char *name, registry_model *out, char *err,
                                   size_t errlen) {
    if (!reg || !name || !out) {
        fileio_errf(err, errlen, "registry_read_manifest: NULL argument");
        return MODA_ERR_NULL;
    }
    memset(out, 0, sizeof(*out));
    registry_file_info files[REGISTRY_N_FILES];
    json_t *arch = NULL;
    char path[PATH_LEN];
    moda_status s = load_manifest(reg, name, out, files, &arch, path, sizeof path, err, errlen);
    json_decref(arch);
    if (s != MODA_OK) registry_model_free(out);
    return s;
}

/* Upper bounds on the decompressed files, so a crafted frame cannot make
 * the reader allocate far more than the model needs. */
static size_t weights_max_bytes(const graph *g) {
    size_t bytes = 65536;
    for (int i = 0; i < g->n_params; i++) bytes += graph_param_numel(&g->params[i]) * sizeof(float) + 256;
    return bytes;
}

static size_t rates_max_bytes(const graph *g, int k) {
    size_t units = 1, bytes = 65536;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].kind == NODE_RELU) {
            units += (size_t)g->nodes[i].c;
            bytes += 256;
        }
    return bytes + units * (size_t)k * sizeof(float);
}

static moda_status load_tensors(const registry *reg, const char *name, const registry_file_info *info, size_t max_out,
                                registry_model *m, bool weights, char *err, size_t errlen) {
    char path[PATH_LEN];
    if (!registry_path(path, sizeof path, reg->root, name, info->path)) {
        fileio_errf(err, errlen, "%s: path too long", reg->root);
        return MODA_ERR_ARG;
    }
    safetensors_file *f = NULL;
    MODA_TRY(registry_open_tensor_file(path, info, max_out, &f, err, errlen));
    moda_status s = weights ? registry_weights_load(f, path, m->g, err, errlen)
                            : registry_rates_load(f, path, m->g, m->info.model.num_classes, &m->r, err, errlen);
    safetensors_free(f);
    return s;
}

moda_status registry_load_model(const registry *reg, const char *name, moda_backend *be, registry_model *out,
                                char *err, size_t errlen) {
    return registry_load_model_depth(reg, name, be, 0, out, err, errlen);
}

moda_status registry_load_model_depth(const registry *reg, const char *name, moda_backend *be, int depth,
                                      registry_model *out, char *err, size_t errlen) {
    if (!reg || !name || !be || !out) {
        fileio_errf(err, errlen, "registry_load_model: NULL argument");
        return MODA_ERR_NULL;
    }
    memset(out, 0, sizeof(*out));
    registry_file_info files[REGISTRY_N_FILES];
    json_t *arch = NULL;
    char path[PATH_LEN];
    moda_status s = load_manifest(reg, name, out, files, &arch, path, sizeof path, err, errlen);
    if (s == MODA_OK && out->patched) {
        /* Its weights are its parents': nothing more to read. */
        s = registry_patched_load(reg, out, arch, path, &files[REGISTRY_FILE_CALIBRATION], be, depth, err, errlen);
        json_decref(arch);
        if (s != MODA_OK) registry_model_free(out);
        return s;
    }
    if (s == MODA_OK && out->composed) {
        /* Per-layer channel counts are only in the node list. */
        s = registry_graph_replay(arch, &out->info, be, path, &out->g, err, errlen);
    } else if (s == MODA_OK) {
        out->g = model_build(be, &out->info.model, &s);
        if (!out->g) fileio_errf(err, errlen, "%s: cannot build the model: %s", path, moda_status_string(s));
        if (s == MODA_OK)
            s = registry_manifest_check_graph(arch, out->g, "the architecture fields", path, err, errlen);
    }
    json_decref(arch);
    if (s == MODA_OK)
        s = load_tensors(reg, name, &files[REGISTRY_FILE_WEIGHTS], weights_max_bytes(out->g), out, true, err, errlen);
    if (s == MODA_OK)
        s = load_tensors(reg, name, &files[REGISTRY_FILE_RATES],
                         rates_max_bytes(out->g, out->info.model.num_classes), out, false, err, errlen);
    if (s != MODA_OK) registry_model_free(out);
    return s;
}
