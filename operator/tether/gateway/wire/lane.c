/*
 * The native lane: the common exchange end to end without running Python bytecode.
 *
 * client_data_received / upstream_data_received replace the Python data_received methods of
 * ClientProtocol and UpstreamConnection (proxy.py, upstream.py), which stay the reference.
 * Each step here is a transcription of one Python method for the common case only:
 *
 *   lane_dispatch  ClientProtocol._dispatch + Route.pick_first (cookie key, Maglev table)
 *   lane_send      ClientProtocol._send_to (a pooled connection)
 *   lane_attach    UpstreamConnection.attach
 *   upstream_data_received / relay_body   UpstreamConnection.data_received / _relay_body
 *   lane_finish    UpstreamConnection._finish
 *   lane_end       ClientProtocol._end + Gateway.record (an upstream-answered exchange)
 *
 * Every step first checks that its case is the common one and otherwise calls the Python
 * method for the whole step, before any side effect: the two paths never split one step.
 * Objects are the Python ones; their __slots__ are read and written at offsets resolved once
 * by lane_bind() (which also checks every name is a plain object slot).
 */
#include "wire.h"

#include <string.h>
#include <structmember.h>
#include <time.h>

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))
#define MAX_EX_SLOTS 64
#define MAX_BUCKETS 32

static struct lane {
    int bound;
    PyTypeObject *client_t, *up_t, *ex_t, *route_t, *target_t, *hist_t, *router_t, *gw_t, *cfg_t,
        *pools_t, *log_t, *session_t;
    /* Gateway, GatewayConfig, Pools, AccessLog */
    Py_ssize_t g_accesslog, g_clock, g_config, g_draining, g_ejected, g_pools, g_router, g_seen;
    Py_ssize_t f_idle_timeout, f_max_body_bytes, f_upstream_idle_timeout, f_upstream_timeout;
    Py_ssize_t p_idle, a_buf, a_enabled, a_size;
    /* ClientProtocol */
    Py_ssize_t c_active, c_body_ex, c_body_left, c_boundary, c_closed, c_cur, c_deadline, c_gw,
        c_ignore, c_max_head, c_peer_ip, c_peer_ip_b, c_peer_trusted, c_queue, c_read_paused, c_scan_mode,
        c_stalled, c_stash, c_transport, c_wpaused;
    /* Exchange: every slot (template copy), then the ones set here */
    Py_ssize_t x_all[MAX_EX_SLOTS];
    int x_n;
    Py_ssize_t x_attempts, x_body_done, x_body_size, x_client, x_cookies, x_error, x_finished, x_generated,
        x_hash, x_head,
        x_head_done, x_host, x_http10, x_index, x_is_head, x_keep_alive, x_local, x_method,
        x_path, x_pending, x_pending_size, x_raw, x_raw_end, x_raw_start, x_remote_ip,
        x_resp_bytes, x_resp_started, x_route, x_set_cookie, x_status, x_t0, x_t_up, x_target,
        x_upstream, x_xff, x_extra_lines, x_where;
    PyObject *template;
    /* UpstreamConnection */
    Py_ssize_t u_deadline, u_done, u_ex, u_gw, u_hbuf, u_head_wait, u_hpos, u_keep, u_left,
        u_mode, u_reset_parser, u_reused, u_rpaused, u_target, u_transport;
    /* Route, Target, Histogram, Router */
    Py_ssize_t r_active, r_hist, r_lane, r_lane_choose, r_lane_key, r_needle, r_rr, r_schedule,
        r_sid, r_size, r_table, r_targets, r_total_active, r_session;
    Py_ssize_t t_authority, t_codes, t_log_fragment, t_log_honour, t_sid;
    Py_ssize_t s_check, s_counts, s_index_b, s_needle; /* SessionRoute */
    Py_ssize_t h_counts, h_sum;
    Py_ssize_t ro_cache;
    double buckets[MAX_BUCKETS];
    int nbuckets;
    long raw_close;
    PyObject *scan_cookie, *xxh64;
} L;

/* interned names for generic attribute access and method calls */
static PyObject *S_more_body, *S_stash_rest, *S_flush, *S_log_exchange, *S_connect, *S_write, *S_close, *S_is_closing,
    *S_dispatch, *S_enqueue, *S_slow_data, *S_end, *S_finish, *S_attach,
    *S_py_data_received;
static PyObject *EMPTY_BYTES, *ZERO, *S_honour_valid;

/* -- small helpers ----------------------------------------------------------------------- */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* time.perf_counter() on Linux */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Store v (borrowed) into a slot. */
static inline void set(PyObject *obj, Py_ssize_t off, PyObject *v) {
    PyObject *old = SLOT(obj, off);
    Py_INCREF(v);
    SLOT(obj, off) = v;
    Py_XDECREF(old);
}

/* Store v (new reference, may be NULL on error) into a slot; -1 on NULL. */
static inline int set_new(PyObject *obj, Py_ssize_t off, PyObject *v) {
    if (v == NULL) {
        return -1;
    }
    PyObject *old = SLOT(obj, off);
    SLOT(obj, off) = v;
    Py_XDECREF(old);
    return 0;
}

/* Truth of a slot value: 1, 0, or -1 with an exception (unset slot or __bool__ error). */
static inline int truth(PyObject *v) {
    if (v == Py_True) {
        return 1;
    }
    if (v == Py_False || v == Py_None) {
        return 0;
    }
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "gateway lane: slot not set");
        return -1;
    }
    return PyObject_IsTrue(v);
}

static inline Py_ssize_t as_ssize(PyObject *v) {
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "gateway lane: slot not set");
        return -1;
    }
    return PyLong_AsSsize_t(v);
}

/* The gateway and the objects the lane reads through it have the bound classes (so their
 * slots are at the resolved offsets); otherwise the whole event goes to Python. */
static int gw_ok(PyObject *gw) {
    return gw != NULL && Py_TYPE(gw) == L.gw_t && Py_TYPE(SLOT(gw, L.g_config)) == L.cfg_t &&
           Py_TYPE(SLOT(gw, L.g_pools)) == L.pools_t &&
           Py_TYPE(SLOT(gw, L.g_accesslog)) == L.log_t;
}

/* gw.clock + gw.config.<timeout> as a new float, or NULL. */
static PyObject *deadline(PyObject *gw, Py_ssize_t timeout_off) {
    double clock = PyFloat_AsDouble(SLOT(gw, L.g_clock));
    double t = PyFloat_AsDouble(SLOT(SLOT(gw, L.g_config), timeout_off));
    if (PyErr_Occurred()) {
        return NULL;
    }
    return PyFloat_FromDouble(clock + t);
}

/* gw.pools.idle (borrowed). */
static inline PyObject *gw_idle(PyObject *gw) { return SLOT(SLOT(gw, L.g_pools), L.p_idle); }

