#include "array.h"

#include <stdint.h>
#include <stdlib.h>
#include "banned.h"

void *pl_array_grow(void *items, size_t *cap, size_t n, size_t elem_bytes,
		    size_t first_cap)
{
	size_t want;
	void *bigger;

	if (n < *cap)
		return items;
	want = *cap ? *cap * 2 : first_cap;
	if (want < *cap || (elem_bytes && want > SIZE_MAX / elem_bytes))
		return NULL;
	bigger = realloc(items, want * elem_bytes);
	if (!bigger)
		return NULL;
	*cap = want;
	return bigger;
}
