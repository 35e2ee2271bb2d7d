/* The fast JSON number and tree parser (api/decimal.c, api/json_fast.c)
 * against strtod and Jansson: every number, random or on an edge (halfway
 * cases, 2^53 and 2^64 boundaries, 19 and 20 digits, exponents at the exact
 * range's ends, subnormals, overflow), parses to strtod's double bit for
 * bit; random documents parse to Jansson's tree; and what it declines
 * (malformed JSON, \u escapes, huge integers, duplicates) falls back to
 * Jansson with Jansson's own error message. Packed tensors: random
 * rectangular, ragged and mixed arrays pack exactly when they are
 * rectangular arrays of numbers, to the doubles of Jansson's tree, and
 * decode (api_input_from_json_packed) to the same samples or the same
 * error as from the tree. */
#include "test_util.h"

#include <jansson.h>

#include "api_internal.h"
#include "decimal.h"
#include "json_fast.h"

static uint64_t state = 0x9e3779b97f4a7c15ull;

static uint64_t next(void) { /* xorshift64* */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 2685821657736338717ull;
}

/* The text must parse whole, to strtod's double exactly. */
static void expect_as_strtod(const char *text) {
    double got = 0;
    bool integer;
    const char *end = NULL;
    if (!decimal_parse_json(text, strlen(text), &got, &integer, &end)) fail_msg("declined \"%s\"", text);
    if (end != text + strlen(text)) fail_msg("\"%s\" parsed up to byte %td", text, end - text);
    double want = strtod(text, NULL);
    if (memcmp(&got, &want, sizeof got))
        fail_msg("\"%s\": %.17g (%a), strtod %.17g (%a)", text, got, got, want, want);
    float gf = (float)got, wf = (float)want;
    assert_memory_equal(&gf, &wf, sizeof gf);
}

static void test_reciprocals(void **state_) {
    (void)state_;
    unsigned __int128 p5 = 1;
    for (int q = 1; q <= 27; q++) {
        p5 *= 5;
        const uint64_t *r = decimal_recip5(q);
        assert_non_null(r);
        unsigned __int128 want = ~(unsigned __int128)0 / p5;
        assert_true(r[0] == (uint64_t)(want >> 64) && r[1] == (uint64_t)want);
    }
    assert_null(decimal_recip5(0));
    assert_null(decimal_recip5(28));
}

