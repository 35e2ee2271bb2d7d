#include "zstd_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "fileio.h"

moda_status zstdio_compress(const void *src, size_t len, int level, uint8_t **out, size_t *out_len, char *err,
                            size_t errlen) {
    if (!out || !out_len || (!src && len > 0)) {
        fileio_errf(err, errlen, "zstdio_compress: NULL argument");
        return MODA_ERR_NULL;
    }
    *out = NULL;
    *out_len = 0;
    if (level == 0) level = ZSTDIO_DEFAULT_LEVEL;
    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
        fileio_errf(err, errlen, "zstd: compression level %d outside [%d, %d]", level, ZSTD_minCLevel(),
                    ZSTD_maxCLevel());
        return MODA_ERR_ARG;
    }
    size_t bound = ZSTD_compressBound(len);
    if (ZSTD_isError(bound)) {
        fileio_errf(err, errlen, "zstd: %zu bytes is too large to compress", len);
        return MODA_ERR_ARG;
    }
    uint8_t *buf = malloc(bound ? bound : 1);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    if (!buf || !cctx) {
        free(buf);
        ZSTD_freeCCtx(cctx);
        fileio_errf(err, errlen, "zstd: out of memory");
        return MODA_ERR_NOMEM;
    }
    /* The checksum makes silent corruption of a stored file detectable. */
    size_t r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(r)) r = ZSTD_compress2(cctx, buf, bound, src ? src : "", len);
    ZSTD_freeCCtx(cctx);
    if (ZSTD_isError(r)) {
        fileio_errf(err, errlen, "zstd: compression failed: %s", ZSTD_getErrorName(r));
        free(buf);
        return MODA_ERR_BACKEND;
    }
    /* Give back the slack of the worst-case bound. */
    uint8_t *shrunk = realloc(buf, r ? r : 1);
    *out = shrunk ? shrunk : buf;
    *out_len = r;
    return MODA_OK;
}

/* For frames that do not record their size (e.g. `zstd` reading a pipe):
 * grow the output as it arrives, never past max_out. */
static moda_status decompress_stream(const void *src, size_t len, size_t max_out, const char *source,
                                     uint8_t **out, size_t *out_len, char *err, size_t errlen) {
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    size_t cap = len < max_out / 4 ? len * 4 : max_out;
    if (cap < 4096) cap = 4096;
    uint8_t *buf = malloc(cap + 1);
    if (!dctx || !buf) {
        ZSTD_freeDCtx(dctx);
        free(buf);
        fileio_errf(err, errlen, "%s: out of memory", source);
        return MODA_ERR_NOMEM;
    }
    ZSTD_inBuffer in = {src, len, 0};
    ZSTD_outBuffer ob = {buf, cap, 0};
    size_t ret = 1;
    moda_status st = MODA_OK;
    for (;;) {
        if (ob.pos == ob.size) {
            if (ob.size > max_out) {
                fileio_errf(err, errlen, "%s: decompressed size is over the limit of %zu bytes", source, max_out);
                st = MODA_ERR_FORMAT;
                break;
            }
            /* One byte past the cap, so reaching it is detectable. */
            size_t ncap = ob.size > max_out / 2 ? max_out + 1 : ob.size * 2;
            uint8_t *nb = realloc(buf, ncap + 1);
            if (!nb) {
                fileio_errf(err, errlen, "%s: out of memory", source);
                st = MODA_ERR_NOMEM;
                break;
            }
            buf = nb;
            ob.dst = buf;
            ob.size = ncap;
        }
        ret = ZSTD_decompressStream(dctx, &ob, &in);
        if (ZSTD_isError(ret)) {
            fileio_errf(err, errlen, "%s: corrupt zstd data: %s", source, ZSTD_getErrorName(ret));
            st = MODA_ERR_FORMAT;
            break;
        }
        /* Done when all input is consumed and either the last frame is
         * complete (ret 0) or the decoder is not blocked on output space. */
        if (in.pos == in.size && (ret == 0 || ob.pos < ob.size)) break;
    }
    ZSTD_freeDCtx(dctx);
    if (st == MODA_OK && ob.pos > max_out) {
        fileio_errf(err, errlen, "%s: decompressed size is over the limit of %zu bytes", source, max_out);
        st = MODA_ERR_FORMAT;
    }
    if (st == MODA_OK && ret != 0) {
        fileio_errf(err, errlen, "%s: truncated zstd data (frame incomplete)", source);
        st = MODA_ERR_FORMAT;
    }
    if (st != MODA_OK) {
        free(buf);
        return st;
    }
    buf[ob.pos] = 0;
    *out = buf;
    *out_len = ob.pos;
    return MODA_OK;
}

