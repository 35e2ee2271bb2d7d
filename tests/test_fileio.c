/* File I/O, SHA-256 and zstd: atomic replacement, failure paths that must
 * leave the old file alone, FIPS 180-2 vectors, and zstd frames that are
 * corrupt, truncated or too large. */
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "fileio.h"
#include "sha256.h"
#include "test_util.h"
#include "zstd_io.h"

/* ---- helpers ------------------------------------------------------------ */

typedef struct fixture {
    char dir[256];
} fixture;

static int setup_dir(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    const char *base = getenv("TMPDIR");
    snprintf(fx->dir, sizeof fx->dir, "%s/moda_fileio_XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown_dir(void **state) {
    fixture *fx = *state;
    tu_rm_rf(fx->dir);
    free(fx);
    return 0;
}

static void path_in(const fixture *fx, const char *name, char *out, size_t n) {
    snprintf(out, n, "%s/%s", fx->dir, name);
}

static void write_plain(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void assert_file_is(const char *path, const char *text) {
    uint8_t *buf;
    size_t len;
    char err[FILEIO_ERR_LEN];
    assert_int_equal(fileio_read_all(path, 1 << 20, &buf, &len, err, sizeof err), MODA_OK);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(buf, text, len);
    assert_int_equal(buf[len], 0);
    free(buf);
}

/* Entries of dir whose name contains ".tmp." (leftover temp files). */
static int count_temp_files(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* ---- fileio --------------------------------------------------------------- */

static void test_read_missing(void **state) {
    fixture *fx = *state;
    char path[512], err[FILEIO_ERR_LEN] = "";
    path_in(fx, "nope.bin", path, sizeof path);
    uint8_t *buf = (uint8_t *)1;
    size_t len = 7;
    assert_int_equal(fileio_read_all(path, 100, &buf, &len, err, sizeof err), MODA_ERR_IO);
    assert_null(buf);
    assert_int_equal(len, 0);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, strerror(ENOENT)));
    /* err may be omitted. */
    assert_int_equal(fileio_read_all(path, 100, &buf, &len, NULL, 0), MODA_ERR_IO);
}

static void test_read_cap_and_dir(void **state) {
    fixture *fx = *state;
    char path[512], err[FILEIO_ERR_LEN];
    path_in(fx, "hundred.txt", path, sizeof path);
    char text[101];
    memset(text, 'x', 100);
    text[100] = 0;
    write_plain(path, text);
    uint8_t *buf;
    size_t len;
    assert_int_equal(fileio_read_all(path, 99, &buf, &len, err, sizeof err), MODA_ERR_IO);
    assert_non_null(strstr(err, "limit"));
    assert_int_equal(fileio_read_all(path, 100, &buf, &len, err, sizeof err), MODA_OK);
    assert_int_equal(len, 100);
    free(buf);

    path_in(fx, "empty.txt", path, sizeof path);
    write_plain(path, "");
    assert_int_equal(fileio_read_all(path, 0, &buf, &len, err, sizeof err), MODA_OK);
    assert_int_equal(len, 0);
    assert_int_equal(buf[0], 0);
    free(buf);

    assert_int_equal(fileio_read_all(fx->dir, 100, &buf, &len, err, sizeof err), MODA_ERR_IO);
    assert_non_null(strstr(err, "directory"));
}

static void test_atomic_write_replaces(void **state) {
    fixture *fx = *state;
    char path[512], err[FILEIO_ERR_LEN];
    path_in(fx, "weights.bin", path, sizeof path);

    assert_int_equal(fileio_write_atomic(path, "old contents", 12, err, sizeof err), MODA_OK);
    assert_file_is(path, "old contents");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644); /* not mkstemp's 0600 */

    /* A replaced file keeps its mode. */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(fileio_write_atomic(path, "new", 3, err, sizeof err), MODA_OK);
    assert_file_is(path, "new");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);

    assert_int_equal(fileio_write_atomic(path, NULL, 0, err, sizeof err), MODA_OK);
    assert_file_is(path, "");

    /* A relative path (no directory part) syncs "." and works too. */
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(fx->dir), 0);
    assert_int_equal(fileio_write_atomic("rel.txt", "rel", 3, err, sizeof err), MODA_OK);
    assert_int_equal(chdir(cwd), 0);
    path_in(fx, "rel.txt", path, sizeof path);
    assert_file_is(path, "rel");

    assert_int_equal(count_temp_files(fx->dir), 0);
}

