/*
 * Native head fast path for tether's gateway: exactly wire/reference.py (the unit tests hold
 * the two equal on random heads, and hold every head accepted here to llhttp's reading).
 *
 * scan_request(buf, start, peer, mode, limit)   (mode: 1 trusted peer | 2 https listener)
 *     -> (end, head, method, path, host, cookies, xff, flags, clen) | None
 * scan_response(buf, extra, head_request) -> (out, status, body, left, keep) | None
 * header_values(buf, start, end, lname) -> list[bytes]
 *
 * Only a strict, common subset of HTTP/1.1 is accepted; for anything else (including a head
 * not complete yet) the result is None and the caller hands the bytes to llhttp, which
 * answers errors and handles bodies and upgrades. Heads are parsed in one forward pass.
 * The native lane (lane.c) uses the same parsers without building tuples.
 */
#define _GNU_SOURCE
#include "wire.h"

#include <string.h>

#define MAX_CL_DIGITS 18
#define MAX_RESPONSE_HEAD 65536 /* reference.MAX_RESPONSE_HEAD */

static unsigned char TCHAR[256];
static unsigned char HOST[256]; /* reference._HOST: reg-name characters without the comma */
static unsigned char VALUE[256];
static unsigned char TARGET[256];

static const char *METHOD_NAMES[N_METHODS] = {"GET",    "HEAD",    "POST",  "PUT",
                                              "DELETE", "OPTIONS", "PATCH", "TRACE"};
static PyObject *METHOD_OBJS[N_METHODS];
static PyObject *EMPTY_TUPLE;

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
    const char *h = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+;=";
    for (; *h; h++) {
        HOST[(unsigned char)*h] = 1;
    }
}

/* A Host value in the fast path's subset: reg-name characters, then ":" and at most 5 digits. */
static int host_ok(const char *v, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n && HOST[(unsigned char)v[i]]) {
        i++;
    }
    if (i < n && v[i] == ':') {
        Py_ssize_t d = ++i;
        while (i < n && v[i] >= '0' && v[i] <= '9') {
            i++;
        }
        if (i - d > 5) {
            return 0;
        }
    }
    return i == n;
}

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
 * Parse one header line at p; nothing at or after `e` is read. On success sets name/nlen,
 * value/vlen (leading SP/HTAB removed) and returns the start of the next line; NULL for a
 * line outside the fast-path grammar or one not complete before `e`.
 */
static const char *header_line(const char *p, const char *e, const char **name,
                               Py_ssize_t *nlen, const char **value, Py_ssize_t *vlen) {
    const char *q = p;
    while (q < e && TCHAR[(unsigned char)*q]) {
        q++;
    }
    if (q == p || q >= e || *q != ':') {
        return NULL;
    }
    *name = p;
    *nlen = q - p;
    q++;
    while (q < e && (*q == ' ' || *q == '\t')) {
        q++;
    }
    const char *v = q;
    while (q < e && VALUE[(unsigned char)*q]) {
        q++;
    }
    if (e - q < 2 || q[0] != '\r' || q[1] != '\n') {
        return NULL;
    }
    *value = v;
    *vlen = q - v;
    return q + 2;
}

