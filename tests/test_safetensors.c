/* safetensors: round trips through memory and files, the header layout,
 * and rejection of every kind of malformed file without reading outside
 * the buffer (run under the sanitizer build to make that last part
 * meaningful: each parse gets an exact-size heap copy). */
#include <unistd.h>

#include "fileio.h"
#include "safetensors.h"
#include "test_util.h"

static uint64_t read_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Parse an exact-size heap copy of buf[0..len). */
static moda_status parse_copy(const void *buf, size_t len, safetensors_file **f, char *err, size_t errlen) {
    void *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, buf, len);
    return safetensors_parse_owned(copy, len, "test.safetensors", f, err, errlen);
}

/* A file image from a header string and data_len data bytes (values i). */
static uint8_t *make_image(const char *json, size_t data_len, size_t *len) {
    size_t hl = strlen(json);
    *len = 8 + hl + data_len;
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, json, hl);
    for (size_t i = 0; i < data_len; i++) buf[8 + hl + i] = (uint8_t)i;
    return buf;
}

/* Expect json + data_len bytes to be rejected with `status` and an error
 * mentioning `needle` (NULL: any message). */
static void expect_reject(const char *json, size_t data_len, moda_status status, const char *needle) {
    size_t len;
    uint8_t *img = make_image(json, data_len, &len);
    safetensors_file *f = (safetensors_file *)1;
    char err[FILEIO_ERR_LEN] = "";
    moda_status st = parse_copy(img, len, &f, err, sizeof err);
    if (st != status) fail_msg("header %s: status %d, want %d (%s)", json, st, status, err);
    assert_null(f);
    assert_non_null(strstr(err, "test.safetensors"));
    if (needle && !strstr(err, needle)) fail_msg("header %s: error \"%s\" lacks \"%s\"", json, err, needle);
    free(img);
}

static void expect_accept(const char *json, size_t data_len) {
    size_t len;
    uint8_t *img = make_image(json, data_len, &len);
    safetensors_file *f = NULL;
    char err[FILEIO_ERR_LEN] = "";
    moda_status st = parse_copy(img, len, &f, err, sizeof err);
    if (st != MODA_OK) fail_msg("header %s: %s", json, err);
    safetensors_free(f);
    free(img);
}

/* A small model-like set of tensors. */
typedef struct sample {
    float *conv_w, *conv_b, *fc_w, *scale;
    int64_t *labels;
    int conv_shape[4], bias_shape[1], fc_shape[2], label_shape[1], empty_shape[2];
    safetensors_entry e[6];
    safetensors_kv meta[2];
} sample;

static void sample_init(sample *s, uint64_t seed) {
    rng r;
    rng_seed(&r, seed, 3);
    memcpy(s->conv_shape, (int[]){4, 3, 3, 3}, sizeof s->conv_shape);
    s->bias_shape[0] = 4;
    memcpy(s->fc_shape, (int[]){10, 4}, sizeof s->fc_shape);
    s->label_shape[0] = 5;
    memcpy(s->empty_shape, (int[]){0, 3}, sizeof s->empty_shape);
    s->conv_w = tu_randn(&r, 108, 1.0f);
    s->conv_b = tu_randn(&r, 4, 1.0f);
    s->fc_w = tu_randn(&r, 40, 1.0f);
    s->scale = tu_randn(&r, 1, 1.0f);
    s->labels = calloc(5, sizeof *s->labels);
    assert_non_null(s->labels);
    for (int i = 0; i < 5; i++) s->labels[i] = (int64_t)i * 1000000007LL - 2;
    /* Labels (I64) come after an odd-sized F32 tensor in the input: the
     * writer must still place them 8-byte aligned. */
    s->e[0] = (safetensors_entry){"features.0.weight", SAFETENSORS_F32, 4, s->conv_shape, s->conv_w};
    s->e[1] = (safetensors_entry){"features.0.bias", SAFETENSORS_F32, 1, s->bias_shape, s->conv_b};
    s->e[2] = (safetensors_entry){.name = "scale", .ndim = 0, .data = s->scale}; /* dtype F32 by default */
    s->e[3] = (safetensors_entry){"labels", SAFETENSORS_I64, 1, s->label_shape, s->labels};
    s->e[4] = (safetensors_entry){"classifier.weight", SAFETENSORS_F32, 2, s->fc_shape, s->fc_w};
    s->e[5] = (safetensors_entry){"empty", SAFETENSORS_F32, 2, s->empty_shape, NULL};
    s->meta[0] = (safetensors_kv){"format", "pt"};
    s->meta[1] = (safetensors_kv){"arch", "vgg16 \"cifar10\" \xc3\xa9"};
}

