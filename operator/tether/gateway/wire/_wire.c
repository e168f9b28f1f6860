/*
 * Native head fast path for tether's gateway: exactly wire/reference.py (the unit tests hold
 * the two equal on random heads, and hold every head accepted here to llhttp's reading).
 *
 * scan_request(buf, start, peer, trusted, limit)
 *     -> (end, head, method, path, host, cookies, xff, flags) | 0 (INCOMPLETE) | 1 (SLOW)
 * scan_response(buf, extra, head_request) -> (out, status, body, left, keep) | 0 | 1
 * header_values(buf, start, end, lname) -> list[bytes]
 *
 * Only a strict, common subset of HTTP/1.1 is accepted; anything else returns SLOW and the
 * caller hands the bytes to llhttp, which answers errors and handles bodies and upgrades.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define INCOMPLETE 0
#define SLOW 1
#define F_KEEP_ALIVE 1
#define F_HTTP10 2
#define MAX_SPANS 64 /* dropped lines / cookie / xff values per head; more → SLOW */
#define MAX_CL_DIGITS 18

static unsigned char TCHAR[256];
static unsigned char VALUE[256];
static unsigned char TARGET[256];

static const char *METHOD_NAMES[] = {"GET",     "HEAD",  "POST",  "PUT",
                                     "DELETE",  "OPTIONS", "PATCH", "TRACE"};
#define N_METHODS 8
static PyObject *METHOD_OBJS[N_METHODS];
static PyObject *EMPTY_TUPLE;

typedef struct {
    const char *p;
    Py_ssize_t n;
} span;

static void init_tables(void) {
    const char *t = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for (; *t; t++) {
        TCHAR[(unsigned char)*t] = 1;
    }
    VALUE[9] = 1;
    for (int c = 0x20; c < 0x7f; c++) {
        VALUE[c] = 1;
    }
    for (int c = 0x80; c < 0x100; c++) {
        VALUE[c] = 1;
    }
    for (int c = 0x21; c < 0x7f; c++) {
        TARGET[c] = 1;
    }
}

static PyObject *code(int c) { return PyLong_FromLong(c); }

/* Case-insensitive equality of name[0:n] with a lower-case literal. */
static int name_is(const char *name, Py_ssize_t n, const char *lit, Py_ssize_t m) {
    if (n != m) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 'A' && c <= 'Z') {
            c += 32;
        }
        if (c != (unsigned char)lit[i]) {
            return 0;
        }
    }
    return 1;
}
#define IS(lit) name_is(name, nlen, lit, (Py_ssize_t)(sizeof(lit) - 1))

/*
 * Parse one header line at p (lines end before `last`, the offset of the final CRLFCRLF).
 * On success sets name/nlen, value/vlen (leading SP/HTAB removed), returns the next line.
 * Returns NULL for a line outside the fast-path grammar.
 */
static const char *header_line(const char *p, const char *last, const char **name,
                               Py_ssize_t *nlen, const char **value, Py_ssize_t *vlen) {
    const char *q = p;
    while (q < last && TCHAR[(unsigned char)*q]) {
        q++;
    }
    if (q == p || q >= last || *q != ':') {
        return NULL;
    }
    *name = p;
    *nlen = q - p;
    q++;
    while (q < last && (*q == ' ' || *q == '\t')) {
        q++;
    }
    const char *v = q;
    while (q < last + 2 && VALUE[(unsigned char)*q]) {
        q++;
    }
    /* the line must end in CRLF, at or before the head's final CRLF */
    if (q > last || q[0] != '\r' || q[1] != '\n') {
        return NULL;
    }
    *value = v;
    *vlen = q - v;
    return q + 2;
}

/* Connection value as one token: 1 close, 2 keep-alive, 0 anything else. */
static int conn_token(const char *v, Py_ssize_t n) {
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
        n--;
    }
    if (name_is(v, n, "close", 5)) {
        return 1;
    }
    if (name_is(v, n, "keep-alive", 10)) {
        return 2;
    }
    return 0;
}

