/*
 * Native cookie scan for tether's per-request path: exactly keys/parse.py find_cookie_bytes
 * (Envoy http/utility.cc forEachCookie + parseCookie), tested against it and against a
 * step-by-step transcription of Envoy's algorithm.
 *
 * find(values, needle) -> bytes | None
 *   values: list or tuple of bytes (the "cookie" header values, in order)
 *   needle: b"<name>=" (the caller rejects names that can never match)
 * A needle occurrence starts a cookie piece iff only ' ' separate it from a ';' or the start
 * of the header value; the value runs to the next ';'; one pair of surrounding '"' is removed.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *scan_one(const char *buf, Py_ssize_t len, const char *needle, Py_ssize_t width,
                          int *found) {
    const char *end = buf + len;
    const char *p = buf;
    *found = 0;
    while (p < end) {
        const char *hit = memmem(p, (size_t)(end - p), needle, (size_t)width);
        if (hit == NULL) {
            return NULL;
        }
        const char *j = hit;
        while (j > buf && j[-1] == ' ') {
            j--;
        }
        if (j == buf || j[-1] == ';') {
            const char *start = hit + width;
            const char *stop = memchr(start, ';', (size_t)(end - start));
            if (stop == NULL) {
                stop = end;
            }
            if (stop - start >= 2 && start[0] == '"' && stop[-1] == '"') {
                start++;
                stop--;
            }
            *found = 1;
            return PyBytes_FromStringAndSize(start, stop - start);
        }
        p = hit + 1;
    }
    return NULL;
}

static PyObject *cookie_find(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "find(values, needle: bytes)");
        return NULL;
    }
    const char *needle = PyBytes_AS_STRING(args[1]);
    Py_ssize_t width = PyBytes_GET_SIZE(args[1]);
    if (width == 0) {
        PyErr_SetString(PyExc_ValueError, "empty needle");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "values must be a sequence of bytes");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(items[i])) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_TypeError, "cookie header values must be bytes");
            return NULL;
        }
        int found;
        PyObject *value = scan_one(PyBytes_AS_STRING(items[i]), PyBytes_GET_SIZE(items[i]),
                                   needle, width, &found);
        if (found) {
            Py_DECREF(seq);
            return value; /* NULL here means PyBytes_FromStringAndSize failed */
        }
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

static PyMethodDef cookie_methods[] = {
    {"find", (PyCFunction)(void (*)(void))cookie_find, METH_FASTCALL,
     "First cookie value for b'<name>=' across header values (Envoy semantics), or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cookie_module = {
    PyModuleDef_HEAD_INIT, "_cookie", "Native cookie scan (tether).", -1, cookie_methods,
};

PyMODINIT_FUNC PyInit__cookie(void) { return PyModule_Create(&cookie_module); }