moda_status zstdio_decompress(const void *src, size_t len, size_t max_out, const char *source, uint8_t **out,
                              size_t *out_len, char *err, size_t errlen) {
    if (!source) source = "zstd data";
    if (!out || !out_len || (!src && len > 0)) {
        fileio_errf(err, errlen, "zstdio_decompress: NULL argument");
        return MODA_ERR_NULL;
    }
    *out = NULL;
    *out_len = 0;
    if (len == 0) {
        fileio_errf(err, errlen, "%s: empty, not a zstd frame", source);
        return MODA_ERR_FORMAT;
    }
    if (max_out == SIZE_MAX) max_out = SIZE_MAX - 1; /* room for the NUL */

    /* Walk the frames first: this checks each header and that the frames
     * tile the input exactly, and sums the recorded sizes so the output can
     * be checked against max_out before anything is allocated. */
    const uint8_t *p = src;
    size_t rem = len;
    unsigned long long total = 0;
    while (rem > 0) {
        unsigned long long cs = ZSTD_getFrameContentSize(p, rem);
        if (cs == ZSTD_CONTENTSIZE_ERROR) {
            fileio_errf(err, errlen, "%s: not a zstd frame or truncated frame header at byte %zu", source,
                        len - rem);
            return MODA_ERR_FORMAT;
        }
        if (cs == ZSTD_CONTENTSIZE_UNKNOWN)
            return decompress_stream(src, len, max_out, source, out, out_len, err, errlen);
        size_t fs = ZSTD_findFrameCompressedSize(p, rem);
        if (ZSTD_isError(fs)) {
            fileio_errf(err, errlen, "%s: corrupt or truncated zstd frame at byte %zu: %s", source, len - rem,
                        ZSTD_getErrorName(fs));
            return MODA_ERR_FORMAT;
        }
        if (cs > max_out || total + cs > max_out) {
            fileio_errf(err, errlen, "%s: decompressed size is over the limit of %zu bytes", source, max_out);
            return MODA_ERR_FORMAT;
        }
        total += cs;
        p += fs;
        rem -= fs;
    }
    uint8_t *buf = malloc((size_t)total + 1);
    if (!buf) {
        fileio_errf(err, errlen, "%s: out of memory for %llu bytes", source, total);
        return MODA_ERR_NOMEM;
    }
    size_t r = ZSTD_decompress(buf, (size_t)total, src, len);
    if (ZSTD_isError(r) || r != (size_t)total) {
        fileio_errf(err, errlen, "%s: corrupt zstd data: %s", source,
                    ZSTD_isError(r) ? ZSTD_getErrorName(r) : "size differs from the frame header");
        free(buf);
        return MODA_ERR_FORMAT;
    }
    buf[r] = 0;
    *out = buf;
    *out_len = r;
    return MODA_OK;
}

moda_status zstdio_write_file(const char *path, const void *data, size_t len, int level, char *err,
                              size_t errlen) {
    uint8_t *z;
    size_t zlen;
    moda_status st = zstdio_compress(data, len, level, &z, &zlen, err, errlen);
    if (st != MODA_OK) {
        /* Prefix the path so the caller's message says which file. */
        if (err && errlen > 0 && path) {
            char tmp[FILEIO_ERR_LEN];
            snprintf(tmp, sizeof tmp, "%s", err);
            fileio_errf(err, errlen, "%s: %s", path, tmp);
        }
        return st;
    }
    st = fileio_write_atomic(path, z, zlen, err, errlen);
    free(z);
    return st;
}

moda_status zstdio_read_file(const char *path, size_t max_out, uint8_t **out, size_t *out_len, char *err,
                             size_t errlen) {
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    if (!out || !out_len) {
        fileio_errf(err, errlen, "zstdio_read_file: NULL argument");
        return MODA_ERR_NULL;
    }
    uint8_t *z;
    size_t zlen;
    /* zstd never expands incompressible data by more than a small margin;
     * a compressed file larger than that over max_out cannot be valid. */
    size_t zcap = max_out > SIZE_MAX / 2 ? SIZE_MAX / 2 : max_out + max_out / 64 + 4096;
    moda_status st = fileio_read_all(path, zcap, &z, &zlen, err, errlen);
    if (st != MODA_OK) return st;
    st = zstdio_decompress(z, zlen, max_out, path, out, out_len, err, errlen);
    free(z);
    return st;
}