static PyObject *call0(PyObject *obj, PyObject *name) {
    return PyObject_VectorcallMethod(name, &obj, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *call1(PyObject *obj, PyObject *name, PyObject *a) {
    PyObject *args[2] = {obj, a};
    return PyObject_VectorcallMethod(name, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *call2(PyObject *obj, PyObject *name, PyObject *a, PyObject *b) {
    PyObject *args[3] = {obj, a, b};
    return PyObject_VectorcallMethod(name, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* Call and discard the result: 0, or -1 with an exception. */
static int done(PyObject *result) {
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* list[i] += delta for a list of ints. */
static int list_add(PyObject *list, Py_ssize_t i, long delta) {
    if (!PyList_Check(list) || i < 0 || i >= PyList_GET_SIZE(list)) {
        PyErr_SetString(PyExc_IndexError, "gateway lane: counter index");
        return -1;
    }
    long v = PyLong_AsLong(PyList_GET_ITEM(list, i));
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    PyObject *n = PyLong_FromLong(v + delta);
    if (n == NULL) {
        return -1;
    }
    return PyList_SetItem(list, i, n); /* steals n */
}

/* obj.<slot> += delta for an int slot. */
static int slot_add(PyObject *obj, Py_ssize_t off, Py_ssize_t delta) {
    Py_ssize_t v = as_ssize(SLOT(obj, off));
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    return set_new(obj, off, PyLong_FromSsize_t(v + delta));
}

/* -- request side ------------------------------------------------------------------------ */

/* A new Exchange for a head accepted by wire_parse_request (Exchange.__init__ + the fast
 * path's assignments in ClientProtocol.data_received); `got` bytes of its Content-Length
 * body follow the head in data. */
static PyObject *new_exchange(PyObject *client, PyObject *data, Py_ssize_t start,
                              const request_head *r, Py_ssize_t got) {
    PyObject *ex = L.ex_t->tp_alloc(L.ex_t, 0);
    if (ex == NULL) {
        return NULL;
    }
    for (int i = 0; i < L.x_n; i++) {
        PyObject *v = SLOT(L.template, L.x_all[i]);
        Py_XINCREF(v);
        SLOT(ex, L.x_all[i]) = v;
    }
    PyObject *peer_b = SLOT(client, L.c_peer_ip_b);
    long mode = PyLong_AsLong(SLOT(client, L.c_scan_mode)); /* ClientProtocol.scan_mode */
    if ((mode == -1 && PyErr_Occurred()) || peer_b == NULL || !PyBytes_Check(peer_b)) {
        goto fail;
    }
    set(ex, L.x_client, client);
    set(ex, L.x_remote_ip, SLOT(client, L.c_peer_ip));
    PyObject *head = wire_request_head(r, PyBytes_AS_STRING(peer_b), PyBytes_GET_SIZE(peer_b),
                                       (int)mode);
    if (set_new(ex, L.x_head, head) < 0) {
        goto fail;
    }
    PyObject *pending = PyList_New(got ? 2 : 1);
    if (pending == NULL) {
        goto fail;
    }
    Py_INCREF(head);
    PyList_SET_ITEM(pending, 0, head);
    if (got) {
        PyObject *body = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + r->end, got);
        if (body == NULL) {
            Py_DECREF(pending);
            goto fail;
        }
        PyList_SET_ITEM(pending, 1, body);
        if (set_new(ex, L.x_pending_size, PyLong_FromSsize_t(got)) < 0 ||
            set_new(ex, L.x_body_size, PyLong_FromSsize_t(got)) < 0) {
            Py_DECREF(pending);
            goto fail;
        }
    }
    if (set_new(ex, L.x_pending, pending) < 0 ||
        set_new(ex, L.x_path, PyBytes_FromStringAndSize(r->target, r->tlen)) < 0 ||
        set_new(ex, L.x_method, wire_request_method(r)) < 0 ||
        set_new(ex, L.x_host, PyBytes_FromStringAndSize(r->host, r->hostlen)) < 0 ||
        set_new(ex, L.x_cookies, wire_request_cookies(r)) < 0 ||
        set_new(ex, L.x_xff, wire_request_xff(r)) < 0 ||
        set_new(ex, L.x_raw_start, PyLong_FromSsize_t(start)) < 0 ||
        set_new(ex, L.x_raw_end, PyLong_FromSsize_t(r->end)) < 0 ||
        set_new(ex, L.x_t0, PyFloat_FromDouble(now())) < 0) {
        goto fail;
    }
    set(ex, L.x_raw, data);
    set(ex, L.x_head_done, Py_True);
    set(ex, L.x_body_done, got == r->clen ? Py_True : Py_False);
    if (!r->keep) {
        set(ex, L.x_keep_alive, Py_False);
    }
    if (r->http10) {
        set(ex, L.x_http10, Py_True);
    }
    if (r->method == 1) { /* HEAD */
        set(ex, L.x_is_head, Py_True);
    }
    return ex;
fail:
    Py_DECREF(ex);
    return NULL;
}

static int lane_attach(PyObject *conn, PyObject *ex, PyObject *gw);

/* The hook of sessions_seen in ClientProtocol._send_to: a request with an affinity hash notes
 * its session (route id, hash) as served by the target's pod now. */
static int lane_seen(PyObject *gw, PyObject *ex, PyObject *route, PyObject *target) {
    PyObject *h = SLOT(ex, L.x_hash), *table = SLOT(gw, L.g_seen);
    if (h == Py_None || table == NULL || Py_TYPE(table) != &SessionTableType) {
        return 0; /* no affinity hash: not a session (or the table is off) */
    }
    /* ids below 2^32 and the hash below 2^64 (Python sets them): masks convert them without
     * the range checks of PyLong_AsUnsignedLongLong (a byte loop in 3.11) */
    unsigned long rid = PyLong_AsUnsignedLongMask(SLOT(route, L.r_sid));
    unsigned long pod = PyLong_AsUnsignedLongMask(SLOT(target, L.t_sid));
    unsigned long long hv = PyLong_AsUnsignedLongLongMask(h);
    PyObject *c = SLOT(gw, L.g_clock);
    double clock = c != NULL && PyFloat_CheckExact(c) ? PyFloat_AS_DOUBLE(c) : PyFloat_AsDouble(c);
    if ((rid == (unsigned long)-1 || pod == (unsigned long)-1 ||
         hv == (unsigned long long)-1 || clock == -1.0) && PyErr_Occurred()) {
        return -1;
    }
    seen_store(table, (uint32_t)rid, hv, (uint32_t)pod, clock);
    return 0;
}

/* ClientProtocol._send_to for a request whose head is built, onto a pooled connection. */
static int lane_send(PyObject *client, PyObject *ex, PyObject *route, Py_ssize_t i,
                     PyObject *gw) {
    PyObject *targets = SLOT(route, L.r_targets);
    if (targets == NULL || !PyList_Check(targets) || i < 0 || i >= PyList_GET_SIZE(targets)) {
        PyErr_SetString(PyExc_IndexError, "gateway lane: target index");
        return -1;
    }
    PyObject *target = PyList_GET_ITEM(targets, i);
    Py_INCREF(target);
    int rc = -1;
    if (set_new(ex, L.x_index, PyLong_FromSsize_t(i)) < 0) {
        goto out;
    }
    set(ex, L.x_target, target);
    if (slot_add(ex, L.x_attempts, 1) < 0 || list_add(SLOT(route, L.r_active), i, 1) < 0 ||
        slot_add(route, L.r_total_active, 1) < 0 || lane_seen(gw, ex, route, target) < 0) {
        goto out;
    }
    PyObject *idle = gw_idle(gw);
    PyObject *authority = SLOT(target, L.t_authority);
    PyObject *stack = authority && PyDict_Check(idle) ? PyDict_GetItemWithError(idle, authority)
                                                      : NULL;
    if (stack == NULL && PyErr_Occurred()) {
        goto out;
    }
    Py_XINCREF(stack);
    while (stack != NULL && PyList_Check(stack) && PyList_GET_SIZE(stack) > 0) {
        Py_ssize_t n = PyList_GET_SIZE(stack); /* the warmest idle connection (LIFO) */
        PyObject *conn = PyList_GET_ITEM(stack, n - 1);
        Py_INCREF(conn);
        if (PyList_SetSlice(stack, n - 1, n, NULL) < 0) {
            Py_DECREF(conn);
            Py_DECREF(stack);
            goto out;
        }
        if (Py_TYPE(conn) != L.up_t) { /* not expected: let Python judge it */
            rc = done(call1(conn, S_attach, ex));
            Py_DECREF(conn);
            Py_DECREF(stack);
            goto out;
        }
        PyObject *tr = SLOT(conn, L.u_transport);
        int usable = 0;
        if (tr != NULL && tr != Py_None) {
            PyObject *closing = call0(tr, S_is_closing);
            if (closing == NULL) {
                Py_DECREF(conn);
                Py_DECREF(stack);
                goto out;
            }
            usable = closing == Py_False;
            Py_DECREF(closing);
        }
        if (usable) {
            set(conn, L.u_reused, Py_True);
            rc = lane_attach(conn, ex, gw);
            Py_DECREF(conn);
            Py_DECREF(stack);
            goto out;
        }
        Py_DECREF(conn);
    }
    Py_XDECREF(stack);
    rc = done(call2(gw, S_connect, target, ex));
out:
    Py_DECREF(target);
    return rc;
}

#define LANE_ROUND_ROBIN 1 /* routes.py LANE_* and KEY_* */
#define LANE_HASH 2
#define LANE_SESSION 3
#define KEY_COOKIE 1
#define KEY_HEADER 2
#define KEY_SOURCE_IP 3

/* Route.pick for the first attempt of a route in round-robin mode (nothing ejected): the next
 * entry of the smooth weighted schedule. -1 with an exception on error. */
static Py_ssize_t pick_round_robin(PyObject *route) {
    PyObject *sched = SLOT(route, L.r_schedule);
    Py_ssize_t rr = as_ssize(SLOT(route, L.r_rr));
    if (rr == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (!PyList_Check(sched) || PyList_GET_SIZE(sched) == 0 || rr < 0) {
        PyErr_SetString(PyExc_ValueError, "gateway lane: round-robin schedule");
        return -1;
    }
    Py_ssize_t i = PyLong_AsSsize_t(PyList_GET_ITEM(sched, rr % PyList_GET_SIZE(sched)));
    if ((i == -1 && PyErr_Occurred()) || set_new(route, L.r_rr, PyLong_FromSsize_t(rr + 1)) < 0) {
        return -1;
    }
    if (i < 0) { /* not a target index (-2 would read as "Python picks") */
        PyErr_SetString(PyExc_IndexError, "gateway lane: round-robin schedule");
        return -1;
    }
    return i;
}

/* The request's affinity value for the route's key (new reference), None when Python must
 * decide (no value: Envoy then generates a cookie or picks at random), NULL on error.
 * Each is exactly the hashing layer's key: CookieKey (a non-empty cookie), HeaderKey (the
 * single value of a forwarded header), SourceIpKey (the peer address, not behind a proxy). */
static PyObject *affinity_value(PyObject *client, PyObject *ex, PyObject *route, long key) {
    if (key == KEY_COOKIE) {
        PyObject *cookies = SLOT(ex, L.x_cookies);
        if (cookies == NULL || !PyTuple_Check(cookies) || PyTuple_GET_SIZE(cookies) == 0) {
            Py_RETURN_NONE;
        }
        PyObject *args[2] = {cookies, SLOT(route, L.r_needle)};
        PyObject *value = PyObject_Vectorcall(L.scan_cookie, args, 2, NULL);
        if (value != NULL && (!PyBytes_Check(value) || PyBytes_GET_SIZE(value) == 0)) {
            Py_SETREF(value, Py_NewRef(Py_None));
        }
        return value;
    }
    if (key == KEY_HEADER) {
        PyObject *raw = SLOT(ex, L.x_raw), *lname = SLOT(route, L.r_needle);
        Py_ssize_t start = as_ssize(SLOT(ex, L.x_raw_start));
        Py_ssize_t end = as_ssize(SLOT(ex, L.x_raw_end));
        if (PyErr_Occurred()) {
            return NULL;
        }
        const char *v;
        Py_ssize_t n;
        if (!PyBytes_Check(raw) || !PyBytes_Check(lname) || start < 0 || start > end ||
            end > PyBytes_GET_SIZE(raw) ||
            wire_header_value(PyBytes_AS_STRING(raw), start, end, PyBytes_AS_STRING(lname),
                              PyBytes_GET_SIZE(lname), &v, &n) != 1) {
            Py_RETURN_NONE; /* absent, or several values (hashed sorted and chained) */
        }
        return PyBytes_FromStringAndSize(v, n);
    }
    if (key == KEY_SOURCE_IP) {
        PyObject *ip = SLOT(client, L.c_peer_ip_b);
        if (ip == NULL || !PyBytes_Check(ip) || PyBytes_GET_SIZE(ip) == 0) {
            Py_RETURN_NONE;
        }
        return Py_NewRef(ip);
    }
    Py_RETURN_NONE;
}

/* The host for hash h: the Maglev table slot, or the route's chooser (ring hash); -2 when
 * Python must decide, -1 with an exception on error. */
static Py_ssize_t choose(PyObject *route, PyObject *h) {
    PyObject *table = SLOT(route, L.r_table);
    if (table == Py_None) {
        PyObject *args[2] = {h, ZERO};
        PyObject *r = PyObject_Vectorcall(SLOT(route, L.r_lane_choose), args, 2, NULL);
        if (r == NULL) {
            return -1;
        }
        Py_ssize_t i = r == Py_None ? -2 : PyLong_AsSsize_t(r);
        Py_DECREF(r);
        if (i < 0 && i != -2 && !PyErr_Occurred()) { /* -1 would be an error without one */
            PyErr_SetString(PyExc_IndexError, "gateway lane: target index");
            return -1;
        }
        return i;
    }
    unsigned long long hv = PyLong_AsUnsignedLongLong(h);
    Py_ssize_t size = PyErr_Occurred() ? -1 : as_ssize(SLOT(route, L.r_size));
    if (PyErr_Occurred()) {
        return -1;
    }
    if (size <= 0) {
        return -2;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(table, &view, PyBUF_FORMAT) < 0) {
        return -1;
    }
    Py_ssize_t slot = (Py_ssize_t)(hv % (unsigned long long)size), i = -2;
    if (view.len == size * view.itemsize && view.format != NULL && view.format[0] != '\0' &&
        view.format[1] == '\0') {
        if (view.itemsize == 2 && view.format[0] == 'H') {
            i = ((unsigned short *)view.buf)[slot];
        } else if (view.itemsize == 4 && view.format[0] == 'I') {
            i = ((unsigned int *)view.buf)[slot];
        }
    }
    PyBuffer_Release(&view);
    return i;
}

/* counts[key] += 1 for a dict of ints. */
static int count_in(PyObject *counts, PyObject *key) {
    if (counts == NULL || !PyDict_Check(counts)) {
        return 0; /* not bound to the metrics yet */
    }
    PyObject *cur = PyDict_GetItemWithError(counts, key);
    long n = cur ? PyLong_AsLong(cur) : 0;
    if ((cur == NULL || n == -1) && PyErr_Occurred()) {
        return -1;
    }
    PyObject *nv = PyLong_FromLong(n + 1);
    int rc = nv ? PyDict_SetItem(counts, key, nv) : -1;
    Py_XDECREF(nv);
    return rc;
}

/* sessions.decide_request for the one case the lane settles: a signed session cookie that
 * names a ready or draining endpoint and needs no re-issue (wire/session.c). The target
 * index; -2 when Python must judge the request; -1 with an exception on error. */
static Py_ssize_t pick_session(PyObject *ex, PyObject *route) {
    PyObject *sr = SLOT(route, L.r_session);
    if (sr == NULL || Py_TYPE(sr) != L.session_t) {
        return -2;
    }
    PyObject *check = SLOT(sr, L.s_check), *cookies = SLOT(ex, L.x_cookies);
    if (check == NULL || Py_TYPE(check) != &SessionCheckType || cookies == NULL ||
        !PyTuple_Check(cookies) || PyTuple_GET_SIZE(cookies) == 0) {
        return -2;
    }
    PyObject *args[2] = {cookies, SLOT(sr, L.s_needle)};
    PyObject *value = PyObject_Vectorcall(L.scan_cookie, args, 2, NULL);
    if (value == NULL) {
        return -1;
    }
    Py_ssize_t i = -2;
    unsigned char scratch[256];
    const char *addr;
    Py_ssize_t alen;
    if (PyBytes_Check(value) &&
        session_verify(check, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value),
                       (long long)time(NULL), &addr, &alen, scratch)) {
        PyObject *key = PyBytes_FromStringAndSize(addr, alen), *index = SLOT(sr, L.s_index_b);
        PyObject *found = key && PyDict_Check(index) ? PyDict_GetItemWithError(index, key) : NULL;
        Py_XDECREF(key);
        if (found != NULL) {
            i = PyLong_AsSsize_t(found);
            if (i < 0 || count_in(SLOT(sr, L.s_counts), S_honour_valid) < 0) {
                i = PyErr_Occurred() ? -1 : -2;
            }
        } else if (key == NULL || PyErr_Occurred()) {
            i = -1;
        }
    }
    Py_DECREF(value);
    return i;
}

/* ClientProtocol._dispatch + Route.pick_first, for the routes Route._lane_hints marks. */
static int lane_dispatch(PyObject *client, PyObject *ex) {
    PyObject *gw = SLOT(client, L.c_gw);
    int trusted = truth(SLOT(client, L.c_peer_trusted));
    if (trusted != 0) { /* the client address comes from X-Forwarded-For: Python's job */
        return trusted < 0 ? -1 : done(call1(client, S_dispatch, ex));
    }
    PyObject *router = SLOT(gw, L.g_router);
    PyObject *cache = Py_TYPE(router) == L.router_t ? SLOT(router, L.ro_cache) : NULL;
    PyObject *route = cache && PyDict_Check(cache)
                          ? PyDict_GetItemWithError(cache, SLOT(ex, L.x_host)) : NULL;
    if (route == NULL && PyErr_Occurred()) {
        return -1;
    }
    /* no cached route for this Host yet, or one the lane does not pick for */
    int ejected = route ? truth(SLOT(gw, L.g_ejected)) : 0;
    long lane = route && Py_TYPE(route) == L.route_t ? PyLong_AsLong(SLOT(route, L.r_lane)) : 0;
    if (ejected < 0 || (lane == -1 && PyErr_Occurred())) {
        return -1;
    }
    if (ejected || (lane != LANE_ROUND_ROBIN && lane != LANE_HASH && lane != LANE_SESSION)) {
        return done(call1(client, S_dispatch, ex));
    }
    Py_INCREF(route);
    Py_INCREF(gw);
    int rc = -1;
    Py_ssize_t i;
    PyObject *value = NULL, *h = NULL;
    if (lane == LANE_ROUND_ROBIN) {
        i = pick_round_robin(route);
    } else if (lane == LANE_SESSION) {
        i = pick_session(ex, route);
        if (i >= 0) {
            PyObject *targets = SLOT(route, L.r_targets);
            if (!PyList_Check(targets) || i >= PyList_GET_SIZE(targets)) {
                i = -2;
            } else {
                set(ex, L.x_where, SLOT(PyList_GET_ITEM(targets, i), L.t_log_honour));
            }
        }
    } else {
        long key = PyLong_AsLong(SLOT(route, L.r_lane_key));
        value = (key == -1 && PyErr_Occurred()) ? NULL : affinity_value(client, ex, route, key);
        if (value == NULL) {
            goto out;
        }
        if (value == Py_None) {
            i = -2;
        } else {
            h = PyObject_Vectorcall(L.xxh64, &value, 1, NULL);
            i = h ? choose(route, h) : -1;
        }
    }
    if (i == -1) {
        goto out;
    }
    if (i == -2) { /* Python picks: the request has no affinity value */
        rc = done(call1(client, S_dispatch, ex));
        goto out;
    }
    set(ex, L.x_route, route);
    if (h != NULL) {
        set(ex, L.x_hash, h);
    }
    rc = lane_send(client, ex, route, i, gw);
out:
    Py_XDECREF(value);
    Py_XDECREF(h);
    Py_DECREF(gw);
    Py_DECREF(route);
    return rc;
}

/* ClientProtocol.data_received with the native lane. */
static PyObject *client_data_received(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "data_received(self, data)");
        return NULL;
    }
    PyObject *self = args[0], *data = args[1];
    if (Py_TYPE(self) != L.client_t || !PyBytes_CheckExact(data) || !gw_ok(SLOT(self, L.c_gw))) {
        return call1(self, S_py_data_received, data);
    }
    int t = truth(SLOT(self, L.c_ignore));
    if (t != 0) { /* discarded; Python notes a lingering close's progress */
        return t < 0 ? NULL : call1(self, S_py_data_received, data);
    }
    if (SLOT(self, L.c_stash) != Py_None) { /* stalled: Python keeps the order */
        return call1(self, S_py_data_received, data);
    }
    Py_ssize_t body_left = as_ssize(SLOT(self, L.c_body_left));
    if (body_left != 0) { /* a Content-Length body is still arriving: Python streams it */
        return body_left < 0 && PyErr_Occurred() ? NULL : call1(self, S_more_body, data);
    }
    t = truth(SLOT(self, L.c_boundary));
    if (t < 0) {
        return NULL;
    }
    const char *buf = PyBytes_AS_STRING(data);
    Py_ssize_t len = PyBytes_GET_SIZE(data), start = 0;
    if (t) {
        Py_ssize_t limit = as_ssize(SLOT(self, L.c_max_head));
        if (limit == -1 && PyErr_Occurred()) {
            return NULL;
        }
        long long max_body = -1;
        request_head r;
        while (wire_parse_request(buf, len, start, limit, &r)) {
            if (r.clen > 0) {
                if (max_body < 0) {
                    max_body = PyLong_AsLongLong(SLOT(SLOT(SLOT(self, L.c_gw), L.g_config),
                                                      L.f_max_body_bytes));
                    if (max_body == -1 && PyErr_Occurred()) {
                        return NULL;
                    }
                }
                if (max_body > 0 && r.clen > max_body) {
                    break; /* llhttp's path answers 413 */
                }
            }
            Py_ssize_t got = len - r.end < r.clen ? len - r.end : (Py_ssize_t)r.clen;
            PyObject *ex = new_exchange(self, data, start, &r, got);
            if (ex == NULL) {
                return NULL;
            }
            if (got < r.clen) { /* the rest of the body comes in later reads */
                PyObject *gw = SLOT(self, L.c_gw);
                if (set_new(self, L.c_body_left, PyLong_FromLongLong(r.clen - got)) < 0 ||
                    set_new(self, L.c_deadline, deadline(gw, L.f_idle_timeout)) < 0) {
                    Py_DECREF(ex);
                    return NULL;
                }
                set(self, L.c_body_ex, ex);
            }
            int rc, queued = SLOT(self, L.c_active) != Py_None; /* or held: in order */
            if (!queued) {
                queued = truth(SLOT(self, L.c_queue));
                if (queued < 0) {
                    Py_DECREF(ex);
                    return NULL;
                }
            }
            if (!queued) {
                set(self, L.c_active, ex);
                rc = lane_dispatch(self, ex);
            } else {
                rc = done(call1(self, S_enqueue, ex));
            }
            int keep = rc < 0 ? -1 : truth(SLOT(ex, L.x_keep_alive));
            int body_done = keep < 0 ? -1 : truth(SLOT(ex, L.x_body_done));
            Py_DECREF(ex);
            if (body_done < 0) {
                return NULL;
            }
            if (!keep && body_done) {
                set(self, L.c_ignore, Py_True); /* nothing may follow a request that closes */
            }
            t = truth(SLOT(self, L.c_ignore));
            if (t < 0) {
                return NULL;
            }
            start = r.end + got;
            if (t || start == len) {
                Py_RETURN_NONE;
            }
            t = truth(SLOT(self, L.c_stalled));
            if (t) { /* max_pipelined queued: the rest waits, reading is paused */
                if (t < 0) {
                    return NULL;
                }
                PyObject *rest = PyBytes_FromStringAndSize(buf + start, len - start);
                PyObject *res = rest ? call1(self, S_stash_rest, rest) : NULL;
                Py_XDECREF(rest);
                return res;
            }
        }
    }
    if (start == 0) {
        return call1(self, S_slow_data, data);
    }
    PyObject *rest = PyBytes_FromStringAndSize(buf + start, len - start);
    if (rest == NULL) {
        return NULL;
    }
    PyObject *res = call1(self, S_slow_data, rest);
    Py_DECREF(rest);
    return res;
}

/* -- upstream side ----------------------------------------------------------------------- */

/* UpstreamConnection.attach. */
static int lane_attach(PyObject *conn, PyObject *ex, PyObject *gw) {
    PyObject *client = SLOT(ex, L.x_client);
    int paused = truth(SLOT(conn, L.u_rpaused));
    if (paused == 0) { /* reading held (body buffered, client not reading): Python decides */
        paused = truth(SLOT(client, L.c_read_paused));
    }
    if (paused == 0) {
        paused = truth(SLOT(client, L.c_wpaused));
    }
    if (paused != 0) {
        return paused < 0 ? -1 : done(call1(conn, S_attach, ex));
    }
    set(conn, L.u_ex, ex);
    set(ex, L.x_upstream, conn);
    set(conn, L.u_head_wait, Py_True);
    set(conn, L.u_done, Py_False);
    set(conn, L.u_hbuf, EMPTY_BYTES);
    set(conn, L.u_hpos, ZERO);
    if (set_new(conn, L.u_deadline, deadline(gw, L.f_upstream_timeout)) < 0 ||
        set_new(ex, L.x_t_up, PyFloat_FromDouble(now())) < 0) {
        return -1;
    }
    PyObject *pending = SLOT(ex, L.x_pending);
    int any = truth(pending);
    if (any <= 0) {
        return any;
    }
    PyObject *bytes;
    if (PyList_Check(pending) && PyList_GET_SIZE(pending) == 1) {
        bytes = Py_NewRef(PyList_GET_ITEM(pending, 0));
    } else {
        bytes = _PyBytes_Join(EMPTY_BYTES, pending);
        if (bytes == NULL) {
            return -1;
        }
    }
    PyObject *tr = SLOT(conn, L.u_transport);
    Py_INCREF(tr);
    int rc = done(call1(tr, S_write, bytes));
    Py_DECREF(tr);
    Py_DECREF(bytes);
    if (rc < 0 || set_new(ex, L.x_pending, PyList_New(0)) < 0) {
        return -1;
    }
    set(ex, L.x_pending_size, ZERO);
    return 0;
}

#define FLUSH_BYTES 65536 /* accesslog._FLUSH_BYTES */

/* Gateway.log_exchange + AccessLog.write_line for an exchange answered by an upstream. */
static int lane_log(PyObject *gw, PyObject *ex, PyObject *target, double end) {
    PyObject *alog = SLOT(gw, L.g_accesslog);
    double t0 = PyFloat_AsDouble(SLOT(ex, L.x_t0));
    PyObject *stamp = wire_access_stamp();
    if (stamp == NULL || (t0 == -1.0 && PyErr_Occurred())) {
        Py_XDECREF(stamp);
        return -1;
    }
    char buf[4096];
    Py_ssize_t n = wire_access_line(
        buf, sizeof buf, stamp, SLOT(ex, L.x_method), SLOT(ex, L.x_path), SLOT(ex, L.x_status),
        SLOT(ex, L.x_where) != Py_None ? SLOT(ex, L.x_where) : SLOT(target, L.t_log_fragment),
        SLOT(ex, L.x_hash), SLOT(ex, L.x_generated) != Py_None,
        end - t0, SLOT(ex, L.x_resp_bytes), SLOT(ex, L.x_remote_ip), SLOT(ex, L.x_attempts),
        SLOT(ex, L.x_error));
    Py_DECREF(stamp);
    if (n < 0) { /* a long path or unusual fields: the Python formatter */
        PyObject *end_f = PyFloat_FromDouble(end);
        int rc = end_f ? done(call2(gw, S_log_exchange, ex, end_f)) : -1;
        Py_XDECREF(end_f);
        return rc;
    }
    PyObject *line = PyUnicode_New(n, 127); /* the formatter writes ASCII only */
    if (line != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(line), buf, (size_t)n);
    }
    PyObject *lines = SLOT(alog, L.a_buf);
    Py_ssize_t size = as_ssize(SLOT(alog, L.a_size));
    if (line == NULL || !PyList_Check(lines) || (size == -1 && PyErr_Occurred()) ||
        PyList_Append(lines, line) < 0) {
        Py_XDECREF(line);
        return -1;
    }
    Py_DECREF(line);
    if (set_new(alog, L.a_size, PyLong_FromSsize_t(size + n)) < 0) {
        return -1;
    }
    return size + n >= FLUSH_BYTES ? done(call0(alog, S_flush)) : 0;
}

/* ClientProtocol._end + Gateway.record for an exchange answered by an upstream. */
static int lane_end(PyObject *client, PyObject *ex, int close) {
    PyObject *gw = SLOT(client, L.c_gw);
    PyObject *target = SLOT(ex, L.x_target), *route = SLOT(ex, L.x_route);
    int c = close || truth(SLOT(gw, L.g_draining)) != 0 || truth(SLOT(ex, L.x_finished)) ||
            !truth(SLOT(ex, L.x_keep_alive)) || !truth(SLOT(ex, L.x_body_done)) ||
            truth(SLOT(ex, L.x_local)) || target == NULL || Py_TYPE(target) != L.target_t ||
            route == NULL || Py_TYPE(route) != L.route_t || truth(SLOT(client, L.c_closed)) ||
            truth(SLOT(client, L.c_read_paused)) || truth(SLOT(client, L.c_queue)) ||
            SLOT(client, L.c_active) != ex || SLOT(client, L.c_cur) != Py_None;
    if (PyErr_Occurred()) {
        return -1;
    }
    if (c) {
        return done(call2(client, S_end, ex, close ? Py_True : Py_False));
    }
    Py_INCREF(gw);
    Py_INCREF(target);
    Py_INCREF(route);
    int rc = -1;
    set(ex, L.x_finished, Py_True);
    Py_ssize_t index = as_ssize(SLOT(ex, L.x_index));
    if (index == -1 && PyErr_Occurred()) {
        goto out;
    }
    if (index >= 0) {
        if (list_add(SLOT(route, L.r_active), index, -1) < 0 ||
            slot_add(route, L.r_total_active, -1) < 0 ||
            set_new(ex, L.x_index, PyLong_FromLong(-1)) < 0) {
            goto out;
        }
    }
    set(ex, L.x_upstream, Py_None);
    /* record: requests by (route, upstream, code); upstream latency histogram */
    double end = now();
    PyObject *codes = SLOT(target, L.t_codes), *status = SLOT(ex, L.x_status);
    if (codes == NULL || !PyDict_Check(codes) || status == NULL) {
        PyErr_SetString(PyExc_TypeError, "gateway lane: target.codes");
        goto out;
    }
    PyObject *cur = PyDict_GetItemWithError(codes, status);
    long n = cur ? PyLong_AsLong(cur) : 0;
    if ((cur == NULL || n == -1) && PyErr_Occurred()) {
        goto out;
    }
    PyObject *nv = PyLong_FromLong(n + 1);
    if (nv == NULL || PyDict_SetItem(codes, status, nv) < 0) {
        Py_XDECREF(nv);
        goto out;
    }
    Py_DECREF(nv);
    PyObject *hist = SLOT(route, L.r_hist);
    double t_up = PyFloat_AsDouble(SLOT(ex, L.x_t_up));
    if (t_up == -1.0 && PyErr_Occurred()) {
        goto out;
    }
    if (t_up != 0.0 && hist != NULL && hist != Py_None && Py_TYPE(hist) == L.hist_t) {
        double seconds = end - t_up;
        int b = 0; /* bisect_left(BUCKETS, seconds) */
        while (b < L.nbuckets && L.buckets[b] < seconds) {
            b++;
        }
        double sum = PyFloat_AsDouble(SLOT(hist, L.h_sum));
        if ((sum == -1.0 && PyErr_Occurred()) || list_add(SLOT(hist, L.h_counts), b, 1) < 0 ||
            set_new(hist, L.h_sum, PyFloat_FromDouble(sum + seconds)) < 0) {
            goto out;
        }
    }
    int log = truth(SLOT(SLOT(gw, L.g_accesslog), L.a_enabled));
    if (log < 0) {
        goto out;
    }
    if (log && lane_log(gw, ex, target, end) < 0) {
        goto out;
    }
    set(client, L.c_active, Py_None);
    rc = set_new(client, L.c_deadline, deadline(gw, L.f_idle_timeout));
out:
    Py_DECREF(route);
    Py_DECREF(target);
    Py_DECREF(gw);
    return rc;
}

/* UpstreamConnection._finish. */
static int lane_finish(PyObject *conn, PyObject *ex) {
    PyObject *client = SLOT(ex, L.x_client);
    int reset = truth(SLOT(conn, L.u_reset_parser));
    if (reset != 0 || client == NULL || Py_TYPE(client) != L.client_t) { /* a subclass: Python */
        return reset < 0 ? -1 : done(call1(conn, S_finish, ex));
    }
    int keep = truth(SLOT(conn, L.u_keep));
    if (keep > 0) {
        keep = truth(SLOT(ex, L.x_body_done));
    }
    long mode = PyLong_AsLong(SLOT(conn, L.u_mode));
    if (keep < 0 || (mode == -1 && PyErr_Occurred())) {
        return -1;
    }
    int raw_close = mode == L.raw_close;
    PyObject *gw = SLOT(conn, L.u_gw);
    Py_INCREF(gw);
    set(conn, L.u_ex, Py_None);
    set(conn, L.u_done, Py_False);
    int rc = -1;
    if (keep && !raw_close) { /* Pools.release */
        if (set_new(conn, L.u_deadline, deadline(gw, L.f_upstream_idle_timeout)) < 0) {
            goto out;
        }
        set(conn, L.u_reused, Py_True);
        PyObject *idle = gw_idle(gw);
        PyObject *authority = SLOT(SLOT(conn, L.u_target), L.t_authority);
        PyObject *stack = PyDict_GetItemWithError(idle, authority);
        int ok = 0;
        if (stack != NULL) {
            ok = PyList_Append(stack, conn) == 0;
        } else if (!PyErr_Occurred()) {
            PyObject *fresh = PyList_New(1);
            if (fresh != NULL) {
                Py_INCREF(conn);
                PyList_SET_ITEM(fresh, 0, conn);
                ok = PyDict_SetItem(idle, authority, fresh) == 0;
                Py_DECREF(fresh);
            }
        }
        if (!ok) {
            goto out;
        }
    } else {
        PyObject *tr = SLOT(conn, L.u_transport);
        Py_INCREF(tr);
        int closed = done(call0(tr, S_close));
        Py_DECREF(tr);
        if (closed < 0) {
            goto out;
        }
    }
    Py_INCREF(client);
    rc = lane_end(client, ex, raw_close);
    Py_DECREF(client);
out:
    Py_DECREF(gw);
    return rc;
}

/* Write to the exchange's client unless it is gone; marks the response started. */
static int to_client(PyObject *ex, PyObject *bytes) {
    PyObject *client = SLOT(ex, L.x_client);
    int closed = truth(SLOT(client, L.c_closed));
    if (closed != 0) {
        return closed < 0 ? -1 : 0;
    }
    PyObject *tr = SLOT(client, L.c_transport);
    Py_INCREF(tr);
    int rc = done(call1(tr, S_write, bytes));
    Py_DECREF(tr);
    if (rc == 0) {
        set(ex, L.x_resp_started, Py_True);
    }
    return rc;
}

/* UpstreamConnection._relay_body. */
static int relay_body(PyObject *conn, PyObject *ex, PyObject *data, Py_ssize_t left) {
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    PyObject *piece;
    if (n > left) { /* bytes after the end of the response: relay it, then drop the conn */
        piece = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data), left);
        n = left;
        set(conn, L.u_keep, Py_False);
    } else {
        piece = Py_NewRef(data);
    }
    if (piece == NULL) {
        return -1;
    }
    left -= n;
    int rc = -1;
    if (set_new(conn, L.u_left, PyLong_FromSsize_t(left)) < 0 ||
        slot_add(ex, L.x_resp_bytes, n) < 0) {
        goto out;
    }
    PyObject *client = SLOT(ex, L.x_client);
    int closed = truth(SLOT(client, L.c_closed));
    if (closed < 0) {
        goto out;
    }
    if (!closed) {
        PyObject *tr = SLOT(client, L.c_transport);
        Py_INCREF(tr);
        rc = done(call1(tr, S_write, piece));
        Py_DECREF(tr);
        if (rc < 0) {
            goto out;
        }
    }
    if (left) {
        rc = set_new(conn, L.u_deadline, deadline(SLOT(conn, L.u_gw), L.f_upstream_timeout));
    } else {
        rc = lane_finish(conn, ex);
    }
out:
    Py_DECREF(piece);
    return rc;
}

/* UpstreamConnection.data_received with the native lane. */
static PyObject *upstream_data_received(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "data_received(self, data)");
        return NULL;
    }
    PyObject *self = args[0], *data = args[1];
    PyObject *ex = Py_TYPE(self) == L.up_t ? SLOT(self, L.u_ex) : NULL;
    if (ex == NULL || ex == Py_None || Py_TYPE(ex) != L.ex_t || !PyBytes_CheckExact(data) ||
        !gw_ok(SLOT(self, L.u_gw))) {
        return call1(self, S_py_data_received, data);
    }
    Py_INCREF(ex);
    int rc = -1;
    Py_ssize_t left = as_ssize(SLOT(self, L.u_left));
    if (left == -1 && PyErr_Occurred()) {
        goto out;
    }
    if (left > 0) {
        rc = relay_body(self, ex, data, left);
        goto out;
    }
    int head_wait = truth(SLOT(self, L.u_head_wait));
    PyObject *hbuf = SLOT(self, L.u_hbuf);
    if (head_wait < 0) {
        goto out;
    }
    if (!head_wait || hbuf == NULL || !PyBytes_Check(hbuf) || PyBytes_GET_SIZE(hbuf) != 0) {
        rc = done(call2(self, S_slow_data, ex, data));
        goto out;
    }
    /* the gateway adds no line (Set-Cookie, Connection) to this response: else Python */
    PyObject *gw = SLOT(self, L.u_gw);
    int plain = truth(SLOT(gw, L.g_draining)) == 0 && SLOT(ex, L.x_set_cookie) == Py_None &&
                SLOT(ex, L.x_extra_lines) == Py_None &&
                truth(SLOT(ex, L.x_keep_alive)) == 1 && truth(SLOT(ex, L.x_body_done)) == 1 &&
                truth(SLOT(ex, L.x_http10)) == 0;
    if (PyErr_Occurred()) {
        goto out;
    }
    if (!plain) {
        rc = done(call1(self, S_py_data_received, data));
        goto out;
    }
    int is_head = truth(SLOT(ex, L.x_is_head));
    if (is_head < 0) {
        goto out;
    }
    const char *buf = PyBytes_AS_STRING(data);
    response_head r;
    if (!wire_parse_response(buf, PyBytes_GET_SIZE(data), is_head, &r)) {
        rc = done(call2(self, S_slow_data, ex, data));
        goto out;
    }
    set(self, L.u_head_wait, Py_False);
    if (set_new(ex, L.x_status, PyLong_FromLong(r.status)) < 0 ||
        set_new(ex, L.x_resp_bytes, PyLong_FromSsize_t(r.avail)) < 0) {
        goto out;
    }
    PyObject *out = wire_response_out(buf, &r, "", 0);
    if (out == NULL) {
        goto out;
    }
    rc = to_client(ex, out);
    Py_DECREF(out);
    if (rc < 0) {
        goto out;
    }
    set(self, L.u_keep, r.keep ? Py_True : Py_False);
    if (r.clen > r.avail) {
        rc = -1;
        if (set_new(self, L.u_left, PyLong_FromLongLong(r.clen - r.avail)) == 0) {
            rc = set_new(self, L.u_deadline, deadline(gw, L.f_upstream_timeout));
        }
    } else {
        rc = lane_finish(self, ex);
    }
