/* The few <string.h> functions wit-bindgen's generated C and the plugin call,
 * for a build without a libc (rt.c defines them). */
#ifndef LINKSTATE_STRING_H
#define LINKSTATE_STRING_H
#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