static PyObject *scan_request(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "scan_request(buf, start, peer, trusted, limit)");
        return NULL;
    }
    const char *buf = PyBytes_AS_STRING(args[0]);
    Py_ssize_t len = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    Py_ssize_t limit = PyLong_AsSsize_t(args[4]);
    int trusted = PyObject_IsTrue(args[3]);
    if ((start == -1 || limit == -1 || trusted == -1) && PyErr_Occurred()) {
        return NULL;
    }
    if (start < 0 || start > len) {
        PyErr_SetString(PyExc_ValueError, "start outside buf");
        return NULL;
    }
    const char *s = buf + start;
    const char *e = buf + len;
    const char *hit = memmem(s, (size_t)(e - s), "\r\n\r\n", 4);
    if (hit == NULL) {
        return code(e - s > limit ? SLOW : INCOMPLETE);
    }
    const char *last = hit; /* final CRLFCRLF */
    Py_ssize_t end = (hit + 4) - buf;
    if (end - start > limit) {
        return code(SLOW);
    }
    /* request line: METHOD SP /target SP HTTP/1.x CRLF */
    const char *p = s;
    while (p < last && *p >= 'A' && *p <= 'Z') {
        p++;
    }
    int m = -1;
    for (int i = 0; i < N_METHODS; i++) {
        size_t ml = strlen(METHOD_NAMES[i]);
        if ((size_t)(p - s) == ml && memcmp(s, METHOD_NAMES[i], ml) == 0) {
            m = i;
            break;
        }
    }
    if (m < 0 || p >= last || *p != ' ' || p[1] != '/') {
        return code(SLOW);
    }
    const char *target = ++p;
    while (p < last && TARGET[(unsigned char)*p]) {
        p++;
    }
    Py_ssize_t tlen = p - target;
    if (last - p < 9 || memcmp(p, " HTTP/1.", 8) != 0 || (p[8] != '0' && p[8] != '1')) {
        return code(SLOW);
    }
    int http10 = p[8] == '0';
    const char *version_digit = p + 8;
    p += 9;
    if (p[0] != '\r' || p[1] != '\n') {
        return code(SLOW);
    }
    p += 2;
    /* header lines */
    span drop[MAX_SPANS], cookies[MAX_SPANS], xffs[MAX_SPANS];
    int ndrop = 0, ncookie = 0, nxff = 0;
    const char *host = NULL, *xfp = NULL;
    Py_ssize_t hostlen = 0, xfplen = 0, dropped = 0, xfflen = 0;
    int conn = -1, seen_cl = 0;
    while (p < last + 2) {
        const char *name, *value;
        Py_ssize_t nlen, vlen;
        const char *next = header_line(p, last, &name, &nlen, &value, &vlen);
        if (next == NULL) {
            return code(SLOW);
        }
        int drop_line = 0;
        if (IS("host")) {
            if (host != NULL) {
                return code(SLOW);
            }
            host = value;
            hostlen = vlen;
        } else if (IS("cookie")) {
            if (ncookie == MAX_SPANS) {
                return code(SLOW);
            }
            cookies[ncookie].p = value;
            cookies[ncookie++].n = vlen;
        } else if (IS("x-forwarded-for")) {
            if (nxff == MAX_SPANS) {
                return code(SLOW);
            }
            xffs[nxff].p = value;
            xffs[nxff++].n = vlen;
            xfflen += vlen + (nxff > 1 ? 2 : 0);
            drop_line = 1;
        } else if (IS("x-forwarded-proto")) {
            xfp = value;
            xfplen = vlen;
            drop_line = 1;
        } else if (IS("connection")) {
            if (conn >= 0) {
                return code(SLOW);
            }
            conn = conn_token(value, vlen);
            if (conn == 0) {
                return code(SLOW);
            }
            drop_line = 1;
        } else if (IS("content-length")) {
            if (seen_cl || vlen == 0) {
                return code(SLOW);
            }
            for (Py_ssize_t i = 0; i < vlen; i++) {
                if (value[i] != '0') {
                    return code(SLOW);
                }
            }
            seen_cl = 1;
        } else if (IS("keep-alive") || IS("proxy-authorization") || IS("proxy-authenticate") ||
                   IS("te") || IS("trailer")) {
            drop_line = 1;
        } else if (IS("upgrade") || IS("transfer-encoding") || IS("proxy-connection")) {
            return code(SLOW);
        }
        if (drop_line) {
            if (ndrop == MAX_SPANS) {
                return code(SLOW);
            }
            drop[ndrop].p = p;
            drop[ndrop++].n = next - p;
            dropped += next - p;
        }
        p = next;
    }
    if (host == NULL) {
        return code(SLOW);
    }
    const char *proto = (trusted && xfp != NULL && xfplen > 0) ? xfp : "http";
    Py_ssize_t protolen = (trusted && xfp != NULL && xfplen > 0) ? xfplen : 4;
    const char *peer = PyBytes_AS_STRING(args[2]);
    Py_ssize_t peerlen = PyBytes_GET_SIZE(args[2]);
    /* body: [start, last+2) minus dropped lines; tail: XFF, XFP, blank line */
    Py_ssize_t size = (last + 2 - s) - dropped + 17 + (nxff ? xfflen + 2 : 0) + peerlen + 21 +
                      protolen + 4;
    PyObject *head = PyBytes_FromStringAndSize(NULL, size);
    if (head == NULL) {
        return NULL;
    }
    char *o = PyBytes_AS_STRING(head);
    const char *from = s;
    for (int i = 0; i < ndrop; i++) {
        memcpy(o, from, (size_t)(drop[i].p - from));
        o += drop[i].p - from;
        from = drop[i].p + drop[i].n;
    }
    memcpy(o, from, (size_t)(last + 2 - from));
    o += last + 2 - from;
    if (http10) { /* the request line is never dropped: patch the copied version digit */
        PyBytes_AS_STRING(head)[version_digit - s] = '1';
    }
    memcpy(o, "x-forwarded-for: ", 17);
    o += 17;
    for (int i = 0; i < nxff; i++) {
        memcpy(o, xffs[i].p, (size_t)xffs[i].n);
        o += xffs[i].n;
        memcpy(o, ", ", 2);
        o += 2;
    }
    memcpy(o, peer, (size_t)peerlen);
    o += peerlen;
    memcpy(o, "\r\nx-forwarded-proto: ", 21);
    o += 21;
    memcpy(o, proto, (size_t)protolen);
    o += protolen;
    memcpy(o, "\r\n\r\n", 4);
    int keep = http10 ? conn == 2 : conn != 1;
    int flags = (keep ? F_KEEP_ALIVE : 0) | (http10 ? F_HTTP10 : 0);

    PyObject *path = NULL, *hostobj = NULL, *cookieobj = NULL, *xffobj = NULL;
    path = PyBytes_FromStringAndSize(target, tlen);
    hostobj = PyBytes_FromStringAndSize(host, hostlen);
    if (path == NULL || hostobj == NULL) {
        goto fail;
    }
    if (ncookie == 0) {
        cookieobj = Py_NewRef(EMPTY_TUPLE);
    } else {
        cookieobj = PyTuple_New(ncookie);
        if (cookieobj == NULL) {
            goto fail;
        }
        for (int i = 0; i < ncookie; i++) {
            PyObject *v = PyBytes_FromStringAndSize(cookies[i].p, cookies[i].n);
            if (v == NULL) {
                goto fail;
            }
            PyTuple_SET_ITEM(cookieobj, i, v);
        }
    }
    if (nxff == 0) {
        xffobj = Py_NewRef(Py_None);
    } else {
        xffobj = PyBytes_FromStringAndSize(NULL, xfflen);
        if (xffobj == NULL) {
            goto fail;
        }
        char *x = PyBytes_AS_STRING(xffobj);
        for (int i = 0; i < nxff; i++) {
            if (i) {
                memcpy(x, ", ", 2);
                x += 2;
            }
            memcpy(x, xffs[i].p, (size_t)xffs[i].n);
            x += xffs[i].n;
        }
    }
    PyObject *endobj = PyLong_FromSsize_t(end);
    PyObject *flagobj = PyLong_FromLong(flags);
    if (endobj == NULL || flagobj == NULL) {
        Py_XDECREF(endobj);
        Py_XDECREF(flagobj);
        goto fail;
    }
    PyObject *res = PyTuple_New(8);
    if (res == NULL) {
        Py_DECREF(endobj);
        Py_DECREF(flagobj);
        goto fail;
    }
    PyTuple_SET_ITEM(res, 0, endobj);
    PyTuple_SET_ITEM(res, 1, head);
    PyTuple_SET_ITEM(res, 2, Py_NewRef(METHOD_OBJS[m]));
    PyTuple_SET_ITEM(res, 3, path);
    PyTuple_SET_ITEM(res, 4, hostobj);
    PyTuple_SET_ITEM(res, 5, cookieobj);
    PyTuple_SET_ITEM(res, 6, xffobj);
    PyTuple_SET_ITEM(res, 7, flagobj);
    return res;
