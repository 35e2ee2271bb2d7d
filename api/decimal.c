/* Decimal to double in 128-bit integer arithmetic: digits * 5^e is exact
 * in 128 bits for digits < 2^64 and e <= 27 (5^27 < 2^63), and the binary
 * exponent is a power of two, so a single rounding of an exact product, or
 * of a quotient with its remainder as sticky bit, gives the correctly
 * rounded double that strtod returns. */
#include "decimal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define POW5_MAX 27

static const uint64_t POW5[POW5_MAX + 1] = {
    1ull,
    5ull,
    25ull,
    125ull,
    625ull,
    3125ull,
    15625ull,
    78125ull,
    390625ull,
    1953125ull,
    9765625ull,
    48828125ull,
    244140625ull,
    1220703125ull,
    6103515625ull,
    30517578125ull,
    152587890625ull,
    762939453125ull,
    3814697265625ull,
    19073486328125ull,
    95367431640625ull,
    476837158203125ull,
    2384185791015625ull,
    11920928955078125ull,
    59604644775390625ull,
    298023223876953125ull,
    1490116119384765625ull,
    7450580596923828125ull,
};

typedef unsigned __int128 u128;

static int bit_length(u128 v) {
    uint64_t hi = (uint64_t)(v >> 64), lo = (uint64_t)v;
    if (hi) return 128 - __builtin_clzll(hi);
    return lo ? 64 - __builtin_clzll(lo) : 0;
}

/* v * 2^shift2 rounded to 53 bits, ties to even. sticky: nonzero bits
 * were dropped below v (a division's remainder); only with v over 53 bits,
 * which a quotient always is here. */
static double round_scaled(u128 v, int shift2, bool sticky) {
    int len = bit_length(v);
    if (len <= 53) return ldexp((double)(uint64_t)v, shift2); /* exact */
    int drop = len - 53;
    uint64_t mant = (uint64_t)(v >> drop);
    u128 rest = v & (((u128)1 << drop) - 1), half = (u128)1 << (drop - 1);
    if (rest > half || (rest == half && (sticky || (mant & 1)))) mant++;
    if (mant >> 53) { /* rounded up to 2^53 */
        mant >>= 1;
        drop++;
    }
    return ldexp((double)mant, shift2 + drop);
}

bool decimal_to_double(uint64_t digits, int exp10, bool neg, double *out) {
    if (exp10 > POW5_MAX || exp10 < -POW5_MAX) return false;
    double v;
    if (digits == 0) {
        v = 0.0;
    } else if (exp10 >= 0) {
        v = round_scaled((u128)digits * POW5[exp10], exp10, false);
    } else {
        int q = -exp10, lz = __builtin_clzll(digits);
        u128 num = (u128)(digits << lz) << 64, den = POW5[q];
        /* num / den has 65 to 128 bits: enough below the 53 kept for the
         * half bit, and the remainder is the sticky bit. */
        v = round_scaled(num / den, -64 - lz - q, num % den != 0);
    }
    *out = neg ? -v : v;
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool decimal_parse_json(const char *s, size_t len, double *out, bool *is_integer, const char **end) {
    const char *p = s, *stop = s + len;
    bool neg = false;
    if (p < stop && *p == '-') {
        neg = true;
        p++;
    }
    if (p >= stop || !is_digit(*p)) return false;
    uint64_t digits = 0;
    int significant = 0, exp10 = 0;
    bool exact = true;
    /* Integer part: no leading zeros (a 0 stands alone). */
    if (*p == '0') {
        p++;
    } else {
        for (; p < stop && is_digit(*p); p++) {
            if (significant < 19) {
                digits = digits * 10 + (uint64_t)(*p - '0');
                if (digits) significant++;
            } else {
                exp10++; /* a digit beyond 19: exact only while it is a 0 */
                if (*p != '0') exact = false;
            }
        }
    }
    *is_integer = true;
    if (p < stop && *p == '.') {
        *is_integer = false;
        p++;
        if (p >= stop || !is_digit(*p)) return false;
        for (; p < stop && is_digit(*p); p++) {
            if (significant < 19) {
                digits = digits * 10 + (uint64_t)(*p - '0');
                if (digits) significant++;
                exp10--;
            } else if (*p != '0') {
                exact = false;
            }
        }
    }
    if (p < stop && (*p == 'e' || *p == 'E')) {
        *is_integer = false;
        p++;
        bool eneg = false;
        if (p < stop && (*p == '+' || *p == '-')) eneg = *p++ == '-';
        if (p >= stop || !is_digit(*p)) return false;
        int e = 0;
        for (; p < stop && is_digit(*p); p++)
            if (e < 100000) e = e * 10 + (*p - '0');
        exp10 += eneg ? -e : e;
    }
    *end = p;
    if (exact && decimal_to_double(digits, exp10, neg, out)) return true;
    /* strtod needs a terminated string: copy the token. */
    char buf[512];
    size_t n = (size_t)(p - s);
    char *text = n < sizeof buf ? buf : malloc(n + 1);
    if (!text) return false;
    memcpy(text, s, n);
    text[n] = '\0';
    errno = 0;
    *out = strtod(text, NULL);
    if (text != buf) free(text);
    return true;
}
