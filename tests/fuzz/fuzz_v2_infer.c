/* v2 inference bodies on POST /v2/models/{id}/infer. The first byte picks
 * the model (bit 1: the bundled LeNet5, or a composition of three of its
 * classes) and the framing (bit 0): clear, a JSON body alone; set, the binary
 * extension: the next byte is the length L (mod 24) of the text of the
 * Inference-Header-Content-Length header, the L bytes after it that text
 * (any bytes: a number, or not one), and the rest the body. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_api.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return fuzz_api_open();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const paths[] = {"/v2/models/fmnist-lenet5/infer",
                                        "/v2/models/fmnist-lenet5~7-8-9~0.9/infer"};
    char ctype_key[] = "Content-Type", hlen_key[] = "Inference-Header-Content-Length";
    char json[] = "application/json", octets[] = "application/octet-stream";
    if (size < 1) return 0;
    const char *path = paths[data[0] >> 1 & 1];
    if (!(data[0] & 1)) {
        api_kv headers[] = {{ctype_key, json}};
        fuzz_api_post(path, headers, 1, data + 1, size - 1);
        return 0;
    }
    if (size < 2) return 0;
    size_t n = data[1] % 24u;
    if (size < 2 + n) return 0;
    char hlen[24];
    memcpy(hlen, data + 2, n);
    hlen[n] = '\0';
    api_kv headers[] = {{ctype_key, octets}, {hlen_key, hlen}};
    fuzz_api_post(path, headers, 2, data + 2 + n, size - 2 - n);
    return 0;
}
