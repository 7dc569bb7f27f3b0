/* The run-time support a plugin needs when built without a libc: an
 * allocator over the module's linear memory and the handful of string
 * functions the compiler and the generated bindings call.
 *
 * The allocator keeps a free list per power-of-two size class, so the
 * buffers the host allocates for each batch of events (cabi_realloc) and
 * the plugin frees after it are reused from batch to batch instead of
 * growing the memory. Memory grows a page at a time from __heap_base; a
 * failed grow (the host's memory cap) returns NULL, and cabi_realloc then
 * traps, which the host reports as the plugin's failure.
 *
 * Built with -mbulk-memory, memcpy/memmove/memset compile to the
 * memory.copy and memory.fill instructions. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Every block starts with a header holding its size class; the payload
 * after it is 8-byte aligned, the largest alignment of any WIT type. */
#define HEADER 8u
#define MIN_CLASS 4u  /* 16 bytes */
#define CLASSES 32u

typedef struct block {
    struct block *next;
} block_t;

static block_t *free_lists[CLASSES];
static uintptr_t heap_top;
extern unsigned char __heap_base;

static unsigned class_of(size_t size) {
    size_t need = size + HEADER;
    unsigned c = MIN_CLASS;
    while (c < CLASSES && ((size_t)1 << c) < need) {
        c++;
    }
    return c;
}

/* Takes `bytes` from the top of the heap, growing the memory if needed. */
static void *carve(size_t bytes) {
    if (heap_top == 0) {
        heap_top = ((uintptr_t)&__heap_base + 7u) & ~(uintptr_t)7u;
    }
    uintptr_t end = heap_top + bytes;
    if (end < heap_top) {
        return NULL;
    }
    uintptr_t have = (uintptr_t)__builtin_wasm_memory_size(0) * 65536u;
    if (end > have) {
        size_t pages = (end - have + 65535u) / 65536u;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) {
            return NULL;
        }
    }
    void *at = (void *)heap_top;
    heap_top = end;
    return at;
}

void *malloc(size_t size) {
    unsigned c = class_of(size);
    if (c >= CLASSES) {
        return NULL;
    }
    unsigned char *raw;
    if (free_lists[c] != NULL) {
        raw = (unsigned char *)free_lists[c] - HEADER;
        free_lists[c] = free_lists[c]->next;
    } else {
        raw = carve((size_t)1 << c);
        if (raw == NULL) {
            return NULL;
        }
    }
    *(uint32_t *)raw = c;
    return raw + HEADER;
}

void free(void *ptr) {
    if (ptr == NULL) {
        return;
    }
    unsigned c = *(uint32_t *)((unsigned char *)ptr - HEADER);
    block_t *b = ptr;
    b->next = free_lists[c];
    free_lists[c] = b;
}

void *realloc(void *ptr, size_t size) {
    if (ptr == NULL) {
        return malloc(size);
    }
    unsigned c = *(uint32_t *)((unsigned char *)ptr - HEADER);
    size_t capacity = ((size_t)1 << c) - HEADER;
    if (size <= capacity) {
        return ptr;
    }
    void *grown = malloc(size);
    if (grown != NULL) {
        memcpy(grown, ptr, capacity);
        free(ptr);
    }
    return grown;
}

_Noreturn void abort(void) {
    __builtin_trap();
}

void *memcpy(void *dst, const void *src, size_t n) {
    __builtin_memcpy(dst, src, n);
    return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
    __builtin_memmove(dst, src, n);
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    __builtin_memset(dst, c, n);
    return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i]) {
            return x[i] < y[i] ? -1 : 1;
        }
    }
    return 0;
}

size_t strlen(const char *s) {
    size_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    return n;
}
