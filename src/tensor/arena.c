/* arena.c - the activation arena: a bump allocator over a chain of blocks.
 *
 * Allocation bumps within the current block and chains a new block when it is full. Reset
 * rewinds; if the pass needed more than one block, the chain is replaced by one block of the
 * peak size, so the next pass of the same shape allocates nothing from the system. */
#include <string.h>

#include "core/core_impl.h"
#include "iseg/tensor.h"

#define ARENA_ALIGN 64

struct block {
    struct block *next;
    size_t        cap;  /* usable bytes after the header, from an aligned start */
    size_t        used;
    unsigned char *base; /* 64-byte aligned */
};

struct iseg_arena {
    struct block *head; /* first block; allocation happens in cur */
    struct block *cur;
    size_t        used; /* bytes handed out (including alignment) over all blocks */
    size_t        peak;
};

static struct block *block_new(size_t cap) {
    size_t total;
    if (cap > SIZE_MAX - sizeof(struct block) - 2 * ARENA_ALIGN) return NULL;
    total          = sizeof(struct block) + cap + ARENA_ALIGN;
    struct block *b = iseg__malloc(total);
    if (!b) return NULL;
    b->next = NULL;
    b->cap  = cap;
    b->used = 0;
    b->base = (unsigned char *)(((uintptr_t)(b + 1) + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1));
    return b;
}

static void chain_free(struct block *b) {
    while (b) {
        struct block *n = b->next;
        iseg__free(b);
        b = n;
    }
}

enum iseg_status iseg_arena_init(iseg_arena_t *a) {
    ISEG_ASSERT(a);
    *a = iseg__calloc(1, sizeof(**a));
    return *a ? ISEG_STATUS_OK : ISEG_STATUS_ENOMEM;
}

enum iseg_status iseg_arena_reserve(iseg_arena_t a, size_t nbytes) {
    ISEG_ASSERT(a);
    size_t have = 0;
    for (struct block *b = a->head; b; b = b->next) have += b->cap;
    if (have >= nbytes) return ISEG_STATUS_OK;
    if (a->used != 0) {
        /* blocks are in use: add one block for the difference */
        struct block *b = block_new(nbytes - have);
        if (!b) return ISEG_STATUS_ENOMEM;
        struct block *t = a->cur;
        while (t->next) t = t->next;
        t->next = b;
        return ISEG_STATUS_OK;
    }
    struct block *b = block_new(nbytes);
    if (!b) return ISEG_STATUS_ENOMEM;
    chain_free(a->head);
    a->head = a->cur = b;
    return ISEG_STATUS_OK;
}

void *iseg_arena_alloc(iseg_arena_t a, size_t nbytes) {
    ISEG_ASSERT(a);
    if (nbytes == 0) nbytes = 1;
    if (nbytes > SIZE_MAX / 2) return NULL;
    size_t need = (nbytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    /* try the current block, then any later (reserved) block */
    for (struct block *b = a->cur; b; b = b->next) {
        if (b->cap - b->used >= need) {
            void *p = b->base + b->used;
            b->used += need;
            a->cur = b;
            a->used += need;
            if (a->used > a->peak) a->peak = a->used;
            return p;
        }
    }
    size_t cap = a->cur ? a->cur->cap * 2 : (size_t)1 << 20;
    if (cap < need) cap = need;
    struct block *b = block_new(cap);
    if (!b) return NULL;
    if (!a->head) {
        a->head = b;
    } else {
        struct block *t = a->cur;
        while (t->next) t = t->next;
        t->next = b;
    }
    a->cur  = b;
    b->used = need;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return b->base;
}

float *iseg_arena_alloc_f32(iseg_arena_t a, size_t n) {
    size_t nb;
    if (!iseg__mul_size_ok(n, sizeof(float), &nb)) return NULL;
    return iseg_arena_alloc(a, nb);
}

size_t iseg_arena_used(iseg_arena_t a) { return a->used; }
size_t iseg_arena_peak(iseg_arena_t a) { return a->peak; }

void iseg_arena_reset(iseg_arena_t a) {
    ISEG_ASSERT(a);
    if (a->head && a->head->next && a->head->cap < a->peak) {
        /* consolidate: one block of the peak size (keep the chain if that fails) */
        struct block *b = block_new(a->peak);
        if (b) {
            chain_free(a->head);
            a->head = b;
        }
    }
    for (struct block *b = a->head; b; b = b->next) b->used = 0;
    a->cur  = a->head;
    a->used = 0;
}

struct iseg_arena_mark iseg_arena_mark(iseg_arena_t a) {
    ISEG_ASSERT(a);
    struct iseg_arena_mark m;
    m.block = a->cur;
    m.block_used = a->cur ? a->cur->used : 0;
    m.used = a->used;
    return m;
}

void iseg_arena_release(iseg_arena_t a, struct iseg_arena_mark m) {
    ISEG_ASSERT(a && m.used <= a->used);
    struct block *b = m.block ? (struct block *)m.block : a->head;
    if (!b) return;
    a->cur = b;
    b->used = m.block ? m.block_used : 0;
    for (struct block *t = b->next; t; t = t->next) t->used = 0;
    a->used = m.used;
}

void iseg_arena_free(iseg_arena_t a) {
    if (!a) return;
    chain_free(a->head);
    iseg__free(a);
}
