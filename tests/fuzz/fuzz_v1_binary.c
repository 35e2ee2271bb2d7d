/* v1 binary and image bodies on POST /v1/infer, with their query. The
 * first byte picks the Content-Type (application/octet-stream, image/png,
 * image/jpeg, or none); the text up to the first newline is the query,
 * "key=value" pairs joined by '&' (as the server hands them over, already
 * decoded), and the rest is the body. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_api.h"

#define QUERY_MAX 16

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return fuzz_api_open();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const types[] = {"application/octet-stream", "image/png", "image/jpeg", NULL};
    if (size < 1) return 0;
    const uint8_t *nl = memchr(data + 1, '\n', size - 1);
    if (!nl) return 0;
    size_t qlen = (size_t)(nl - data - 1);
    char *query = malloc(qlen + 1);
    if (!query) return 0;
    memcpy(query, data + 1, qlen);
    query[qlen] = '\0';
    api_kv q[QUERY_MAX];
    int nq = 0;
    for (char *save = NULL, *pair = strtok_r(query, "&", &save); pair && nq < QUERY_MAX;
         pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        if (eq) *eq = '\0';
        q[nq].key = pair;
        q[nq].value = eq ? eq + 1 : pair + strlen(pair); /* "" for a flag */
        nq++;
    }
    char ctype_key[] = "Content-Type", ctype[32];
    const char *type = types[data[0] % 4];
    api_kv headers[1];
    if (type) {
        snprintf(ctype, sizeof ctype, "%s", type);
        headers[0] = (api_kv){ctype_key, ctype};
    }
    api_request req = {.method = "POST", .path = "/v1/infer", .query = q, .n_query = nq, .headers = headers,
                       .n_headers = type ? 1 : 0, .body = (const char *)nl + 1,
                       .body_len = size - (size_t)(nl + 1 - data)};
    fuzz_api_request(&req);
    free(query);
    return 0;
}
