/* pickle.c - a restricted pickle machine for PyTorch checkpoints.
 *
 * It runs the opcodes that torch.save emits (protocols 2-5, plus the simple protocol 0/1 ones)
 * and builds plain values: None, bools, ints, floats, strings, tuples, lists, dicts, tensors.
 * Nothing is ever executed: GLOBAL resolves names against a fixed allow-list (tensor and
 * parameter rebuild functions, OrderedDict, torch.*Storage and a few inert classes whose
 * instances are opaque), and REDUCE/NEWOBJ "call" those entries by building the value they
 * stand for. Any other global is an EFORMAT error that names it.
 *
 * Hostile input: all values live in one arena with a byte limit; memo indices are bounded by
 * the pickle's size (a real pickle memoises each object once); the machine itself does not
 * recurse; the walk that flattens the result has a depth and a visit limit (shared
 * sub-objects could otherwise make it exponential).
 * ref: cpython Lib/pickle.py (opcode meanings), torch/serialization.py, torch/_utils.py. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weights/weights_impl.h"

#define ARENA_CHUNK ((size_t)1 << 16)
#define LINE_MAX_LEN 256
#define FLATTEN_MAX_DEPTH 64
#define FLATTEN_MAX_VISITS ((size_t)1 << 22)
#define NAME_MAX_LEN 4096

struct chunk {
    struct chunk *next;
    size_t        used, cap;
    _Alignas(16) unsigned char data[];
};

struct iseg__pk {
    struct chunk         *chunks;
    uint64_t              mem;
    bool                  over_limit;
    struct iseg__pkv    **stack;
    size_t                sp, stack_cap;
    size_t               *marks;
    size_t                n_marks, marks_cap;
    struct iseg__pkv    **memo;
    size_t                memo_cap, memo_count;
    iseg__pk_persload_fn  persload;
    void                 *user;
    struct iseg__pkv      v_none, v_true, v_false;
};

/* ---- arena ---- */

