/*
 * array: growing a realloc'd array of fixed-size elements by doubling,
 * for the batches and sets the daemons gather (cursors and session checks
 * per relay tick, bus subscriptions, offline deliveries). The module owns
 * only the growth rule and its failure handling; the array, its count and
 * its capacity stay the caller's, and the caller frees the array.
 */
#ifndef PL_ARRAY_H
#define PL_ARRAY_H

#include <stddef.h>

/*
 * Makes room for one more element in items (borrowed; NULL when empty), an
 * array of *cap elements of elem_bytes each, of which n are used. With room
 * left returns items unchanged. When n == *cap, reallocates it to twice *cap
 * (first_cap when *cap is 0), sets *cap and returns the new array, which
 * replaces items. Returns NULL, with items still valid and *cap unchanged,
 * when the allocation fails or its size would overflow.
 */
void *pl_array_grow(void *items, size_t *cap, size_t n, size_t elem_bytes,
		    size_t first_cap);

#endif
