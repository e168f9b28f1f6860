/*
 * Native ring-hash lookup for tether: the same search as RingHash.choose_reference (Envoy's
 * RingHashLoadBalancer::Ring::chooseHost), tested against it for every position of random rings.
 *
 * choose(hashes, indices, h, attempt) -> host index, or None for an empty ring
 *   hashes:  buffer of n uint64, ascending
 *   indices: buffer of n uint16 or uint32 (item size taken from the buffer's format)
 *   h:       request hash, 0 <= h < 2^64
 *   attempt: retry attempt >= 0; the entry `attempt` positions after the first hit, wrapping
 * The first entry with hash >= h wins (wrapping to entry 0 past the end), as Envoy does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static PyObject *ring_choose(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "choose(hashes, indices, h, attempt)");
        return NULL;
    }
    unsigned long long h = PyLong_AsUnsignedLongLong(args[2]);
    if (h == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t attempt = PyLong_AsSsize_t(args[3]);
    if (attempt == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (attempt < 0) {
        PyErr_SetString(PyExc_ValueError, "ring choose: attempt must be >= 0");
        return NULL;
    }
    Py_buffer hb, ib;
    if (PyObject_GetBuffer(args[0], &hb, PyBUF_FORMAT) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &ib, PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&hb);
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t n = hb.len / 8;
    if (hb.itemsize != 8 || (ib.itemsize != 2 && ib.itemsize != 4) || ib.len / ib.itemsize != n) {
        PyErr_SetString(PyExc_ValueError, "ring choose: hashes must be uint64, indices uint16/32, "
                                          "of the same length");
        goto done;
    }
    if (n == 0) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    const uint64_t *hashes = hb.buf;
    Py_ssize_t lo = 0, hi = n; /* first position with hashes[pos] >= h, in [0, n] */
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (hashes[mid] < h) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == n) {
        lo = 0;
    }
    if (attempt) {
        lo = (Py_ssize_t)(((uint64_t)lo + (uint64_t)attempt) % (uint64_t)n);
    }
    unsigned long idx = ib.itemsize == 2 ? ((const uint16_t *)ib.buf)[lo]
                                         : ((const uint32_t *)ib.buf)[lo];
    result = PyLong_FromUnsignedLong(idx);
done:
    PyBuffer_Release(&hb);
    PyBuffer_Release(&ib);
    return result;
}

static PyMethodDef search_methods[] = {
    {"choose", (PyCFunction)(void (*)(void))ring_choose, METH_FASTCALL,
     "Host index for hash h on a sorted ring, Envoy's chooseHost (see module)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef search_module = {
    PyModuleDef_HEAD_INIT, "_search", "Native ring-hash lookup (tether).", -1, search_methods,
};

PyMODINIT_FUNC PyInit__search(void) { return PyModule_Create(&search_module); }
