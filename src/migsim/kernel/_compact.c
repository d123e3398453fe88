/*
 * The allocation loop of direct compaction, compiled: compact_zone()'s migrate_pages()
 * loop of migsim.kernel.compaction (mm/compaction.c), one C function per kernel function of
 * the Python reference, in the same order and with the same names:
 *
 *   compact_zone_loop()           the `while True:` loop of compact_zone() (mm/compaction.c)
 *   compact_finished()            compact_finished() / __compact_finished()
 *   isolate_migratepages()        isolate_migratepages() (fast_find_migrateblock() not run)
 *   isolate_migratepages_block()  isolate_migratepages_block() (COMPACT_CLUSTER_MAX batch,
 *                                 finish_pageblock pass, skip_on_failure)
 *   isolate_freepages()           isolate_freepages() (stride 1, as the Python reference)
 *   isolate_freepages_block()     isolate_freepages_block()
 *   compaction_alloc()            compaction_alloc(): the head of cc->freepages
 *   migrate_pages()               migrate_pages() (mm/migrate.c): unmap, copy, free the sources
 *   pcp_free()                    free_unref_page_commit() (mm/page_alloc.c), the common case
 *   free_to_buddy()               __free_one_page() of order-0 pages and compaction_capture()
 *   find_capture()                compaction_capture(): the first block the frees complete
 *   account_block()               Zone._account_block: NR_FREE_PAGES, per-pageblock counts
 *
 * The Python code stays the readable reference; this file is the same control flow on the
 * same state (the Zone's numpy arrays and buffers, read and written in place through the
 * buffer protocol: no copy of the state). The rare paths call the Python reference itself:
 * a free that takes the per-CPU list over pcp->high (PerCpuPages.add and its
 * free_pcppages_bulk), drain_local_pages (PerCpuPages.drain), has_free_order() below
 * pageblock order (Zone._refresh_lo), the content-tag queue (Zone.flush_moves) and the
 * migration-failure mark (Compactor._mark). The scanners' caches (Zone.mscan_*, fscan_*)
 * are a speed device of the Python code only (the result does not depend on them): this
 * code scans the frames directly and drops them.
 *
 * tests/test_engines.py proves that both engines give the same counters, per-call logs,
 * marks and zone state, full-scale and on random small zones.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* migsim.units, migsim.kernel.zone, migsim.kernel.compaction (checked at import: CONSTANTS) */
#define PAGEBLOCK_ORDER 9
#define PB ((int64_t)1 << PAGEBLOCK_ORDER)
#define BLOCK_MASK (~(PB - 1))
#define COMPACT_CLUSTER_MAX 32
#define MOVE_FLUSH_PAGES (1 << 16)
#define PCP_BATCH_SCALE_MAX 5
enum { FREE = 0, LRU = 1, PCP = 2, ISOLATED_FREE = 3, ISOLATED_LRU = 4, ALLOCATED = 6 };
enum { MIGRATE_ASYNC = 0 };
enum { MIGRATE_MOVABLE = 1 };
enum {
    COMPACT_CONTINUE = 4,
    COMPACT_COMPLETE = 5,
    COMPACT_PARTIAL_SKIPPED = 6,
    COMPACT_CONTENDED = 7,
    COMPACT_SUCCESS = 8,
};
enum { ISOLATE_NONE = 1, ISOLATE_SUCCESS = 2 };
enum { M_MIGRATE_FAIL = 2 };
enum {
    W_MIGRATE_SCANNED,
    W_FREE_SCANNED,
    W_ISOLATED,
    W_FREE_ISOLATED,
    W_BUDDY_FREED,
    W_SLOWPATH,
    W_FREELIST,
    W_ALLOC,
    W_ALLOC_PAGES,
    W_COMPACT_ZONE,
    W_DRAIN,
    W_ISOLATE_FREE,
    NR_WORK
};

static PyObject *np_empty, *np_int64;

typedef struct {
    int64_t *v;
    Py_ssize_t n, cap;
} vec;

static int vec_reserve(vec *a, Py_ssize_t extra)
{
    if (a->n + extra <= a->cap)
        return 0;
    Py_ssize_t cap = a->cap ? a->cap : 64;
    while (cap < a->n + extra)
        cap *= 2;
    int64_t *v = realloc(a->v, (size_t)cap * sizeof(int64_t));
    if (!v) {
        PyErr_NoMemory();
        return -1;
    }
    a->v = v;
    a->cap = cap;
    return 0;
}

static inline int vec_push(vec *a, int64_t x)
{
    if (a->n == a->cap && vec_reserve(a, 1) < 0)
        return -1;
    a->v[a->n++] = x;
    return 0;
}

/* One compact_zone() run: the zone's state (borrowed through buffers), struct
 * compact_control, and what the run adds to the Compactor's counters and log. */
typedef struct {
    PyObject *comp, *zone, *cc, *pcp, *chunks, *zc;
    /* zone */
    Py_buffer b_state, b_skip, b_mt, b_nfp, b_dirty;
    int have_buffers;
    uint8_t *state, *skip, *mt, *dirty;
    int16_t *nfp;
    int64_t nr_pages, nr_blocks, zone_start;
    int64_t nr_free, nr_full, nr_pairs, nr_dirty, buddy_frees, moves_lo, moves_pages;
    int64_t cached_migrate[2], cached_free;
    int blockskip_flush;
    /* the values as sync_in() read them: sync_out() writes back only what changed */
    int64_t in_nr_full, in_nr_pairs, in_nr_dirty, in_moves_lo, in_moves_pages;
    int64_t in_cached_migrate[2], in_cached_free, in_pcp_count, in_pcp_free_count;
    int in_blockskip_flush, caches_dropped;
    /* pcp */
    int64_t pcp_count, pcp_free_count, pcp_high, pcp_batch;
    /* compactor */
    int64_t cluster_max, buddy_seen, acc[NR_WORK];
    /* the pageblocks isolate_migratepages() looks over at once when it skips (the Python
     * module's MIGRATE_SKIP_WINDOW_BLOCKS, passed in per call: a chunk size, not a kernel
     * constant; the tests shrink it so that every skip takes several windows) */
    int64_t migrate_skip_window;
    int64_t d_pgmigrate_success, d_pgmigrate_fail, d_compact_isolated;
    int64_t d_capture_in_migrate, d_capture_in_drain, d_batches_after, d_pages_after;
    vec log_pages, log_work;
    /* compact_control */
    int order, mode, migratetype, direct, whole_zone, ignore_skip, ignore_block, contended;
    int finish_pageblock;
    int64_t migrate_pfn, free_pfn, nr_migratepages, total_mscan, total_fscan;
    vec mig;          /* cc->migratepages, in isolation order */
    vec fp;           /* cc->freepages, FIFO from fp_head */
    Py_ssize_t fp_head;
    /* capture control: the zone's (zone.capture_control), and compact_zone()'s capc */
    int zc_active, zc_order;
    int64_t zc_page;  /* -1: none captured */
    int capc_kind;    /* 0: None, 1: the zone's, 2: another (its page fixed) */
    int64_t capc_page;
    /* folio_copy()s not yet handed to Zone._moves */
    vec mv_src, mv_dst;
    /* scratch */
    vec tmp_dst, tmp_ok;
} St;

/* -- attribute helpers ---------------------------------------------------------------- */
/* attribute names as interned strings, made once per literal (keyed by its address):
 * PyObject_GetAttrString would build and hash a new string at every access */
#define NAME_SLOTS 512
static struct {
    const char *key;
    PyObject *name;
} names[NAME_SLOTS];

static PyObject *name_of(const char *s)
{
    size_t i = ((uintptr_t)s >> 3) & (NAME_SLOTS - 1);
    while (names[i].key && names[i].key != s)
        i = (i + 1) & (NAME_SLOTS - 1);
    if (!names[i].key) {
        PyObject *n = PyUnicode_InternFromString(s);
        if (!n)
            return NULL;
        names[i].key = s;
        names[i].name = n; /* kept for the life of the process */
    }
    return names[i].name;
}

static PyObject *getattr_s(PyObject *o, const char *s)
{
    PyObject *n = name_of(s);
    return n ? PyObject_GetAttr(o, n) : NULL;
}

static int setattr_s(PyObject *o, const char *s, PyObject *v)
{
    PyObject *n = name_of(s);
    return n ? PyObject_SetAttr(o, n, v) : -1;
}