out:
    Py_DECREF(ex);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* -- binding ----------------------------------------------------------------------------- */

static int offset(PyTypeObject *type, const char *name, Py_ssize_t *out) {
    PyObject *d = PyObject_GetAttrString((PyObject *)type, name);
    if (d == NULL) {
        return -1;
    }
    int ok = Py_IS_TYPE(d, &PyMemberDescr_Type) &&
             ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX &&
             !(((PyMemberDescrObject *)d)->d_member->flags & READONLY);
    if (ok) {
        *out = ((PyMemberDescrObject *)d)->d_member->offset;
    }
    Py_DECREF(d);
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a writable __slots__ member", type->tp_name,
                     name);
        return -1;
    }
    return 0;
}

#define OFF(type, field, name)                                                                 \
    if (offset(type, name, &nl.field) < 0) {                                                    \
        return NULL;                                                                            \
    }

static PyObject *wrap(PyMethodDef *def, PyObject *module) {
    PyObject *f = PyCFunction_NewEx(def, module, NULL);
    if (f == NULL) {
        return NULL;
    }
    PyObject *m = PyInstanceMethod_New(f); /* binds like a Python function */
    Py_DECREF(f);
    return m;
}

static PyMethodDef client_def = {"data_received", (PyCFunction)(void (*)(void))client_data_received,
                                 METH_FASTCALL, "ClientProtocol.data_received (native lane)."};
