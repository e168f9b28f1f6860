/*
 * Recent sessions of one gateway, in bounded memory (gateway/sessions_seen.py is the Python
 * side and the pure-Python reference this is tested against).
 *
 *   SessionTable(capacity)          capacity entries (a power of two >= 16), or 0: off
 *   table.store(route, h, pod, clock)
 *   table.snapshot(routes, clock, window) -> bytes   active entries, 16 bytes each
 *   table.stats(clock, window) -> (capacity, used, active, evicted_age, evictions, stores)
 *   cells(snapshot, route, old, new) -> (cells, away, total)   (module function)
 *
 * An entry is (key hash, route id, last-seen second, pod id): 20 bytes, in three arrays. The
 * table is set-associative: the key hash and the route id choose a set of WAYS entries, so the
 * same session always lands in the same set and is stored once, whatever its request rate. A
 * new session takes a free entry of its set, else the entry of the set seen longest ago; the
 * evicted entry's last-seen second raises `evicted`. Every session seen after `evicted` is in
 * the table, so the window the table covers completely is now - evicted (the effective window).
 *
 * store() is O(WAYS) with no allocation (the lane calls seen_store for every request with an
 * affinity hash). snapshot() is one pass over the table. cells() runs without the GIL: per
 * session of the route, its owner under the old and the new table (Maglev slot or ring search,
 * a pinned pod first when the spec lists pins), counted per (old owner, new owner) and per
 * (pod that served it last, new owner) when those differ.
 */
#include "wire.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>

#define WAYS 8
#define REC 16 /* snapshot record: uint64 hash, uint32 route, uint32 pod */

typedef struct {
    PyObject_HEAD
    uint64_t *hash;
    uint64_t *meta; /* route id << 32 | last-seen second; 0 = free */
    uint32_t *pod;
    Py_ssize_t capacity;
    int shift;      /* 64 - log2(number of sets) */
    double base;    /* the clock at second 1 */
    uint32_t evicted; /* latest last-seen second of an evicted entry (0: none yet) */
    Py_ssize_t used;
    unsigned long long evictions, stores;
} SessionTable;

static uint32_t second_of(SessionTable *t, double clock) {
    double d = clock - t->base;
    if (!(d >= 0.0)) {
        d = 0.0;
    }
    if (d > 4.0e9) {
        d = 4.0e9;
    }
    return (uint32_t)d + 1;
}

void seen_store(PyObject *table, uint32_t route, uint64_t h, uint32_t pod, double clock) {
    SessionTable *t = (SessionTable *)table;
    if (t->capacity == 0 || route == 0) {
        return;
    }
    uint64_t mix = (h ^ ((uint64_t)route * 0x9E3779B97F4A7C15ULL)) * 0xFF51AFD7ED558CCDULL;
    Py_ssize_t base = (Py_ssize_t)(mix >> t->shift) * WAYS;
    uint32_t sec = second_of(t, clock);
    uint64_t meta = ((uint64_t)route << 32) | sec;
    Py_ssize_t victim = base;
    uint32_t oldest = UINT32_MAX;
    t->stores++;
    for (Py_ssize_t i = base; i < base + WAYS; i++) {
        uint64_t m = t->meta[i];
        if (m == 0) { /* entries fill a set in order and are never freed: no match beyond */
            t->hash[i] = h;
            t->meta[i] = meta;
            t->pod[i] = pod;
            t->used++;
            return;
        }
        if (t->hash[i] == h && (uint32_t)(m >> 32) == route) {
            t->meta[i] = meta;
            t->pod[i] = pod;
            return;
        }
        if ((uint32_t)m < oldest) {
            oldest = (uint32_t)m;
            victim = i;
        }
    }
    if (oldest > t->evicted) {
        t->evicted = oldest;
    }
    t->evictions++;
    t->hash[victim] = h;
    t->meta[victim] = meta;
    t->pod[victim] = pod;
}

int seen_check(PyObject *obj) { return obj != NULL && Py_TYPE(obj) == &SessionTableType; }

