/* The fast JSON number and tree parser (api/decimal.c, api/json_fast.c)
 * against strtod and Jansson: every number, random or on an edge (halfway
 * cases, 2^53 and 2^64 boundaries, 19 and 20 digits, exponents at the exact
 * range's ends, subnormals, overflow), parses to strtod's double bit for
 * bit; random documents parse to Jansson's tree; and what it declines
 * (malformed JSON, \u escapes, huge integers, duplicates) falls back to
 * Jansson with Jansson's own error message. */
#include "test_util.h"

#include <jansson.h>

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edge_numbers),    cmocka_unit_test(test_random_numbers),
        cmocka_unit_test(test_not_numbers),     cmocka_unit_test(test_random_documents),
        cmocka_unit_test(test_declines_fall_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
