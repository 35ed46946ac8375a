/* A foreign Arrow PyCapsule producer for exactly-once and hostile-input
 * tests: make_pair() builds ("arrow_schema", "arrow_array") capsules over 16
 * int32 values it owns (a primitive array, or a FixedSizeList of them), the
 * way a C library does (capsule destructors that release only a struct the
 * consumer did not move out), with one field made to lie on request;
 * make_stream() builds an "arrow_array_stream" capsule of N honest chunks.
 * Every release callback counts its calls. */
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ArrowSchema {
    const char *format, *name, *metadata;
    int64_t flags, n_children;
    struct ArrowSchema **children, *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};
struct ArrowArray {
    int64_t length, null_count, offset, n_buffers, n_children;
    const void **buffers;
    struct ArrowArray **children, *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};
struct ArrowArrayStream {
    int (*get_schema)(struct ArrowArrayStream *, struct ArrowSchema *);
    int (*get_next)(struct ArrowArrayStream *, struct ArrowArray *);
    const char *(*get_last_error)(struct ArrowArrayStream *);
    void (*release)(struct ArrowArrayStream *);
    void *private_data;
};

enum Lie {
    HONEST, NEGATIVE_LENGTH, NEGATIVE_OFFSET, OFFSET_OVERFLOW, CHILD_TOO_SHORT,
    NULL_DATA, NULL_BUFFERS, THREE_BUFFERS, UNKNOWN_FORMAT, PRIMITIVE_WITH_CHILD,
    NULLS, NULL_COUNT_WITHOUT_BITMAP, MISALIGNED, UNKNOWN_NULL_COUNT_NONE_NULL,
    UNKNOWN_NULL_COUNT_ONE_NULL, RELEASED_ARRAY, SLICED, NULL_FORMAT, NEGATIVE_METADATA_LENGTH,
};

/* Metadata of one pair whose key length is -1. */
static const int32_t negative_metadata[2] = {1, -1};

#define VALUES 16
static long schemas_released = 0, arrays_released = 0, streams_released = 0;
long schema_releases(void) { return schemas_released; }
long array_releases(void) { return arrays_released; }
long stream_releases(void) { return streams_released; }

/* ---------------------------------------------------------------- schema */

typedef struct {
    char format[32], child_format[32];
    struct ArrowSchema child, *child_ptr;
} SchemaPrivate;

static void release_child_schema(struct ArrowSchema *s) { s->release = NULL; }

static void release_schema(struct ArrowSchema *s) {
    SchemaPrivate *p = s->private_data;
    if (p->child.release) p->child.release(&p->child);
    free(p);
    s->release = NULL;
    schemas_released++;
}

/* `list_size` > 0: a FixedSizeList of that many `format` values. */
static void fill_schema(struct ArrowSchema *s, const char *format, int list_size, int lie) {
    SchemaPrivate *p = calloc(1, sizeof *p);
    memset(s, 0, sizeof *s);
    s->name = "";
    s->flags = 2;
    s->release = release_schema;
    s->private_data = p;
    if (list_size > 0) {
        snprintf(p->format, sizeof p->format, "+w:%d", list_size);
        snprintf(p->child_format, sizeof p->child_format, "%s", format);
        p->child.format = p->child_format;
        p->child.name = "item";
        p->child.flags = 2;
        p->child.release = release_child_schema;
        p->child_ptr = &p->child;
        s->n_children = 1;
        s->children = &p->child_ptr;
    } else {
        snprintf(p->format, sizeof p->format, "%s", lie == UNKNOWN_FORMAT ? "xyz" : format);
    }
    s->format = lie == NULL_FORMAT ? NULL : p->format;
    if (lie == NEGATIVE_METADATA_LENGTH) s->metadata = (const char *)negative_metadata;
    if (lie == PRIMITIVE_WITH_CHILD && list_size == 0) {
        p->child.format = "i";
        p->child.release = release_child_schema;
        p->child_ptr = &p->child;
        s->n_children = 1;
        s->children = &p->child_ptr;
    }
}

/* ----------------------------------------------------------------- array */

typedef struct {
    const void *buffers[3], *child_buffers[2];
    struct ArrowArray child, *child_ptr;
    int32_t *data;
    uint8_t bitmap[VALUES / 8];
} ArrayPrivate;

static void release_child_array(struct ArrowArray *a) { a->release = NULL; }

static void release_array(struct ArrowArray *a) {
    ArrayPrivate *p = a->private_data;
    if (p->child.release) p->child.release(&p->child);
    free(p->data);
    free(p);
    a->release = NULL;
    arrays_released++;
}