static PyMethodDef upstream_def = {"data_received",
                                   (PyCFunction)(void (*)(void))upstream_data_received,
                                   METH_FASTCALL, "UpstreamConnection.data_received (native lane)."};

static PyTypeObject *class_of(PyObject *classes, const char *name) {
    PyObject *t = PyDict_GetItemString(classes, name);
    if (t == NULL || !PyType_Check(t)) {
        PyErr_Format(PyExc_TypeError, "lane_bind: classes[%s] must be a class", name);
        return NULL;
    }
    Py_INCREF(t); /* kept for the life of the process */
    return (PyTypeObject *)t;
}

/*
 * lane_bind(classes, template, buckets, raw_close, scan_cookie, xxh64)
 *     -> (client_data_received, upstream_data_received)
 * classes: {"ClientProtocol": .., "UpstreamConnection": .., "Exchange": .., "Route": ..,
 *           "Target": .., "Histogram": .., "Router": .., "Gateway": .., "GatewayConfig": ..,
 *           "Pools": .., "AccessLog": .., "SessionRoute": ..}
 */
static PyObject *lane_bind(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "lane_bind takes 6 arguments (classes dict first)");
        return NULL;
    }
    PyObject *classes = args[0];
    PyTypeObject *ct, *ut, *xt, *rt, *tt, *ht, *rot, *gt, *ft, *pt, *at, *st;
    if (!(ct = class_of(classes, "ClientProtocol")) ||
        !(ut = class_of(classes, "UpstreamConnection")) || !(xt = class_of(classes, "Exchange")) ||
        !(rt = class_of(classes, "Route")) || !(tt = class_of(classes, "Target")) ||
        !(ht = class_of(classes, "Histogram")) || !(rot = class_of(classes, "Router")) ||
        !(gt = class_of(classes, "Gateway")) || !(ft = class_of(classes, "GatewayConfig")) ||
        !(pt = class_of(classes, "Pools")) || !(at = class_of(classes, "AccessLog")) ||
        !(st = class_of(classes, "SessionRoute"))) {
        return NULL;
    }
    /* resolved into a copy and committed at the end: a call that fails halfway must leave a
     * lane that is already bound reading its classes at their own offsets */
    struct lane nl = L;
    OFF(gt, g_accesslog, "accesslog");
    OFF(gt, g_clock, "clock");
    OFF(gt, g_config, "config");
    OFF(gt, g_draining, "draining");
    OFF(gt, g_ejected, "ejected");
    OFF(gt, g_pools, "pools");
    OFF(gt, g_router, "router");
    OFF(gt, g_seen, "seen");
    OFF(ft, f_idle_timeout, "idle_timeout");
    OFF(ft, f_max_body_bytes, "max_body_bytes");
    OFF(ft, f_upstream_idle_timeout, "upstream_idle_timeout");
    OFF(ft, f_upstream_timeout, "upstream_timeout");
    OFF(pt, p_idle, "idle");
    OFF(at, a_buf, "_buf");
    OFF(at, a_enabled, "enabled");
    OFF(at, a_size, "_size");
    OFF(ct, c_active, "active");
    OFF(ct, c_body_ex, "body_ex");
    OFF(ct, c_body_left, "body_left");
    OFF(ct, c_boundary, "boundary");
    OFF(ct, c_closed, "closed");
    OFF(ct, c_cur, "cur");
    OFF(ct, c_deadline, "deadline");
    OFF(ct, c_gw, "gw");
    OFF(ct, c_ignore, "ignore");
    OFF(ct, c_max_head, "max_head");
    OFF(ct, c_peer_ip, "peer_ip");
    OFF(ct, c_peer_ip_b, "peer_ip_b");
    OFF(ct, c_peer_trusted, "peer_trusted");
    OFF(ct, c_queue, "queue");
    OFF(ct, c_read_paused, "read_paused");
    OFF(ct, c_scan_mode, "scan_mode");
    OFF(ct, c_stalled, "stalled");
    OFF(ct, c_stash, "stash");
    OFF(ct, c_transport, "transport");
    OFF(ct, c_wpaused, "wpaused");
    PyObject *slots = PyObject_GetAttrString((PyObject *)xt, "__slots__");
    if (slots == NULL) {
        return NULL;
    }
    PyObject *fast = PySequence_Fast(slots, "Exchange.__slots__");
    Py_DECREF(slots);
    if (fast == NULL) {
        return NULL;
    }
    Py_ssize_t ns = PySequence_Fast_GET_SIZE(fast);
    if (ns > MAX_EX_SLOTS) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "lane_bind: too many Exchange slots");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < ns; i++) {
        const char *name = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(fast, i));
        if (name == NULL || offset(xt, name, &nl.x_all[i]) < 0) {
            Py_DECREF(fast);
            return NULL;
        }
    }
    nl.x_n = (int)ns;
    Py_DECREF(fast);
    OFF(xt, x_attempts, "attempts");
    OFF(xt, x_body_done, "body_done");
    OFF(xt, x_body_size, "body_size");
    OFF(xt, x_client, "client");
    OFF(xt, x_cookies, "cookies");
    OFF(xt, x_error, "error");
    OFF(xt, x_finished, "finished");
    OFF(xt, x_generated, "generated");
    OFF(xt, x_hash, "hash");
    OFF(xt, x_head, "head");
    OFF(xt, x_head_done, "head_done");
    OFF(xt, x_host, "host");
    OFF(xt, x_http10, "http10");
    OFF(xt, x_index, "index");
    OFF(xt, x_is_head, "is_head");
    OFF(xt, x_keep_alive, "keep_alive");
    OFF(xt, x_local, "local");
    OFF(xt, x_method, "method");
    OFF(xt, x_path, "path");
    OFF(xt, x_pending, "pending");
    OFF(xt, x_pending_size, "pending_size");
    OFF(xt, x_raw, "raw");
    OFF(xt, x_raw_end, "raw_end");
    OFF(xt, x_raw_start, "raw_start");
    OFF(xt, x_remote_ip, "remote_ip");
    OFF(xt, x_resp_bytes, "resp_bytes");
    OFF(xt, x_resp_started, "resp_started");
    OFF(xt, x_route, "route");
    OFF(xt, x_set_cookie, "set_cookie");
    OFF(xt, x_status, "status");
    OFF(xt, x_t0, "t0");
    OFF(xt, x_t_up, "t_up");
    OFF(xt, x_target, "target");
    OFF(xt, x_upstream, "upstream");
    OFF(xt, x_xff, "xff");
    OFF(xt, x_extra_lines, "extra_lines");
    OFF(xt, x_where, "where");
    OFF(ut, u_deadline, "deadline");
    OFF(ut, u_done, "done");
    OFF(ut, u_ex, "ex");
    OFF(ut, u_gw, "gw");
    OFF(ut, u_hbuf, "hbuf");
    OFF(ut, u_head_wait, "head_wait");
    OFF(ut, u_hpos, "hpos");
    OFF(ut, u_keep, "keep");
    OFF(ut, u_left, "left");
    OFF(ut, u_mode, "mode");
    OFF(ut, u_reset_parser, "reset_parser");
    OFF(ut, u_reused, "reused");
    OFF(ut, u_rpaused, "rpaused");
    OFF(ut, u_target, "target");
    OFF(ut, u_transport, "transport");
    OFF(rt, r_active, "active");
    OFF(rt, r_hist, "hist");
    OFF(rt, r_lane, "lane");
    OFF(rt, r_lane_choose, "lane_choose");
    OFF(rt, r_lane_key, "lane_key");
    OFF(rt, r_needle, "needle");
    OFF(rt, r_rr, "rr");
    OFF(rt, r_schedule, "schedule");
    OFF(rt, r_sid, "sid");
    OFF(rt, r_size, "size");
    OFF(rt, r_table, "table");
    OFF(rt, r_targets, "targets");
    OFF(rt, r_total_active, "total_active");
    OFF(rt, r_session, "session");
    OFF(st, s_check, "check");
    OFF(st, s_counts, "counts");
    OFF(st, s_index_b, "index_b");
    OFF(st, s_needle, "needle");
    OFF(tt, t_authority, "authority");
    OFF(tt, t_codes, "codes");
    OFF(tt, t_log_fragment, "log_fragment");
    OFF(tt, t_log_honour, "log_honour");
    OFF(tt, t_sid, "sid");
    OFF(ht, h_counts, "counts");
    OFF(ht, h_sum, "sum");
    OFF(rot, ro_cache, "_cache");
    PyObject *template = args[1];
    if (Py_TYPE(template) != xt) {
        PyErr_SetString(PyExc_TypeError, "lane_bind: template must be an Exchange");
        return NULL;
    }
    for (int i = 0; i < nl.x_n; i++) {
        if (SLOT(template, nl.x_all[i]) == NULL) {
            PyErr_SetString(PyExc_ValueError, "lane_bind: template leaves a slot unset");
            return NULL;
        }
    }
    PyObject *buckets = PySequence_Fast(args[2], "buckets");
    if (buckets == NULL) {
        return NULL;
    }
    Py_ssize_t nb = PySequence_Fast_GET_SIZE(buckets);
    if (nb > MAX_BUCKETS) {
        Py_DECREF(buckets);
        PyErr_SetString(PyExc_ValueError, "lane_bind: too many buckets");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nb; i++) {
        nl.buckets[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(buckets, i));
        if (nl.buckets[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(buckets);
            return NULL;
        }
    }
    Py_DECREF(buckets);
    nl.nbuckets = (int)nb;
    nl.raw_close = PyLong_AsLong(args[3]);
    if (nl.raw_close == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *c = wrap(&client_def, module), *u = wrap(&upstream_def, module);
    if (c == NULL || u == NULL) {
        Py_XDECREF(c);
        Py_XDECREF(u);
        return NULL;
    }
    nl.client_t = ct;
    nl.up_t = ut;
    nl.ex_t = xt;
    nl.route_t = rt;
    nl.session_t = st;
    nl.target_t = tt;
    nl.hist_t = ht;
    nl.router_t = rot;
    nl.gw_t = gt;
    nl.cfg_t = ft;
    nl.pools_t = pt;
    nl.log_t = at;
    nl.template = Py_NewRef(template);
    nl.scan_cookie = Py_NewRef(args[4]);
    nl.xxh64 = Py_NewRef(args[5]);
    nl.bound = 1;
    PyObject *old[3] = {L.template, L.scan_cookie, L.xxh64};
    L = nl;
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(old[i]);
    }
    return Py_BuildValue("(NN)", c, u);
}