static void sample_free(sample *s) {
    free(s->conv_w);
    free(s->conv_b);
    free(s->fc_w);
    free(s->scale);
    free(s->labels);
}

static void check_sample(const safetensors_file *f, const sample *s) {
    assert_int_equal(safetensors_count(f), 6);
    for (int i = 0; i < 6; i++) {
        const safetensors_entry *e = &s->e[i];
        const safetensors_tensor *t = safetensors_find(f, e->name);
        assert_non_null(t);
        assert_string_equal(t->name, e->name);
        assert_int_equal(t->dtype, e->dtype);
        assert_int_equal(t->ndim, e->ndim);
        size_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            assert_int_equal(t->shape[d], e->shape[d]);
            numel *= (size_t)e->shape[d];
        }
        assert_int_equal(t->numel, numel);
        assert_int_equal(t->nbytes, numel * safetensors_dtype_size(e->dtype));
        assert_true(t->aligned);
        if (t->nbytes) assert_memory_equal(t->data, e->data, t->nbytes);
    }
    assert_null(safetensors_find(f, "missing"));
    assert_null(safetensors_find(f, ""));
    assert_int_equal(safetensors_meta_count(f), 2);
    assert_string_equal(safetensors_meta_get(f, "format"), "pt");
    assert_string_equal(safetensors_meta_get(f, "arch"), s->meta[1].value);
    assert_null(safetensors_meta_get(f, "nope"));
    const char *k, *v;
    assert_true(safetensors_meta_at(f, 0, &k, &v));
    assert_string_equal(k, "format");
    assert_string_equal(v, "pt");
    assert_false(safetensors_meta_at(f, 2, &k, &v));
    /* Iteration is in offset order, tensors tiling the data with no gap. */
    const uint8_t *end = safetensors_at(f, 0)->data;
    for (int i = 0; i < safetensors_count(f); i++) {
        const safetensors_tensor *t = safetensors_at(f, i);
        assert_ptr_equal(t->data, end);
        end += t->nbytes;
    }
    assert_null(safetensors_at(f, 6));
    assert_null(safetensors_at(f, -1));
}

