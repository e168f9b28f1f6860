/*
 * Native Maglev fill loop for tether: the same algorithm as maglev/reference.py (Envoy's
 * OriginalMaglevTable::constructImplementationInternals), tested slot for slot against it.
 *
 * fill(table_size, offsets, skips, weights, max_weight, remap, out, out_width, counts)
 *   offsets, skips: n uint64 (offset < M, 1 <= skip < M) in build (sorted-key) order
 *   weights:        n doubles, normalized weights in build order
 *   remap:          n uint32, the caller's host index of each build entry
 *   out:            writable buffer of table_size items of out_width bytes (2 or 4)
 *   counts:         writable buffer of n uint64, slots claimed per build entry
 * The permutation (offset + skip * next) % M is walked incrementally (pos += skip, mod M),
 * which visits the same slots in the same order. The GIL is released during the fill.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

static int fill_table(uint64_t m, size_t n, const uint64_t *offsets, const uint64_t *skips,
                      const double *weights, double max_weight, const uint32_t *remap,
                      void *out, int width, uint64_t *counts) {
    uint8_t *occupied = calloc((size_t)m, 1);
    uint64_t *pos = malloc(n * sizeof(uint64_t));
    double *target = calloc(n, sizeof(double));
    if (!occupied || !pos || !target) {
        free(occupied);
        free(pos);
        free(target);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        pos[i] = offsets[i];
        counts[i] = 0;
    }
    uint16_t *out16 = (uint16_t *)out;
    uint32_t *out32 = (uint32_t *)out;
    uint64_t filled = 0;
    for (uint32_t iteration = 1; filled < m; ++iteration) {
        for (size_t i = 0; i < n && filled < m; i++) {
            /* Envoy: if (iteration * entry.weight_ < entry.target_weight_) continue; */
            if ((double)iteration * weights[i] < target[i]) {
                continue;
            }
            target[i] += max_weight;
            uint64_t c = pos[i];
            const uint64_t skip = skips[i];
            while (occupied[c]) {
                c += skip;
                if (c >= m) {
                    c -= m;
                }
            }
            occupied[c] = 1;
            if (width == 2) {
                out16[c] = (uint16_t)remap[i];
            } else {
                out32[c] = remap[i];
            }
            c += skip;
            if (c >= m) {
                c -= m;
            }
            pos[i] = c;
            counts[i]++;
            filled++;
        }
    }
    free(occupied);
    free(pos);
    free(target);
    return 0;
}

static int is_prime(uint64_t m) {
    if (m < 2) {
        return 0;
    }
    for (uint64_t d = 2; d <= m / d; d++) {
        if (m % d == 0) {
            return 0;
        }
    }
    return 1;
}

static PyObject *kernel_fill(PyObject *self, PyObject *args) {
    unsigned long long m;
    double max_weight;
    int width;
    Py_buffer off = {0}, skp = {0}, wts = {0}, rmp = {0}, out = {0}, cnt = {0};
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "Ky*y*y*dy*w*iw*", &m, &off, &skp, &wts, &max_weight, &rmp, &out,
                          &width, &cnt)) {
        return NULL;
    }
    Py_ssize_t n = off.len / 8;
    /* m is checked against the byte size only once m * width cannot overflow */
    if (m < 2 || off.len % 8 || skp.len != n * 8 || wts.len != n * 8 || rmp.len != n * 4 ||
        cnt.len != n * 8 || (width != 2 && width != 4) ||
        m > (unsigned long long)PY_SSIZE_T_MAX / (unsigned)width ||
        out.len != (Py_ssize_t)m * width || n == 0) {
        PyErr_SetString(PyExc_ValueError, "maglev kernel: inconsistent buffer sizes");
        goto done;
    }
    const uint64_t *offsets = off.buf, *skips = skp.buf;
    const double *weights = wts.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (offsets[i] >= m || skips[i] == 0 || skips[i] >= m) {
            PyErr_SetString(PyExc_ValueError, "maglev kernel: offset/skip out of range");
            goto done;
        }
        /* a host that never claims a slot, or a permutation that misses slots, never ends */
        if (!(weights[i] > 0.0 && weights[i] <= max_weight && max_weight < 1e300)) {
            PyErr_SetString(PyExc_ValueError, "maglev kernel: weights must be in (0, max_weight]");
            goto done;
        }
    }
    if (!is_prime(m)) {
        PyErr_SetString(PyExc_ValueError, "maglev kernel: table size must be prime");
        goto done;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = fill_table(m, (size_t)n, offsets, skips, wts.buf, max_weight, rmp.buf, out.buf, width, cnt.buf);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&off);
    PyBuffer_Release(&skp);
    PyBuffer_Release(&wts);
    PyBuffer_Release(&rmp);
    PyBuffer_Release(&out);
    PyBuffer_Release(&cnt);
    return result;
}

static PyMethodDef kernel_methods[] = {
    {"fill", kernel_fill, METH_VARARGS, "Fill a Maglev table exactly as Envoy does (see module)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT, "_kernel", "Native Maglev fill loop (tether).", -1, kernel_methods,
};

PyMODINIT_FUNC PyInit__kernel(void) { return PyModule_Create(&kernel_module); }