static PyObject *callmethod0(PyObject *o, const char *s)
{
    PyObject *n = name_of(s);
    return n ? PyObject_CallMethodNoArgs(o, n) : NULL;
}

static PyObject *callmethod1(PyObject *o, const char *s, PyObject *arg)
{
    PyObject *n = name_of(s);
    return n ? PyObject_CallMethodOneArg(o, n, arg) : NULL;
}

static int get_i64(PyObject *o, const char *name, int64_t *out)
{
    PyObject *v = getattr_s(o, name);
    if (!v)
        return -1;
    long long x = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    *out = x;
    return 0;
}

static int get_bool(PyObject *o, const char *name, int *out)
{
    PyObject *v = getattr_s(o, name);
    if (!v)
        return -1;
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    if (r < 0)
        return -1;
    *out = r;
    return 0;
}

static int set_i64(PyObject *o, const char *name, int64_t x)
{
    PyObject *v = PyLong_FromLongLong(x);
    if (!v)
        return -1;
    int r = setattr_s(o, name, v);
    Py_DECREF(v);
    return r;
}

static int set_bool(PyObject *o, const char *name, int x)
{
    return setattr_s(o, name, x ? Py_True : Py_False);
}

static int add_i64(PyObject *o, const char *name, int64_t d)
{
    int64_t x;
    if (!d)
        return 0;
    if (get_i64(o, name, &x) < 0)
        return -1;
    return set_i64(o, name, x + d);
}

/* a pfn attribute that may be None (a capture_control's page): -1 for None */
static int get_pfn_or_none(PyObject *o, const char *name, int64_t *out)
{
    PyObject *v = getattr_s(o, name);
    if (!v)
        return -1;
    *out = v == Py_None ? -1 : PyLong_AsLongLong(v);
    Py_DECREF(v);
    return PyErr_Occurred() ? -1 : 0;
}

/* the first n items of the sequence attribute `name` of o (a list, an array) into out */
static int get_i64_seq(PyObject *o, const char *name, int64_t *out, int n)
{
    PyObject *seq = getattr_s(o, name);
    if (!seq)
        return -1;
    for (int i = 0; i < n; i++) {
        PyObject *v = PySequence_GetItem(seq, i);
        if (!v) {
            Py_DECREF(seq);
            return -1;
        }
        out[i] = PyLong_AsLongLong(v);
        Py_DECREF(v);
    }
    Py_DECREF(seq);
    return PyErr_Occurred() ? -1 : 0;
}

/* in[0..n) into the first n items of the sequence attribute `name` of o, in place */
static int set_i64_seq(PyObject *o, const char *name, const int64_t *in, int n)
{
    PyObject *seq = getattr_s(o, name);
    if (!seq)
        return -1;
    for (int i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLongLong(in[i]);
        if (!v || PySequence_SetItem(seq, i, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(seq);
            return -1;
        }
        Py_DECREF(v);
    }
    Py_DECREF(seq);
    return 0;
}

static int dict_add(PyObject *d, const char *key, int64_t delta)
{
    if (!delta)
        return 0;
    PyObject *k = name_of(key);
    if (!k)
        return -1;
    PyObject *v = PyDict_GetItemWithError(d, k); /* borrowed */
    if (!v && PyErr_Occurred())
        return -1;
    long long x = v ? PyLong_AsLongLong(v) : 0;
    if (x == -1 && PyErr_Occurred())
        return -1;
    PyObject *nv = PyLong_FromLongLong(x + delta);
    if (!nv)
        return -1;
    int r = PyDict_SetItem(d, k, nv);
    Py_DECREF(nv);
    return r;
}

static int get_buffer(PyObject *o, const char *name, Py_buffer *view, Py_ssize_t itemsize,
                      Py_ssize_t n)
{
    PyObject *v = getattr_s(o, name);
    if (!v)
        return -1;
    int r = PyObject_GetBuffer(v, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS);
    Py_DECREF(v);
    if (r < 0)
        return -1;
    if (view->len != itemsize * n) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "_compact: zone.%s has %zd bytes, expected %zd", name,
                     view->len, itemsize * n);
        return -1;
    }
    return 0;
}