static void table_dealloc(SessionTable *t) {
    PyMem_Free(t->hash);
    PyMem_Free(t->meta);
    PyMem_Free(t->pod);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyObject *table_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"capacity", "clock", NULL};
    Py_ssize_t capacity;
    double clock = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n|d", kw, &capacity, &clock)) {
        return NULL;
    }
    int bits = 0;
    while (((Py_ssize_t)1 << bits) < capacity) {
        bits++;
    }
    if (capacity != 0 && (capacity < 2 * WAYS || capacity != ((Py_ssize_t)1 << bits) ||
                          bits > 30)) {
        PyErr_SetString(PyExc_ValueError, "SessionTable: capacity must be 0 or a power of two "
                                          "from 16 to 2^30");
        return NULL;
    }
    SessionTable *t = (SessionTable *)type->tp_alloc(type, 0);
    if (t == NULL) {
        return NULL;
    }
    t->capacity = capacity;
    t->shift = 64 - (bits - 3); /* WAYS = 2^3 entries per set */
    t->base = clock;
    if (capacity) {
        t->hash = PyMem_Calloc((size_t)capacity, sizeof(uint64_t));
        t->meta = PyMem_Calloc((size_t)capacity, sizeof(uint64_t));
        t->pod = PyMem_Calloc((size_t)capacity, sizeof(uint32_t));
        if (t->hash == NULL || t->meta == NULL || t->pod == NULL) {
            Py_DECREF(t);
            return PyErr_NoMemory();
        }
    }
    return (PyObject *)t;
}

static PyObject *table_store(SessionTable *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "store(route, h, pod, clock)");
        return NULL;
    }
    unsigned long route = PyLong_AsUnsignedLong(args[0]);
    unsigned long long h = PyLong_AsUnsignedLongLong(args[1]);
    unsigned long pod = PyLong_AsUnsignedLong(args[2]);
    double clock = PyFloat_AsDouble(args[3]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (route > UINT32_MAX || pod > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "store: route and pod ids are 32-bit");
        return NULL;
    }
    seen_store((PyObject *)t, (uint32_t)route, h, (uint32_t)pod, clock);
    Py_RETURN_NONE;
}

/* The oldest second still in the window at `clock` (seconds >= it are active). */
static uint32_t window_start(SessionTable *t, double clock, double window) {
    uint32_t now = second_of(t, clock);
    double w = window < 0 ? 0 : window;
    return (double)now > w ? now - (uint32_t)w : 1;
}

static int in_sorted(const uint32_t *v, Py_ssize_t n, uint32_t x) {
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (v[mid] < x) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && v[lo] == x;
}

/* A buffer of uint32 (array 'I'), or NULL (no error) for None. */
static int u32_buffer(PyObject *obj, Py_buffer *view, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_FORMAT) < 0) {
        return -1;
    }
    if (view->itemsize != 4 || view->format == NULL || strcmp(view->format, "I") != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s must be an array('I')", what);
        return -1;
    }
    return 0;
}

static PyObject *table_snapshot(SessionTable *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "snapshot(routes, clock, window)");
        return NULL;
    }
    double clock = PyFloat_AsDouble(args[1]), window = PyFloat_AsDouble(args[2]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer routes = {0};
    int all = args[0] == Py_None;
    if (!all && u32_buffer(args[0], &routes, "routes") < 0) {
        return NULL;
    }
    const uint32_t *rv = all ? NULL : routes.buf;
    Py_ssize_t nr = all ? 0 : routes.len / 4;
    uint32_t start = window_start(t, clock, window);
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < t->capacity; i++) {
        uint64_t m = t->meta[i];
        if (m != 0 && (uint32_t)m >= start && (all || in_sorted(rv, nr, (uint32_t)(m >> 32)))) {
            n++;
        }
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * REC);
    if (out != NULL) {
        char *p = PyBytes_AS_STRING(out);
        for (Py_ssize_t i = 0; i < t->capacity && n > 0; i++) {
            uint64_t m = t->meta[i];
            if (m != 0 && (uint32_t)m >= start &&
                (all || in_sorted(rv, nr, (uint32_t)(m >> 32)))) {
                uint32_t r = (uint32_t)(m >> 32);
                memcpy(p, &t->hash[i], 8);
                memcpy(p + 8, &r, 4);
                memcpy(p + 12, &t->pod[i], 4);
                p += REC;
                n--;
            }
        }
    }
    if (!all) {
        PyBuffer_Release(&routes);
    }
    return out;
}

