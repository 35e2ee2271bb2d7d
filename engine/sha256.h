/* SHA-256 (FIPS 180-4), used to verify registry files and downloads. */
#ifndef MODA_SHA256_H
#define MODA_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define SHA256_DIGEST_LEN 32
#define SHA256_HEX_LEN 65 /* 64 hex digits and a NUL */

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t nbytes;  /* message length so far */
    uint8_t buf[64];  /* partial block */
    size_t buflen;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
/* Writes the digest; the context must be re-initialised before reuse. */
void sha256_final(sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN]);

void sha256(const void *data, size_t len, uint8_t out[SHA256_DIGEST_LEN]);
/* Lower-case hex of a digest. */
void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_LEN], char hex[SHA256_HEX_LEN]);
/* One-shot hash of a buffer, as lower-case hex. */
void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_LEN]);
/* True when `hex` is exactly 64 hex digits (either case) equal to digest. */
bool sha256_hex_matches(const uint8_t digest[SHA256_DIGEST_LEN], const char *hex);
/* Stream a file through SHA-256; MODA_ERR_IO with a message on failure. */
moda_status sha256_file(const char *path, char hex[SHA256_HEX_LEN], char *err, size_t errlen);

#endif