/* a new int64 numpy array holding v[0..n) */
static PyObject *new_i64_array(const int64_t *v, Py_ssize_t n)
{
    PyObject *len = PyLong_FromSsize_t(n);
    if (!len)
        return NULL;
    PyObject *args[2] = {len, np_int64};
    PyObject *arr = PyObject_Vectorcall(np_empty, args, 2, NULL);
    Py_DECREF(len);
    if (!arr || !n)
        return arr;
    Py_buffer view;
    if (PyObject_GetBuffer(arr, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    memcpy(view.buf, v, (size_t)n * sizeof(int64_t));
    PyBuffer_Release(&view);
    return arr;
}

/* a pfn array of the Python side (any 1-d array of 8-byte integers, any stride) */
typedef struct {
    Py_buffer view;
    const char *p;
    Py_ssize_t n, stride;
    int64_t block;
} Part;

static int part_open(PyObject *arr, int64_t block, Part *part)
{
    if (PyObject_GetBuffer(arr, &part->view, PyBUF_RECORDS_RO) < 0)
        return -1;
    const char *f = part->view.format ? part->view.format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    if (part->view.ndim != 1 || part->view.itemsize != 8 || (*f != 'l' && *f != 'q') || f[1]) {
        PyBuffer_Release(&part->view);
        PyErr_SetString(PyExc_TypeError, "_compact: pfn arrays must be 1-d int64");
        return -1;
    }
    part->p = part->view.buf;
    part->n = part->view.shape[0];
    part->stride = part->view.strides[0];
    part->block = block;
    return 0;
}

static inline int64_t part_at(const Part *part, Py_ssize_t i)
{
    return *(const int64_t *)(part->p + i * part->stride);
}

/* -- sync of the C copies with the Python objects ------------------------------------- */
static void release_buffers(St *S)
{
    if (!S->have_buffers)
        return;
    PyBuffer_Release(&S->b_state);
    PyBuffer_Release(&S->b_skip);
    PyBuffer_Release(&S->b_mt);
    PyBuffer_Release(&S->b_nfp);
    PyBuffer_Release(&S->b_dirty);
    S->have_buffers = 0;
}

static int sync_in(St *S)
{
    PyObject *z = S->zone;
    if (get_i64(z, "nr_free", &S->nr_free) < 0 || get_i64(z, "_nr_full", &S->nr_full) < 0 ||
        get_i64(z, "_nr_pairs", &S->nr_pairs) < 0 || get_i64(z, "_nr_dirty", &S->nr_dirty) < 0 ||
        get_i64(z, "buddy_frees", &S->buddy_frees) < 0 ||
        get_i64(z, "_moves_lo", &S->moves_lo) < 0 ||
        get_i64(z, "_moves_pages", &S->moves_pages) < 0 ||
        get_i64(z, "compact_cached_free_pfn", &S->cached_free) < 0 ||
        get_bool(z, "compact_blockskip_flush", &S->blockskip_flush) < 0)
        return -1;
    if (get_i64_seq(z, "compact_cached_migrate_pfn", S->cached_migrate, 2) < 0)
        return -1;
    /* the pcp list */
    Py_CLEAR(S->pcp);
    Py_CLEAR(S->chunks);
    S->pcp = getattr_s(z, "pcp");
    if (!S->pcp)
        return -1;
    S->chunks = getattr_s(S->pcp, "_chunks");
    if (!S->chunks || get_i64(S->pcp, "count", &S->pcp_count) < 0 ||
        get_i64(S->pcp, "free_count", &S->pcp_free_count) < 0 ||
        get_i64(S->pcp, "high", &S->pcp_high) < 0 || get_i64(S->pcp, "batch", &S->pcp_batch) < 0)
        return -1;
    /* the compactor's work counters since the last logged call */
    if (get_i64(S->comp, "_buddy_frees_seen", &S->buddy_seen) < 0)
        return -1;
    if (get_i64_seq(S->comp, "_acc", S->acc, NR_WORK) < 0)
        return -1;
    S->in_nr_full = S->nr_full;
    S->in_nr_pairs = S->nr_pairs;
    S->in_nr_dirty = S->nr_dirty;
    S->in_moves_lo = S->moves_lo;
    S->in_moves_pages = S->moves_pages;
    S->in_cached_migrate[0] = S->cached_migrate[0];
    S->in_cached_migrate[1] = S->cached_migrate[1];
    S->in_cached_free = S->cached_free;
    S->in_pcp_count = S->pcp_count;
    S->in_pcp_free_count = S->pcp_free_count;
    S->in_blockskip_flush = S->blockskip_flush;
    /* the per-frame and per-pageblock arrays, written in place */
    release_buffers(S);
    if (get_buffer(z, "state", &S->b_state, 1, S->nr_pages) < 0)
        return -1;
    if (get_buffer(z, "skip_b", &S->b_skip, 1, S->nr_blocks) < 0) {
        PyBuffer_Release(&S->b_state);
        return -1;
    }
    if (get_buffer(z, "migratetype_b", &S->b_mt, 1, S->nr_blocks) < 0) {
        PyBuffer_Release(&S->b_state);
        PyBuffer_Release(&S->b_skip);
        return -1;
    }
    if (get_buffer(z, "nr_free_pb_a", &S->b_nfp, 2, S->nr_blocks) < 0) {
        PyBuffer_Release(&S->b_state);
        PyBuffer_Release(&S->b_skip);
        PyBuffer_Release(&S->b_mt);
        return -1;
    }
    if (get_buffer(z, "_dirty", &S->b_dirty, 1, S->nr_blocks) < 0) {
        PyBuffer_Release(&S->b_state);
        PyBuffer_Release(&S->b_skip);
        PyBuffer_Release(&S->b_mt);
        PyBuffer_Release(&S->b_nfp);
        return -1;
    }
    S->have_buffers = 1;
    S->state = S->b_state.buf;
    S->skip = S->b_skip.buf;
    S->mt = S->b_mt.buf;
    S->nfp = S->b_nfp.buf;
    S->dirty = S->b_dirty.buf;
    return 0;
}

/* append the logged calls to the Compactor's int32 (or int64) log arrays */
static int log_append(St *S, const char *name, const vec *a)
{
    if (!a->n)
        return 0;
    PyObject *arr = getattr_s(S->comp, name);
    if (!arr)
        return -1;
    PyObject *tc = getattr_s(arr, "typecode");
    if (!tc) {
        Py_DECREF(arr);
        return -1;
    }
    int wide = PyUnicode_CompareWithASCIIString(tc, "q") == 0;
    Py_DECREF(tc);
    int fits = 1;
    if (!wide)
        for (Py_ssize_t i = 0; i < a->n; i++)
            if (a->v[i] < INT32_MIN || a->v[i] > INT32_MAX) {
                fits = 0;
                break;
            }
    PyObject *r;
    if (wide || fits) {
        PyObject *bytes;
        if (wide) {
            bytes = PyBytes_FromStringAndSize((const char *)a->v, a->n * 8);
        } else {
            bytes = PyBytes_FromStringAndSize(NULL, a->n * 4);
            if (bytes) {
                int32_t *o = (int32_t *)PyBytes_AS_STRING(bytes);
                for (Py_ssize_t i = 0; i < a->n; i++)
                    o[i] = (int32_t)a->v[i];
            }
        }
        if (!bytes) {
            Py_DECREF(arr);
            return -1;
        }
        r = callmethod1(arr, "frombytes", bytes);
        Py_DECREF(bytes);
    } else { /* a value does not fit in int32: Compactor._widen */
        PyObject *lst = PyList_New(a->n);
        if (!lst) {
            Py_DECREF(arr);
            return -1;
        }
        for (Py_ssize_t i = 0; i < a->n; i++) {
            PyObject *v = PyLong_FromLongLong(a->v[i]);
            if (!v) {
                Py_DECREF(lst);
                Py_DECREF(arr);
                return -1;
            }
            PyList_SET_ITEM(lst, i, v);
        }
        r = PyObject_CallMethod(S->comp, "_widen", "sO", name, lst);
        Py_DECREF(lst);
    }
    Py_DECREF(arr);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int moves_out(St *S);

static int sync_out(St *S)
{
    PyObject *z = S->zone;
    /* the log */
    if (S->log_pages.n) {
        int shared;
        if (get_bool(S->comp, "_log_shared", &shared) < 0)
            return -1;
        if (shared) {
            PyObject *r = callmethod0(S->comp, "_unshare_log");
            if (!r)
                return -1;
            Py_DECREF(r);
        }
        if (log_append(S, "_calls_pages", &S->log_pages) < 0 ||
            log_append(S, "_calls_work", &S->log_work) < 0)
            return -1;
        S->log_pages.n = S->log_work.n = 0;
    }
    if (set_i64_seq(S->comp, "_acc", S->acc, NR_WORK) < 0)
        return -1;
    if (set_i64(S->comp, "_buddy_frees_seen", S->buddy_seen) < 0)
        return -1;
    PyObject *vm = getattr_s(S->comp, "vmstat");
    if (!vm)
        return -1;
    int r = dict_add(vm, "pgmigrate_success", S->d_pgmigrate_success) < 0 ||
            dict_add(vm, "pgmigrate_fail", S->d_pgmigrate_fail) < 0 ||
            dict_add(vm, "compact_isolated", S->d_compact_isolated) < 0;
    Py_DECREF(vm);
    if (r)
        return -1;
    S->d_pgmigrate_success = S->d_pgmigrate_fail = S->d_compact_isolated = 0;
    if (add_i64(S->comp, "capture_in_migrate", S->d_capture_in_migrate) < 0 ||
        add_i64(S->comp, "capture_in_drain", S->d_capture_in_drain) < 0 ||
        add_i64(S->comp, "batches_after_capture", S->d_batches_after) < 0 ||
        add_i64(S->comp, "pages_after_capture", S->d_pages_after) < 0)
        return -1;
    S->d_capture_in_migrate = S->d_capture_in_drain = S->d_batches_after = S->d_pages_after = 0;
    /* the zone */
    if (moves_out(S) < 0)
        return -1;
#define CHANGED(field) (S->field != S->in_##field)
    if (set_i64(z, "nr_free", S->nr_free) < 0 || set_i64(z, "buddy_frees", S->buddy_frees) < 0 ||
        (CHANGED(nr_full) && set_i64(z, "_nr_full", S->nr_full) < 0) ||
        (CHANGED(nr_pairs) && set_i64(z, "_nr_pairs", S->nr_pairs) < 0) ||
        (CHANGED(nr_dirty) && set_i64(z, "_nr_dirty", S->nr_dirty) < 0) ||
        (CHANGED(moves_lo) && set_i64(z, "_moves_lo", S->moves_lo) < 0) ||
        (CHANGED(moves_pages) && set_i64(z, "_moves_pages", S->moves_pages) < 0) ||
        (CHANGED(cached_free) && set_i64(z, "compact_cached_free_pfn", S->cached_free) < 0) ||
        (CHANGED(blockskip_flush) &&
         set_bool(z, "compact_blockskip_flush", S->blockskip_flush) < 0))
        return -1;
    if (!S->caches_dropped) { /* no Python scanner runs while this loop does */
        if (set_i64(z, "mscan_block", -1) < 0 || set_i64(z, "fscan_block", -1) < 0)
            return -1;
        S->caches_dropped = 1;
    }
    if (S->cached_migrate[0] != S->in_cached_migrate[0] ||
        S->cached_migrate[1] != S->in_cached_migrate[1]) {
        if (set_i64_seq(z, "compact_cached_migrate_pfn", S->cached_migrate, 2) < 0)
            return -1;
    }
    if ((CHANGED(pcp_count) && set_i64(S->pcp, "count", S->pcp_count) < 0) ||
        (CHANGED(pcp_free_count) && set_i64(S->pcp, "free_count", S->pcp_free_count) < 0))
        return -1;
#undef CHANGED
    release_buffers(S);
    return 0;
}

/* -- free page accounting (Zone._account_block) --------------------------------------- */
static inline void account_block(St *S, int64_t block, int64_t change)
{
    S->nr_free += change;
    int64_t before = S->nfp[block];
    int64_t after = before + change;
    S->nfp[block] = (int16_t)after;
    if (!S->dirty[block]) { /* _mark_dirty() */
        S->dirty[block] = 1;
        S->nr_dirty++;
    }
    if ((before == PB) != (after == PB)) {
        S->nr_full += after == PB ? 1 : -1;
        int64_t buddy = block ^ 1; /* the other pageblock of the order-10 pair */
        if (buddy < S->nr_blocks && S->nfp[buddy] == PB)
            S->nr_pairs += after == PB ? 1 : -1;
    }
}

/* -- the content-tag queue (Zone.move_content / flush_moves) -------------------------- */
static int moves_out(St *S)
{
    if (!S->mv_src.n)
        return 0;
    PyObject *src = new_i64_array(S->mv_src.v, S->mv_src.n);
    PyObject *dst = src ? new_i64_array(S->mv_dst.v, S->mv_dst.n) : NULL;
    PyObject *moves = dst ? getattr_s(S->zone, "_moves") : NULL;
    PyObject *pair = moves ? PyTuple_Pack(2, src, dst) : NULL;
    int r = pair ? PyList_Append(moves, pair) : -1;
    Py_XDECREF(pair);
    Py_XDECREF(moves);
    Py_XDECREF(dst);
    Py_XDECREF(src);
    if (r < 0)
        return -1;
    S->mv_src.n = S->mv_dst.n = 0;
    return 0;
}

static int flush_moves(St *S)
{
    if (moves_out(S) < 0)
        return -1;
    if (set_i64(S->zone, "_moves_lo", S->moves_lo) < 0 ||
        set_i64(S->zone, "_moves_pages", S->moves_pages) < 0)
        return -1;
    PyObject *r = callmethod0(S->zone, "flush_moves");
    if (!r)
        return -1;
    Py_DECREF(r);
    if (get_i64(S->zone, "_moves_lo", &S->moves_lo) < 0 ||
        get_i64(S->zone, "_moves_pages", &S->moves_pages) < 0)
        return -1;
    S->in_moves_lo = S->moves_lo; /* what the zone holds now */
    S->in_moves_pages = S->moves_pages;
    return 0;
}

/* Zone.move_content(src, dst, src_block, dst_lo): folio_copy(), queued */
static int move_content(St *S, const int64_t *src, const int64_t *dst, Py_ssize_t m,
                        int64_t src_block, int64_t dst_lo)
{
    if (!m)
        return 0;
    if (src_block >= S->moves_lo && flush_moves(S) < 0)
        return -1; /* a source may be a queued target: apply the queue first */
    if (vec_reserve(&S->mv_src, m) < 0 || vec_reserve(&S->mv_dst, m) < 0)
        return -1;
    memcpy(S->mv_src.v + S->mv_src.n, src, (size_t)m * 8);
    memcpy(S->mv_dst.v + S->mv_dst.n, dst, (size_t)m * 8);
    S->mv_src.n += m;
    S->mv_dst.n += m;
    if (dst_lo < S->moves_lo)
        S->moves_lo = dst_lo;
    S->moves_pages += m;
    if (S->moves_pages >= MOVE_FLUSH_PAGES)
        return flush_moves(S);
    return 0;
}

/* -- the buddy allocator --------------------------------------------------------------- */
typedef struct {
    int64_t *key, *cnt, *before;
    Py_ssize_t mask;
} Map;

static int map_init(Map *m, Py_ssize_t n)
{
    Py_ssize_t cap = 16;
    while (cap < 2 * n + 2)
        cap *= 2;
    m->key = malloc((size_t)cap * 8);
    m->cnt = malloc((size_t)cap * 8);
    m->before = malloc((size_t)cap * 8);
    if (!m->key || !m->cnt || !m->before) {
        free(m->key);
        free(m->cnt);
        free(m->before);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < cap; i++)
        m->key[i] = -1;
    m->mask = cap - 1;
    return 0;
}

static void map_free(Map *m)
{
    free(m->key);
    free(m->cnt);
    free(m->before);
}

/* free frames of the aligned 2^order group g before these frees (the frees are PCP frames);
 * an order-10 group without its buddy pageblock never completes */
static int64_t free_before(St *S, int64_t g, int order)
{
    int64_t size = (int64_t)1 << order;
    if (order < PAGEBLOCK_ORDER) {
        int64_t k = 0;
        const uint8_t *s = S->state + g * size;
        for (int64_t i = 0; i < size; i++)
            k += s[i] == FREE;
        return k;
    }
    if (order == PAGEBLOCK_ORDER)
        return S->nfp[g];
    if (2 * g + 1 >= S->nr_blocks)
        return -size;
    return (int64_t)S->nfp[2 * g] + S->nfp[2 * g + 1];
}

/* add k frees to group g; did they complete it? */
static int map_add(St *S, Map *m, int64_t g, int64_t k, int order)
{
    Py_ssize_t i = (Py_ssize_t)((uint64_t)g * 0x9E3779B97F4A7C15ull >> 20) & m->mask;
    while (m->key[i] != g && m->key[i] != -1)
        i = (i + 1) & m->mask;
    if (m->key[i] == -1) {
        m->key[i] = g;
        m->cnt[i] = 0;
        m->before[i] = free_before(S, g, order);
    }
    m->cnt[i] += k;
    return m->before[i] + m->cnt[i] == ((int64_t)1 << order);
}

/* compaction_capture() (Zone._find_capture): the first aligned 2^order group that these
 * frees complete, in the order of the frees; a part of one pageblock counts at once for
 * orders >= pageblock_order (it lies in one group) */
static int find_capture(St *S, Part *parts, Py_ssize_t nparts, Py_ssize_t total, int order,
                        int64_t *start)
{
    Map m;
    if (map_init(&m, total) < 0)
        return -1;
    int found = 0;
    for (Py_ssize_t j = 0; j < nparts && !found; j++) {
        Part *p = &parts[j];
        if (order >= PAGEBLOCK_ORDER && p->block >= 0) {
            int64_t g = p->block >> (order - PAGEBLOCK_ORDER);
            if (map_add(S, &m, g, p->n, order)) {
                *start = g << order;
                found = 1;
            }
            continue;
        }
        for (Py_ssize_t i = 0; i < p->n; i++) {
            int64_t g = part_at(p, i) >> order;
            if (map_add(S, &m, g, 1, order)) {
                *start = g << order;
                found = 1;
                break;
            }
        }
    }
    map_free(&m);
    return found;
}

/* Zone.free_to_buddy(parts): __free_one_page() of order-0 pages in order, merging implicit;
 * the compacting task's capture_control takes the first block of its order they complete */
static int free_to_buddy(St *S, Part *parts, Py_ssize_t nparts)
{
    Py_ssize_t n = 0;
    for (Py_ssize_t j = 0; j < nparts; j++)
        n += parts[j].n;
    if (!n)
        return 0;
    S->buddy_frees += n;
    int captured = 0;
    int64_t start = 0, size = 0;
    if (S->zc_active && S->zc_page < 0) {
        captured = find_capture(S, parts, nparts, n, S->zc_order, &start);
        if (captured < 0)
            return -1;
    }
    if (captured) {
        size = (int64_t)1 << S->zc_order;
        uint8_t *seg = S->state + start;
        if (size == PB) { /* its free frames are the pageblock's free count */
            int64_t cb = start >> PAGEBLOCK_ORDER;
            account_block(S, cb, -(int64_t)S->nfp[cb]);
        } else if (size < PB) {
            int64_t k = 0;
            for (int64_t i = 0; i < size; i++)
                k += seg[i] == FREE;
            if (k)
                account_block(S, start >> PAGEBLOCK_ORDER, -k);
        } else {
            for (int64_t i = 0; i < size; i++)
                if (seg[i] == FREE)
                    account_block(S, (start + i) >> PAGEBLOCK_ORDER, -1);
        }
        memset(seg, ALLOCATED, (size_t)size);
        S->zc_page = start;
        if (set_i64(S->zc, "page", start) < 0)
            return -1;
    }
    for (Py_ssize_t j = 0; j < nparts; j++) {
        Part *p = &parts[j];
        int64_t k = 0;
        for (Py_ssize_t i = 0; i < p->n; i++) {
            int64_t pfn = part_at(p, i);
            if (captured && pfn >= start && pfn < start + size)
                continue;
            S->state[pfn] = FREE;
            k++;
            if (p->block < 0) /* a part over several pageblocks (Zone._account) */
                account_block(S, pfn >> PAGEBLOCK_ORDER, 1);
        }
        if (k && p->block >= 0)
            account_block(S, p->block, k);
    }
    return 0;
}

/* free_to_buddy() of a sequence of (pfns, pageblock) parts, the first one from index
 * `head` on (PerCpuPages._head) */
static int free_parts(St *S, PyObject *lst, int64_t head)
{
    PyObject *seq = PySequence_Fast(lst, "_compact: parts must be a sequence");
    if (!seq)
        return -1;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq), opened = 0;
    Part *parts = k ? calloc((size_t)k, sizeof(Part)) : NULL;
    int r = -1;
    if (k && !parts) {
        PyErr_NoMemory();
        goto out;
    }
    for (; opened < k; opened++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, opened);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 2) {
            PyErr_SetString(PyExc_TypeError, "_compact: a part must be (pfns, pageblock)");
            goto out;
        }
        long long b = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 1));
        if (b == -1 && PyErr_Occurred())
            goto out;
        if (part_open(PyTuple_GET_ITEM(t, 0), b, &parts[opened]) < 0)
            goto out;
    }
    if (k && head) {
        if (head > parts[0].n) {
            PyErr_SetString(PyExc_ValueError, "_compact: pcp._head is past its chunk");
            goto out;
        }
        parts[0].p += head * parts[0].stride;
        parts[0].n -= head;
    }
    r = free_to_buddy(S, parts, k);