static PyObject *table_stats(SessionTable *t, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "stats(clock, window)");
        return NULL;
    }
    double clock = PyFloat_AsDouble(args[0]), window = PyFloat_AsDouble(args[1]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    uint32_t start = window_start(t, clock, window), now = second_of(t, clock);
    Py_ssize_t active = 0;
    for (Py_ssize_t i = 0; i < t->capacity; i++) {
        uint64_t m = t->meta[i];
        active += m != 0 && (uint32_t)m >= start;
    }
    /* seconds since the last eviction of a session that was still seen after it: None when
     * nothing was ever evicted */
    PyObject *age = t->evicted ? PyLong_FromUnsignedLong(now - (t->evicted < now ? t->evicted
                                                                                   : now))
                               : Py_NewRef(Py_None);
    if (age == NULL) {
        return NULL;
    }
    return Py_BuildValue("(nnnNKK)", t->capacity, t->used, active, age, t->evictions, t->stores);
}

/* -- counting moves (module function) ------------------------------------------------------ */

typedef struct {
    Py_buffer pods, a, b, pins;
    int kind; /* 0: no owner computable, 1: Maglev (a: slots), 2: ring (a: hashes, b: indices) */
    int has_pins, has_a, has_b, served; /* served: the old owner is the pod that served it */
    Py_ssize_t n, size;
    int awidth, bwidth;
} spec;

static void spec_release(spec *s) {
    if (s->served) {
        return;
    }
    PyBuffer_Release(&s->pods);
    if (s->has_a) {
        PyBuffer_Release(&s->a);
    }
    if (s->has_b) {
        PyBuffer_Release(&s->b);
    }
    if (s->has_pins) {
        PyBuffer_Release(&s->pins);
    }
}

static int index_buffer(PyObject *obj, Py_buffer *v, int *width) {
    if (PyObject_GetBuffer(obj, v, PyBUF_FORMAT) < 0) {
        return -1;
    }
    const char *f = v->format ? v->format : "B";
    if ((v->itemsize == 2 && strcmp(f, "H") == 0) || (v->itemsize == 4 && strcmp(f, "I") == 0)) {
        *width = (int)v->itemsize;
        return 0;
    }
    PyBuffer_Release(v);
    PyErr_SetString(PyExc_TypeError, "cells: table indices must be array('H') or array('I')");
    return -1;
}

/* (pods, kind, a, b, pins) or None (the old owner is the pod that served the session). */
static int spec_parse(PyObject *obj, spec *s) {
    memset(s, 0, sizeof *s);
    if (obj == Py_None) {
        s->served = 1;
        return 0;
    }
    if (!PyTuple_Check(obj) || PyTuple_GET_SIZE(obj) != 5) {
        PyErr_SetString(PyExc_TypeError, "cells: a spec is (pods, kind, a, b, pins) or None");
        return -1;
    }
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(obj, 1));
    if (kind == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (u32_buffer(PyTuple_GET_ITEM(obj, 0), &s->pods, "pods") < 0) {
        return -1;
    }
    s->n = s->pods.len / 4;
    s->kind = (int)kind;
    PyObject *a = PyTuple_GET_ITEM(obj, 2), *b = PyTuple_GET_ITEM(obj, 3);
    PyObject *pins = PyTuple_GET_ITEM(obj, 4);
    if (kind == 1) {
        if (index_buffer(a, &s->a, &s->awidth) < 0) {
            goto fail;
        }
        s->has_a = 1;
        s->size = s->a.len / s->awidth;
    } else if (kind == 2) {
        if (PyObject_GetBuffer(a, &s->a, PyBUF_FORMAT) < 0) {
            goto fail;
        }
        s->has_a = 1;
        if (s->a.itemsize != 8 || s->a.format == NULL || strcmp(s->a.format, "Q") != 0) {
            PyErr_SetString(PyExc_TypeError, "cells: ring hashes must be array('Q')");
            goto fail;
        }
        if (index_buffer(b, &s->b, &s->bwidth) < 0) {
            goto fail;
        }
        s->has_b = 1;
        s->size = s->a.len / 8;
        if (s->b.len / s->bwidth != s->size) {
            PyErr_SetString(PyExc_ValueError, "cells: ring hashes and indices differ in length");
            goto fail;
        }
    } else if (kind != 0) {
        PyErr_SetString(PyExc_ValueError, "cells: kind must be 0, 1 or 2");
        goto fail;
    }
    if (pins != Py_None) {
        if (u32_buffer(pins, &s->pins, "pins") < 0) {
            goto fail;
        }
        s->has_pins = 1;
    }
    return 0;
fail:
    spec_release(s);
    return -1;
}