static void test_edge_numbers(void **state_) {
    (void)state_;
    static const char *const cases[] = {
        "0", "-0", "0.0", "-0.0", "1", "-1", "0.1", "0.2", "0.3", "0.30000000000000004", "1e0", "1E+0", "1e-0",
        "9007199254740991", "9007199254740992", "9007199254740993", "9007199254740994", "9007199254740995",
        "18014398509481985", "9223372036854775807", "9223372036854775808", "18446744073709551615",
        "18446744073709551616", "99999999999999999999", "1000000000000000000000000000000",
        "1234567890123456789", "12345678901234567890", "1.234567890123456789", "1.2345678901234567891",
        "0.1000000000000000055511151231257827", "0.10000000000000000555111512312578271",
        "1.00000000000000011102230246251565404236316680908203125",
        "1.00000000000000011102230246251565404236316680908203124",
        "1.00000000000000011102230246251565404236316680908203126", "2.2250738585072014e-308",
        "2.2250738585072011e-308", "4.9406564584124654e-324", "1e-320", "1e-400", "1.7976931348623157e308",
        "1.7976931348623158e308", "1e308", "1e309", "-1e309", "1e27", "1e28", "1e-27", "1e-28", "7e-27", "7e27",
        "7450580596923828125", "7450580596923828125e-27", "9999999999999999999e27", "9999999999999999999e-27",
        "1.5", "2.5", "0.5", "0.25", "0.125", "3.4028234663852886e38", "3.4028235677973366e38",
        "1.1754943508222875e-38", "1.401298464324817e-45", "-0.8102576530612245", "2.7640306122448983",
        "0.000000000000000000000000000001", "100000000000000000000000000000.0", "0.1e1", "123.456e-7",
        "16777217", "16777217.0", "33554435", "1.00000005960464477539062500", "1.00000005960464477539062501",
        "0e5", "0.000e-5", "-0e-0",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_as_strtod(cases[i]);
}

/* Random numbers of every JSON form: 1..25 digits, a point anywhere,
 * exponents -40..40 (both sides of the exact range), leading zeros in the
 * fraction, and float32's nearest values printed with 9 and 17 digits. */
static void test_random_numbers(void **state_) {
    (void)state_;
    char text[96];
    for (int iter = 0; iter < 400000; iter++) {
        uint64_t r = next();
        size_t n = 0;
        if (r & 1) text[n++] = '-';
        int kind = (int)(r >> 1) % 4;
        if (kind == 3) { /* a float printed as the server and clients do */
            float f;
            uint32_t bits = (uint32_t)next();
            memcpy(&f, &bits, sizeof f);
            if (!isfinite(f)) continue;
            snprintf(text, sizeof text, (r >> 8) & 1 ? "%.9g" : "%.17g", (double)f);
            if (strchr(text, 'i') || strchr(text, 'n')) continue;
            expect_as_strtod(text);
            continue;
        }
        int digits = 1 + (int)(next() % 25);
        int point = kind == 0 ? -1 : (int)(next() % (uint64_t)digits);
        int lead0 = kind == 2 ? (int)(next() % 30) : 0;
        if (point >= 0 && lead0) { /* 0.000ddd */
            n += (size_t)snprintf(text + n, sizeof text - n, "0.");
            for (int z = 0; z < lead0 && n < 60; z++) text[n++] = '0';
            point = -1;
        }
        for (int d = 0; d < digits; d++) {
            int digit = (int)(next() % 10);
            if (d == 0 && digit == 0 && !lead0) digit = 1 + (int)(next() % 9); /* no leading zero */
            text[n++] = (char)('0' + digit);
            if (d == point && d + 1 < digits) text[n++] = '.';
        }
        if (next() % 2) n += (size_t)snprintf(text + n, sizeof text - n, "e%d", (int)(next() % 81) - 40);
        text[n] = '\0';
        expect_as_strtod(text);
    }
}

static void test_not_numbers(void **state_) {
    (void)state_;
    static const char *const bad[] = {"", "-", "+1", ".5", "1.", "1.e5", "1e", "1e+", "-.5", "x", "e5", "--1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double d;
        bool integer;
        const char *end;
        if (decimal_parse_json(bad[i], strlen(bad[i]), &d, &integer, &end))
            fail_msg("\"%s\" parsed as a number", bad[i]);
    }
    /* A number stops where JSON's grammar does: "01" is the number 0 then "1". */
    double d;
    bool integer;
    const char *end;
    assert_true(decimal_parse_json("01", 2, &d, &integer, &end));
    assert_int_equal(end - "01", 1);
}

/* Same tree as Jansson, with reals compared bit for bit. */
static void expect_same_tree(const json_t *a, const json_t *b) {
    assert_int_equal(json_typeof(a), json_typeof(b));
    size_t i;
    const char *key;
    json_t *v;
    switch (json_typeof(a)) {
    case JSON_OBJECT:
        assert_int_equal(json_object_size(a), json_object_size(b));
        json_object_foreach((json_t *)a, key, v) {
            const json_t *w = json_object_get(b, key);
            assert_non_null(w);
            expect_same_tree(v, w);
        }
        break;
    case JSON_ARRAY:
        assert_int_equal(json_array_size(a), json_array_size(b));
        json_array_foreach(a, i, v) expect_same_tree(v, json_array_get(b, i));
        break;
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);
        assert_memory_equal(&x, &y, sizeof x);
        break;
    }
    default: assert_true(json_equal((json_t *)a, (json_t *)b));
    }
}

static void expect_like_jansson(const char *text, size_t flags) {
    json_error_t je;
    json_t *want = json_loadb(text, strlen(text), flags, &je);
    json_t *got = json_fast_loadb(text, strlen(text), flags);
    if (!want && got) fail_msg("accepted what Jansson refuses (%s): %.80s", je.text, text);
    if (want && !got) fail_msg("declined valid JSON: %.200s", text);
    if (want) expect_same_tree(got, want);
    json_decref(want);
    json_decref(got);
}

