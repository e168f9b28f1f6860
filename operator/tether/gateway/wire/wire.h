/*
 * Shared by _wire.c (head parsing, Python-facing scan functions) and lane.c (the native
 * request/response lane). Parsing never allocates; building the forwarded bytes does.
 */
#ifndef TETHER_WIRE_H
#define TETHER_WIRE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define F_KEEP_ALIVE 1
#define F_HTTP10 2
#define WIRE_TRUSTED 1 /* scan mode: the peer is a trusted proxy (its X-Forwarded-Proto is kept) */
#define WIRE_HTTPS 2   /* scan mode: the TLS listener (X-Forwarded-Proto: https) */
#define MAX_SPANS 64 /* dropped lines / cookie / xff values per head; more → not fast */
#define N_METHODS 8

typedef struct {
    const char *p;
    Py_ssize_t n;
} span;

typedef struct {
    Py_ssize_t end;       /* offset in buf just after the head */
    const char *s;        /* head start */
    const char *last;     /* the CRLF ending the last line before the blank line */
    int method;           /* index into the method table */
    const char *target;
    Py_ssize_t tlen;
    const char *version_digit;
    int http10;
    int keep;             /* llhttp's should_keep_alive() */
    long long clen;       /* Content-Length of the body after the head (0: none) */
    const char *host;
    Py_ssize_t hostlen;
    const char *xfp;      /* last X-Forwarded-Proto value, or NULL */
    Py_ssize_t xfplen;
    span drop[MAX_SPANS]; /* lines not forwarded */
    int ndrop;
    Py_ssize_t dropped;
    span cookies[MAX_SPANS];
    int ncookie;
    span xffs[MAX_SPANS];
    int nxff;
    Py_ssize_t xfflen;    /* length of the values joined with ", " */
} request_head;

typedef struct {
    const char *last; /* the CRLF ending the last line before the blank line */
    const char *body; /* first body byte */
    int status;
    int keep;
    long long clen;   /* body length (0 when the status or method says no body) */
    Py_ssize_t avail; /* body bytes present in the buffer (≤ clen) */
    span drop[MAX_SPANS];
    int ndrop;
    Py_ssize_t dropped;
} response_head;

/* 1 when buf[start:] holds a complete head in the fast-path subset (within `limit` bytes);
 * a body follows it only when r->clen > 0 (Content-Length; chunked is never accepted). */
int wire_parse_request(const char *buf, Py_ssize_t len, Py_ssize_t start, Py_ssize_t limit,
                       request_head *r);
/* 1 when buf holds a complete final response head framed by Content-Length (or no body). */
int wire_parse_response(const char *buf, Py_ssize_t len, int head_request, response_head *r);

PyObject *wire_request_head(const request_head *r, const char *peer, Py_ssize_t peerlen,
                            int mode);
PyObject *wire_request_cookies(const request_head *r);
PyObject *wire_request_xff(const request_head *r);
PyObject *wire_request_method(const request_head *r); /* new reference to a cached bytes */
/* Number of `lname` header lines (0, 1 or 2 meaning "more than one") in a head accepted by
 * wire_parse_request at buf[start:end]; value and vlen receive the first one. */
int wire_header_value(const char *buf, Py_ssize_t start, Py_ssize_t end, const char *lname,
                      Py_ssize_t lnlen, const char **value, Py_ssize_t *vlen);
PyObject *wire_response_out(const char *buf, const response_head *r, const char *extra,
                            Py_ssize_t extralen);

/* accesslog.c */
extern PyMethodDef accesslog_methods[];
Py_ssize_t wire_access_line(char *out, Py_ssize_t cap, PyObject *stamp, PyObject *method,
                            PyObject *path, PyObject *status, PyObject *where, PyObject *h,
                            int generated, double duration, PyObject *nbytes, PyObject *client,
                            PyObject *attempts, PyObject *error);
PyObject *wire_access_stamp(void);

/* session.c */
extern PyMethodDef session_methods[];
extern PyTypeObject SessionCheckType;
int session_init(PyObject *module);
/* 1 and the address when the signed session cookie `value` is honoured as is at `now`
 * (scratch: 256 bytes); 0 when the Python path must judge it. */
int session_verify(PyObject *check, const char *value, Py_ssize_t vlen, long long now,
                   const char **addr, Py_ssize_t *alen, unsigned char *scratch);
/* seen.c: recent sessions (gateway/sessions_seen.py) */
extern PyMethodDef seen_methods[];
extern PyTypeObject SessionTableType;
int seen_init(PyObject *module);
int seen_check(PyObject *obj); /* obj is a SessionTable */
void seen_store(PyObject *table, uint32_t route, uint64_t h, uint32_t pod, double clock);

/* lane.c */
extern PyMethodDef lane_methods[];
int lane_init(PyObject *module);

#endif