static inline Py_ssize_t idx_at(const void *buf, int width, Py_ssize_t i) {
    return width == 2 ? ((const uint16_t *)buf)[i] : ((const uint32_t *)buf)[i];
}

/* The pod the spec sends hash h to (0: none), given the pod that served it last. */
static uint32_t owner(const spec *s, uint64_t h, uint32_t served) {
    if (s->served) {
        return served;
    }
    if (s->has_pins && in_sorted(s->pins.buf, s->pins.len / 4, served)) {
        return served;
    }
    if (s->kind == 0 || s->size == 0) {
        return 0;
    }
    Py_ssize_t i;
    if (s->kind == 1) {
        i = idx_at(s->a.buf, s->awidth, (Py_ssize_t)(h % (uint64_t)s->size));
    } else {
        const uint64_t *hashes = s->a.buf;
        Py_ssize_t lo = 0, hi = s->size; /* Envoy: the first point >= h, wrapping */
        while (lo < hi) {
            Py_ssize_t mid = lo + (hi - lo) / 2;
            if (hashes[mid] < h) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        i = idx_at(s->b.buf, s->bwidth, lo == s->size ? 0 : lo);
    }
    return i < s->n ? ((const uint32_t *)s->pods.buf)[i] : 0;
}

/* A small open-addressing counter map: key (a << 32 | b) + 1 (0 = free). */
typedef struct {
    uint64_t *keys;
    Py_ssize_t *counts;
    Py_ssize_t mask;
} counter;

static int counter_init(counter *c, Py_ssize_t items) {
    Py_ssize_t cap = 16;
    while (cap < 2 * items) {
        cap *= 2;
    }
    c->keys = PyMem_RawCalloc((size_t)cap, sizeof(uint64_t));
    c->counts = PyMem_RawCalloc((size_t)cap, sizeof(Py_ssize_t));
    c->mask = cap - 1;
    return c->keys && c->counts ? 0 : -1;
}

static void counter_add(counter *c, uint32_t a, uint32_t b) {
    uint64_t key = (((uint64_t)a << 32) | b) + 1;
    Py_ssize_t i = (Py_ssize_t)((key * 0x9E3779B97F4A7C15ULL) >> 20) & c->mask;
    while (c->keys[i] != 0 && c->keys[i] != key) {
        i = (i + 1) & c->mask;
    }
    c->keys[i] = key;
    c->counts[i]++;
}

static PyObject *counter_dict(counter *c) {
    PyObject *d = PyDict_New();
    for (Py_ssize_t i = 0; d != NULL && i <= c->mask; i++) {
        if (c->keys[i] == 0) {
            continue;
        }
        uint64_t key = c->keys[i] - 1;
        PyObject *k = Py_BuildValue("(kk)", (unsigned long)(key >> 32),
                                    (unsigned long)(key & 0xFFFFFFFFu));
        PyObject *v = PyLong_FromSsize_t(c->counts[i]);
        if (k == NULL || v == NULL || PyDict_SetItem(d, k, v) < 0) {
            Py_CLEAR(d);
        }
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    return d;
}

static void counter_free(counter *c) {
    PyMem_RawFree(c->keys);
    PyMem_RawFree(c->counts);
}

static PyObject *seen_cells(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "cells(snapshot, route, old, new)");
        return NULL;
    }
    unsigned long route = PyLong_AsUnsignedLong(args[1]);
    if (route == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer snap;
    if (PyObject_GetBuffer(args[0], &snap, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    spec old, new;
    if (spec_parse(args[2], &old) < 0) {
        PyBuffer_Release(&snap);
        return NULL;
    }
    if (spec_parse(args[3], &new) < 0 || new.served) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "cells: the new spec cannot be None");
        }
        spec_release(&old);
        PyBuffer_Release(&snap);
        return NULL;
    }
    Py_ssize_t records = snap.len / REC, total = 0;
    counter moves = {0}, away = {0};
    PyObject *result = NULL;
    int ok = counter_init(&moves, records) == 0 && counter_init(&away, records) == 0;
    if (ok) {
        Py_BEGIN_ALLOW_THREADS;
        const char *p = snap.buf;
        for (Py_ssize_t i = 0; i < records; i++, p += REC) {
            uint64_t h;
            uint32_t r, pod;
            memcpy(&h, p, 8);
            memcpy(&r, p + 8, 4);
            memcpy(&pod, p + 12, 4);
            if (r != route) {
                continue;
            }
            total++;
            uint32_t after = owner(&new, h, pod);
            counter_add(&moves, owner(&old, h, pod), after);
            if (after != pod) {
                counter_add(&away, pod, after);
            }
        }
        Py_END_ALLOW_THREADS;
        PyObject *m = counter_dict(&moves), *a = m ? counter_dict(&away) : NULL;
        if (m && a) {
            result = Py_BuildValue("(NNn)", m, a, total);
        } else {
            Py_XDECREF(m);
            Py_XDECREF(a);
        }
    } else {
        PyErr_NoMemory();
    }
    counter_free(&moves);
    counter_free(&away);
    spec_release(&old);
    spec_release(&new);
    PyBuffer_Release(&snap);
    return result;
}