out:
    for (Py_ssize_t j = 0; j < opened; j++)
        PyBuffer_Release(&parts[j].view);
    free(parts);
    Py_DECREF(seq);
    return r;
}

/* Zone.pcp_free(pfns, block): free_unref_page() of order-0 pages; the common case (the list
 * stays below pcp->high) here, the rest in PerCpuPages.add (free_pcppages_bulk) */
static int pcp_free(St *S, const int64_t *pfns, Py_ssize_t n, int64_t block)
{
    for (Py_ssize_t i = 0; i < n; i++)
        S->state[pfns[i]] = PCP;
    PyObject *arr = new_i64_array(pfns, n);
    if (!arr)
        return -1;
    int64_t cap = S->pcp_batch << PCP_BATCH_SCALE_MAX;
    if (0 < n && n < S->pcp_high - S->pcp_count) {
        PyObject *pb = PyLong_FromLongLong(block);
        PyObject *t = pb ? PyTuple_Pack(2, arr, pb) : NULL;
        PyObject *r = t ? callmethod1(S->chunks, "append", t) : NULL;
        Py_XDECREF(t);
        Py_XDECREF(pb);
        Py_DECREF(arr);
        if (!r)
            return -1;
        Py_DECREF(r);
        S->pcp_count += n;
        int64_t fc = S->pcp_free_count + n;
        S->pcp_free_count = fc < cap ? fc : cap;
        return 0;
    }
    if (set_i64(S->pcp, "count", S->pcp_count) < 0 ||
        set_i64(S->pcp, "free_count", S->pcp_free_count) < 0) {
        Py_DECREF(arr);
        return -1;
    }
    PyObject *bulks = PyObject_CallMethod(S->pcp, "add", "OL", arr, (long long)block);
    Py_DECREF(arr);
    if (!bulks)
        return -1;
    if (get_i64(S->pcp, "count", &S->pcp_count) < 0 ||
        get_i64(S->pcp, "free_count", &S->pcp_free_count) < 0) {
        Py_DECREF(bulks);
        return -1;
    }
    S->in_pcp_count = S->pcp_count; /* what the pcp object holds now */
    S->in_pcp_free_count = S->pcp_free_count;
    PyObject *seq = PySequence_Fast(bulks, "_compact: pcp.add must return a list");
    Py_DECREF(bulks);
    if (!seq)
        return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++)
        if (free_parts(S, PySequence_Fast_GET_ITEM(seq, i), 0) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    Py_DECREF(seq);
    return 0;
}