fail:
    Py_DECREF(head);
    Py_XDECREF(path);
    Py_XDECREF(hostobj);
    Py_XDECREF(cookieobj);
    Py_XDECREF(xffobj);
    return NULL;
}

static PyObject *scan_response(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "scan_response(buf, extra, head_request)");
        return NULL;
    }
    int head_request = PyObject_IsTrue(args[2]);
    if (head_request < 0) {
        return NULL;
    }
    const char *buf = PyBytes_AS_STRING(args[0]);
    Py_ssize_t len = PyBytes_GET_SIZE(args[0]);
    const char *e = buf + len;
    const char *hit = memmem(buf, (size_t)len, "\r\n\r\n", 4);
    if (hit == NULL) {
        return code(INCOMPLETE);
    }
    const char *last = hit;
    const char *body = hit + 4;
    /* status line: HTTP/1.x SP DDD SP reason CRLF */
    if (last - buf < 13 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
        buf[8] != ' ' || buf[12] != ' ') {
        return code(SLOW);
    }
    int http10 = buf[7] == '0';
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9') {
            return code(SLOW);
        }
        status = status * 10 + (buf[i] - '0');
    }
    if (status < 200) {
        return code(SLOW);
    }
    const char *p = buf + 13;
    while (p < last && VALUE[(unsigned char)*p]) {
        p++;
    }
    if (p[0] != '\r' || p[1] != '\n') {
        return code(SLOW);
    }
    p += 2;
    span drop[MAX_SPANS];
    int ndrop = 0, conn = -1;
    Py_ssize_t dropped = 0;
    long long clen = -1;
    while (p < last + 2) {
        const char *name, *value;
        Py_ssize_t nlen, vlen;
        const char *next = header_line(p, last, &name, &nlen, &value, &vlen);
        if (next == NULL) {
            return code(SLOW);
        }
        int drop_line = 0;
        if (IS("connection")) {
            if (conn >= 0) {
                return code(SLOW);
            }
            conn = conn_token(value, vlen);
            if (conn == 0) {
                return code(SLOW);
            }
            drop_line = 1;
        } else if (IS("keep-alive") || IS("proxy-authenticate") || IS("trailer")) {
            drop_line = 1;
        } else if (IS("upgrade") || IS("transfer-encoding") || IS("proxy-connection")) {
            return code(SLOW);
        } else if (IS("content-length")) {
            if (clen >= 0 || vlen == 0 || vlen > MAX_CL_DIGITS) {
                return code(SLOW);
            }
            clen = 0;
            for (Py_ssize_t i = 0; i < vlen; i++) {
                if (value[i] < '0' || value[i] > '9') {
                    return code(SLOW);
                }
                clen = clen * 10 + (value[i] - '0');
            }
        }
        if (drop_line) {
            if (ndrop == MAX_SPANS) {
                return code(SLOW);
            }
            drop[ndrop].p = p;
            drop[ndrop++].n = next - p;
            dropped += next - p;
        }
        p = next;
    }
    if (clen < 0 && status != 204 && status != 304) {
        return code(SLOW);
    }
    if (head_request || status == 204 || status == 304) {
        clen = 0;
    }
    Py_ssize_t avail = e - body;
    if (avail > clen) {
        return code(SLOW);
    }
    const char *extra = PyBytes_AS_STRING(args[1]);
    Py_ssize_t extralen = PyBytes_GET_SIZE(args[1]);
    Py_ssize_t size = (last + 2 - buf) - dropped + extralen + 2 + avail;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) {
        return NULL;
    }
    char *o = PyBytes_AS_STRING(out);
    const char *from = buf;
    for (int i = 0; i < ndrop; i++) {
        memcpy(o, from, (size_t)(drop[i].p - from));
        o += drop[i].p - from;
        from = drop[i].p + drop[i].n;
    }
    memcpy(o, from, (size_t)(last + 2 - from));
    o += last + 2 - from;
    memcpy(o, extra, (size_t)extralen);
    o += extralen;
    memcpy(o, "\r\n", 2);
    o += 2;
    memcpy(o, body, (size_t)avail);
    int keep = http10 ? conn == 2 : conn != 1;
    PyObject *st = PyLong_FromLong(status);
    PyObject *got = PyLong_FromSsize_t(avail);
    PyObject *left = PyLong_FromLongLong(clen - avail);
    PyObject *res = (st && got && left) ? PyTuple_New(5) : NULL;
    if (res == NULL) {
        Py_DECREF(out);
        Py_XDECREF(st);
        Py_XDECREF(got);
        Py_XDECREF(left);
        return NULL;
    }
    PyTuple_SET_ITEM(res, 0, out);
    PyTuple_SET_ITEM(res, 1, st);
    PyTuple_SET_ITEM(res, 2, got);
    PyTuple_SET_ITEM(res, 3, left);
    PyTuple_SET_ITEM(res, 4, PyBool_FromLong(keep));
    return res;
}

