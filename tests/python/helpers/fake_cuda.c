/* A stand-in for the CUDA driver (libcuda.so.1) with the entry points
 * dlbridge calls: each call is appended to a log the tests read, and the
 * statuses it returns are globals the tests set (ctypes in_dll). No GPU, no
 * device memory: pointers and stream handles are only numbers here. */
#include <stdio.h>
#include <string.h>

typedef int CUresult;
typedef void *Handle;

int fake_init_status = 0;     /* cuInit */
int fake_ordinal = 0;         /* CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL */
int fake_managed = 0;         /* CU_POINTER_ATTRIBUTE_IS_MANAGED */
int fake_pointer_status = 0;  /* cuPointerGetAttribute */
int fake_sync_status = 0;     /* cuStreamSynchronize */
int fake_wait_status = 0;     /* cuStreamWaitEvent */
int fake_contexts = 0;        /* contexts pushed and not popped */
int fake_retained = 0;        /* primary contexts retained and not released */
int fake_events = 0;          /* events created and not destroyed */
int fake_quiet = 0;           /* 1: log nothing (instruction counts) */

static char log_text[16384];
static size_t log_len = 0;
static int next_event = 0;

static void note(const char *format, unsigned long long a, unsigned long long b) {
    if (!fake_quiet && log_len < sizeof log_text - 128) {
        log_len += (size_t)snprintf(log_text + log_len, sizeof log_text - log_len, format, a, b);
    }
}

const char *fake_log(void) { return log_text; }
void fake_reset(void) { log_len = 0; log_text[0] = 0; }

CUresult cuInit(unsigned int flags) { note("cuInit %llu\n", flags, 0); return fake_init_status; }

CUresult cuGetErrorName(CUresult status, const char **name) {
    switch (status) {
    case 0: *name = "CUDA_SUCCESS"; return 0;
    case 1: *name = "CUDA_ERROR_INVALID_VALUE"; return 0;
    case 100: *name = "CUDA_ERROR_NO_DEVICE"; return 0;
    case 400: *name = "CUDA_ERROR_INVALID_HANDLE"; return 0;
    default: return 1;
    }
}

CUresult cuPointerGetAttribute(void *data, int attribute, unsigned long long ptr) {
    note("cuPointerGetAttribute %llu %#llx\n", (unsigned long long)attribute, ptr);
    if (fake_pointer_status) return fake_pointer_status;
    if (attribute == 9) *(int *)data = fake_ordinal;
    else if (attribute == 8) *(unsigned int *)data = (unsigned int)fake_managed;
    else return 1;
    return 0;
}

CUresult cuDeviceGet(int *device, int ordinal) { *device = ordinal; return 0; }

CUresult cuDevicePrimaryCtxRetain(Handle *context, int device) {
    fake_retained++;
    *context = (Handle)(0x1000 + (unsigned long long)device);
    return 0;
}

CUresult cuDevicePrimaryCtxRelease_v2(int device) { (void)device; fake_retained--; return 0; }

CUresult cuCtxPushCurrent_v2(Handle context) {
    note("cuCtxPushCurrent device %llu\n", (unsigned long long)context - 0x1000, 0);
    fake_contexts++;
    return 0;
}

CUresult cuCtxPopCurrent_v2(Handle *context) { *context = NULL; fake_contexts--; note("cuCtxPopCurrent\n", 0, 0); return 0; }

CUresult cuEventCreate(Handle *event, unsigned int flags) {
    *event = (Handle)(unsigned long long)(0xe0 + ++next_event);
    fake_events++;
    note("cuEventCreate flags %llu -> %#llx\n", flags, (unsigned long long)*event);
    return 0;
}

CUresult cuEventRecord(Handle event, Handle stream) {
    note("cuEventRecord %#llx on %#llx\n", (unsigned long long)event, (unsigned long long)stream);
    return 0;
}

CUresult cuStreamWaitEvent(Handle stream, Handle event, unsigned int flags) {
    (void)flags;
    note("cuStreamWaitEvent %#llx waits for %#llx\n", (unsigned long long)stream, (unsigned long long)event);
    return fake_wait_status;
}

CUresult cuEventDestroy_v2(Handle event) {
    fake_events--;
    note("cuEventDestroy %#llx\n", (unsigned long long)event, 0);
    return 0;
}

CUresult cuStreamSynchronize(Handle stream) {
    note("cuStreamSynchronize %#llx\n", (unsigned long long)stream, 0);
    return fake_sync_status;
}