static json_t *random_value(int depth) {
    switch (next() % (depth > 3 ? 4 : 7)) {
    case 0: return json_integer((json_int_t)(next() % 2000001) - 1000000);
    case 1: {
        double d = ((double)(next() >> 11) / 9007199254740992.0 - 0.5) * pow(10, (double)(next() % 30) - 15);
        return json_real(d);
    }
    case 2: return json_string((next() % 2) ? "input" : "a \"quoted\"\\ string\twith\nescapes/");
    case 3: return (next() % 3) ? json_true() : json_null();
    case 4:
    case 5: {
        json_t *arr = json_array();
        int n = (int)(next() % 40);
        for (int i = 0; i < n; i++) json_array_append_new(arr, random_value(depth + 1));
        return arr;
    }
    default: {
        json_t *obj = json_object();
        int n = (int)(next() % 5);
        for (int i = 0; i < n; i++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", (int)(next() % 8));
            json_object_set_new(obj, key, random_value(depth + 1));
        }
        return obj;
    }
    }
}

static void test_random_documents(void **state_) {
    (void)state_;
    for (int iter = 0; iter < 300; iter++) {
        json_t *doc = json_pack("{s:o}", "inputs", random_value(0));
        size_t fmt = (iter % 3 == 0 ? JSON_INDENT(2) : JSON_COMPACT) | JSON_REAL_PRECISION(1 + iter % 17);
        char *text = json_dumps(doc, fmt);
        expect_like_jansson(text, 0);
        expect_like_jansson(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY);
        free(text);
        json_decref(doc);
    }
    expect_like_jansson(" [ 1 , -2.5e3 , {\"a\" : [ ] , \"b\" : { } } , true , false , null ] ", 0);
    expect_like_jansson("{\"a\":1,\"a\":2}", 0); /* the last one wins, as in Jansson */
    expect_like_jansson("3.25", JSON_DECODE_ANY);
    expect_like_jansson("\"x\"", JSON_DECODE_ANY);
    expect_like_jansson("[9223372036854775807,-9223372036854775808,1e-400,-0]", 0);
}

/* Declined: Jansson parses it (and, when it is an error, says what). */
static void test_declines_fall_back(void **state_) {
    (void)state_;
    static const struct {
        const char *text;
        size_t flags;
    } cases[] = {
        {"", 0}, {"  ", 0}, {"[1,]", 0}, {"[1 2]", 0}, {"{\"a\" 1}", 0}, {"{\"a\":1,}", 0}, {"[01]", 0},
        {"[1.]", 0}, {"[-]", 0}, {"[1e999]", 0}, {"[9223372036854775808]", 0}, {"[-9223372036854775809]", 0},
        {"[\"\\u00e9\"]", 0}, {"[\"caf\xc3\xa9\"]", 0}, {"[\"\xff\"]", 0}, {"[\"a\nb\"]", 0}, {"[tru]", 0},
        {"[nul]", 0}, {"[1] x", 0}, {"{\"a\":1,\"a\":2}", JSON_REJECT_DUPLICATES}, {"3", 0}, {"[\"\\x\"]", 0},
        {"{\"a\":[1,2,3", 0}, {"[1]\0", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *t = cases[i].text;
        size_t len = strlen(t) + (i + 1 == sizeof cases / sizeof cases[0]); /* the last one with its NUL */
        assert_null(json_fast_loadb(t, len, cases[i].flags));
        json_error_t e1, e2;
        json_t *a = json_loadb(t, len, cases[i].flags, &e1), *b = json_fast_or_jansson(t, len, cases[i].flags, &e2);
        assert_int_equal(a == NULL, b == NULL);
        if (!a) {
            assert_string_equal(e1.text, e2.text);
            assert_int_equal(e1.line, e2.line);
            assert_int_equal(e1.column, e2.column);
        } else {
            assert_true(json_equal(a, b));
        }
        json_decref(a);
        json_decref(b);
    }
    /* Deeper than the fast parser goes: Jansson's tree. */
    char deep[300];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = '\0';
    assert_null(json_fast_loadb(deep, 200, 0));
    json_error_t e;
    json_t *d = json_fast_or_jansson(deep, 200, 0, &e);
    assert_non_null(d);
    json_decref(d);
}

/* ---- packed tensors ------------------------------------------------------- */

static json_t *random_leaf(void) {
    switch (next() % 8) {
    case 0: return json_integer((json_int_t)(next() % 300));
    case 1: return json_integer(0); /* printed "0"; "-0" below */
    case 2: return json_real(((double)(next() >> 11) / 9007199254740992.0 - 0.5) * 6);
    case 3: return json_real((double)(next() % 256));
    case 4: return json_real(next() % 2 ? 1e39 : -2.5e-46); /* beyond float32, and below it */
    default: return json_real((double)(next() % 100000) / 1000.0 - 50);
    }
}

/* A nested array of the given shape, spoiled now and then: one array a
 * different length, a leaf not a number, an array where a number goes or
 * a number where an array goes, an empty array. */
static json_t *random_tensor(const int *shape, int ndim, int d, int *spoil) {
    json_t *arr = json_array();
    int n = shape[d];
    if (*spoil == 1 && next() % 4 == 0) n += next() % 2 ? 1 : -1, *spoil = 0;
    if (*spoil == 5 && next() % 4 == 0) n = 0, *spoil = 0;
    for (int i = 0; i < n; i++) {
        json_t *v;
        if (d + 1 < ndim) {
            v = *spoil == 3 && next() % 8 == 0 ? (*spoil = 0, random_leaf()) : random_tensor(shape, ndim, d + 1, spoil);
        } else if (*spoil == 2 && next() % 8 == 0) {
            v = next() % 2 ? json_string("1") : json_null();
            *spoil = 0;
        } else if (*spoil == 4 && next() % 8 == 0) {
            v = json_pack("[i]", 1);
            *spoil = 0;
        } else {
            v = random_leaf();
        }
        json_array_append_new(arr, v);
    }
    return arr;
}

/* Rectangular, all numbers, 1 to 4 levels, no array empty: the reference
 * for what packs, over Jansson's tree. Fills shape/ndim from first entries. */
static bool rect_shape(const json_t *v, int *shape, int *ndim) {
    *ndim = 0;
    for (const json_t *x = v; json_is_array(x); x = json_array_get(x, 0)) {
        if (*ndim == 4 || json_array_size(x) == 0) return false;
        shape[(*ndim)++] = (int)json_array_size(x);
    }
    return *ndim > 0;
}

static bool rect_check(const json_t *v, const int *shape, int ndim, int d) {
    if (d == ndim) return json_is_number(v);
    if (!json_is_array(v) || (int)json_array_size(v) != shape[d]) return false;
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!rect_check(json_array_get(v, i), shape, ndim, d + 1)) return false;
    return true;
}