PyMethodDef lane_methods[] = {
    {"lane_bind", (PyCFunction)(void (*)(void))lane_bind, METH_FASTCALL,
     "Resolve slot offsets; return the native data_received methods (see lane.c)."},
    {NULL, NULL, 0, NULL},
};

#define INTERN(var, text)                                                                      \
    if ((var = PyUnicode_InternFromString(text)) == NULL) {                                    \
        return -1;                                                                              \
    }

int lane_init(PyObject *module) {
    INTERN(S_log_exchange, "log_exchange");
    INTERN(S_flush, "flush");
    INTERN(S_more_body, "_more_body");
    INTERN(S_stash_rest, "_stash_rest");
    INTERN(S_connect, "connect");
    INTERN(S_write, "write");
    INTERN(S_close, "close");
    INTERN(S_is_closing, "is_closing");
    INTERN(S_dispatch, "_dispatch");
    INTERN(S_enqueue, "_enqueue");
    INTERN(S_slow_data, "_slow_data");
    INTERN(S_end, "_end");
    INTERN(S_finish, "_finish");
    INTERN(S_attach, "attach");
    INTERN(S_py_data_received, "_py_data_received");
    INTERN(S_honour_valid, "honour/valid"); /* sessions.HONOURED_NATIVELY */
    EMPTY_BYTES = PyBytes_FromStringAndSize("", 0);
    ZERO = PyLong_FromLong(0);
    return EMPTY_BYTES && ZERO ? 0 : -1;
}
