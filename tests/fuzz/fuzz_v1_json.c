/* v1 JSON bodies: the first byte picks the route, the rest is the body. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_api.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return fuzz_api_open();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const routes[] = {"/v1/infer", "/v1/compose", "/v1/replace", "/v1/calibrate"};
    if (size < 1) return 0;
    char ctype_key[] = "Content-Type", ctype[] = "application/json";
    api_kv headers[] = {{ctype_key, ctype}};
    fuzz_api_post(routes[data[0] % 4], headers, 1, data + 1, size - 1);
    return 0;
}