static PyObject *header_values(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "header_values(buf, start, end, lname)");
        return NULL;
    }
    const char *buf = PyBytes_AS_STRING(args[0]);
    Py_ssize_t len = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    if ((start == -1 || end == -1) && PyErr_Occurred()) {
        return NULL;
    }
    if (start < 0 || end > len || end - start < 4) {
        PyErr_SetString(PyExc_ValueError, "head outside buf");
        return NULL;
    }
    const char *lname = PyBytes_AS_STRING(args[3]);
    Py_ssize_t lnlen = PyBytes_GET_SIZE(args[3]);
    const char *last = buf + end - 4;
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    const char *eol = memmem(buf + start, (size_t)(end - start), "\r\n", 2);
    if (eol == NULL) {
        return out;
    }
    const char *p = eol + 2;
    while (p < last + 2) {
        const char *name, *value;
        Py_ssize_t nlen, vlen;
        const char *next = header_line(p, last, &name, &nlen, &value, &vlen);
        if (next == NULL) {
            break;
        }
        if (name_is(name, nlen, lname, lnlen)) {
            PyObject *v = PyBytes_FromStringAndSize(value, vlen);
            if (v == NULL || PyList_Append(out, v) < 0) {
                Py_XDECREF(v);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(v);
        }
        p = next;
    }
    return out;
}

static PyMethodDef wire_methods[] = {
    {"scan_request", (PyCFunction)(void (*)(void))scan_request, METH_FASTCALL,
     "Fast-path view of a request head (see wire/reference.py)."},
    {"scan_response", (PyCFunction)(void (*)(void))scan_response, METH_FASTCALL,
     "Fast-path relay of a response head (see wire/reference.py)."},
    {"header_values", (PyCFunction)(void (*)(void))header_values, METH_FASTCALL,
     "Values of one header in a head accepted by scan_request."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT, "_wire", "Native HTTP head fast path (tether gateway).", -1,
    wire_methods,
};

PyMODINIT_FUNC PyInit__wire(void) {
    init_tables();
    for (int i = 0; i < N_METHODS; i++) {
        METHOD_OBJS[i] = PyBytes_FromString(METHOD_NAMES[i]);
        if (METHOD_OBJS[i] == NULL) {
            return NULL;
        }
    }
    EMPTY_TUPLE = PyTuple_New(0);
    if (EMPTY_TUPLE == NULL) {
        return NULL;
    }
    return PyModule_Create(&wire_module);
}
