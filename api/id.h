/* Composed-model ids: "<model>~<i>-<j>-...~<tau>", the registry model, the
 * parent class indices in output order and the threshold printed with %g.
 * '~' cannot occur in a model name, so an id parses back unambiguously. */
#ifndef MODA_API_ID_H
#define MODA_API_ID_H

#include <stdbool.h>
#include <stddef.h>

#include "errors.h"
#include "registry.h"

/* The float that "%g" prints tau as: composing at this value makes the id
 * name exactly the model that was composed. */
float api_tau_canonical(float tau);

/* Write the id of (model, classes[0..n), tau) into buf[len]; false when it
 * does not fit. */
bool api_id_format(char *buf, size_t len, const char *model, const int *classes, int n, float tau);

/* Split an id into its model name, classes (malloc'd, *n entries, the
 * caller frees) and tau (canonical). Error: invalid_id for anything that
 * is not of the id form (a plain model name included); ranges of classes
 * and tau are the caller's to check. */
int api_id_parse(const char *id, char model[REGISTRY_NAME_MAX + 1], int **classes, int *n, float *tau,
                 api_error *e);

#endif
