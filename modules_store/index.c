/* index.json: the list of models, each with its manifest's sha256. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_check.h"
#include "registry_internal.h"

bool registry_name_valid(const char *name) {
    if (!name || !name[0] || name[0] == '.') return false;
    size_t n = strlen(name);
    if (n > REGISTRY_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                  ch == '_' || ch == '-';
        if (!ok) return false;
    }
    /* The model directory would collide with the index file. */
    return strcmp(name, REGISTRY_INDEX_FILE) != 0;
}

bool registry_path(char *buf, size_t size, const char *a, const char *b, const char *c) {
    int n = c ? snprintf(buf, size, "%s/%s/%s", a, b, c) : snprintf(buf, size, "%s/%s", a, b);
    return n >= 0 && (size_t)n < size;
}

bool registry_is_sha256_hex(const char *s) {
    size_t n = 0;
    for (; s[n]; n++) {
        char ch = s[n];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) return false;
    }
    return n == SHA256_HEX_LEN - 1;
}

bool registry_manifest_name_valid(const char *file) {
    if (!strcmp(file, REGISTRY_MANIFEST_FILE)) return true;
    /* manifest.<16 lower-case hex>.json: a replacement written beside the
     * version it replaces (registry_write.c). */
    if (strlen(file) != 9 + 16 + 5 || strncmp(file, "manifest.", 9) || strcmp(file + 25, ".json")) return false;
    for (int i = 9; i < 25; i++)
        if (!((file[i] >= '0' && file[i] <= '9') || (file[i] >= 'a' && file[i] <= 'f'))) return false;
    return true;
}

moda_status registry_index_parse(const char *text, size_t len, const char *file, registry_entry **entries, int *n,
                                 char *err, size_t errlen) {
    *entries = NULL;
    *n = 0;
    jcheck c;
    jc_init(&c, file, err, errlen);
    json_t *root = jc_load_document(&c, text, len);
    if (!root) return c.status;
    json_t *models = jc_get(&c, root, "", "models", JK_ARRAY);
    size_t count = models ? json_array_size(models) : 0;
    registry_entry *e = calloc(count ? count : 1, sizeof(*e));
    if (!e) jc_fail(&c, MODA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; jc_ok(&c) && i < count; i++) {
        char where[32];
        snprintf(where, sizeof where, "models[%zu]", i);
        json_t *m = jc_at(&c, models, "models", i, JK_OBJECT);
        const char *name = jc_string(&c, m, where, "name");
        const char *manifest = jc_string(&c, m, where, "manifest");
        const char *sha = jc_string(&c, m, where, "sha256");
        if (!jc_ok(&c)) break;
        if (!registry_name_valid(name)) {
            jc_fail(&c, MODA_ERR_FORMAT, "\"%s.name\": invalid model name \"%s\"", where, name);
            break;
        }
        /* The manifest is a manifest file in the model's own directory:
         * nothing else may be reached through the index. */
        size_t nl = strlen(name);
        const char *file = manifest + nl + 1;
        if (strncmp(manifest, name, nl) || manifest[nl] != '/' || !registry_manifest_name_valid(file)) {
            jc_fail(&c, MODA_ERR_FORMAT, "\"%s.manifest\" is \"%s\", expected \"%s/%s\" (or %s/manifest.<16 hex>.json)",
                    where, manifest, name, REGISTRY_MANIFEST_FILE, name);
            break;
        }
        if (!registry_is_sha256_hex(sha)) {
            jc_fail(&c, MODA_ERR_FORMAT, "\"%s.sha256\" is not 64 hex digits", where);
            break;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(e[j].name, name)) jc_fail(&c, MODA_ERR_FORMAT, "model \"%s\" is listed twice", name);
        snprintf(e[i].name, sizeof e[i].name, "%s", name);
        snprintf(e[i].manifest, sizeof e[i].manifest, "%s", file);
        for (int k = 0; k < SHA256_HEX_LEN; k++)
            e[i].sha256[k] = (char)(sha[k] >= 'A' && sha[k] <= 'F' ? sha[k] - 'A' + 'a' : sha[k]);
    }
    json_decref(root);
    if (!jc_ok(&c)) {
        free(e);
        return c.status;
    }
    *entries = e;
    *n = (int)count;
    return MODA_OK;
}

char *registry_index_dump(const registry_entry *entries, int n) {
    json_t *models = json_array();
    for (int i = 0; models && i < n; i++) {
        char manifest[2 * REGISTRY_NAME_MAX + 2];
        snprintf(manifest, sizeof manifest, "%s/%s", entries[i].name,
                 entries[i].manifest[0] ? entries[i].manifest : REGISTRY_MANIFEST_FILE);
        if (json_array_append_new(models, json_pack("{ss,ss,ss}", "name", entries[i].name, "manifest", manifest,
                                                    "sha256", entries[i].sha256)) != 0) {
            json_decref(models);
            return NULL;
        }
    }
    json_t *root = models ? json_pack("{si,so}", "format", REGISTRY_FORMAT, "models", models) : NULL;
    char *s = root ? json_dumps(root, REGISTRY_JSON_FLAGS) : NULL;
    json_decref(root);
    return s;
}
