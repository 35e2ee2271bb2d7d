/* A registry's index.json: parsed and validated, never trusted. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "registry_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    registry_entry *entries = NULL;
    int n = 0;
    char err[512] = "";
    moda_status s = registry_index_parse((const char *)data, size, "index.json", &entries, &n, err, sizeof err);
    if (s != MODA_OK) {
        if (!err[0] || entries) abort(); /* an error has a message and no result */
        return 0;
    }
    /* Whatever passes is what the reader relies on: valid names, manifest
     * file names and hashes. */
    for (int i = 0; i < n; i++)
        if (!registry_name_valid(entries[i].name) || !registry_manifest_name_valid(entries[i].manifest) ||
            !registry_is_sha256_hex(entries[i].sha256))
            abort();
    /* And it survives a round trip through the writer's form. */
    char *text = registry_index_dump(entries, n);
    if (text) {
        registry_entry *again = NULL;
        int n2 = 0;
        if (registry_index_parse(text, strlen(text), "index.json", &again, &n2, err, sizeof err) != MODA_OK ||
            n2 != n)
            abort();
        for (int i = 0; i < n; i++)
            if (strcmp(entries[i].name, again[i].name) || strcmp(entries[i].manifest, again[i].manifest) ||
                strcasecmp(entries[i].sha256, again[i].sha256))
                abort();
        free(again);
        free(text);
    }
    free(entries);
    return 0;
}