static void test_round_trip(void **state) {
    (void)state;
    sample s;
    sample_init(&s, 1);
    uint8_t *buf;
    size_t len;
    char err[FILEIO_ERR_LEN] = "";
    assert_int_equal(safetensors_serialize(s.e, 6, s.meta, 2, &buf, &len, err, sizeof err), MODA_OK);

    /* Header: length a multiple of 8, padded with spaces after the JSON,
     * metadata first, tensors in the order given. */
    uint64_t hl = read_le64(buf);
    assert_int_equal(hl % 8, 0);
    assert_true(8 + hl <= len);
    char *hdr = calloc(hl + 1, 1);
    assert_non_null(hdr);
    memcpy(hdr, buf + 8, hl);
    assert_int_equal(hdr[0], '{');
    char *close = strrchr(hdr, '}');
    assert_non_null(close);
    for (char *p = close + 1; *p; p++) assert_int_equal(*p, ' ');
    assert_true(close - hdr + 1 > (ptrdiff_t)hl - 8);
    char *meta = strstr(hdr, "__metadata__");
    char *first = strstr(hdr, "features.0.weight");
    char *second = strstr(hdr, "features.0.bias");
    assert_non_null(meta);
    assert_true(meta < first && first < second);
    assert_non_null(strstr(hdr, "\"dtype\":\"I64\""));
    free(hdr);
    /* The data section is exactly the tensor bytes. */
    size_t total = 0;
    for (int i = 0; i < 6; i++) {
        size_t n = safetensors_dtype_size(s.e[i].dtype);
        for (int d = 0; d < s.e[i].ndim; d++) n *= (size_t)s.e[i].shape[d];
        total += n;
    }
    assert_int_equal(len, 8 + hl + total);

    safetensors_file *f;
    assert_int_equal(parse_copy(buf, len, &f, err, sizeof err), MODA_OK);
    check_sample(f, &s);

    /* Typed copies. */
    float w[108];
    assert_int_equal(safetensors_read_f32(f, "features.0.weight", 4, s.conv_shape, w, 108, err, sizeof err),
                     MODA_OK);
    assert_memory_equal(w, s.conv_w, sizeof w);
    assert_int_equal(safetensors_read_f32(f, "features.0.weight", 0, NULL, w, 108, err, sizeof err), MODA_OK);
    int wrong[4] = {4, 3, 1, 9};
    assert_int_equal(safetensors_read_f32(f, "features.0.weight", 4, wrong, w, 108, err, sizeof err),
                     MODA_ERR_SHAPE);
    assert_non_null(strstr(err, "features.0.weight"));
    assert_non_null(strstr(err, "(4, 3, 3, 3)"));
    assert_non_null(strstr(err, "(4, 3, 1, 9)"));
    assert_int_equal(safetensors_read_f32(f, "features.0.weight", 3, s.conv_shape, w, 108, err, sizeof err),
                     MODA_ERR_SHAPE);
    assert_int_equal(safetensors_read_f32(f, "features.0.weight", 0, NULL, w, 107, err, sizeof err),
                     MODA_ERR_SHAPE);
    assert_int_equal(safetensors_read_f32(f, "labels", 1, s.label_shape, w, 5, err, sizeof err), MODA_ERR_FORMAT);
    assert_non_null(strstr(err, "I64"));
    assert_int_equal(safetensors_read_f32(f, "nope", 0, NULL, w, 1, err, sizeof err), MODA_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "nope"));
    int64_t labels[5];
    assert_int_equal(safetensors_copy(safetensors_find(f, "labels"), labels, sizeof labels), MODA_OK);
    assert_memory_equal(labels, s.labels, sizeof labels);
    assert_int_equal(safetensors_copy(safetensors_find(f, "labels"), labels, 8), MODA_ERR_SHAPE);
    safetensors_free(f);

    /* Borrowed buffer, misaligned on purpose: parsing still works and the
     * copies are right, but views report they are not aligned. */
    uint8_t *shifted = malloc(len + 1);
    assert_non_null(shifted);
    memcpy(shifted + 1, buf, len);
    assert_int_equal(safetensors_parse(shifted + 1, len, NULL, &f, err, sizeof err), MODA_OK);
    const safetensors_tensor *t = safetensors_find(f, "classifier.weight");
    assert_false(t->aligned);
    float fc[40];
    assert_int_equal(safetensors_read_f32(f, "classifier.weight", 2, s.fc_shape, fc, 40, err, sizeof err), MODA_OK);
    assert_memory_equal(fc, s.fc_w, sizeof fc);
    safetensors_free(f);
    free(shifted);
    free(buf);
    sample_free(&s);
}

static void test_file_round_trip(void **state) {
    (void)state;
    sample s;
    sample_init(&s, 2);
    char dir[] = "/tmp/moda_st_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64], err[FILEIO_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    assert_int_equal(safetensors_write_file(path, s.e, 6, s.meta, 2, err, sizeof err), MODA_OK);
    safetensors_file *f;
    assert_int_equal(safetensors_open(path, 1 << 20, &f, err, sizeof err), MODA_OK);
    check_sample(f, &s);
    safetensors_free(f);
    assert_int_equal(safetensors_open(path, 100, &f, err, sizeof err), MODA_ERR_IO);
    assert_null(f);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(safetensors_open(path, 1 << 20, &f, err, sizeof err), MODA_ERR_IO);
    assert_non_null(strstr(err, path));
    assert_int_equal(rmdir(dir), 0);
    sample_free(&s);
}

