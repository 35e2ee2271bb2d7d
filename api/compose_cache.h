/* The composed-model cache: an LRU bounded in bytes. An entry counts its
 * composed graph's parameters plus the activations of its per-worker
 * inference handles. Entries in use are pinned (refcount) and never freed
 * under a request; eviction skips them, so the budget may be exceeded
 * while pins last and is restored on release. Identical concurrent
 * requests compose once (single flight). Thread-safe. */
#ifndef MODA_API_COMPOSE_CACHE_H
#define MODA_API_COMPOSE_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "entry.h"
#include "metrics.h"

typedef struct compose_cache compose_cache;

/* limit: the byte budget; m: not owned, may be NULL. NULL when out of
 * memory. */
compose_cache *compose_cache_new(size_t limit, metrics *m);
void compose_cache_free(compose_cache *c); /* accepts NULL; no entry may be pinned */

/* Pin the composition of parent for classes[0..n) (valid, distinct) at
 * tau (canonical, see api_tau_canonical) in mode: from the cache (*cached
 * true), or composed now with be (the caller's worker backend) while
 * identical requests wait for it. Entries are keyed by their id, so the
 * two modes of the same classes are two entries. Errors:
 * invalid_combination when the engine cannot compose the parent in that
 * mode (MODA_ERR_UNSUPPORTED), internal when composing fails otherwise. */
int compose_cache_acquire(compose_cache *c, const api_model *parent, const int *classes, int n, float tau,
                          compose_mode mode, moda_backend *be, int workers, api_entry **out, bool *cached,
                          api_error *e);
/* Unpin; frees the entry if it was deleted or no longer fits. Permanent
 * (full-model) entries are ignored; e may be NULL. */
void compose_cache_release(compose_cache *c, api_entry *e);

/* Drop the entry of id now, or on its last release when pinned. false when
 * id is not cached. */
bool compose_cache_delete(compose_cache *c, const char *id);

/* e (pinned) changed size from old_bytes to new_bytes (an inference handle
 * planned or re-planned): count the difference, evicting others as needed.
 * Permanent entries are not counted. */
/* Drop every entry composed from parent (pinned ones go on their last
 * release): after a reload replaced or removed it. Returns how many. */
int compose_cache_drop_parent(compose_cache *c, const api_model *parent);

void compose_cache_resize(compose_cache *c, api_entry *e, size_t old_bytes, size_t new_bytes);

size_t compose_cache_bytes_used(compose_cache *c);
int compose_cache_count(compose_cache *c); /* entries findable now */

#endif