static void test_atomic_write_large(void **state) {
    fixture *fx = *state;
    char path[512], err[FILEIO_ERR_LEN];
    path_in(fx, "big.bin", path, sizeof path);
    size_t n = (size_t)5 << 20;
    uint8_t *data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i * 2654435761u >> 13);
    assert_int_equal(fileio_write_atomic(path, data, n, err, sizeof err), MODA_OK);
    uint8_t *back;
    size_t len;
    assert_int_equal(fileio_read_all(path, n, &back, &len, err, sizeof err), MODA_OK);
    assert_int_equal(len, n);
    assert_memory_equal(back, data, n);
    free(back);
    free(data);
}

static void test_atomic_write_missing_dir(void **state) {
    fixture *fx = *state;
    char path[512], err[FILEIO_ERR_LEN] = "";
    path_in(fx, "no/such/dir/file.bin", path, sizeof path);
    assert_int_equal(fileio_write_atomic(path, "x", 1, err, sizeof err), MODA_ERR_IO);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, strerror(ENOENT)));
    assert_int_equal(count_temp_files(fx->dir), 0);
}

/* The rename step fails when the target is a non-empty directory: the
 * temp file must be gone and the target untouched. Works as root too. */
static void test_atomic_write_rename_fails(void **state) {
    fixture *fx = *state;
    char target[512], inner[600], err[FILEIO_ERR_LEN] = "";
    path_in(fx, "occupied", target, sizeof target);
    assert_int_equal(mkdir(target, 0755), 0);
    snprintf(inner, sizeof inner, "%s/keep.txt", target);
    write_plain(inner, "keep");
    assert_int_equal(fileio_write_atomic(target, "new", 3, err, sizeof err), MODA_ERR_IO);
    assert_non_null(strstr(err, target));
    assert_non_null(strstr(err, "rename"));
    assert_file_is(inner, "keep");
    assert_int_equal(count_temp_files(fx->dir), 0);
}

static void test_atomic_write_not_writable(void **state) {
    fixture *fx = *state;
    if (geteuid() == 0) skip(); /* root ignores directory permissions */
    char sub[512], path[600], err[FILEIO_ERR_LEN] = "";
    path_in(fx, "ro", sub, sizeof sub);
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(path, sizeof path, "%s/model.bin", sub);
    write_plain(path, "old");
    assert_int_equal(chmod(sub, 0555), 0);
    assert_int_equal(fileio_write_atomic(path, "new", 3, err, sizeof err), MODA_ERR_IO);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, strerror(EACCES)));
    assert_int_equal(chmod(sub, 0755), 0);
    assert_file_is(path, "old");
    assert_int_equal(count_temp_files(sub), 0);
}

static void test_atomic_write_args(void **state) {
    (void)state;
    char err[FILEIO_ERR_LEN];
    assert_int_equal(fileio_write_atomic(NULL, "x", 1, err, sizeof err), MODA_ERR_NULL);
    assert_int_equal(fileio_write_atomic("", "x", 1, err, sizeof err), MODA_ERR_ARG);
    assert_int_equal(fileio_write_atomic("/tmp/x", NULL, 1, err, sizeof err), MODA_ERR_NULL);
}

static void test_mkdir_p(void **state) {
    fixture *fx = *state;
    char path[512], err[FILEIO_ERR_LEN] = "";
    path_in(fx, "a//b/c/", path, sizeof path);
    assert_int_equal(fileio_mkdir_p(path, err, sizeof err), MODA_OK);
    assert_int_equal(fileio_mkdir_p(path, err, sizeof err), MODA_OK); /* already there */
    struct stat st;
    path_in(fx, "a/b/c", path, sizeof path);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    /* A file in the way. */
    path_in(fx, "a/file", path, sizeof path);
    write_plain(path, "f");
    path_in(fx, "a/file/sub", path, sizeof path);
    assert_int_equal(fileio_mkdir_p(path, err, sizeof err), MODA_ERR_IO);
    assert_non_null(strstr(err, "not a directory"));
    path_in(fx, "a/file", path, sizeof path);
    assert_int_equal(fileio_mkdir_p(path, err, sizeof err), MODA_ERR_IO);

    assert_int_equal(fileio_mkdir_p("/", err, sizeof err), MODA_OK);
    assert_int_equal(fileio_mkdir_p("", err, sizeof err), MODA_ERR_ARG);
}

/* ---- sha256 --------------------------------------------------------------- */

static void check_hex(const char *msg, size_t len, const char *want) {
    char hex[SHA256_HEX_LEN];
    sha256_hex(msg, len, hex);
    assert_string_equal(hex, want);
}