static void test_empty_file(void **state) {
    (void)state;
    uint8_t *buf;
    size_t len;
    char err[FILEIO_ERR_LEN];
    assert_int_equal(safetensors_serialize(NULL, 0, NULL, 0, &buf, &len, err, sizeof err), MODA_OK);
    assert_int_equal(len, 16);
    assert_int_equal(read_le64(buf), 8);
    assert_memory_equal(buf + 8, "{}      ", 8);
    safetensors_file *f;
    assert_int_equal(parse_copy(buf, len, &f, err, sizeof err), MODA_OK);
    assert_int_equal(safetensors_count(f), 0);
    assert_int_equal(safetensors_meta_count(f), 0);
    assert_null(safetensors_find(f, "x"));
    safetensors_free(f);
    free(buf);
    safetensors_free(NULL);
}

static void test_writer_rejects(void **state) {
    (void)state;
    float x[4] = {1, 2, 3, 4};
    int shape[2] = {2, 2}, neg[1] = {-1};
    uint8_t *buf = NULL;
    size_t len;
    char err[FILEIO_ERR_LEN];
    safetensors_entry dup[2] = {{"a", SAFETENSORS_F32, 2, shape, x}, {"a", SAFETENSORS_F32, 2, shape, x}};
    assert_int_equal(safetensors_serialize(dup, 2, NULL, 0, &buf, &len, err, sizeof err), MODA_ERR_ARG);
    assert_non_null(strstr(err, "duplicate"));
    assert_null(buf);
    safetensors_entry bad[] = {
        {"__metadata__", SAFETENSORS_F32, 2, shape, x},
        {"", SAFETENSORS_F32, 2, shape, x},
        {NULL, SAFETENSORS_F32, 2, shape, x},
        {"n", SAFETENSORS_F32, 1, neg, x},
        {"n", SAFETENSORS_F32, 2, shape, NULL},
        {"n", SAFETENSORS_F32, 9, shape, x},
        {"n", SAFETENSORS_F32, 2, NULL, x},
        {"n", (safetensors_dtype)99, 2, shape, x},
        {"bad\xff utf8", SAFETENSORS_F32, 2, shape, x},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(safetensors_serialize(&bad[i], 1, NULL, 0, &buf, &len, err, sizeof err), MODA_ERR_ARG);
    safetensors_kv dupmeta[2] = {{"k", "1"}, {"k", "2"}};
    assert_int_equal(safetensors_serialize(dup, 1, dupmeta, 2, &buf, &len, err, sizeof err), MODA_ERR_ARG);
    safetensors_kv nullmeta[1] = {{"k", NULL}};
    assert_int_equal(safetensors_serialize(dup, 1, nullmeta, 1, &buf, &len, err, sizeof err), MODA_ERR_ARG);
    assert_int_equal(safetensors_serialize(dup, -1, NULL, 0, &buf, &len, err, sizeof err), MODA_ERR_ARG);
    assert_int_equal(safetensors_serialize(NULL, 1, NULL, 0, &buf, &len, err, sizeof err), MODA_ERR_NULL);
}

/* Every proper prefix of a valid file is an error, never a crash. */
static void test_truncation(void **state) {
    (void)state;
    sample s;
    sample_init(&s, 3);
    uint8_t *buf;
    size_t len;
    char err[FILEIO_ERR_LEN];
    assert_int_equal(safetensors_serialize(s.e, 6, s.meta, 2, &buf, &len, err, sizeof err), MODA_OK);
    for (size_t cut = 0; cut < len; cut++) {
        safetensors_file *f = (safetensors_file *)1;
        err[0] = 0;
        moda_status st = parse_copy(buf, cut, &f, err, sizeof err);
        if (st != MODA_ERR_FORMAT) fail_msg("prefix of %zu/%zu bytes: status %d", cut, len, st);
        assert_null(f);
        assert_true(strlen(err) > 0);
        if (cut < 8) assert_non_null(strstr(err, "truncated"));
    }
    free(buf);
    sample_free(&s);
}

static void test_bad_header_length(void **state) {
    (void)state;
    size_t len;
    uint8_t *img = make_image("{}", 0, &len);
    char err[FILEIO_ERR_LEN];
    safetensors_file *f;
    img[0] = (uint8_t)(len - 7); /* one more than what follows */
    assert_int_equal(parse_copy(img, len, &f, err, sizeof err), MODA_ERR_FORMAT);
    assert_non_null(strstr(err, "truncated"));
    memset(img, 0xff, 8); /* 2^64 - 1 */
    assert_int_equal(parse_copy(img, len, &f, err, sizeof err), MODA_ERR_FORMAT);
    assert_non_null(strstr(err, "limit"));
    memset(img, 0, 8); /* empty header: not JSON */
    assert_int_equal(parse_copy(img, len, &f, err, sizeof err), MODA_ERR_FORMAT);
    free(img);
}

static void test_bad_headers(void **state) {
    (void)state;
    /* JSON syntax and top-level type. */
    expect_reject("{\"a\":", 0, MODA_ERR_FORMAT, "JSON");
    expect_reject("not json", 0, MODA_ERR_FORMAT, "JSON");
    expect_reject("[1, 2]", 0, MODA_ERR_FORMAT, "object");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                  16, MODA_ERR_FORMAT, "JSON");
    expect_reject("{\"a\":3}", 0, MODA_ERR_FORMAT, "\"a\"");
    /* Missing fields. */
    expect_reject("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MODA_ERR_FORMAT, "dtype");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, MODA_ERR_FORMAT, "shape");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, MODA_ERR_FORMAT, "data_offsets");
    /* Wrong types. */
    expect_reject("{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MODA_ERR_FORMAT, "dtype");
    expect_reject("{\"w\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MODA_ERR_FORMAT,
                  "F33");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8, MODA_ERR_FORMAT,
                  "shape");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, MODA_ERR_FORMAT,
                  "shape[0]");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, MODA_ERR_FORMAT,
                  "shape[0]");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
                  MODA_ERR_FORMAT, "dims");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, MODA_ERR_FORMAT,
                  "data_offsets");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"b\":0}}}", 8, MODA_ERR_FORMAT,
                  "data_offsets");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}", 8, MODA_ERR_FORMAT,
                  "data_offsets");
    /* Offsets out of range, reversed, negative, overflowing. */
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, MODA_ERR_FORMAT,
                  "beyond");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8, MODA_ERR_FORMAT,
                  "beyond");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, MODA_ERR_FORMAT,
                  "invalid");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, MODA_ERR_FORMAT,
                  "invalid");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,99999999999999999999]}}", 8,
                  MODA_ERR_FORMAT, "JSON");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[9223372036854775800,"
                  "9223372036854775807]}}",
                  8, MODA_ERR_FORMAT, "beyond");
    /* Shape and size disagree. */
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 12, MODA_ERR_FORMAT,
                  "\"w\"");
    expect_reject("{\"w\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16, MODA_ERR_FORMAT,
                  "needs 16");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                  "\"data_offsets\":[0,8]}}",
                  8, MODA_ERR_FORMAT, "overflows");
    expect_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 8,
                  MODA_ERR_FORMAT, "overflows");
    /* Overlap, including a zero-size tensor inside another. */
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                  12, MODA_ERR_FORMAT, "overlap");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                  8, MODA_ERR_FORMAT, "overlap");
    expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
                  8, MODA_ERR_FORMAT, "overlap");
    /* Metadata must be an object of strings. */
    expect_reject("{\"__metadata__\":{\"k\":1}}", 0, MODA_ERR_FORMAT, "\"k\"");
    expect_reject("{\"__metadata__\":[\"k\"]}", 0, MODA_ERR_FORMAT, "__metadata__");
    /* NUL bytes inside the header are not JSON. */
    expect_reject("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, MODA_ERR_FORMAT,
                  "JSON");
}

