/* Composed-model ids: "<model>~<i>-<j>-...~<tau>[~per-layer]", the registry
 * model, the parent class indices in output order, the threshold printed
 * with %g and, for a per-layer composition, the mode (a tied composition,
 * the default, has no suffix, so ids from before modes existed still name
 * the same model). '~' cannot occur in a model name, so an id parses back
 * unambiguously. */
#ifndef MODA_API_ID_H
#define MODA_API_ID_H

#include <stdbool.h>
#include <stddef.h>

#include "compose.h"
#include "errors.h"
#include "registry.h"

/* The float that "%g" prints tau as: composing at this value makes the id
 * name exactly the model that was composed. */
float api_tau_canonical(float tau);

/* Write the id of (model, classes[0..n), tau, mode) into buf[len]; false
 * when it does not fit. */
bool api_id_format(char *buf, size_t len, const char *model, const int *classes, int n, float tau,
                   compose_mode mode);

/* Split an id into its model name, classes (malloc'd, *n entries, the
 * caller frees), tau (canonical) and mode. Error: unknown_model (an id that
 * is no composed id names no model) for anything that is not of the id
 * form: a plain model name, a suffix other than "~per-layer" ("~tied"
 * included: a tied id has none); ranges of classes and tau are the
 * caller's to check. */
int api_id_parse(const char *id, char model[REGISTRY_NAME_MAX + 1], int **classes, int *n, float *tau,
                 compose_mode *mode, api_error *e);

#endif