static PyMemberDef table_members[] = {
    {"capacity", T_PYSSIZET, offsetof(SessionTable, capacity), READONLY, "entries"},
    {"used", T_PYSSIZET, offsetof(SessionTable, used), READONLY, "entries holding a session"},
    {"evictions", T_ULONGLONG, offsetof(SessionTable, evictions), READONLY, "sessions evicted"},
    {"stores", T_ULONGLONG, offsetof(SessionTable, stores), READONLY, "store() calls counted"},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef table_methods[] = {
    {"store", (PyCFunction)(void (*)(void))table_store, METH_FASTCALL,
     "store(route, h, pod, clock): note that the session (route, h) was served by pod now."},
    {"snapshot", (PyCFunction)(void (*)(void))table_snapshot, METH_FASTCALL,
     "snapshot(routes|None, clock, window) -> bytes of the active entries of those routes."},
    {"stats", (PyCFunction)(void (*)(void))table_stats, METH_FASTCALL,
     "stats(clock, window) -> (capacity, used, active, evicted_age|None, evictions, stores)."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject SessionTableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tether.gateway.wire._wire.SessionTable",
    .tp_basicsize = sizeof(SessionTable),
    .tp_dealloc = (destructor)table_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Recent sessions of a gateway in bounded memory (see seen.c).",
    .tp_methods = table_methods,
    .tp_members = table_members,
    .tp_new = table_new,
};

PyMethodDef seen_methods[] = {
    {"session_cells", (PyCFunction)(void (*)(void))seen_cells, METH_FASTCALL,
     "session_cells(snapshot, route, old, new) -> ({(old, new): n}, {(served, new): n}, total)."},
    {NULL, NULL, 0, NULL},
};

int seen_init(PyObject *module) {
    if (PyType_Ready(&SessionTableType) < 0) {
        return -1;
    }
    return PyModule_AddObjectRef(module, "SessionTable", (PyObject *)&SessionTableType);
}