/* Valid files that other writers produce: unknown extra fields, gaps,
 * unused trailing bytes, tensors out of order, other dtypes, no padding. */
static void test_lenient_but_valid(void **state) {
    (void)state;
    expect_accept("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8],\"extra\":1}}", 12);
    expect_accept("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                  "\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                  8);
    expect_accept("{\"s\":{\"dtype\":\"BOOL\",\"shape\":[],\"data_offsets\":[0,1]}}", 1);
    expect_accept("{\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[0,0]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                  8);
    expect_accept("{\"__metadata__\":{}}", 0);

    size_t len;
    uint8_t *img = make_image("{\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[5,8]},"
                              "\"a\":{\"dtype\":\"U8\",\"shape\":[5],\"data_offsets\":[0,5]}}",
                              8, &len);
    safetensors_file *f;
    char err[FILEIO_ERR_LEN];
    assert_int_equal(parse_copy(img, len, &f, err, sizeof err), MODA_OK);
    assert_string_equal(safetensors_at(f, 0)->name, "a");
    assert_string_equal(safetensors_at(f, 1)->name, "b");
    const safetensors_tensor *b = safetensors_find(f, "b");
    assert_int_equal(((const uint8_t *)b->data)[0], 5);
    assert_int_equal(b->dtype, SAFETENSORS_U8);
    safetensors_free(f);
    free(img);
}

/* Seeded random damage to a valid file: any outcome but a crash or an
 * out-of-bounds read (the sanitizer build checks the latter). */
static void test_random_damage(void **state) {
    (void)state;
    sample s;
    sample_init(&s, 4);
    uint8_t *buf;
    size_t len;
    char err[FILEIO_ERR_LEN];
    assert_int_equal(safetensors_serialize(s.e, 6, s.meta, 2, &buf, &len, err, sizeof err), MODA_OK);
    size_t hl = (size_t)read_le64(buf);
    rng r;
    rng_seed(&r, 99, 5);
    int ok = 0, bad = 0;
    for (int iter = 0; iter < 3000; iter++) {
        uint8_t *copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, buf, len);
        int flips = 1 + (int)rng_below(&r, 3);
        for (int k = 0; k < flips; k++) {
            /* Mostly hit the header, where damage matters. */
            size_t pos = rng_below(&r, 4) ? rng_below(&r, (uint32_t)(8 + hl)) : rng_below(&r, (uint32_t)len);
            static const char pool[] = "{}[],:\"0123456789-e. aFI";
            copy[pos] = rng_below(&r, 2) ? (uint8_t)pool[rng_below(&r, sizeof pool - 1)] : (uint8_t)rng_u32(&r);
        }
        safetensors_file *f = NULL;
        moda_status st = safetensors_parse_owned(copy, len, "damaged", &f, err, sizeof err);
        if (st == MODA_OK) {
            ok++;
            for (int i = 0; i < safetensors_count(f); i++) {
                const safetensors_tensor *t = safetensors_at(f, i);
                assert_true((const uint8_t *)t->data >= copy &&
                            (const uint8_t *)t->data + t->nbytes <= copy + len);
                assert_ptr_equal(safetensors_find(f, t->name), t);
            }
        } else {
            bad++;
            assert_null(f);
        }
        safetensors_free(f);
    }
    assert_true(bad > 0);
    (void)ok;
    free(buf);
    sample_free(&s);
}

