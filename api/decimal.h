/* Exact decimal to binary64: the double that strtod returns for the same
 * text, without strtod's cost, for the numbers JSON tensors are made of. */
#ifndef MODA_API_DECIMAL_H
#define MODA_API_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The double nearest to (-1)^neg * digits * 10^exp10 (ties to even), as
 * strtod rounds. Exact when digits < 2^64 and |exp10| <= 27; false (*out
 * untouched) outside that range, where the caller uses strtod. */
bool decimal_to_double(uint64_t digits, int exp10, bool neg, double *out);

/* The reciprocal decimal_to_double divides by 5^q with: floor((2^128 - 1)
 * / 5^q) as {high, low} 64-bit halves, q in 1..27; NULL otherwise. */
const uint64_t *decimal_recip5(int q);

/* Parses a JSON number at s (at most len bytes): -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 * *end: the byte after it; *is_integer: no fraction and no exponent. The
 * value in *out: exactly strtod's, through decimal_to_double or, for more
 * than 19 significant digits or a large exponent, strtod itself. false
 * when s does not start with a JSON number. */
bool decimal_parse_json(const char *s, size_t len, double *out, bool *is_integer, const char **end);

#endif