/* 1 if a blank line (the end of the head) starts at p, before e. */
static inline int blank_line(const char *p, const char *e) {
    return e - p >= 2 && p[0] == '\r' && p[1] == '\n';
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

/* The one Connection header of a head: 0 (decline) if repeated or not a single known token. */
static int connection_once(const char *value, Py_ssize_t vlen, int *conn) {
    if (*conn >= 0) {
        return 0;
    }
    *conn = conn_token(value, vlen);
    return *conn != 0;
}

/* The one Content-Length of a head: 0 (decline) if repeated, empty, too long or not digits. */
static int content_length_once(const char *value, Py_ssize_t vlen, long long *clen) {
    if (*clen >= 0 || vlen == 0 || vlen > MAX_CL_DIGITS) {
        return 0;
    }
    long long v = 0;
    for (Py_ssize_t i = 0; i < vlen; i++) {
        if (value[i] < '0' || value[i] > '9') {
            return 0;
        }
        v = v * 10 + (value[i] - '0');
    }
    *clen = v;
    return 1;
}

static int add_span(span *arr, int *n, const char *p, Py_ssize_t len) {
    if (*n == MAX_SPANS) {
        return 0;
    }
    arr[*n].p = p;
    arr[(*n)++].n = len;
    return 1;
}

/* Record the header line [p, next) as dropped from the forwarded head. */
static int drop_line_span(span *drop, int *ndrop, Py_ssize_t *dropped, const char *p,
                          const char *next) {
    if (!add_span(drop, ndrop, p, next - p)) {
        return 0;
    }
    *dropped += next - p;
    return 1;
}

int wire_parse_request(const char *buf, Py_ssize_t len, Py_ssize_t start, Py_ssize_t limit,
                       request_head *r) {
    if (start < 0 || start > len) {
        return 0;
    }
    const char *s = buf + start;
    /* the whole head must fit in [s, e): the buffer, and at most `limit` bytes */
    const char *e = (len - start > limit) ? s + (limit > 0 ? limit : 0) : buf + len;
    /* request line: METHOD SP /target SP HTTP/1.x CRLF */
    const char *p = s;
    while (p < e && *p >= 'A' && *p <= 'Z') {
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
    if (m < 0 || e - p < 2 || *p != ' ' || p[1] != '/') {
        return 0;
    }
    r->s = s;
    r->method = m;
    r->target = ++p;
    while (p < e && TARGET[(unsigned char)*p]) {
        p++;
    }
    r->tlen = p - r->target;
    if (e - p < 11 || memcmp(p, " HTTP/1.", 8) != 0 || (p[8] != '0' && p[8] != '1') ||
        p[9] != '\r' || p[10] != '\n') {
        return 0;
    }
    r->http10 = p[8] == '0';
    r->version_digit = p + 8;
    p += 11;
    r->ndrop = r->ncookie = r->nxff = 0;
    r->dropped = r->xfflen = 0;
    r->host = r->xfp = NULL;
    r->hostlen = r->xfplen = 0;
    int conn = -1;
    long long clen = -1;
    while (!blank_line(p, e)) {
        const char *name, *value;
        Py_ssize_t nlen, vlen;
        const char *next = header_line(p, e, &name, &nlen, &value, &vlen);
        if (next == NULL) {
            return 0;
        }
        int drop_line = 0;
        if (IS("host")) {
            if (r->host != NULL || !host_ok(value, vlen)) {
                return 0;
            }
            r->host = value;
            r->hostlen = vlen;
        } else if (IS("cookie")) {
            if (!add_span(r->cookies, &r->ncookie, value, vlen)) {
                return 0;
            }
        } else if (IS("x-forwarded-for")) {
            if (!add_span(r->xffs, &r->nxff, value, vlen)) {
                return 0;
            }
            r->xfflen += vlen + (r->nxff > 1 ? 2 : 0);
            drop_line = 1;
        } else if (IS("x-forwarded-proto")) {
            r->xfp = value;
            r->xfplen = vlen;
            drop_line = 1;
        } else if (IS("connection")) {
            if (!connection_once(value, vlen, &conn)) {
                return 0;
            }
            drop_line = 1;
        } else if (IS("content-length")) {
            if (!content_length_once(value, vlen, &clen)) {
                return 0;
            }
        } else if (IS("keep-alive") || IS("proxy-authorization") || IS("proxy-authenticate") ||
                   IS("te") || IS("trailer")) {
            drop_line = 1;
        } else if (IS("upgrade") || IS("transfer-encoding") || IS("proxy-connection")) {
            return 0;
        }
        if (drop_line && !drop_line_span(r->drop, &r->ndrop, &r->dropped, p, next)) {
            return 0;
        }
        p = next;
    }
    if (r->host == NULL) {
        return 0;
    }
    r->last = p - 2;
    r->end = (p + 2) - buf;
    r->keep = r->http10 ? conn == 2 : conn != 1;
    r->clen = clen < 0 ? 0 : clen;
    return 1;
}

/* Copy [from, stop) minus the dropped spans (in order, inside the range) to o. */
static char *copy_kept(char *o, const char *from, const char *stop, const span *drop, int n) {
    for (int i = 0; i < n; i++) {
        memcpy(o, from, (size_t)(drop[i].p - from));
        o += drop[i].p - from;
        from = drop[i].p + drop[i].n;
    }
    memcpy(o, from, (size_t)(stop - from));
    return o + (stop - from);
}

PyObject *wire_request_head(const request_head *r, const char *peer, Py_ssize_t peerlen,
                            int mode) {
    int own_proto = (mode & WIRE_TRUSTED) && r->xfp != NULL && r->xfplen > 0;
    const char *proto = own_proto ? r->xfp : (mode & WIRE_HTTPS) ? "https" : "http";
    Py_ssize_t protolen = own_proto ? r->xfplen : (mode & WIRE_HTTPS) ? 5 : 4;
    /* kept lines; then "x-forwarded-for: " [xff ", "] peer CRLF "x-forwarded-proto: " .. */
    Py_ssize_t size = (r->last + 2 - r->s) - r->dropped + 17 +
                      (r->nxff ? r->xfflen + 2 : 0) + peerlen + 21 + protolen + 4;
    PyObject *head = PyBytes_FromStringAndSize(NULL, size);
    if (head == NULL) {
        return NULL;
    }
    char *o = copy_kept(PyBytes_AS_STRING(head), r->s, r->last + 2, r->drop, r->ndrop);
    if (r->http10) { /* the request line is never dropped: patch the copied version digit */
        PyBytes_AS_STRING(head)[r->version_digit - r->s] = '1';
    }
    memcpy(o, "x-forwarded-for: ", 17);
    o += 17;
    for (int i = 0; i < r->nxff; i++) {
        memcpy(o, r->xffs[i].p, (size_t)r->xffs[i].n);
        o += r->xffs[i].n;
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
    return head;
}

PyObject *wire_request_cookies(const request_head *r) {
    if (r->ncookie == 0) {
        return Py_NewRef(EMPTY_TUPLE);
    }
    PyObject *t = PyTuple_New(r->ncookie);
    if (t == NULL) {
        return NULL;
    }
    for (int i = 0; i < r->ncookie; i++) {
        PyObject *v = PyBytes_FromStringAndSize(r->cookies[i].p, r->cookies[i].n);
        if (v == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

PyObject *wire_request_xff(const request_head *r) {
    if (r->nxff == 0) {
        Py_RETURN_NONE;
    }
    PyObject *x = PyBytes_FromStringAndSize(NULL, r->xfflen);
    if (x == NULL) {
        return NULL;
    }
    char *o = PyBytes_AS_STRING(x);
    for (int i = 0; i < r->nxff; i++) {
        if (i) {
            memcpy(o, ", ", 2);
            o += 2;
        }
        memcpy(o, r->xffs[i].p, (size_t)r->xffs[i].n);
        o += r->xffs[i].n;
    }
    return x;
}

PyObject *wire_request_method(const request_head *r) { return Py_NewRef(METHOD_OBJS[r->method]); }

int wire_parse_response(const char *buf, Py_ssize_t len, int head_request, response_head *r) {
    const char *e = buf + len;
    /* status line: HTTP/1.x SP DDD SP reason CRLF */
    if (len < 13 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
        buf[8] != ' ' || buf[12] != ' ') {
        return 0;
    }
    int http10 = buf[7] == '0';
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9') {
            return 0;
        }
        status = status * 10 + (buf[i] - '0');
    }
    if (status < 200) {
        return 0;
    }
    const char *p = buf + 13;
    while (p < e && VALUE[(unsigned char)*p]) {
        p++;
    }
    if (e - p < 2 || p[0] != '\r' || p[1] != '\n') {
        return 0;
    }
    p += 2;
    r->ndrop = 0;
    r->dropped = 0;
    int conn = -1;
    long long clen = -1;
    while (!blank_line(p, e)) {
        const char *name, *value;
        Py_ssize_t nlen, vlen;
        const char *next = header_line(p, e, &name, &nlen, &value, &vlen);
        if (next == NULL) {
            return 0;
        }
        int drop_line = 0;
        if (IS("connection")) {
            if (!connection_once(value, vlen, &conn)) {
                return 0;
            }
            drop_line = 1;
        } else if (IS("keep-alive") || IS("proxy-authenticate") || IS("trailer")) {
            drop_line = 1;
        } else if (IS("upgrade") || IS("transfer-encoding") || IS("proxy-connection")) {
            return 0;
        } else if (IS("content-length")) {
            if (!content_length_once(value, vlen, &clen)) {
                return 0;
            }
        }
        if (drop_line && !drop_line_span(r->drop, &r->ndrop, &r->dropped, p, next)) {
            return 0;
        }
        p = next;
    }
    r->last = p - 2;
    r->body = p + 2;
    if (r->body - buf > MAX_RESPONSE_HEAD) {
        return 0;
    }
    if (clen < 0 && status != 204 && status != 304) {
        return 0;
    }
    if (head_request || status == 204 || status == 304) {
        clen = 0;
    }
    r->avail = e - r->body;
    if (r->avail > clen) {
        return 0;
    }
    r->clen = clen;
    r->status = status;
    r->keep = http10 ? conn == 2 : conn != 1;
    return 1;
}

PyObject *wire_response_out(const char *buf, const response_head *r, const char *extra,
                            Py_ssize_t extralen) {
    Py_ssize_t size = (r->last + 2 - buf) - r->dropped + extralen + 2 + r->avail;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) {
        return NULL;
    }
    char *o = copy_kept(PyBytes_AS_STRING(out), buf, r->last + 2, r->drop, r->ndrop);
    memcpy(o, extra, (size_t)extralen);
    o += extralen;
    memcpy(o, "\r\n", 2);
    memcpy(o + 2, r->body, (size_t)r->avail);
    return out;
}

int wire_header_value(const char *buf, Py_ssize_t start, Py_ssize_t end, const char *lname,
                      Py_ssize_t lnlen, const char **value, Py_ssize_t *vlen) {
    const char *e = buf + end;
    const char *eol = memchr(buf + start, '\n', (size_t)(end - start)); /* request line */
    int found = 0;
    if (eol == NULL) {
        return 0;
    }
    const char *p = eol + 1;
    while (!blank_line(p, e)) {
        const char *name, *v;
        Py_ssize_t nlen, n;
        const char *next = header_line(p, e, &name, &nlen, &v, &n);
        if (next == NULL) {
            break;
        }
        if (name_is(name, nlen, lname, lnlen)) {
            if (found++) {
                return 2;
            }
            *value = v;
            *vlen = n;
        }
        p = next;
    }
    return found;
}

/* -- Python-facing functions ------------------------------------------------------------- */

/* A tuple of n new references, stolen; NULL (all released) if any is NULL or on no memory. */
static PyObject *tuple_of(PyObject **items, int n) {
    PyObject *res = PyTuple_New(n);
    for (int i = 0; i < n; i++) {
        if (items[i] == NULL || res == NULL) {
            for (int j = 0; j < n; j++) {
                Py_XDECREF(items[j]);
            }
            Py_XDECREF(res);
            return NULL;
        }
    }
    for (int i = 0; i < n; i++) {
        PyTuple_SET_ITEM(res, i, items[i]);
    }
    return res;
}

static PyObject *scan_request(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "scan_request(buf, start, peer, mode, limit)");
        return NULL;
    }
    /* one at a time: each conversion may run Python code, never with an exception set */
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[4]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    long mode = PyLong_AsLong(args[3]);
    if (mode == -1 && PyErr_Occurred()) {
        return NULL;
    }
    request_head r;
    if (!wire_parse_request(PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), start, limit,
                            &r)) {
        Py_RETURN_NONE;
    }
    PyObject *items[9] = {
        PyLong_FromSsize_t(r.end),
        wire_request_head(&r, PyBytes_AS_STRING(args[2]), PyBytes_GET_SIZE(args[2]), (int)mode),
        wire_request_method(&r),
        PyBytes_FromStringAndSize(r.target, r.tlen),
        PyBytes_FromStringAndSize(r.host, r.hostlen),
        wire_request_cookies(&r),
        wire_request_xff(&r),
        PyLong_FromLong((r.keep ? F_KEEP_ALIVE : 0) | (r.http10 ? F_HTTP10 : 0)),
        PyLong_FromLongLong(r.clen),
    };
    return tuple_of(items, 9);
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
    response_head r;
    if (!wire_parse_response(buf, PyBytes_GET_SIZE(args[0]), head_request, &r)) {
        Py_RETURN_NONE;
    }
    PyObject *items[5] = {
        wire_response_out(buf, &r, PyBytes_AS_STRING(args[1]), PyBytes_GET_SIZE(args[1])),
        PyLong_FromLong(r.status),
        PyLong_FromSsize_t(r.avail),
        PyLong_FromLongLong(r.clen - r.avail),
        PyBool_FromLong(r.keep),
    };
    return tuple_of(items, 5);
}

