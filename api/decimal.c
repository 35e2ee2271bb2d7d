/* Decimal to double in 128-bit integer arithmetic: digits * 5^e is exact
 * in 128 bits for digits < 2^64 and e <= 27 (5^27 < 2^63), and the binary
 * exponent is a power of two, so a single rounding of an exact product, or
 * of a quotient with its remainder as sticky bit, gives the correctly
 * rounded double that strtod returns. The quotient is found by
 * multiplying with a reciprocal and corrected by its exact remainder: a
 * 128-bit division costs more than the rest of a number's parse. */
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

/* floor((2^128 - 1) / 5^q) for q = 1..27, high and low halves
 * (test_json_fast checks them). */
static const uint64_t RECIP5[POW5_MAX][2] = {
    {0x3333333333333333ull, 0x3333333333333333ull},
    {0x0a3d70a3d70a3d70ull, 0xa3d70a3d70a3d70aull},
    {0x020c49ba5e353f7cull, 0xed916872b020c49bull},
    {0x0068db8bac710cb2ull, 0x95e9e1b089a02752ull},
    {0x0014f8b588e368f0ull, 0x8461f9f01b866e43ull},
    {0x000431bde82d7b63ull, 0x4dad31fcd24e160dull},
    {0x0000d6bf94d5e57aull, 0x42bc3d3290760469ull},
    {0x00002af31dc46118ull, 0x73bf3f70834acdaeull},
    {0x0000089705f4136bull, 0x4a59731680a88f89ull},
    {0x000001b7cdfd9d7bull, 0xdbab7d6ae6881cb5ull},
    {0x00000057f5ff85e5ull, 0x92557f7bc7b4d28aull},
    {0x000000119799812dull, 0xea11197f27f0f6e8ull},
    {0x0000000384b84d09ull, 0x2ed0384ca19697c8ull},
    {0x00000000b424dc35ull, 0x095cd80f538484c1ull},
    {0x0000000024075f3dull, 0xceac2b3643e74dc0ull},
    {0x000000000734aca5ull, 0xf6226f0ada6175f3ull},
    {0x000000000170ef54ull, 0x646d496892137dfdull},
    {0x000000000049c977ull, 0x47490eae839d7f99ull},
    {0x00000000000ec1e4ull, 0xa7db69561a52b31eull},
    {0x000000000002f394ull, 0x219248446baa23d2ull},
    {0x000000000000971dull, 0xa05074da7beed3f6ull},
    {0x0000000000001e39ull, 0x2010175ee5962a64ull},
    {0x000000000000060bull, 0x6cd004ac94513badull},
    {0x0000000000000135ull, 0x7c299a88ea76a589ull},
    {0x000000000000003dull, 0xe5a1ebb4fbb1544eull},
    {0x000000000000000cull, 0x612062576589dda9ull},
    {0x0000000000000002ull, 0x79d346de4781f921ull},
};

const uint64_t *decimal_recip5(int q) { return q >= 1 && q <= POW5_MAX ? RECIP5[q - 1] : NULL; }

/* floor(h * 2^64 / 5^q) and its remainder: the reciprocal's error makes the
 * product at most 1 short (h * 2^64 < 2^128 and the reciprocal is short of
 * 2^128 / 5^q by less than 1), and the remainder, exact in wrapping
 * arithmetic because the true one is below 2^64, says when. */
static u128 div_pow5(uint64_t h, int q, uint64_t *rem) {
    const uint64_t d = POW5[q], *r = RECIP5[q - 1];
    u128 quot = (u128)h * r[0] + (((u128)h * r[1]) >> 64);
    u128 left = ((u128)h << 64) - quot * d;
    if (left >= d) {
        quot++;
        left -= d;
    }
    *rem = (uint64_t)left;
    return quot;
}

/* 2^e as a double, for e in the normal range. */
static double pow2(int e) {
    uint64_t bits = (uint64_t)(e + 1023) << 52;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

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
    if (len <= 53) return (double)(uint64_t)v * pow2(shift2); /* exact */
    int drop = len - 53;
    uint64_t mant = (uint64_t)(v >> drop);
    u128 rest = v & (((u128)1 << drop) - 1), half = (u128)1 << (drop - 1);
    if (rest > half || (rest == half && (sticky || (mant & 1)))) mant++;
    if (mant >> 53) { /* rounded up to 2^53 */
        mant >>= 1;
        drop++;
    }
    return (double)mant * pow2(shift2 + drop); /* exact: the range keeps results normal */
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
        uint64_t rem;
        /* digits * 2^(64 + lz) / 5^q has 65 to 128 bits: enough below the
         * 53 kept for the half bit, and the remainder is the sticky bit. */
        u128 quot = div_pow5(digits << lz, q, &rem);
        v = round_scaled(quot, -64 - lz - q, rem != 0);
    }
    *out = neg ? -v : v;
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Eight ASCII digits at p as one number, when all eight are digits: the
 * bytes are subtracted from '0' and paired, the pairs paired and the
 * quads paired, in three multiplications instead of eight steps. */
static bool eight_digits(const char *p, uint32_t *out) {
    uint64_t v;
    memcpy(&v, p, sizeof v); /* little-endian: p[0] is the low byte */
    uint64_t d = v - 0x3030303030303030ull;
    /* Each byte a digit: its high nibble 3, and adding 6 does not carry. */
    if ((v & 0xF0F0F0F0F0F0F0F0ull) != 0x3030303030303030ull ||
        ((v + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) != 0x3030303030303030ull)
        return false;
    d = (d * 10 + (d >> 8)) & 0x00FF00FF00FF00FFull;       /* 4 pairs: p[0]p[1], ... */
    d = (d * 100 + (d >> 16)) & 0x0000FFFF0000FFFFull;     /* 2 quads */
    *out = (uint32_t)((d & 0xFFFFFFFFull) * 10000 + (d >> 32)); /* 8 digits */
    return true;
}

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
        while (p < stop && is_digit(*p)) {
            uint32_t eight; /* past the leading zeros, eight digits at a time while they fit */
            if (digits && significant <= 11 && stop - p >= 8 && eight_digits(p, &eight)) {
                digits = digits * 100000000u + eight;
                significant += 8;
                exp10 -= 8;
                p += 8;
                continue;
            }
            if (significant < 19) {
                digits = digits * 10 + (uint64_t)(*p - '0');
                if (digits) significant++;
                exp10--;
            } else if (*p != '0') {
                exact = false;
            }
            p++;
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