static void *pk_alloc(struct iseg__pk *pk, size_t n) {
    n = (n + 15) & ~(size_t)15;
    struct chunk *c = pk->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        if (pk->mem + cap > iseg__weights_hooks.max_pickle_mem) {
            pk->over_limit = true;
            return NULL;
        }
        c = iseg__malloc(sizeof(*c) + cap);
        if (!c) return NULL;
        c->next = pk->chunks;
        c->used = 0;
        c->cap  = cap;
        pk->chunks = c;
        pk->mem += cap;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

struct iseg__pkv *iseg__pk_new(struct iseg__pk *pk, enum iseg__pk_type type) {
    struct iseg__pkv *v = pk_alloc(pk, sizeof(*v));
    if (v) {
        memset(v, 0, sizeof(*v));
        v->type = type;
    }
    return v;
}

/* Append to a tuple/list/dict; old arrays stay in the arena (at most doubling the space). */
static bool seq_push(struct iseg__pk *pk, struct iseg__pkv *s, struct iseg__pkv *x) {
    if (s->u.seq.n == s->u.seq.cap) {
        size_t             cap = s->u.seq.cap ? s->u.seq.cap * 2 : 4;
        struct iseg__pkv **v   = pk_alloc(pk, cap * sizeof(*v));
        if (!v) return false;
        if (s->u.seq.n) memcpy(v, s->u.seq.v, s->u.seq.n * sizeof(*v));
        s->u.seq.v   = v;
        s->u.seq.cap = cap;
    }
    s->u.seq.v[s->u.seq.n++] = x;
    return true;
}

enum iseg_status iseg__pk_init(struct iseg__pk **out, iseg__pk_persload_fn fn, void *user) {
    struct iseg__pk *pk = iseg__calloc(1, sizeof(*pk));
    if (!pk) return ISEG_STATUS_ENOMEM;
    pk->persload       = fn;
    pk->user           = user;
    pk->v_none.type    = ISEG__PK_NONE;
    pk->v_true.type    = ISEG__PK_BOOL;
    pk->v_true.u.b     = true;
    pk->v_false.type   = ISEG__PK_BOOL;
    *out               = pk;
    return ISEG_STATUS_OK;
}

void iseg__pk_free(struct iseg__pk *pk) {
    if (!pk) return;
    for (struct chunk *c = pk->chunks, *next; c; c = next) {
        next = c->next;
        iseg__free(c);
    }
    iseg__free(pk->stack);
    iseg__free(pk->marks);
    iseg__free(pk->memo);
    iseg__free(pk);
}

/* ---- globals ---- */

struct global_name {
    const char          *module, *name;
    enum iseg__pk_global g;
};

static const struct global_name GLOBALS[] = {
    {"collections", "OrderedDict", ISEG__G_ORDERED_DICT},
    {"torch._utils", "_rebuild_tensor", ISEG__G_REBUILD_TENSOR},
    {"torch._utils", "_rebuild_tensor_v2", ISEG__G_REBUILD_TENSOR_V2},
    {"torch._utils", "_rebuild_parameter", ISEG__G_REBUILD_PARAMETER},
    {"torch._utils", "_rebuild_parameter_with_state", ISEG__G_REBUILD_PARAMETER_STATE},
    {"torch._tensor", "_rebuild_from_type_v2", ISEG__G_REBUILD_FROM_TYPE_V2},
    {"torch", "Size", ISEG__G_TORCH_SIZE},
    {"torch", "FloatStorage", ISEG__G_STORAGE_F32},
    {"torch", "DoubleStorage", ISEG__G_STORAGE_F64},
    {"torch", "HalfStorage", ISEG__G_STORAGE_F16},
    {"torch", "BFloat16Storage", ISEG__G_STORAGE_BF16},
    {"torch", "LongStorage", ISEG__G_STORAGE_I64},
    {"torch", "IntStorage", ISEG__G_STORAGE_I32},
    {"torch", "ShortStorage", ISEG__G_STORAGE_I16},
    {"torch", "CharStorage", ISEG__G_STORAGE_I8},
    {"torch", "ByteStorage", ISEG__G_STORAGE_U8},
    {"torch", "BoolStorage", ISEG__G_STORAGE_BOOL},
    /* inert: their instances are opaque values, skipped like numbers and strings */
    {"torch", "device", ISEG__G_INERT},
    {"torch", "Tensor", ISEG__G_INERT},
    {"torch.nn.parameter", "Parameter", ISEG__G_INERT},
    {"argparse", "Namespace", ISEG__G_INERT},
    {"builtins", "set", ISEG__G_INERT},
    {"builtins", "frozenset", ISEG__G_INERT},
    {"builtins", "slice", ISEG__G_INERT},
    {"__builtin__", "set", ISEG__G_INERT},
    {"_codecs", "encode", ISEG__G_INERT},
    {"numpy", "dtype", ISEG__G_INERT},
    {"numpy", "ndarray", ISEG__G_INERT},
    {"numpy.core.multiarray", "scalar", ISEG__G_INERT},
    {"numpy.core.multiarray", "_reconstruct", ISEG__G_INERT},
};

bool iseg__pk_storage_dtype(enum iseg__pk_global g, enum iseg_dtype *dtype) {
    static const enum iseg_dtype map[] = {ISEG_DTYPE_F32, ISEG_DTYPE_F64, ISEG_DTYPE_F16,
                                          ISEG_DTYPE_BF16, ISEG_DTYPE_I64, ISEG_DTYPE_I32,
                                          ISEG_DTYPE_I16, ISEG_DTYPE_I8,  ISEG_DTYPE_U8,
                                          ISEG_DTYPE_BOOL};
    _Static_assert(ISEG__G_STORAGE_BOOL - ISEG__G_STORAGE_F32 + 1 == sizeof(map) / sizeof(map[0]),
                   "one dtype per storage class");
    if (g < ISEG__G_STORAGE_F32 || g > ISEG__G_STORAGE_BOOL) return false;
    *dtype = map[g - ISEG__G_STORAGE_F32];
    return true;
}

static bool lookup_global(const char *mod, size_t mn, const char *name, size_t nn,
                          enum iseg__pk_global *g) {
    for (size_t i = 0; i < sizeof(GLOBALS) / sizeof(GLOBALS[0]); i++)
        if (strlen(GLOBALS[i].module) == mn && memcmp(GLOBALS[i].module, mod, mn) == 0 &&
            strlen(GLOBALS[i].name) == nn && memcmp(GLOBALS[i].name, name, nn) == 0) {
            *g = GLOBALS[i].g;
            return true;
        }
    return false;
}

/* ---- the machine ---- */

struct run {
    struct iseg__pk   *pk;
    const uint8_t     *buf;
    size_t             n, pos, op_pos;
    const char        *where;
    struct iseg__werr *e;
};

static enum iseg_status fail(struct run *r, enum iseg_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum iseg_status fail(struct run *r, enum iseg_status st, const char *fmt, ...) {
    char    msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return iseg__werr_set(r->e, st, "%s: offset %zu: %s", r->where, r->op_pos, msg);
}

static enum iseg_status oom(struct run *r) {
    if (r->pk->over_limit)
        return fail(r, ISEG_STATUS_ELIMIT, "pickle needs more than %llu bytes of memory",
                    (unsigned long long)iseg__weights_hooks.max_pickle_mem);
    return fail(r, ISEG_STATUS_ENOMEM, "out of memory");
}

static bool push(struct iseg__pk *pk, struct iseg__pkv *v) {
    if (pk->sp == pk->stack_cap) {
        size_t             cap = pk->stack_cap ? pk->stack_cap * 2 : 256;
        struct iseg__pkv **s   = iseg__realloc_array(pk->stack, cap, sizeof(*s));
        if (!s) return false;
        pk->stack     = s;
        pk->stack_cap = cap;
    }
    pk->stack[pk->sp++] = v;
    return true;
}

static size_t mark_base(const struct iseg__pk *pk) {
    return pk->n_marks ? pk->marks[pk->n_marks - 1] : 0;
}

/* Items above the top mark: [*first, sp). The mark is popped. */
static bool pop_mark(struct iseg__pk *pk, size_t *first) {
    if (!pk->n_marks) return false;
    *first = pk->marks[--pk->n_marks];
    return true;
}

static enum iseg_status read_bytes(struct run *r, size_t k, const uint8_t **p) {
    if (r->n - r->pos < k) return fail(r, ISEG_STATUS_EFORMAT, "truncated pickle");
    *p = r->buf + r->pos;
    r->pos += k;
    return ISEG_STATUS_OK;
}

static uint64_t le(const uint8_t *p, int k) {
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* A text line (protocol 0 arguments), without its newline. */
static enum iseg_status read_line(struct run *r, const char **s, size_t *len) {
    size_t         lim = r->n - r->pos < LINE_MAX_LEN ? r->n - r->pos : LINE_MAX_LEN;
    const uint8_t *p   = r->buf + r->pos;
    const uint8_t *nl  = memchr(p, '\n', lim);
    if (!nl) return fail(r, ISEG_STATUS_EFORMAT, "truncated or overlong text argument");
    *s   = (const char *)p;
    *len = (size_t)(nl - p);
    r->pos += *len + 1;
    return ISEG_STATUS_OK;
}

static enum iseg_status push_str(struct run *r, enum iseg__pk_type type, int len_bytes,
                                 bool is_signed) {
    const uint8_t   *p  = NULL;
    enum iseg_status st = read_bytes(r, (size_t)len_bytes, &p);
    if (st) return st;
    uint64_t len = le(p, len_bytes);
    if (is_signed && len_bytes == 4 && (len & 0x80000000u))
        return fail(r, ISEG_STATUS_EFORMAT, "negative string length");
    if (len > r->n - r->pos) return fail(r, ISEG_STATUS_EFORMAT, "truncated string");
    struct iseg__pkv *v = iseg__pk_new(r->pk, type);
    if (!v) return oom(r);
    v->u.s.p = (const char *)r->buf + r->pos;
    v->u.s.n = (size_t)len;
    r->pos += (size_t)len;
    return push(r->pk, v) ? ISEG_STATUS_OK : oom(r);
}

static enum iseg_status push_int(struct run *r, int64_t i) {
    struct iseg__pkv *v = iseg__pk_new(r->pk, ISEG__PK_INT);
    if (!v) return oom(r);
    v->u.i = i;
    return push(r->pk, v) ? ISEG_STATUS_OK : oom(r);
}

/* LONG1/LONG4: little-endian two's complement of n bytes. */
static enum iseg_status push_long(struct run *r, const uint8_t *p, size_t n) {
    if (n <= 8) {
        uint64_t u = n ? le(p, (int)n) : 0;
        if (n && n < 8 && (p[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n);
        return push_int(r, (int64_t)u);
    }
    struct iseg__pkv *v = iseg__pk_new(r->pk, ISEG__PK_BIGINT);
    if (!v) return oom(r);
    v->u.s.p = (const char *)p;
    v->u.s.n = n;
    return push(r->pk, v) ? ISEG_STATUS_OK : oom(r);
}

static enum iseg_status memo_put(struct run *r, uint64_t idx) {
    struct iseg__pk *pk = r->pk;
    if (!pk->sp) return fail(r, ISEG_STATUS_EFORMAT, "memo store from an empty stack");
    /* a real pickle memoises each object once, in order: indices stay below its size */
    if (idx > (uint64_t)r->n + 16)
        return fail(r, ISEG_STATUS_EFORMAT, "memo index %llu out of range",
                    (unsigned long long)idx);
    if (idx >= pk->memo_cap) {
        size_t cap = pk->memo_cap ? pk->memo_cap : 64;
        while (cap <= idx) cap *= 2;
        struct iseg__pkv **m = iseg__realloc_array(pk->memo, cap, sizeof(*m));
        if (!m) return oom(r);
        memset(m + pk->memo_cap, 0, (cap - pk->memo_cap) * sizeof(*m));
        pk->memo     = m;
        pk->memo_cap = cap;
    }
    if (!pk->memo[idx]) pk->memo_count++;
    pk->memo[idx] = pk->stack[pk->sp - 1];
    return ISEG_STATUS_OK;
}

static enum iseg_status memo_get(struct run *r, uint64_t idx) {
    struct iseg__pk *pk = r->pk;
    if (idx >= pk->memo_cap || !pk->memo[idx])
        return fail(r, ISEG_STATUS_EFORMAT, "memo index %llu was never stored",
                    (unsigned long long)idx);
    return push(pk, pk->memo[idx]) ? ISEG_STATUS_OK : oom(r);
}

static bool parse_dec(const char *s, size_t n, int64_t *out) {
    char tmp[32];
    if (n == 0 || n >= sizeof(tmp)) return false;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (tmp[n - 1] == 'L') tmp[n - 1] = 0; /* protocol 0 LONG */
    char *end;
    errno       = 0;
    long long v = strtoll(tmp, &end, 10);
    if (errno || end == tmp || *end) return false;
    *out = v;
    return true;
}

static bool as_int(const struct iseg__pkv *v, int64_t *out) {
    if (v->type == ISEG__PK_INT) {
        *out = v->u.i;
        return true;
    }
    if (v->type == ISEG__PK_BOOL) {
        *out = v->u.b;
        return true;
    }
    return false;
}

static bool is_seq(const struct iseg__pkv *v) {
    return v->type == ISEG__PK_TUPLE || v->type == ISEG__PK_LIST;
}

/* _rebuild_tensor[_v2](storage, storage_offset, size, stride, ...) */
static enum iseg_status rebuild_tensor(struct run *r, struct iseg__pkv *const *a,
                                       struct iseg__pkv **out) {
    if (a[0]->type != ISEG__PK_STORAGE)
        return fail(r, ISEG_STATUS_EFORMAT, "tensor rebuilt from something that is not a storage");
    int64_t off;
    if (!as_int(a[1], &off) || off < 0)
        return fail(r, ISEG_STATUS_EFORMAT, "bad tensor storage offset");
    if (!is_seq(a[2]) || !is_seq(a[3]) || a[2]->u.seq.n != a[3]->u.seq.n)
        return fail(r, ISEG_STATUS_EFORMAT, "tensor size and stride must be tuples of one length");
    size_t nd = a[2]->u.seq.n;
    if (nd > ISEG_WEIGHT_MAX_DIMS)
        return fail(r, ISEG_STATUS_ELIMIT, "tensor of %zu dimensions (at most %d)", nd,
                    ISEG_WEIGHT_MAX_DIMS);
    struct iseg__pk_tensor *t = pk_alloc(r->pk, sizeof(*t));
    struct iseg__pkv       *v = iseg__pk_new(r->pk, ISEG__PK_TENSOR);
    if (!t || !v) return oom(r);
    memset(t, 0, sizeof(*t));
    t->storage = a[0];
    t->offset  = off;
    t->ndim    = (int)nd;
    for (size_t k = 0; k < nd; k++)
        if (!as_int(a[2]->u.seq.v[k], &t->shape[k]) || !as_int(a[3]->u.seq.v[k], &t->stride[k]) ||
            t->shape[k] < 0 || t->stride[k] < 0)
            return fail(r, ISEG_STATUS_EFORMAT, "bad tensor size or stride");
    v->u.t = t;
    *out   = v;
    return ISEG_STATUS_OK;
}

/* REDUCE / NEWOBJ: the value that calling global g with args stands for. */
static enum iseg_status call(struct run *r, struct iseg__pkv *fn, struct iseg__pkv *args,
                             int depth, struct iseg__pkv **out) {
    if (fn->type != ISEG__PK_GLOBAL)
        return fail(r, ISEG_STATUS_EFORMAT, "call of something that is not an allowed global");
    if (args->type != ISEG__PK_TUPLE)
        return fail(r, ISEG_STATUS_EFORMAT, "call arguments are not a tuple");
    struct iseg__pkv *const *a = args->u.seq.v;
    size_t                   n = args->u.seq.n;
    switch (fn->u.g) {
    case ISEG__G_ORDERED_DICT:
        if (n != 0) return fail(r, ISEG_STATUS_EFORMAT, "OrderedDict with arguments");
        *out = iseg__pk_new(r->pk, ISEG__PK_DICT);
        return *out ? ISEG_STATUS_OK : oom(r);
    case ISEG__G_REBUILD_TENSOR:
        if (n != 4) return fail(r, ISEG_STATUS_EFORMAT, "_rebuild_tensor: %zu arguments", n);
        return rebuild_tensor(r, a, out);
    case ISEG__G_REBUILD_TENSOR_V2:
        if (n != 6 && n != 7)
            return fail(r, ISEG_STATUS_EFORMAT, "_rebuild_tensor_v2: %zu arguments", n);
        return rebuild_tensor(r, a, out);
    case ISEG__G_REBUILD_PARAMETER:
    case ISEG__G_REBUILD_PARAMETER_STATE:
        if (n != (fn->u.g == ISEG__G_REBUILD_PARAMETER ? 3u : 4u) ||
            a[0]->type != ISEG__PK_TENSOR)
            return fail(r, ISEG_STATUS_EFORMAT, "_rebuild_parameter: bad arguments");
        *out = a[0];
        return ISEG_STATUS_OK;
    case ISEG__G_REBUILD_FROM_TYPE_V2: /* (func, new_type, args, state): func(*args) */
        if (n != 4 || depth > 0)
            return fail(r, ISEG_STATUS_EFORMAT, "_rebuild_from_type_v2: bad arguments");
        return call(r, a[0], a[2], depth + 1, out);
    case ISEG__G_TORCH_SIZE:
        if (n != 1 || !is_seq(a[0])) return fail(r, ISEG_STATUS_EFORMAT, "torch.Size: bad argument");
        *out = a[0];
        return ISEG_STATUS_OK;
    case ISEG__G_INERT:
        *out = iseg__pk_new(r->pk, ISEG__PK_OBJECT);
        return *out ? ISEG_STATUS_OK : oom(r);
    default: return fail(r, ISEG_STATUS_EFORMAT, "a storage class cannot be called");
    }
}

enum op {
    OP_MARK = '(', OP_STOP = '.', OP_POP = '0', OP_POP_MARK = '1', OP_DUP = '2',
    OP_FLOAT = 'F', OP_INT = 'I', OP_BININT = 'J', OP_BININT1 = 'K', OP_LONG = 'L',
    OP_BININT2 = 'M', OP_NONE = 'N', OP_PERSID = 'P', OP_BINPERSID = 'Q', OP_REDUCE = 'R',
    OP_BINSTRING = 'T', OP_SHORT_BINSTRING = 'U', OP_BINUNICODE = 'X', OP_APPEND = 'a',
    OP_BUILD = 'b', OP_GLOBAL = 'c', OP_DICT = 'd', OP_EMPTY_DICT = '}', OP_APPENDS = 'e',
    OP_GET = 'g', OP_BINGET = 'h', OP_LONG_BINGET = 'j', OP_LIST = 'l', OP_EMPTY_LIST = ']',
    OP_PUT = 'p', OP_BINPUT = 'q', OP_LONG_BINPUT = 'r', OP_SETITEM = 's', OP_TUPLE = 't',
    OP_EMPTY_TUPLE = ')', OP_SETITEMS = 'u', OP_BINFLOAT = 'G', OP_BINBYTES = 'B',
    OP_SHORT_BINBYTES = 'C', OP_PROTO = 0x80, OP_NEWOBJ = 0x81, OP_TUPLE1 = 0x85,
    OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87, OP_NEWTRUE = 0x88, OP_NEWFALSE = 0x89, OP_LONG1 = 0x8a,
    OP_LONG4 = 0x8b, OP_SHORT_BINUNICODE = 0x8c, OP_BINUNICODE8 = 0x8d, OP_BINBYTES8 = 0x8e,
    OP_EMPTY_SET = 0x8f, OP_ADDITEMS = 0x90, OP_FROZENSET = 0x91, OP_NEWOBJ_EX = 0x92,
    OP_STACK_GLOBAL = 0x93, OP_MEMOIZE = 0x94, OP_FRAME = 0x95, OP_BYTEARRAY8 = 0x96,
};

static enum iseg_status op_global(struct run *r, const char *mod, size_t mn, const char *name,
                                  size_t nn) {
    enum iseg__pk_global g;
    if (!lookup_global(mod, mn, name, nn, &g)) {
        /* print only safe characters of the hostile name */
        char   buf[160];
        size_t k = 0;
        for (size_t i = 0; i < mn + 1 + nn && k + 1 < sizeof(buf); i++) {
            char c = i < mn ? mod[i] : i == mn ? '.' : name[i - mn - 1];
            buf[k++] = (c >= 0x20 && c < 0x7f) ? c : '?';
        }
        buf[k] = 0;
        return fail(r, ISEG_STATUS_EFORMAT, "global '%s' is not allowed", buf);
    }
    struct iseg__pkv *v = iseg__pk_new(r->pk, ISEG__PK_GLOBAL);
    if (!v) return oom(r);
    v->u.g = g;
    return push(r->pk, v) ? ISEG_STATUS_OK : oom(r);
}

/* Pop n values into a new tuple/list/dict-less sequence built from stack[first, sp). */
static enum iseg_status collect(struct run *r, enum iseg__pk_type type, size_t first) {
    struct iseg__pk  *pk = r->pk;
    struct iseg__pkv *v  = iseg__pk_new(pk, type);
    if (!v) return oom(r);
    size_t k = pk->sp - first;
    if (type == ISEG__PK_DICT && k % 2) return fail(r, ISEG_STATUS_EFORMAT, "odd DICT items");
    if (k) {
        v->u.seq.v = pk_alloc(pk, k * sizeof(*v->u.seq.v));
        if (!v->u.seq.v) return oom(r);
        memcpy(v->u.seq.v, pk->stack + first, k * sizeof(*v->u.seq.v));
        v->u.seq.n = v->u.seq.cap = k;
    }
    pk->sp = first;
    return push(pk, v) ? ISEG_STATUS_OK : oom(r);
}

enum iseg_status iseg__pk_load(struct iseg__pk *pk, const uint8_t *buf, size_t n, size_t *pos,
                               const char *where, struct iseg__pkv **out, struct iseg__werr *e) {
    struct run r = {pk, buf, n, *pos, *pos, where, e};
    pk->sp = pk->n_marks = pk->memo_count = 0;
    if (pk->memo) memset(pk->memo, 0, pk->memo_cap * sizeof(*pk->memo));
    *out = NULL;
    enum iseg_status st = ISEG_STATUS_OK;
    const uint8_t   *p   = NULL;
    const char      *s   = NULL;
    size_t           len = 0, first = 0;
    int64_t          iv  = 0;

#define NEED_STACK(k)                                                                   \
    do {                                                                                \
        if (pk->sp < mark_base(pk) + (k))                                               \
            return fail(&r, ISEG_STATUS_EFORMAT, "stack underflow (opcode 0x%02x)", op); \
    } while (0)
#define TRY(x)                      \
    do {                            \
        if ((st = (x))) return st;  \
    } while (0)
#define PUSH(v)                                  \
    do {                                         \
        if (!push(pk, (v))) return oom(&r);      \
    } while (0)

    for (;;) {
        r.op_pos = r.pos;
        if (r.pos >= r.n) return fail(&r, ISEG_STATUS_EFORMAT, "truncated pickle (no STOP)");
        unsigned op = r.buf[r.pos++];
        switch (op) {
        case OP_PROTO:
            TRY(read_bytes(&r, 1, &p));
            if (p[0] > 5) return fail(&r, ISEG_STATUS_EFORMAT, "pickle protocol %d", p[0]);
            break;
        case OP_FRAME: TRY(read_bytes(&r, 8, &p)); break; /* a read-ahead hint */
        case OP_STOP:
            NEED_STACK(1);
            *out = pk->stack[pk->sp - 1];
            *pos = r.pos;
            return ISEG_STATUS_OK;
        case OP_MARK:
            if (pk->n_marks == pk->marks_cap) {
                size_t  cap = pk->marks_cap ? pk->marks_cap * 2 : 64;
                size_t *m   = iseg__realloc_array(pk->marks, cap, sizeof(*m));
                if (!m) return oom(&r);
                pk->marks     = m;
                pk->marks_cap = cap;
            }
            pk->marks[pk->n_marks++] = pk->sp;
            break;
        case OP_POP:
            if (pk->sp > mark_base(pk)) pk->sp--;
            else if (!pop_mark(pk, &first)) return fail(&r, ISEG_STATUS_EFORMAT, "POP of nothing");
            break;
        case OP_POP_MARK:
            if (!pop_mark(pk, &first)) return fail(&r, ISEG_STATUS_EFORMAT, "no MARK");
            pk->sp = first;
            break;
        case OP_DUP:
            NEED_STACK(1);
            PUSH(pk->stack[pk->sp - 1]);
            break;
        case OP_NONE: PUSH(&pk->v_none); break;
        case OP_NEWTRUE: PUSH(&pk->v_true); break;
        case OP_NEWFALSE: PUSH(&pk->v_false); break;
        case OP_BININT:
            TRY(read_bytes(&r, 4, &p));
            TRY(push_int(&r, (int32_t)(uint32_t)le(p, 4)));
            break;
        case OP_BININT1:
            TRY(read_bytes(&r, 1, &p));
            TRY(push_int(&r, p[0]));
            break;
        case OP_BININT2:
            TRY(read_bytes(&r, 2, &p));
            TRY(push_int(&r, (int64_t)le(p, 2)));
            break;
        case OP_LONG1:
            TRY(read_bytes(&r, 1, &p));
            len = p[0];
            TRY(read_bytes(&r, len, &p));
            TRY(push_long(&r, p, len));
            break;
        case OP_LONG4:
            TRY(read_bytes(&r, 4, &p));
            if (le(p, 4) & 0x80000000u) return fail(&r, ISEG_STATUS_EFORMAT, "negative LONG4 size");
            len = (size_t)le(p, 4);
            TRY(read_bytes(&r, len, &p));
            TRY(push_long(&r, p, len));
            break;
        case OP_INT:
        case OP_LONG:
            TRY(read_line(&r, &s, &len));
            if (op == OP_INT && len == 2 && (s[0] == '0') && (s[1] == '0' || s[1] == '1')) {
                PUSH(s[1] == '1' ? &pk->v_true : &pk->v_false);
                break;
            }
            if (!parse_dec(s, len, &iv)) return fail(&r, ISEG_STATUS_EFORMAT, "bad INT/LONG");
            TRY(push_int(&r, iv));
            break;
        case OP_BINFLOAT: {
            TRY(read_bytes(&r, 8, &p));
            uint64_t u = 0;
            for (int k = 0; k < 8; k++) u = u << 8 | p[k]; /* big-endian */
            struct iseg__pkv *v = iseg__pk_new(pk, ISEG__PK_FLOAT);
            if (!v) return oom(&r);
            memcpy(&v->u.f, &u, 8);
            PUSH(v);
            break;
        }
        case OP_FLOAT: {
            TRY(read_line(&r, &s, &len));
            char tmp[LINE_MAX_LEN + 1];
            memcpy(tmp, s, len);
            tmp[len] = 0;
            char  *end;
            double d = strtod(tmp, &end);
            if (end == tmp) return fail(&r, ISEG_STATUS_EFORMAT, "bad FLOAT");
            struct iseg__pkv *v = iseg__pk_new(pk, ISEG__PK_FLOAT);
            if (!v) return oom(&r);
            v->u.f = d;
            PUSH(v);
            break;
        }
        case OP_BINUNICODE: TRY(push_str(&r, ISEG__PK_STR, 4, false)); break;
        case OP_SHORT_BINUNICODE: TRY(push_str(&r, ISEG__PK_STR, 1, false)); break;
        case OP_BINUNICODE8: TRY(push_str(&r, ISEG__PK_STR, 8, false)); break;
        case OP_BINSTRING: TRY(push_str(&r, ISEG__PK_STR, 4, true)); break;
        case OP_SHORT_BINSTRING: TRY(push_str(&r, ISEG__PK_STR, 1, false)); break;
        case OP_BINBYTES: TRY(push_str(&r, ISEG__PK_BYTES, 4, false)); break;
        case OP_SHORT_BINBYTES: TRY(push_str(&r, ISEG__PK_BYTES, 1, false)); break;
        case OP_BINBYTES8:
        case OP_BYTEARRAY8: TRY(push_str(&r, ISEG__PK_BYTES, 8, false)); break;
        case OP_EMPTY_DICT: TRY(collect(&r, ISEG__PK_DICT, pk->sp)); break;
        case OP_EMPTY_LIST: TRY(collect(&r, ISEG__PK_LIST, pk->sp)); break;
        case OP_EMPTY_TUPLE: TRY(collect(&r, ISEG__PK_TUPLE, pk->sp)); break;
        case OP_EMPTY_SET: {
            struct iseg__pkv *v = iseg__pk_new(pk, ISEG__PK_OBJECT);
            if (!v) return oom(&r);
            PUSH(v);
            break;
        }
        case OP_TUPLE1:
        case OP_TUPLE2:
        case OP_TUPLE3:
            NEED_STACK(op - OP_TUPLE1 + 1u);
            TRY(collect(&r, ISEG__PK_TUPLE, pk->sp - (op - OP_TUPLE1 + 1u)));
            break;
        case OP_TUPLE:
        case OP_LIST:
        case OP_DICT:
        case OP_FROZENSET:
            if (!pop_mark(pk, &first)) return fail(&r, ISEG_STATUS_EFORMAT, "no MARK");
            if (op == OP_FROZENSET) {
                pk->sp = first;
                struct iseg__pkv *v = iseg__pk_new(pk, ISEG__PK_OBJECT);
                if (!v) return oom(&r);
                PUSH(v);
                break;
            }
            TRY(collect(&r, op == OP_TUPLE ? ISEG__PK_TUPLE : op == OP_LIST ? ISEG__PK_LIST
                                                                            : ISEG__PK_DICT,
                        first));
            break;
        case OP_APPEND:
        case OP_SETITEM: {
            size_t k = op == OP_APPEND ? 1 : 2;
            NEED_STACK(k + 1);
            struct iseg__pkv *c = pk->stack[pk->sp - k - 1];
            if (c->type == (op == OP_APPEND ? ISEG__PK_LIST : ISEG__PK_DICT)) {
                for (size_t i = k; i > 0; i--)
                    if (!seq_push(pk, c, pk->stack[pk->sp - i])) return oom(&r);
            } else if (c->type != ISEG__PK_OBJECT) {
                return fail(&r, ISEG_STATUS_EFORMAT, "%s on a value of the wrong type",
                            op == OP_APPEND ? "APPEND" : "SETITEM");
            }
            pk->sp -= k;
            break;
        }
        case OP_APPENDS:
        case OP_SETITEMS:
        case OP_ADDITEMS: {
            if (!pop_mark(pk, &first)) return fail(&r, ISEG_STATUS_EFORMAT, "no MARK");
            if (first == 0 || first - 1 < mark_base(pk))
                return fail(&r, ISEG_STATUS_EFORMAT, "nothing to add items to");
            struct iseg__pkv  *c    = pk->stack[first - 1];
            enum iseg__pk_type want = op == OP_APPENDS ? ISEG__PK_LIST
                                    : op == OP_SETITEMS ? ISEG__PK_DICT
                                                        : ISEG__PK_OBJECT;
            if (op == OP_SETITEMS && (pk->sp - first) % 2)
                return fail(&r, ISEG_STATUS_EFORMAT, "odd SETITEMS items");
            if (c->type == want && want != ISEG__PK_OBJECT) {
                for (size_t i = first; i < pk->sp; i++)
                    if (!seq_push(pk, c, pk->stack[i])) return oom(&r);
            } else if (c->type != ISEG__PK_OBJECT) {
                return fail(&r, ISEG_STATUS_EFORMAT, "APPENDS/SETITEMS on a value of the wrong type");
            }
            pk->sp = first;
            break;
        }
        case OP_BINPUT:
            TRY(read_bytes(&r, 1, &p));
            TRY(memo_put(&r, p[0]));
            break;
        case OP_LONG_BINPUT:
            TRY(read_bytes(&r, 4, &p));
            TRY(memo_put(&r, le(p, 4)));
            break;
        case OP_MEMOIZE: TRY(memo_put(&r, pk->memo_count)); break;
        case OP_PUT:
            TRY(read_line(&r, &s, &len));
            if (!parse_dec(s, len, &iv) || iv < 0) return fail(&r, ISEG_STATUS_EFORMAT, "bad PUT");
            TRY(memo_put(&r, (uint64_t)iv));
            break;
        case OP_BINGET:
            TRY(read_bytes(&r, 1, &p));
            TRY(memo_get(&r, p[0]));
            break;
        case OP_LONG_BINGET:
            TRY(read_bytes(&r, 4, &p));
            TRY(memo_get(&r, le(p, 4)));
            break;
        case OP_GET:
            TRY(read_line(&r, &s, &len));
            if (!parse_dec(s, len, &iv) || iv < 0) return fail(&r, ISEG_STATUS_EFORMAT, "bad GET");
            TRY(memo_get(&r, (uint64_t)iv));
            break;
        case OP_GLOBAL: {
            const char *mod = NULL, *name = NULL;
            size_t      mn = 0, nn = 0;
            TRY(read_line(&r, &mod, &mn));
            TRY(read_line(&r, &name, &nn));
            TRY(op_global(&r, mod, mn, name, nn));
            break;
        }
        case OP_STACK_GLOBAL: {
            NEED_STACK(2);
            struct iseg__pkv *mod = pk->stack[pk->sp - 2], *name = pk->stack[pk->sp - 1];
            if (mod->type != ISEG__PK_STR || name->type != ISEG__PK_STR)
                return fail(&r, ISEG_STATUS_EFORMAT, "STACK_GLOBAL of non-strings");
            pk->sp -= 2;
            TRY(op_global(&r, mod->u.s.p, mod->u.s.n, name->u.s.p, name->u.s.n));
            break;
        }
        case OP_REDUCE:
        case OP_NEWOBJ: {
            NEED_STACK(2);
            struct iseg__pkv *res;
            TRY(call(&r, pk->stack[pk->sp - 2], pk->stack[pk->sp - 1], 0, &res));
            pk->sp -= 2;
            PUSH(res);
            break;
        }
        case OP_NEWOBJ_EX: {
            NEED_STACK(3);
            struct iseg__pkv *res;
            TRY(call(&r, pk->stack[pk->sp - 3], pk->stack[pk->sp - 2], 0, &res));
            pk->sp -= 3;
            PUSH(res);
            break;
        }
        case OP_BUILD:
            /* state for an object already built (OrderedDict._metadata, Namespace fields,
             * tensor python attributes): nothing we keep */
            NEED_STACK(2);
            pk->sp--;
            break;
        case OP_BINPERSID:
        case OP_PERSID: {
            struct iseg__pkv *pid;
            if (op == OP_PERSID) {
                TRY(read_line(&r, &s, &len));
                if (!(pid = iseg__pk_new(pk, ISEG__PK_STR))) return oom(&r);
                pid->u.s.p = s;
                pid->u.s.n = len;
            } else {
                NEED_STACK(1);
                pid = pk->stack[--pk->sp];
            }
            if (!pk->persload) return fail(&r, ISEG_STATUS_EFORMAT, "unexpected persistent id");
            struct iseg__werr e2  = *e;
            char              sub[256];
            e2.buf                = sub;
            e2.len                = sizeof(sub);
            e2.name               = "";
            st                    = ISEG_STATUS_OK;
            struct iseg__pkv *res = pk->persload(pk->user, pid, &e2, &st);
            if (!res) {
                if (pk->over_limit) return oom(&r);
                /* sub is ": message" with an empty name */
                return fail(&r, st ? st : ISEG_STATUS_EFORMAT, "%s",
                            sub[0] == ':' ? sub + 2 : sub);
            }
            PUSH(res);
            break;
        }
        default:
            return fail(&r, ISEG_STATUS_EFORMAT, "unsupported pickle opcode 0x%02x", op);
        }
    }
#undef NEED_STACK
#undef TRY
#undef PUSH
}

/* ---- flattening ---- */

struct flat {
    struct iseg_weights *w;
    struct iseg__werr   *e;
    struct iseg__buf     name;
    size_t               visits;
};

static enum iseg_status flatten(struct flat *f, const struct iseg__pkv *v, int depth) {
    if (++f->visits > FLATTEN_MAX_VISITS)
        return iseg__werr_set(f->e, ISEG_STATUS_ELIMIT, "checkpoint has over %zu nested values",
                              FLATTEN_MAX_VISITS);
    if (depth > FLATTEN_MAX_DEPTH)
        return iseg__werr_set(f->e, ISEG_STATUS_ELIMIT, "checkpoint nested over %d levels deep",
                              FLATTEN_MAX_DEPTH);
    size_t base = f->name.len;
    if (v->type == ISEG__PK_TENSOR) {
        const struct iseg__pk_tensor *t  = v->u.t;
        const struct iseg__pkv       *sv = t->storage;
        struct iseg__wsrc             src = {0};
        if (__builtin_add_overflow(t->offset, sv->u.st.offset, &src.offset))
            return iseg__werr_set(f->e, ISEG_STATUS_EFORMAT, "tensor '%.200s': bad offset",
                                  f->name.data ? f->name.data : "");
        for (int k = 0; k < t->ndim; k++) src.stride[k] = t->stride[k];
        src.storage = sv->u.st.index;
        if (base == 0)
            return iseg__werr_set(f->e, ISEG_STATUS_EFORMAT, "a tensor without a name");
        return iseg__weights_add(f->w, f->name.data, base, sv->u.st.dtype, t->ndim, t->shape,
                                 &src, f->e);
    }
    bool dict = v->type == ISEG__PK_DICT;
    if (!dict && !is_seq(v)) return ISEG_STATUS_OK; /* numbers, strings, None, objects */
    size_t step = dict ? 2 : 1;
    for (size_t i = 0; i + step <= v->u.seq.n; i += step) {
        const struct iseg__pkv *key = dict ? v->u.seq.v[i] : NULL;
        const struct iseg__pkv *val = v->u.seq.v[i + step - 1];
        /* skip leaves early: no name to build */
        if (val->type != ISEG__PK_TENSOR && val->type != ISEG__PK_DICT && !is_seq(val)) continue;
        bool ok = !base || iseg__buf_append(&f->name, ".", 1);
        if (!dict) ok = ok && iseg__buf_printf(&f->name, "%zu", i);
        else if (key->type == ISEG__PK_STR) ok = ok && iseg__buf_append(&f->name, key->u.s.p, key->u.s.n);
        else if (key->type == ISEG__PK_INT) ok = ok && iseg__buf_printf(&f->name, "%lld", (long long)key->u.i);
        else {
            f->name.len = base;
            continue; /* keys that are not names */
        }
        if (!ok) return iseg__werr_set(f->e, ISEG_STATUS_ENOMEM, "out of memory");
        if (f->name.len > NAME_MAX_LEN)
            return iseg__werr_set(f->e, ISEG_STATUS_ELIMIT, "tensor name over %d bytes",
                                  NAME_MAX_LEN);
        if (!iseg__buf_reserve(&f->name, 1))
            return iseg__werr_set(f->e, ISEG_STATUS_ENOMEM, "out of memory");
        f->name.data[f->name.len] = 0;
        enum iseg_status st = flatten(f, val, depth + 1);
        if (st) return st;
        f->name.len = base;
        if (f->name.data) f->name.data[base] = 0;
    }
    return ISEG_STATUS_OK;
}

enum iseg_status iseg__pk_flatten(struct iseg_weights *w, const struct iseg__pkv *root,
                                  struct iseg__werr *e) {
    if (root->type != ISEG__PK_DICT)
        return iseg__werr_set(e, ISEG_STATUS_EFORMAT,
                              "the checkpoint is not a dict of tensors (a pickled module or "
                              "a bare tensor?)");
    struct flat      f  = {w, e, {0}, 0};
    enum iseg_status st = flatten(&f, root, 0);
    iseg__buf_free(&f.name);
    return st;
}
