/*
 * Access-log lines in C for the native lane: exactly accesslog.format_line (the unit tests
 * hold the two equal on random fields). Only what is cheap to get right is handled here: an
 * ASCII `where`, `client` and `error`, a non-negative duration and a line that fits the
 * caller's buffer; anything else returns -1 and the caller formats the line in Python.
 */
#include "wire.h"

#include <stdio.h> /* snprintf for the time stamp */
#include <string.h>
#include <time.h>

static const char HEX[] = "0123456789abcdef";

/* json.encoder.encode_basestring_ascii of code points 0..255 given as bytes. */
static char *json_string(char *o, char *stop, const unsigned char *p, Py_ssize_t n) {
    if (o >= stop) {
        return NULL;
    }
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (stop - o < 7) {
            return NULL;
        }
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = HEX[c >> 4];
            *o++ = HEX[c & 15];
        }
    }
    if (stop - o < 1) {
        return NULL;
    }
    *o++ = '"';
    return o;
}

static char *raw(char *o, char *stop, const char *p, Py_ssize_t n) {
    if (o == NULL || stop - o < n) {
        return NULL;
    }
    memcpy(o, p, (size_t)n);
    return o + n;
}

#define LIT(o, text) raw(o, stop, text, (Py_ssize_t)(sizeof(text) - 1))

static char *num(char *o, char *stop, long long v) {
    char tmp[24];
    char *t = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--t = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) {
        *--t = '-';
    }
    return raw(o, stop, t, tmp + sizeof tmp - t);
}

static int ascii_str(PyObject *s, const char **p, Py_ssize_t *n) {
    if (!PyUnicode_Check(s) || !PyUnicode_IS_ASCII(s)) {
        return 0;
    }
    *p = (const char *)PyUnicode_1BYTE_DATA(s);
    *n = PyUnicode_GET_LENGTH(s);
    return 1;
}

/*
 * Format one line into out[0:cap]; returns its length, or -1 when the fields are outside
 * what this function handles (see the file comment) or the line does not fit.
 */
Py_ssize_t wire_access_line(char *out, Py_ssize_t cap, PyObject *stamp, PyObject *method,
                            PyObject *path, PyObject *status, PyObject *where, PyObject *h,
                            int generated, double duration, PyObject *nbytes, PyObject *client,
                            PyObject *attempts, PyObject *error) {
    const char *stamp_p, *where_p, *client_p, *error_p;
    Py_ssize_t stamp_n, where_n, client_n, error_n;
    if (!ascii_str(stamp, &stamp_p, &stamp_n) || !ascii_str(where, &where_p, &where_n) ||
        !ascii_str(client, &client_p, &client_n) || !ascii_str(error, &error_p, &error_n) ||
        !PyBytes_Check(method) || !PyBytes_Check(path) || !PyLong_Check(status) ||
        !PyLong_Check(nbytes) || !PyLong_Check(attempts) || !(duration >= 0.0) ||
        duration > 1e12) {
        return -1;
    }
    long long st = PyLong_AsLongLong(status), nb = PyLong_AsLongLong(nbytes),
              at = PyLong_AsLongLong(attempts);
    unsigned long long hv = 0;
    if (h != Py_None) {
        if (!PyLong_Check(h)) {
            return -1;
        }
        hv = PyLong_AsUnsignedLongLong(h);
    }
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    long long us = (long long)(duration * 1e6);
    char *stop = out + cap;
    char *o = LIT(out, "{\"time\":\"");
    o = raw(o, stop, stamp_p, stamp_n);
    o = LIT(o, "\",\"method\":");
    o = o ? json_string(o, stop, (const unsigned char *)PyBytes_AS_STRING(method),
                        PyBytes_GET_SIZE(method))
          : NULL;
    o = LIT(o, ",\"path\":");
    o = o ? json_string(o, stop, (const unsigned char *)PyBytes_AS_STRING(path),
                        PyBytes_GET_SIZE(path))
          : NULL;
    o = LIT(o, ",\"status\":");
    o = o ? num(o, stop, st) : NULL;
    o = LIT(o, ",");
    o = raw(o, stop, where_p, where_n);
    o = LIT(o, ",\"hash\":\"");
    if (h != Py_None && o != NULL) {
        char hex[17];
        for (int i = 15; i >= 0; i--) {
            hex[i] = HEX[hv & 15];
            hv >>= 4;
        }
        o = raw(o, stop, hex, 16);
    }
    o = generated ? LIT(o, "\",\"cookie_generated\":true,\"duration_ms\":")
                  : LIT(o, "\",\"cookie_generated\":false,\"duration_ms\":");
    o = o ? num(o, stop, us / 1000) : NULL;
    if (o != NULL) {
        char frac[4] = {(char)('0' + us % 1000 / 100), (char)('0' + us % 100 / 10),
                        (char)('0' + us % 10), 0};
        o = LIT(o, ".");
        o = raw(o, stop, frac, 3);
    }
    o = LIT(o, ",\"bytes\":");
    o = o ? num(o, stop, nb) : NULL;
    o = LIT(o, ",\"client\":");
    o = o ? json_string(o, stop, (const unsigned char *)client_p, client_n) : NULL;
    o = LIT(o, ",\"attempts\":");
    o = o ? num(o, stop, at) : NULL;
    o = LIT(o, ",\"error\":");
    o = o ? json_string(o, stop, (const unsigned char *)error_p, error_n) : NULL;
    o = LIT(o, "}\n");
    return o == NULL ? -1 : o - out;
}

/* The access log's time field for now: RFC 3339 UTC with milliseconds (cached per ms). */
PyObject *wire_access_stamp(void) {
    static long long last_ms = -1, last_sec = -1;
    static char prefix[32];
    static PyObject *stamp = NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (ms != last_ms || stamp == NULL) {
        long long sec = ms / 1000;
        if (sec != last_sec) {
            time_t t = (time_t)sec;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(prefix, sizeof prefix, "%Y-%m-%dT%H:%M:%S", &tm);
            last_sec = sec;
        }
        char text[48];
        int n = snprintf(text, sizeof text, "%s.%03lldZ", prefix, ms % 1000);
        Py_XSETREF(stamp, PyUnicode_FromStringAndSize(text, n));
        if (stamp == NULL) {
            return NULL;
        }
        last_ms = ms;
    }
    return Py_NewRef(stamp);
}

/* access_line(stamp, method, path, status, where, h, generated, duration, nbytes, client,
 *             attempts, error) -> str | None  (None: use the Python formatter) */
static PyObject *access_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 12) {
        PyErr_SetString(PyExc_TypeError, "access_line takes 12 arguments");
        return NULL;
    }
    int generated = PyObject_IsTrue(args[6]);
    if (generated < 0) { /* before PyFloat_AsDouble, which may run Python code */
        return NULL;
    }
    double duration = PyFloat_AsDouble(args[7]);
    if (duration == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    char buf[4096];
    Py_ssize_t n = wire_access_line(buf, sizeof buf, args[0], args[1], args[2], args[3], args[4],
                                    args[5], generated, duration, args[8], args[9], args[10],
                                    args[11]);
    if (n < 0) {
        Py_RETURN_NONE;
    }
    return PyUnicode_DecodeASCII(buf, n, NULL);
}

PyMethodDef accesslog_methods[] = {
    {"access_line", (PyCFunction)(void (*)(void))access_line, METH_FASTCALL,
     "accesslog.format_line in C, or None when the fields need the Python formatter."},
    {NULL, NULL, 0, NULL},
};