static void fill_array(struct ArrowArray *a, int list_size, int lie) {
    ArrayPrivate *p = calloc(1, sizeof *p);
    p->data = aligned_alloc(64, 128);
    for (int i = 0; i < VALUES; i++) p->data[i] = i;
    memset(p->bitmap, 0xff, sizeof p->bitmap);
    memset(a, 0, sizeof *a);
    a->release = release_array;
    a->private_data = p;
    /* The primitive level: the root, or the FixedSizeList's child. */
    struct ArrowArray *leaf = a;
    if (list_size > 0) {
        a->length = VALUES / list_size;
        a->n_buffers = 1;
        a->buffers = p->buffers;
        a->n_children = 1;
        p->child_ptr = &p->child;
        a->children = &p->child_ptr;
        leaf = &p->child;
        leaf->release = release_child_array;
        leaf->buffers = p->child_buffers;
    } else {
        a->buffers = p->buffers;
    }
    leaf->length = VALUES;
    leaf->n_buffers = 2;
    leaf->buffers[1] = p->data;
    switch (lie) {
    case NEGATIVE_LENGTH: a->length = -1; break;
    case NEGATIVE_OFFSET: a->offset = -1; break;
    case OFFSET_OVERFLOW: a->offset = INT64_MAX; break;
    case CHILD_TOO_SHORT: a->offset = 1; break;
    case NULL_DATA: leaf->buffers[1] = NULL; break;
    case NULL_BUFFERS: a->buffers = NULL; break;
    case THREE_BUFFERS: a->n_buffers = 3; break;
    case NULLS: a->null_count = 2; p->bitmap[0] = 0xfc; a->buffers[0] = p->bitmap; break;
    case NULL_COUNT_WITHOUT_BITMAP: a->null_count = 2; break;
    case MISALIGNED: leaf->buffers[1] = (const char *)p->data + 1; break;
    case UNKNOWN_NULL_COUNT_NONE_NULL: a->null_count = -1; a->buffers[0] = p->bitmap; break;
    case UNKNOWN_NULL_COUNT_ONE_NULL:
        a->null_count = -1; p->bitmap[1] = 0x7f; a->buffers[0] = p->bitmap; break;
    case RELEASED_ARRAY: release_array(a); arrays_released--; break;
    case SLICED: a->offset = 1; a->length -= 1; break;
    }
}

/* -------------------------------------------------------------- capsules */

static void schema_capsule_destructor(PyObject *capsule) {
    struct ArrowSchema *s = PyCapsule_GetPointer(capsule, "arrow_schema");
    if (s->release) s->release(s);
    free(s);
}

static void array_capsule_destructor(PyObject *capsule) {
    struct ArrowArray *a = PyCapsule_GetPointer(capsule, "arrow_array");
    if (a->release) a->release(a);
    free(a);
}

/* (schema, array) capsules: `format` values (a FixedSizeList of
 * `list_size` of them when it is > 0), with `lie` told. */
PyObject *make_pair(const char *format, int list_size, int lie) {
    struct ArrowSchema *s = malloc(sizeof *s);
    struct ArrowArray *a = malloc(sizeof *a);
    fill_schema(s, format, list_size, lie);
    fill_array(a, list_size, lie);
    PyObject *schema = PyCapsule_New(s, "arrow_schema", schema_capsule_destructor);
    PyObject *array = PyCapsule_New(a, "arrow_array", array_capsule_destructor);
    PyObject *pair = PyTuple_Pack(2, schema, array);
    Py_DECREF(schema);
    Py_DECREF(array);
    return pair;
}

/* ---------------------------------------------------------------- stream */

typedef struct { int chunks_left, fail; } StreamPrivate;

static int stream_get_schema(struct ArrowArrayStream *st, struct ArrowSchema *out) {
    StreamPrivate *p = st->private_data;
    if (p->fail) return 22; /* EINVAL */
    fill_schema(out, "i", 0, HONEST);
    return 0;
}

static int stream_get_next(struct ArrowArrayStream *st, struct ArrowArray *out) {
    StreamPrivate *p = st->private_data;
    if (p->chunks_left == 0) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    p->chunks_left--;
    fill_array(out, 0, HONEST);
    return 0;
}

static const char *stream_last_error(struct ArrowArrayStream *st) {
    (void)st;
    return "the helper was told to fail";
}

static void release_stream(struct ArrowArrayStream *st) {
    free(st->private_data);
    st->release = NULL;
    streams_released++;
}

static void stream_capsule_destructor(PyObject *capsule) {
    struct ArrowArrayStream *st = PyCapsule_GetPointer(capsule, "arrow_array_stream");
    if (st->release) st->release(st);
    free(st);
}

PyObject *make_stream(int chunks, int fail) {
    struct ArrowArrayStream *st = malloc(sizeof *st);
    StreamPrivate *p = malloc(sizeof *p);
    p->chunks_left = chunks;
    p->fail = fail;
    st->get_schema = stream_get_schema;
    st->get_next = stream_get_next;
    st->get_last_error = stream_last_error;
    st->release = release_stream;
    st->private_data = p;
    return PyCapsule_New(st, "arrow_array_stream", stream_capsule_destructor);
}
