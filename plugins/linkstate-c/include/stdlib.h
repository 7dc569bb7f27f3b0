/* The few <stdlib.h> functions wit-bindgen's generated C calls, for a build
 * without a libc (rt.c defines them). */
#ifndef LINKSTATE_STDLIB_H
#define LINKSTATE_STDLIB_H
#include <stddef.h>

void *malloc(size_t size);
void *realloc(void *ptr, size_t size);
void free(void *ptr);
_Noreturn void abort(void);

#endif