static void leaves(const json_t *v, double *out, size_t *n) {
    if (!json_is_array(v)) {
        out[(*n)++] = json_number_value(v);
        return;
    }
    for (size_t i = 0; i < json_array_size(v); i++) leaves(json_array_get(v, i), out, n);
}

/* The same samples, or the same error, from the tree and from packed. */
static void expect_same_input(const json_t *tree, const json_t *values, const json_fast_packed *pk, const int *shape,
                              api_dtype dt) {
    api_input a, b;
    api_error ea = {0}, eb = {0};
    int ra = api_input_from_json(tree, shape, dt, 64, &a, &ea);
    int rb = api_input_from_json_packed(values, pk, shape, dt, 64, &b, &eb);
    assert_int_equal(ra, rb);
    if (ra) {
        assert_string_equal(ea.code, eb.code);
        assert_string_equal(ea.message, eb.message);
        return;
    }
    assert_true(a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w && a.dtype == b.dtype);
    size_t bytes = (size_t)a.n * a.c * a.h * a.w * (dt == API_DTYPE_UINT8 ? 1 : sizeof(float));
    assert_memory_equal(a.data, b.data, bytes);
    api_input_free(&a);
    api_input_free(&b);
}

static void test_packed_tensors(void **state_) {
    (void)state_;
    int packed_count = 0, declined_count = 0;
    for (int iter = 0; iter < 3000; iter++) {
        int ndim = 1 + (int)(next() % 5), shape[5], spoil = (int)(next() % 8); /* 0, 6, 7: none */
        for (int d = 0; d < ndim; d++) shape[d] = 1 + (int)(next() % 4);
        json_t *doc = json_pack("{s:s,s:o,s:[i]}", "model", "m", "inputs", random_tensor(shape, ndim, 0, &spoil),
                                "after", 1);
        if (next() % 4 == 0) json_object_set_new(doc, "outer", json_pack("{s:[i,i]}", "inputs", 1, 2));
        char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(1 + iter % 17));
        char *z = iter % 5 == 0 ? strstr(text, "[0,") : NULL;
        if (z) { /* "-0": an integer zero to Jansson, +0.0 as its number value */
            size_t at = (size_t)(z - text) + 1, len = strlen(text);
            char *t = malloc(len + 2);
            memcpy(t, text, at);
            t[at] = '-';
            memcpy(t + at + 1, text + at, len - at + 1);
            free(text);
            text = t;
        }
        json_error_t je;
        json_t *want = json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES, &je);
        json_fast_packed pk;
        json_t *got = json_fast_or_jansson_packed(text, strlen(text), JSON_REJECT_DUPLICATES, "inputs", &pk, &je);
        assert_non_null(want);
        assert_non_null(got);
        const json_t *tree = json_object_get(want, "inputs"), *values = json_object_get(got, "inputs");
        int rshape[4], rdim;
        bool rect = rect_shape(tree, rshape, &rdim) && rect_check(tree, rshape, rdim, 0);
        /* A nested "inputs" (under "outer") comes after the body's own:
         * only the first in the text may pack. */
        if (rect) {
            assert_ptr_equal(values, pk.node);
            assert_int_equal(json_array_size(values), 0);
            assert_int_equal(pk.ndim, rdim);
            assert_memory_equal(pk.shape, rshape, (size_t)rdim * sizeof(int));
            double *want_values = malloc(pk.count * sizeof(double) + 1);
            size_t n = 0;
            leaves(tree, want_values, &n);
            assert_int_equal(n, pk.count);
            assert_memory_equal(pk.values, want_values, n * sizeof(double));
            free(want_values);
            packed_count++;
        } else {
            assert_null(pk.node);
            expect_same_tree(values, tree);
            declined_count++;
        }
        /* The rest of the tree is Jansson's. */
        json_t *g = json_deep_copy(got), *w = json_deep_copy(want);
        json_object_del(g, "inputs");
        json_object_del(w, "inputs");
        expect_same_tree(g, w);
        json_decref(g);
        json_decref(w);
        /* Decoding: no shape, the shape it has, and others. */
        int total = 1;
        for (int d = 0; d < ndim; d++) total *= shape[d];
        int shapes[5][4] = {{1, 1, 1, total}, {1, 1, 2, total / 2}, {0}, {0}, {1, 2, 2, 2}};
        for (int d = 0; d < 4; d++) shapes[2][d] = d < 4 - ndim ? 1 : shape[d - (4 - ndim)];
        shapes[3][0] = 2, shapes[3][1] = 1, shapes[3][2] = 1, shapes[3][3] = total;
        for (int dt = 0; dt < 2; dt++) {
            api_dtype t = dt ? API_DTYPE_UINT8 : API_DTYPE_FLOAT32;
            expect_same_input(tree, values, &pk, NULL, t);
            for (int k = 0; k < 5; k++)
                if (ndim <= 4 && shapes[k][3] > 0) expect_same_input(tree, values, &pk, shapes[k], t);
        }
        json_fast_packed_free(&pk);
        json_decref(got);
        json_decref(want);
        free(text);
        json_decref(doc);
    }
    /* Both kinds came up often. */
    assert_true(packed_count > 500);
    assert_true(declined_count > 300);
    /* A body the fast parser declines after packing: nothing stays packed. */
    json_fast_packed pk;
    json_error_t je;
    const char *esc = "{\"inputs\":[1,2],\"x\":\"\\u00e9\"}";
    json_t *root = json_fast_or_jansson_packed(esc, strlen(esc), 0, "inputs", &pk, &je);
    assert_non_null(root);
    assert_null(pk.node);
    assert_null(pk.values);
    assert_int_equal(json_array_size(json_object_get(root, "inputs")), 2);
    json_decref(root);
    root = json_fast_or_jansson_packed("{\"inputs\":[1,2]", 15, 0, "inputs", &pk, &je);
    assert_null(root);
    assert_null(pk.node);
    /* Only the first member named key is a candidate. */
    const char *two = "{\"o\":{\"inputs\":[\"a\"]},\"inputs\":[1,2]}";
    root = json_fast_or_jansson_packed(two, strlen(two), 0, "inputs", &pk, &je);
    assert_null(pk.node);
    assert_int_equal(json_array_size(json_object_get(root, "inputs")), 2);
    json_decref(root);
    json_fast_packed_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reciprocals),     cmocka_unit_test(test_edge_numbers),
        cmocka_unit_test(test_random_numbers),
        cmocka_unit_test(test_not_numbers),     cmocka_unit_test(test_random_documents),
        cmocka_unit_test(test_declines_fall_back), cmocka_unit_test(test_packed_tensors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
