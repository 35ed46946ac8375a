/* A second "extension" that speaks only dlbridge's borrow-registry ABI
 * (src/python/borrow/capsule.rs), standing in for an extension built on
 * another dlbridge version: it shares no code with dlbridge.
 *
 * peer_acquire(obj, exclusive) borrows obj's memory (read through the
 * buffer protocol) in the registry at sys._dlbridge_borrow_registry and
 * returns a slot, or -1 for a conflict (peer_conflict_* describe it), or -2
 * when there is no registry. peer_release(slot) ends it. peer_create()
 * publishes the peer's own registry, a simpler one (any byte-range overlap
 * conflicts), for a process where the peer comes first.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef struct {
    uintptr_t start, end, data;
    size_t itemsize, gcd;
} BorrowKey;

typedef struct {
    BorrowKey key;
    int32_t exclusive;
    size_t readers;
} Conflict;

typedef struct {
    uint64_t version;
    void *state;
    int (*acquire)(void *, const BorrowKey *, int, Conflict *);
    int (*release)(void *, const BorrowKey *, int);
    size_t (*held)(void *);
} BorrowApi;

#define SLOTS 64
static BorrowKey keys[SLOTS];
static int kinds[SLOTS];
static int used[SLOTS];
static Conflict last;

static BorrowApi *api(void) {
    PyObject *capsule = PySys_GetObject("_dlbridge_borrow_registry"); /* borrowed */
    if (capsule == NULL || !PyCapsule_IsValid(capsule, "dlbridge.borrow_registry"))
        return NULL;
    BorrowApi *api = PyCapsule_GetPointer(capsule, "dlbridge.borrow_registry");
    return api != NULL && api->version >= 1 ? api : NULL;
}

static size_t gcd(size_t a, size_t b) {
    while (b) { size_t t = a % b; a = b; b = t; }
    return a;
}

int peer_acquire(PyObject *obj, int exclusive) {
    BorrowApi *a = api();
    if (a == NULL)
        return -2;
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_RECORDS_RO) != 0) {
        PyErr_Clear();
        return -3;
    }
    BorrowKey key = {0};
    uintptr_t data = (uintptr_t)view.buf;
    intptr_t low = 0, high = 0;
    size_t g = 0;
    int empty = 0;
    for (int i = 0; i < view.ndim; i++) {
        if (view.shape[i] == 0) empty = 1;
        if (view.shape[i] <= 1) continue;
        intptr_t reach = view.strides[i] * (view.shape[i] - 1);
        if (reach < 0) low += reach; else high += reach;
        g = gcd(g, (size_t)(view.strides[i] < 0 ? -view.strides[i] : view.strides[i]));
    }
    key.data = data;
    key.itemsize = (size_t)view.itemsize;
    key.gcd = g;
    key.start = empty ? data : data + low;
    key.end = empty ? data : data + high + view.itemsize;
    PyBuffer_Release(&view);
    int slot = 0;
    while (slot < SLOTS && used[slot]) slot++;
    if (slot == SLOTS)
        return -4;
    if (a->acquire(a->state, &key, exclusive, &last) != 0)
        return -1;
    keys[slot] = key;
    kinds[slot] = exclusive;
    used[slot] = 1;
    return slot;
}

int peer_release(int slot) {
    BorrowApi *a = api();
    if (a == NULL || slot < 0 || slot >= SLOTS || !used[slot])
        return -2;
    used[slot] = 0;
    return a->release(a->state, &keys[slot], kinds[slot]);
}

long peer_held(void) {
    BorrowApi *a = api();
    return a == NULL ? -1 : (long)a->held(a->state);
}

int peer_conflict_exclusive(void) { return last.exclusive; }
uintptr_t peer_conflict_start(void) { return last.key.start; }

/* --- the peer's own registry: a table of keys, any overlap conflicts ----- */

typedef struct { BorrowKey key; int count; } Entry; /* count > 0 readers, -1 writer */
static Entry table[SLOTS];
static int entries;
static long peer_calls;

static int same(const BorrowKey *a, const BorrowKey *b) {
    return a->start == b->start && a->end == b->end && a->data == b->data
        && a->itemsize == b->itemsize && a->gcd == b->gcd;
}

static int own_acquire(void *state, const BorrowKey *key, int exclusive, Conflict *out) {
    (void)state;
    peer_calls++;
    if (key->start >= key->end)
        return 0;
    for (int i = 0; i < entries; i++) {
        const BorrowKey *k = &table[i].key;
        if (k->start >= key->end || key->start >= k->end)
            continue;
        if (!exclusive && table[i].count > 0 && same(k, key)) {
            table[i].count++;
            return 0;
        }
        if (!exclusive && table[i].count > 0)
            continue;
        if (out) {
            out->key = *k;
            out->exclusive = table[i].count < 0;
            out->readers = table[i].count > 0 ? (size_t)table[i].count : 0;
        }
        return -1;
    }
    if (entries == SLOTS)
        return -1;
    table[entries].key = *key;
    table[entries].count = exclusive ? -1 : 1;
    entries++;
    return 0;
}

static int own_release(void *state, const BorrowKey *key, int exclusive) {
    (void)state;
    peer_calls++;
    if (key->start >= key->end)
        return 0;
    for (int i = 0; i < entries; i++) {
        if (!same(&table[i].key, key) || (table[i].count < 0) != (exclusive != 0))
            continue;
        if (table[i].count > 1) {
            table[i].count--;
        } else {
            table[i] = table[--entries];
        }
        return 0;
    }
    return -1;
}

static size_t own_held(void *state) {
    (void)state;
    return (size_t)entries;
}

static BorrowApi own = {1, NULL, own_acquire, own_release, own_held};

/* Publishes the peer's registry; 0, or -1 when one is already there. */
int peer_create(void) {
    if (PySys_GetObject("_dlbridge_borrow_registry") != NULL)
        return -1;
    PyObject *capsule = PyCapsule_New(&own, "dlbridge.borrow_registry", NULL);
    if (capsule == NULL) { PyErr_Clear(); return -2; }
    int rc = PySys_SetObject("_dlbridge_borrow_registry", capsule);
    Py_DECREF(capsule);
    return rc;
}

/* How many calls the peer's own registry has served (0 unless it is the one in use). */
long peer_own_calls(void) { return peer_calls; }