/* Zone.drain_pages(): drain_local_pages(zone), every per-CPU page into the buddy lists,
 * oldest first (PerCpuPages.drain: the chunks, the first one from pcp._head) */
static int drain_pages(St *S)
{
    int64_t head;
    if (get_i64(S->pcp, "_head", &head) < 0)
        return -1;
    /* a list of the chunks (their buffers stay exported while they are freed) */
    PyObject *chunks = PySequence_List(S->chunks);
    if (!chunks)
        return -1;
    PyObject *cr = callmethod0(S->chunks, "clear");
    if (!cr || (head && set_i64(S->pcp, "_head", 0) < 0)) {
        Py_XDECREF(cr);
        Py_DECREF(chunks);
        return -1;
    }
    Py_DECREF(cr);
    S->pcp_count = 0;
    S->pcp_free_count = 0;
    int r = free_parts(S, chunks, head);
    Py_DECREF(chunks);
    return r;
}

/* -- deferral of the zone's has_free_order() below pageblock order ---------------------- */
static int has_free_order(St *S, int order)
{
    if (order > PAGEBLOCK_ORDER)
        return S->nr_pairs > 0;
    if (S->nr_full > 0)
        return 1;
    if (order == PAGEBLOCK_ORDER)
        return 0;
    /* Zone._refresh_lo and the order-0..8 counts: the Python reference */
    if (sync_out(S) < 0)
        return -1;
    PyObject *r = PyObject_CallMethod(S->zone, "has_free_order", "i", order);
    if (!r || sync_in(S) < 0) {
        Py_XDECREF(r);
        return -1;
    }
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

/* -- compact_finished -------------------------------------------------------------------- */
static void reset_cached_positions(St *S)
{
    S->cached_migrate[0] = S->cached_migrate[1] = S->zone_start;
    S->cached_free = (S->nr_pages - 1) & BLOCK_MASK;
}

static int compact_finished(St *S)
{
    if ((S->free_pfn >> PAGEBLOCK_ORDER) <= (S->migrate_pfn >> PAGEBLOCK_ORDER)) {
        /* compact_scanners_met() */
        reset_cached_positions(S);
        if (S->direct)
            S->blockskip_flush = 1;
        return S->whole_zone ? COMPACT_COMPLETE : COMPACT_PARTIAL_SKIPPED;
    }
    if (S->order < 0) /* is_via_compact_memory */
        return COMPACT_CONTINUE;
    if (S->migrate_pfn & (PB - 1)) /* always finish a pageblock */
        return COMPACT_CONTINUE;
    int r = has_free_order(S, S->order);
    if (r < 0)
        return -1;
    if (r)
        return COMPACT_SUCCESS;
    if (S->contended)
        return COMPACT_CONTENDED;
    return COMPACT_CONTINUE;
}

/* -- the migration scanner ------------------------------------------------------------- */
static void update_cached_migrate(St *S, int64_t pfn)
{
    pfn = (pfn + PB) & BLOCK_MASK; /* pageblock_end_pfn() */
    if (pfn > S->cached_migrate[0])
        S->cached_migrate[0] = pfn;
    if (S->mode != MIGRATE_ASYNC && pfn > S->cached_migrate[1])
        S->cached_migrate[1] = pfn;
}

/* suitable_migration_source() */
static inline int suitable_source_block(St *S, int64_t b)
{
    if (S->mode != MIGRATE_ASYNC || !S->direct)
        return 1;
    return S->mt[b] == S->migratetype;
}

static inline int source_ok(St *S, int64_t b)
{
    if (!S->ignore_skip && S->skip[b])
        return 0;
    return suitable_source_block(S, b);
}

/* first pageblock of [b, b + window) the migration scanner would scan, or -1; the unsuitable
 * blocks passed on the way update the cached migrate pfn (the last of them counts) */
static int64_t next_source_block(St *S, int64_t b, int64_t window)
{
    int64_t last = window, found = 0;
    for (int64_t i = 0; i < window; i++)
        if ((S->ignore_skip || !S->skip[b + i]) && suitable_source_block(S, b + i)) {
            last = i;
            found = 1;
            break;
        }
    for (int64_t i = last - 1; i >= 0; i--)
        if ((S->ignore_skip || !S->skip[b + i]) && !suitable_source_block(S, b + i)) {
            update_cached_migrate(S, (b + i + 1) * PB);
            break;
        }
    return found ? b + last : -1;
}

/* isolate_migratepages_block(): the LRU pages of [low_pfn, end_pfn) onto cc->migratepages,
 * COMPACT_CLUSTER_MAX of them or all in a finish_pageblock pass; free frames are stepped
 * over; in async direct compaction a frame that cannot be isolated aborts its cc->order
 * aligned block (skip_on_failure), and a block that gave pages is migrated at its end */
static int isolate_migratepages_block(St *S, int64_t low_pfn, int64_t end_pfn)
{
    int64_t start_pfn = low_pfn, b = low_pfn >> PAGEBLOCK_ORDER;
    int valid_page = !(low_pfn & (PB - 1)) || low_pfn == S->zone_start;
    int64_t need;
    if (S->finish_pageblock) {
        need = end_pfn - low_pfn;
    } else { /* max(cluster_max - nr_migratepages, 1) */
        need = S->cluster_max - S->nr_migratepages;
        if (need < 1)
            need = 1;
    }
    int skip_on_failure = S->direct && S->mode == MIGRATE_ASYNC;
    int64_t nr_isolated = 0;
    Py_ssize_t base = S->mig.n;
    if (valid_page && !S->ignore_skip && S->skip[b]) {
        low_pfn = end_pfn;
    } else {
        int o = S->order > 0 ? S->order : 0;
        int64_t size = (int64_t)1 << (o < PAGEBLOCK_ORDER ? o : PAGEBLOCK_ORDER);
        int64_t pfn = low_pfn;
        while (pfn < end_pfn) {
            int64_t sub_end = end_pfn;
            if (skip_on_failure) {
                sub_end = (pfn / size + 1) * size;
                if (sub_end > end_pfn)
                    sub_end = end_pfn;
            }
            int failed = 0, done = 0;
            int64_t q;
            for (q = pfn; q < sub_end; q++) {
                uint8_t s = S->state[q];
                if (s == FREE)
                    continue;
                if (s == LRU) {
                    if (vec_push(&S->mig, q) < 0)
                        return -1;
                    if (++nr_isolated == need) { /* COMPACT_CLUSTER_MAX reached */
                        q++;
                        done = 1;
                        break;
                    }
                    continue;
                }
                if (skip_on_failure) { /* isolation failed in this order block */
                    failed = 1;
                    break;
                }
            }
            if (done) {
                pfn = q;
                break;
            }
            if (failed) { /* putback_movable_pages() */
                S->mig.n = base;
                nr_isolated = 0;
                pfn = sub_end;
                continue;
            }
            pfn = sub_end;
            if (skip_on_failure && nr_isolated)
                break; /* isolated a whole order block: migrate it now */
        }
        low_pfn = pfn;
        if (nr_isolated && valid_page && !S->ignore_skip)
            S->skip[b] = 1; /* test_and_set_skip() */
    }
    if (low_pfn == end_pfn && (!nr_isolated || S->finish_pageblock)) {
        if (valid_page && !S->ignore_skip && !nr_isolated)
            S->skip[b] = 1;
        update_cached_migrate(S, low_pfn);
    }
    int64_t scanned = low_pfn - start_pfn;
    S->total_mscan += scanned;
    S->acc[W_MIGRATE_SCANNED] += scanned;
    if (nr_isolated) {
        for (Py_ssize_t i = base; i < S->mig.n; i++)
            S->state[S->mig.v[i]] = ISOLATED_LRU;
        S->nr_migratepages += nr_isolated;
        S->d_compact_isolated += nr_isolated;
        S->acc[W_ISOLATED] += nr_isolated;
    }
    S->migrate_pfn = low_pfn;
    return 0;
}

/* isolate_migratepages(): the first suitable pageblock from cc->migrate_pfn up, without
 * crossing the free scanner */
static int isolate_migratepages(St *S)
{
    int64_t low_pfn = S->migrate_pfn;
    int64_t block_end = (low_pfn + PB) & BLOCK_MASK; /* pageblock_end_pfn() */
    while (block_end <= S->free_pfn) {
        int64_t b = (block_end - 1) >> PAGEBLOCK_ORDER;
        int aligned = !(low_pfn & (PB - 1)) || low_pfn == S->zone_start;
        if (aligned && source_ok(S, b)) {
            /* the common case: the next pageblock is a suitable source */
        } else if (aligned) {
            int64_t nb_max = (S->free_pfn >> PAGEBLOCK_ORDER) - b;
            if (nb_max <= 0)
                break;
            int64_t window = nb_max < S->migrate_skip_window ? nb_max : S->migrate_skip_window;
            int64_t j = next_source_block(S, b, window);
            if (j < 0) {
                S->migrate_pfn = low_pfn = (b + window) * PB;
                block_end = low_pfn + PB;
                continue;
            }
            if (j > b) {
                S->migrate_pfn = low_pfn = j * PB;
                block_end = low_pfn + PB;
                continue;
            }
        } else if (!suitable_source_block(S, b)) {
            update_cached_migrate(S, block_end);
            S->migrate_pfn = low_pfn = block_end;
            block_end += PB;
            continue;
        }
        if (isolate_migratepages_block(S, low_pfn, block_end) < 0)
            return -1;
        break;
    }
    return S->nr_migratepages ? ISOLATE_SUCCESS : ISOLATE_NONE;
}

/* -- the free scanner ------------------------------------------------------------------ */
/* suitable_migration_target() and isolation_suitable() */
static inline int target_ok(St *S, int64_t b)
{
    if (S->nfp[b] == PB)
        return 0;
    if (!S->ignore_block && S->mt[b] != MIGRATE_MOVABLE)
        return 0;
    return S->ignore_skip || !S->skip[b];
}

static int64_t next_target_block(St *S, int64_t b, int64_t b_low)
{
    for (int64_t j = b; j >= b_low; j--)
        if (target_ok(S, j))
            return j;
    return -1;
}

/* isolate_freepages_block(): free pages of [start_pfn, end_pfn) in ascending order until
 * enough; returns the pfn where the scan stopped */
static int64_t isolate_freepages_block(St *S, int64_t start_pfn, int64_t end_pfn)
{
    int64_t b = start_pfn >> PAGEBLOCK_ORDER;
    int64_t nr_freepages = S->fp.n - S->fp_head;
    int64_t need = S->nr_migratepages - nr_freepages;
    if (need <= 0)
        need = 1;
    int64_t k = 0, stop = end_pfn;
    Py_ssize_t base = S->fp.n;
    if (vec_reserve(&S->fp, need < end_pfn - start_pfn ? need : end_pfn - start_pfn) < 0)
        return -1;
    for (int64_t q = start_pfn; q < end_pfn; q++)
        if (S->state[q] == FREE) {
            S->fp.v[S->fp.n++] = q;
            if (++k == need) {
                stop = q + 1;
                break;
            }
        }
    int64_t scanned = stop - start_pfn;
    S->total_fscan += scanned;
    S->acc[W_FREE_SCANNED] += scanned;
    if (k) {
        for (Py_ssize_t i = base; i < S->fp.n; i++)
            S->state[S->fp.v[i]] = ISOLATED_FREE;
        account_block(S, b, -k);
        S->d_compact_isolated += k;
        S->acc[W_FREE_ISOLATED] += k;
    }
    return stop;
}

/* isolate_freepages(): free pages from pageblocks below cc->free_pfn, down to the migration
 * scanner's block, until there are as many as pages to migrate */
static int isolate_freepages(St *S)
{
    S->acc[W_ISOLATE_FREE]++;
    int64_t isolate_start_pfn = S->free_pfn;
    int64_t block_start = isolate_start_pfn & BLOCK_MASK; /* pageblock_start_pfn() */
    int64_t block_end = block_start + PB;
    if (block_end > S->nr_pages) /* min(..., zone_end_pfn) */
        block_end = S->nr_pages;
    int64_t low_pfn = (S->migrate_pfn + PB) & BLOCK_MASK; /* pageblock_end_pfn() */
    while (block_start >= low_pfn) {
        int64_t b = block_start >> PAGEBLOCK_ORDER;
        int64_t j = target_ok(S, b) ? b : next_target_block(S, b, low_pfn >> PAGEBLOCK_ORDER);
        if (j < 0) {
            block_start = (low_pfn >> PAGEBLOCK_ORDER) * PB - PB;
            isolate_start_pfn = block_start;
            break;
        }
        if (j < b) {
            block_start = j * PB;
            block_end = block_start + PB;
            isolate_start_pfn = block_start;
        }
        isolate_start_pfn = isolate_freepages_block(S, isolate_start_pfn, block_end);
        if (isolate_start_pfn < 0)
            return -1;
        if (isolate_start_pfn == block_end) { /* update_pageblock_skip() */
            if (!S->ignore_skip)
                S->skip[block_start >> PAGEBLOCK_ORDER] = 1;
            if (block_start - PB < S->cached_free)
                S->cached_free = block_start - PB;
        }
        if (S->fp.n - S->fp_head >= S->nr_migratepages) {
            if (isolate_start_pfn >= block_end)
                isolate_start_pfn = block_start - PB;
            break;
        }
        if (isolate_start_pfn < block_end)
            break;
        block_end = block_start;
        block_start -= PB;
        isolate_start_pfn = block_start;
    }
    S->free_pfn = isolate_start_pfn;
    return 0;
}

/* compaction_alloc(): targets for n pages from the head of cc->freepages, refilled by
 * isolate_freepages() when empty; fewer when the free scanner meets the migration scanner */
static Py_ssize_t compaction_alloc(St *S, Py_ssize_t n, int64_t *dst)
{
    Py_ssize_t got = 0;
    while (got < n) {
        if (S->fp.n == S->fp_head) {
            S->fp.n = S->fp_head = 0;
            if (isolate_freepages(S) < 0)
                return -1;
            if (S->fp.n == S->fp_head)
                break;
        }
        Py_ssize_t avail = S->fp.n - S->fp_head;
        Py_ssize_t t = n - got < avail ? n - got : avail;
        memcpy(dst + got, S->fp.v + S->fp_head, (size_t)t * 8);
        S->fp_head += t;
        got += t;
    }
    return got;
}

static int log_call(St *S, int64_t nr_pages);

/* migrate_pages(&cc->migratepages, compaction_alloc, ...): a target for every page (the list
 * walked from its head: the last isolated page first), copy, free the sources to the per-CPU
 * list; returns the pages that could not be migrated (put back on the LRU) */
static int64_t migrate_pages(St *S)
{
    Py_ssize_t n = S->mig.n;
    if (vec_reserve(&S->tmp_dst, n) < 0 || vec_reserve(&S->tmp_ok, n) < 0)
        return -1;
    int64_t *dst = S->tmp_dst.v, *src = S->tmp_ok.v;
    for (Py_ssize_t i = 0; i < n; i++)
        src[i] = S->mig.v[n - 1 - i];
    S->mig.n = 0;
    Py_ssize_t m = compaction_alloc(S, n, dst);
    if (m < 0)
        return -1;
    int64_t nr_failed = n - m;
    if (m) {
        int64_t src_block = src[0] >> PAGEBLOCK_ORDER; /* the sources lie in one pageblock */
        int64_t lo = dst[0];
        for (Py_ssize_t i = 1; i < m; i++)
            if (dst[i] < lo)
                lo = dst[i];
        if (move_content(S, src, dst, m, src_block, lo >> PAGEBLOCK_ORDER) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < m; i++)
            S->state[dst[i]] = LRU;
        if (pcp_free(S, src, m, src_block) < 0) /* folio_put(src) */
            return -1;
    }
    if (nr_failed) {
        for (Py_ssize_t i = m; i < n; i++)
            S->state[src[i]] = LRU; /* putback_movable_pages */
        if (sync_out(S) < 0)
            return -1;
        PyObject *r = PyObject_CallMethod(S->comp, "_mark", "iL", M_MIGRATE_FAIL,
                                          (long long)nr_failed);
        if (!r || sync_in(S) < 0) {
            Py_XDECREF(r);
            return -1;
        }
        Py_DECREF(r);
    }
    S->nr_migratepages = 0;
    S->d_pgmigrate_success += m;
    S->d_pgmigrate_fail += nr_failed;
    if (log_call(S, m) < 0)
        return -1;
    return nr_failed;
}

/* Compactor._log_call: one row of the work log per migrate_pages() call */
static int log_call(St *S, int64_t nr_pages)
{
    S->acc[W_BUDDY_FREED] += S->buddy_frees - S->buddy_seen;
    S->buddy_seen = S->buddy_frees;
    if (vec_push(&S->log_pages, nr_pages) < 0 || vec_reserve(&S->log_work, NR_WORK) < 0)
        return -1;
    memcpy(S->log_work.v + S->log_work.n, S->acc, sizeof S->acc);
    S->log_work.n += NR_WORK;
    memset(S->acc, 0, sizeof S->acc);
    return 0;
}

/* -- compact_zone ----------------------------------------------------------------------- */
static inline int capc_captured(St *S)
{
    if (S->capc_kind == 1)
        return S->zc_page >= 0;
    return S->capc_kind == 2 && S->capc_page >= 0;
}

static int compact_zone_loop(St *S, int update_cached, int *ret_out)
{
    int64_t last_migrated_pfn = 0, start_pfn = S->zone_start;
    int ret;
    for (;;) {
        ret = compact_finished(S);
        if (ret < 0)
            return -1;
        if (ret != COMPACT_CONTINUE)
            break;
        int64_t iteration_start_pfn = S->migrate_pfn;
        S->finish_pageblock =
            (last_migrated_pfn & BLOCK_MASK) == (iteration_start_pfn & BLOCK_MASK);
        int isolated = isolate_migratepages(S);
        if (isolated < 0)
            return -1;
        if (isolated == ISOLATE_NONE) {
            if (update_cached)
                S->cached_migrate[1] = S->cached_migrate[0];
        } else {
            update_cached = 0;
            last_migrated_pfn = (S->migrate_pfn - 1) & BLOCK_MASK;
            if (last_migrated_pfn < start_pfn)
                last_migrated_pfn = start_pfn;
            int captured_before = capc_captured(S);
            if (captured_before) {
                S->d_batches_after++;
                S->d_pages_after += S->nr_migratepages;
            }
            int64_t nr_failed = migrate_pages(S);
            if (nr_failed < 0)
                return -1;
            if (capc_captured(S) && !captured_before)
                S->d_capture_in_migrate++;
            if (nr_failed && !((S->free_pfn >> PAGEBLOCK_ORDER) <=
                               (S->migrate_pfn >> PAGEBLOCK_ORDER))) {
                ret = COMPACT_CONTENDED; /* -ENOMEM, no target left */
                break;
            }
            if (capc_captured(S)) { /* v6.3+: stop if a page has been captured */
                ret = COMPACT_SUCCESS;
                break;
            }
        }
        /* check_drain */
        if (S->order > 0 && last_migrated_pfn) {
            int64_t current_block_start = S->migrate_pfn & ~(((int64_t)1 << S->order) - 1);
            if (last_migrated_pfn < current_block_start) {
                int had = capc_captured(S);
                if (drain_pages(S) < 0)
                    return -1;
                S->acc[W_DRAIN]++;
                if (capc_captured(S) && !had)
                    S->d_capture_in_drain++;
                last_migrated_pfn = 0;
            }
        }
    }
    *ret_out = ret;
    return 0;
}

/* read a list of pfn arrays into v */
static int read_pfn_list(PyObject *cc, const char *name, vec *v)
{
    PyObject *lst = getattr_s(cc, name);
    if (!lst)
        return -1;
    PyObject *seq = PySequence_Fast(lst, "_compact: cc lists must be lists");
    Py_DECREF(lst);
    if (!seq)
        return -1;
    for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(seq); j++) {
        Part p;
        if (part_open(PySequence_Fast_GET_ITEM(seq, j), -1, &p) < 0) {
            Py_DECREF(seq);
            return -1;
        }
        int r = vec_reserve(v, p.n);
        for (Py_ssize_t i = 0; r == 0 && i < p.n; i++)
            v->v[v->n++] = part_at(&p, i);
        PyBuffer_Release(&p.view);
        if (r < 0) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

static int set_pfn_list(PyObject *cc, const char *name, const int64_t *v, Py_ssize_t n)
{
    PyObject *lst = PyList_New(0);
    if (!lst)
        return -1;
    if (n) {
        PyObject *arr = new_i64_array(v, n);
        if (!arr || PyList_Append(lst, arr) < 0) {
            Py_XDECREF(arr);
            Py_DECREF(lst);
            return -1;
        }
        Py_DECREF(arr);
    }
    int r = setattr_s(cc, name, lst);
    Py_DECREF(lst);
    return r;
}

static int read_cc(St *S)
{
    int64_t x;
    PyObject *cc = S->cc;
#define GETI(name, field)                \
    if (get_i64(cc, name, &x) < 0)       \
        return -1;                       \
    S->field = x;
#define GETB(name, field)                \
    if (get_bool(cc, name, &S->field) < 0) \
        return -1;
    GETI("order", order)
    GETI("mode", mode)
    GETI("migratetype", migratetype)
    GETB("direct_compaction", direct)
    GETB("whole_zone", whole_zone)
    GETB("ignore_skip_hint", ignore_skip)
    GETB("ignore_block_suitable", ignore_block)
    GETB("contended", contended)
    GETB("finish_pageblock", finish_pageblock)
    GETI("migrate_pfn", migrate_pfn)
    GETI("free_pfn", free_pfn)
    GETI("total_migrate_scanned", total_mscan)
    GETI("total_free_scanned", total_fscan)
#undef GETI
#undef GETB
    if (read_pfn_list(cc, "migratepages", &S->mig) < 0 ||
        read_pfn_list(cc, "freepages", &S->fp) < 0)
        return -1;
    S->nr_migratepages = S->mig.n;
    return 0;
}

static int write_cc(St *S)
{
    PyObject *cc = S->cc;
    if (set_i64(cc, "migrate_pfn", S->migrate_pfn) < 0 ||
        set_i64(cc, "free_pfn", S->free_pfn) < 0 ||
        set_bool(cc, "finish_pageblock", S->finish_pageblock) < 0 ||
        set_i64(cc, "nr_migratepages", S->nr_migratepages) < 0 ||
        set_i64(cc, "nr_freepages", S->fp.n - S->fp_head) < 0 ||
        set_i64(cc, "total_migrate_scanned", S->total_mscan) < 0 ||
        set_i64(cc, "total_free_scanned", S->total_fscan) < 0 ||
        set_pfn_list(cc, "migratepages", S->mig.v, S->mig.n) < 0 ||
        set_pfn_list(cc, "freepages", S->fp.v + S->fp_head, S->fp.n - S->fp_head) < 0)
        return -1;
    return 0;
}

static PyObject *py_compact_zone_loop(PyObject *self, PyObject *args)
{
    PyObject *comp, *cc, *capc;
    int update_cached;
    long long skip_window;
    if (!PyArg_ParseTuple(args, "OOOpL", &comp, &cc, &capc, &update_cached, &skip_window))
        return NULL;
    if (skip_window < 1) {
        PyErr_SetString(PyExc_ValueError, "migrate_skip_window: must be >= 1 pageblock");
        return NULL;
    }
    St S;
    memset(&S, 0, sizeof S);
    S.migrate_skip_window = skip_window;
    S.comp = comp;
    S.cc = cc;
    int ret = -1, ok = -1;
    S.zone = getattr_s(comp, "zone");
    if (!S.zone)
        return NULL;
    if (get_i64(S.zone, "nr_pages", &S.nr_pages) < 0 ||
        get_i64(S.zone, "nr_blocks", &S.nr_blocks) < 0 ||
        get_i64(S.zone, "zone_start_pfn", &S.zone_start) < 0 ||
        get_i64(comp, "cluster_max", &S.cluster_max) < 0)
        goto out;
    S.zc = getattr_s(S.zone, "capture_control");
    if (!S.zc)
        goto out;
    S.zc_page = -1;
    if (S.zc != Py_None) {
        int64_t o;
        if (get_i64(S.zc, "order", &o) < 0)
            goto out;
        S.zc_active = 1;
        S.zc_order = (int)o;
        if (get_pfn_or_none(S.zc, "page", &S.zc_page) < 0)
            goto out;
    }
    S.capc_page = -1;
    if (capc == Py_None) {
        S.capc_kind = 0;
    } else if (capc == S.zc) {
        S.capc_kind = 1;
    } else {
        S.capc_kind = 2;
        if (get_pfn_or_none(capc, "page", &S.capc_page) < 0)
            goto out;
    }
    if (read_cc(&S) < 0 || sync_in(&S) < 0)
        goto out;
    ok = compact_zone_loop(&S, update_cached, &ret);
out:;
    /* hand everything back, also after an error (the exception raised stays the first) */
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
    int back = 0;
    if (S.have_buffers || ok == 0) {
        back = write_cc(&S) < 0 || sync_out(&S) < 0;
    }
    release_buffers(&S);
    if (et) {
        if (back)
            PyErr_Clear();
        PyErr_Restore(et, ev, etb);
    }
    free(S.log_pages.v);
    free(S.log_work.v);
    free(S.mig.v);
    free(S.fp.v);
    free(S.mv_src.v);
    free(S.mv_dst.v);
    free(S.tmp_dst.v);
    free(S.tmp_ok.v);
    Py_XDECREF(S.pcp);
    Py_XDECREF(S.chunks);
    Py_XDECREF(S.zc);
    Py_DECREF(S.zone);
    if (ok < 0 || back || PyErr_Occurred())
        return NULL;
    return PyLong_FromLong(ret);
}

static PyMethodDef methods[] = {
    {"compact_zone_loop", py_compact_zone_loop, METH_VARARGS,
     "compact_zone_loop(compactor, cc, capc, update_cached, migrate_skip_window) -> "
     "compact_result: the "
     "migrate_pages() loop of Compactor.compact_zone(), compiled"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_compact",
    .m_doc = "compact_zone()'s allocation loop in C (see _compact.c)",
    .m_size = -1,
    .m_methods = methods,
};

#ifndef MIGSIM_SOURCE_SHA256 /* setup.py defines it: the sha256 of this file */
#define MIGSIM_SOURCE_SHA256 ""
#endif

PyMODINIT_FUNC PyInit__compact(void)
{
    PyObject *np = PyImport_ImportModule("numpy");
    if (!np)
        return NULL;
    np_empty = PyObject_GetAttrString(np, "empty");
    np_int64 = PyObject_GetAttrString(np, "int64");
    Py_DECREF(np);
    if (!np_empty || !np_int64)
        return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (!m)
        return NULL;
    static const struct {
        const char *name;
        int value;
    } constants[] = {
        {"PAGEBLOCK_ORDER", PAGEBLOCK_ORDER},
        {"COMPACT_CLUSTER_MAX", COMPACT_CLUSTER_MAX},
        {"MOVE_FLUSH_PAGES", MOVE_FLUSH_PAGES},
        {"PCP_BATCH_SCALE_MAX", PCP_BATCH_SCALE_MAX},
        {"FREE", FREE},
        {"LRU", LRU},
        {"PCP", PCP},
        {"ISOLATED_FREE", ISOLATED_FREE},
        {"ISOLATED_LRU", ISOLATED_LRU},
        {"ALLOCATED", ALLOCATED},
        {"MIGRATE_ASYNC", MIGRATE_ASYNC},
        {"MIGRATE_MOVABLE", MIGRATE_MOVABLE},
        {"COMPACT_CONTINUE", COMPACT_CONTINUE},
        {"COMPACT_COMPLETE", COMPACT_COMPLETE},
        {"COMPACT_PARTIAL_SKIPPED", COMPACT_PARTIAL_SKIPPED},
        {"COMPACT_CONTENDED", COMPACT_CONTENDED},
        {"COMPACT_SUCCESS", COMPACT_SUCCESS},
        {"ISOLATE_NONE", ISOLATE_NONE},
        {"ISOLATE_SUCCESS", ISOLATE_SUCCESS},
        {"M_MIGRATE_FAIL", M_MIGRATE_FAIL},
        {"NR_WORK", NR_WORK},
        {"W_MIGRATE_SCANNED", W_MIGRATE_SCANNED},
        {"W_FREE_SCANNED", W_FREE_SCANNED},
        {"W_ISOLATED", W_ISOLATED},
        {"W_FREE_ISOLATED", W_FREE_ISOLATED},
        {"W_BUDDY_FREED", W_BUDDY_FREED},
        {"W_DRAIN", W_DRAIN},
        {"W_ISOLATE_FREE", W_ISOLATE_FREE},
    };
    if (PyModule_AddStringConstant(m, "SOURCE_SHA256", MIGSIM_SOURCE_SHA256) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    PyObject *c = PyDict_New();
    if (!c || PyModule_AddObject(m, "CONSTANTS", c) < 0) {
        Py_XDECREF(c);
        Py_DECREF(m);
        return NULL;
    }
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
        PyObject *v = PyLong_FromLong(constants[i].value);
        if (!v || PyDict_SetItemString(c, constants[i].name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(m);
            return NULL;
        }
        Py_DECREF(v);
    }
    return m;
}