static void test_sha256_vectors(void **state) {
    (void)state;
    check_hex("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    check_hex("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_hex(m448, strlen(m448), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    /* One million 'a', fed in uneven pieces through the streaming API. */
    char chunk[1000];
    memset(chunk, 'a', sizeof chunk);
    sha256_ctx c;
    sha256_init(&c);
    size_t fed = 0, step = 1;
    while (fed < 1000000) {
        size_t n = step < 1000000 - fed ? step : 1000000 - fed;
        if (n > sizeof chunk) n = sizeof chunk;
        sha256_update(&c, chunk, n);
        fed += n;
        step = step * 7 % 997 + 1;
    }
    uint8_t d[SHA256_DIGEST_LEN];
    sha256_final(&c, d);
    char hex[SHA256_HEX_LEN];
    sha256_to_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Streaming in any split equals one shot, across the padding boundaries
 * (55, 56, 63, 64 bytes). */
static void test_sha256_streaming(void **state) {
    (void)state;
    uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 31 + 7);
    for (size_t len = 0; len <= sizeof msg; len++) {
        uint8_t want[SHA256_DIGEST_LEN], got[SHA256_DIGEST_LEN];
        sha256(msg, len, want);
        for (size_t split = 0; split <= len; split += 1 + len / 5) {
            sha256_ctx c;
            sha256_init(&c);
            sha256_update(&c, msg, split);
            sha256_update(&c, msg + split, len - split);
            sha256_final(&c, got);
            assert_memory_equal(got, want, SHA256_DIGEST_LEN);
        }
    }
}

static void test_sha256_hex_and_file(void **state) {
    fixture *fx = *state;
    uint8_t d[SHA256_DIGEST_LEN];
    sha256("abc", 3, d);
    assert_true(sha256_hex_matches(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    assert_true(sha256_hex_matches(d, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
    assert_false(sha256_hex_matches(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ae"));
    assert_false(sha256_hex_matches(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a"));
    assert_false(sha256_hex_matches(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0"));
    assert_false(sha256_hex_matches(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015 d"));
    assert_false(sha256_hex_matches(d, ""));
    assert_false(sha256_hex_matches(d, NULL));

    char path[512], err[FILEIO_ERR_LEN], hex[SHA256_HEX_LEN], want[SHA256_HEX_LEN];
    path_in(fx, "hashme.bin", path, sizeof path);
    size_t n = 100003;
    uint8_t *data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i ^ (i >> 8));
    assert_int_equal(fileio_write_atomic(path, data, n, err, sizeof err), MODA_OK);
    assert_int_equal(sha256_file(path, hex, err, sizeof err), MODA_OK);
    sha256_hex(data, n, want);
    assert_string_equal(hex, want);
    free(data);
    path_in(fx, "missing.bin", path, sizeof path);
    assert_int_equal(sha256_file(path, hex, err, sizeof err), MODA_ERR_IO);
    assert_non_null(strstr(err, path));
}

/* ---- zstd ----------------------------------------------------------------- */

/* Compressible but not trivial: a repeating ramp with sparse noise. */
static uint8_t *sample_data(size_t n) {
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    rng r;
    rng_seed(&r, 42, 1);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = rng_u32(&r);
        p[i] = (u & 15) == 0 ? (uint8_t)(u >> 8) : (uint8_t)(i % 251);
    }
    return p;
}

static void test_zstd_round_trip(void **state) {
    (void)state;
    char err[FILEIO_ERR_LEN];
    size_t sizes[] = {0, 1, 100, 70000, 1 << 20};
    int levels[] = {0, 1, 3, 19, -5};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        uint8_t *data = sample_data(sizes[s]);
        for (size_t l = 0; l < sizeof levels / sizeof *levels; l++) {
            uint8_t *z, *back;
            size_t zlen, blen;
            assert_int_equal(zstdio_compress(data, sizes[s], levels[l], &z, &zlen, err, sizeof err), MODA_OK);
            assert_int_equal(ZSTD_getFrameContentSize(z, zlen), sizes[s]);
            if (sizes[s] >= 70000 && levels[l] >= 0) assert_true(zlen < sizes[s] / 2);
            assert_int_equal(zstdio_decompress(z, zlen, sizes[s], "t", &back, &blen, err, sizeof err), MODA_OK);
            assert_int_equal(blen, sizes[s]);
            if (blen) assert_memory_equal(back, data, blen);
            assert_int_equal(back[blen], 0);
            free(back);
            /* One byte under the cap is refused before allocating. */
            if (sizes[s] > 0) {
                assert_int_equal(zstdio_decompress(z, zlen, sizes[s] - 1, "t", &back, &blen, err, sizeof err),
                                 MODA_ERR_FORMAT);
                assert_null(back);
                assert_non_null(strstr(err, "limit"));
            }
            free(z);
        }
        free(data);
    }
    uint8_t *z;
    size_t zlen;
    assert_int_equal(zstdio_compress("abc", 3, ZSTD_maxCLevel() + 1, &z, &zlen, err, sizeof err), MODA_ERR_ARG);
    assert_int_equal(zstdio_compress("abc", 3, ZSTD_minCLevel() - 1, &z, &zlen, err, sizeof err), MODA_ERR_ARG);
}

/* Every truncation fails; every single-byte corruption either fails or
 * (for bits that carry no information) still yields the original bytes;
 * damage inside the compressed payload always fails (content checksum). */
static void test_zstd_corrupt(void **state) {
    (void)state;
    char err[FILEIO_ERR_LEN];
    size_t n = 5000;
    uint8_t *data = sample_data(n);
    uint8_t *z, *back;
    size_t zlen, blen;
    assert_int_equal(zstdio_compress(data, n, 3, &z, &zlen, err, sizeof err), MODA_OK);
    for (size_t cut = 0; cut < zlen; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* exact size, so ASan sees over-reads */
        assert_non_null(copy);
        memcpy(copy, z, cut);
        assert_int_equal(zstdio_decompress(copy, cut, n, "cut", &back, &blen, err, sizeof err), MODA_ERR_FORMAT);
        assert_null(back);
        free(copy);
    }
    int failed_mid = 0;
    for (size_t i = 0; i < zlen; i++) {
        uint8_t *copy = malloc(zlen);
        assert_non_null(copy);
        memcpy(copy, z, zlen);
        copy[i] ^= 0x5a;
        moda_status st = zstdio_decompress(copy, zlen, n, "flip", &back, &blen, err, sizeof err);
        if (st == MODA_OK) {
            assert_int_equal(blen, n);
            assert_memory_equal(back, data, n);
            free(back);
        } else {
            assert_int_equal(st, MODA_ERR_FORMAT);
            if (i > 8 && i < zlen - 4) failed_mid++;
        }
        free(copy);
    }
    assert_true(failed_mid > 0);
    /* Damage well inside the payload is always caught. */
    z[zlen / 2] ^= 0x01;
    assert_int_equal(zstdio_decompress(z, zlen, n, "mid", &back, &blen, err, sizeof err), MODA_ERR_FORMAT);
    assert_non_null(strstr(err, "mid"));
    z[zlen / 2] ^= 0x01;

    /* Trailing garbage after a valid frame. */
    uint8_t *longer = malloc(zlen + 3);
    assert_non_null(longer);
    memcpy(longer, z, zlen);
    memcpy(longer + zlen, "xyz", 3);
    assert_int_equal(zstdio_decompress(longer, zlen + 3, n, "tail", &back, &blen, err, sizeof err),
                     MODA_ERR_FORMAT);
    free(longer);
    /* Not zstd at all, and empty. */
    assert_int_equal(zstdio_decompress("hello world, not zstd", 21, n, "txt", &back, &blen, err, sizeof err),
                     MODA_ERR_FORMAT);
    assert_int_equal(zstdio_decompress("", 0, n, "empty", &back, &blen, err, sizeof err), MODA_ERR_FORMAT);
    free(z);
    free(data);
}

/* Frames without a recorded size (as `zstd` writes from a pipe) go through
 * the streaming path with the same checks. */
static void check_unknown_size(const uint8_t *data, size_t n) {
    char err[FILEIO_ERR_LEN];
    ZSTD_CCtx *c = ZSTD_createCCtx();
    assert_non_null(c);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
    size_t cap = ZSTD_compressBound(n);
    uint8_t *z = malloc(cap);
    assert_non_null(z);
    ZSTD_outBuffer ob = {z, cap, 0};
    /* Two chunks, then end the frame; no size was pledged. */
    ZSTD_inBuffer in1 = {data, n / 2, 0};
    assert_false(ZSTD_isError(ZSTD_compressStream2(c, &ob, &in1, ZSTD_e_continue)));
    ZSTD_inBuffer in2 = {data + n / 2, n - n / 2, 0};
    size_t left;
    do {
        left = ZSTD_compressStream2(c, &ob, &in2, ZSTD_e_end);
        assert_false(ZSTD_isError(left));
    } while (left != 0);
    ZSTD_freeCCtx(c);
    size_t zlen = ob.pos;
    assert_int_equal(ZSTD_getFrameContentSize(z, zlen), ZSTD_CONTENTSIZE_UNKNOWN);

    uint8_t *back;
    size_t blen;
    moda_status st = zstdio_decompress(z, zlen, n, "s", &back, &blen, err, sizeof err);
    if (st != MODA_OK) fail_msg("%s", err);
    assert_int_equal(blen, n);
    assert_memory_equal(back, data, n);
    free(back);
    assert_int_equal(zstdio_decompress(z, zlen, n - 1, "s", &back, &blen, err, sizeof err), MODA_ERR_FORMAT);
    assert_non_null(strstr(err, "limit"));
    for (size_t cut = 0; cut < zlen; cut += 1 + cut / 8) {
        uint8_t *copy = malloc(cut ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, z, cut);
        assert_int_equal(zstdio_decompress(copy, cut, n, "s", &back, &blen, err, sizeof err), MODA_ERR_FORMAT);
        free(copy);
    }
    free(z);
}

static void test_zstd_unknown_size(void **state) {
    (void)state;
    size_t n = 300000;
    uint8_t *data = sample_data(n);
    check_unknown_size(data, n);
    /* Incompressible data makes the first output guess exactly the cap,
     * so the frame ends with the output buffer exactly full. */
    rng r;
    rng_seed(&r, 7, 7);
    for (size_t i = 0; i < n; i++) data[i] = (uint8_t)rng_u32(&r);
    check_unknown_size(data, n);
    free(data);
}

static void test_zstd_concatenated(void **state) {
    (void)state;
    char err[FILEIO_ERR_LEN];
    uint8_t *a, *b, *back;
    size_t alen, blen, len;
    assert_int_equal(zstdio_compress("hello ", 6, 0, &a, &alen, err, sizeof err), MODA_OK);
    assert_int_equal(zstdio_compress("world", 5, 0, &b, &blen, err, sizeof err), MODA_OK);
    uint8_t *both = malloc(alen + blen);
    assert_non_null(both);
    memcpy(both, a, alen);
    memcpy(both + alen, b, blen);
    assert_int_equal(zstdio_decompress(both, alen + blen, 11, NULL, &back, &len, err, sizeof err), MODA_OK);
    assert_int_equal(len, 11);
    assert_memory_equal(back, "hello world", 11);
    free(back);
    assert_int_equal(zstdio_decompress(both, alen + blen, 10, NULL, &back, &len, err, sizeof err),
                     MODA_ERR_FORMAT);
    free(both);
    free(a);
    free(b);
}

static void test_zstd_files(void **state) {
    fixture *fx = *state;
    char path[512], err[FILEIO_ERR_LEN];
    path_in(fx, "w.safetensors.zst", path, sizeof path);
    size_t n = 123457;
    uint8_t *data = sample_data(n), *back;
    size_t blen;
    assert_int_equal(zstdio_write_file(path, data, n, 0, err, sizeof err), MODA_OK);
    assert_int_equal(zstdio_read_file(path, n, &back, &blen, err, sizeof err), MODA_OK);
    assert_int_equal(blen, n);
    assert_memory_equal(back, data, n);
    free(back);
    assert_int_equal(zstdio_read_file(path, n - 1, &back, &blen, err, sizeof err), MODA_ERR_FORMAT);
    assert_non_null(strstr(err, path));
    assert_int_equal(count_temp_files(fx->dir), 0);

    /* A non-zstd file names the path in the error. */
    path_in(fx, "plain.zst", path, sizeof path);
    write_plain(path, "this is not compressed");
    assert_int_equal(zstdio_read_file(path, n, &back, &blen, err, sizeof err), MODA_ERR_FORMAT);
    assert_non_null(strstr(err, path));
    path_in(fx, "absent.zst", path, sizeof path);
    assert_int_equal(zstdio_read_file(path, n, &back, &blen, err, sizeof err), MODA_ERR_IO);
    assert_int_equal(zstdio_write_file(path, data, n, 99, err, sizeof err), MODA_ERR_ARG);
    assert_non_null(strstr(err, path));
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_missing, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_read_cap_and_dir, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_atomic_write_replaces, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_atomic_write_large, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_atomic_write_missing_dir, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_atomic_write_rename_fails, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_atomic_write_not_writable, setup_dir, teardown_dir),
        cmocka_unit_test(test_atomic_write_args),
        cmocka_unit_test_setup_teardown(test_mkdir_p, setup_dir, teardown_dir),
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_streaming),
        cmocka_unit_test_setup_teardown(test_sha256_hex_and_file, setup_dir, teardown_dir),
        cmocka_unit_test(test_zstd_round_trip),
        cmocka_unit_test(test_zstd_corrupt),
        cmocka_unit_test(test_zstd_unknown_size),
        cmocka_unit_test(test_zstd_concatenated),
        cmocka_unit_test_setup_teardown(test_zstd_files, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