/* With MODA_SAFETENSORS_EXPORT=<path>, write a file whose F32 tensors hold
 * 0.5 * arange(numel) and I64 tensors arange(numel), for
 * tests/gen_safetensors_check.py to load with PyTorch. */
static void test_export_for_pytorch(void **state) {
    (void)state;
    const char *path = getenv("MODA_SAFETENSORS_EXPORT");
    if (!path || !path[0]) skip();
    float a[2 * 3 * 4 * 5], b[7], c[1];
    int64_t l[9];
    for (int i = 0; i < 120; i++) a[i] = 0.5f * (float)i;
    for (int i = 0; i < 7; i++) b[i] = 0.5f * (float)i;
    c[0] = 0.0f;
    for (int i = 0; i < 9; i++) l[i] = i;
    int sa[4] = {2, 3, 4, 5}, sb[1] = {7}, sl[1] = {9};
    safetensors_entry e[4] = {
        {"conv.weight", SAFETENSORS_F32, 4, sa, a},
        {"conv.bias", SAFETENSORS_F32, 1, sb, b},
        {"labels", SAFETENSORS_I64, 1, sl, l},
        {"scalar", SAFETENSORS_F32, 0, NULL, c},
    };
    safetensors_kv m[1] = {{"moda.check", "arange"}};
    char err[FILEIO_ERR_LEN];
    moda_status st = safetensors_write_file(path, e, 4, m, 1, err, sizeof err);
    if (st != MODA_OK) fail_msg("%s", err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_writer_rejects),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_bad_header_length),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_lenient_but_valid),
        cmocka_unit_test(test_random_damage),
        cmocka_unit_test(test_export_for_pytorch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