static PyObject *header_values(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "header_values(buf, start, end, lname)");
        return NULL;
    }
    const char *buf = PyBytes_AS_STRING(args[0]);
    Py_ssize_t len = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    if (end == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (start < 0 || end > len || end - start < 4) {
        PyErr_SetString(PyExc_ValueError, "head outside buf");
        return NULL;
    }
    const char *lname = PyBytes_AS_STRING(args[3]);
    Py_ssize_t lnlen = PyBytes_GET_SIZE(args[3]);
    const char *e = buf + end;
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    const char *eol = memchr(buf + start, '\n', (size_t)(end - start)); /* request line */
    if (eol == NULL) {
        return out;
    }
    const char *p = eol + 1;
    while (!blank_line(p, e)) {
        const char *name, *value;
        Py_ssize_t nlen, vlen;
        const char *next = header_line(p, e, &name, &nlen, &value, &vlen);
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
    PyObject *m = PyModule_Create(&wire_module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddFunctions(m, lane_methods) < 0 ||
        PyModule_AddFunctions(m, accesslog_methods) < 0 ||
        PyModule_AddFunctions(m, session_methods) < 0 || session_init(m) < 0 ||
        lane_init(m) < 0 || PyModule_AddFunctions(m, seen_methods) < 0 || seen_init(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
