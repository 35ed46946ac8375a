"""dlbridge tensors through real engines, run locally: multiprocessing
(spawn), a Dask LocalCluster of worker processes, and Ray.

Every wait is bounded (TIMEOUT) so a hung worker fails the test instead of
hanging the suite. The tasks live in engine_tasks.py, which imports only
dlbridge and NumPy.
"""

from __future__ import annotations

import ctypes
import multiprocessing

import distributed
import distributed.protocol
import ml_dtypes
import numpy as np
import pytest
import ray
import ray.cloudpickle

import dlbridge
import engine_tasks

TIMEOUT = 120  # seconds: a bound on a hung worker, not a speed test

# JAX, once another test module has imported it, warns at every os.fork() in
# this process (an at-fork hook; under -W error the hook's exception becomes
# an unraisable-exception error). ray.init starts its helper processes with
# subprocess and a preexec_fn, which runs the hooks; the children exec at
# once and never touch JAX's threads. Nothing else is filtered.
pytestmark = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")


def bfloat16_tensor() -> dlbridge.Tensor:
    values = np.arange(12, dtype=np.float32).reshape(3, 4).astype(ml_dtypes.bfloat16)
    return dlbridge.from_buffer(values.view(np.uint16)).view("bfloat16")


def raw(t: dlbridge.Tensor) -> bytes:
    return ctypes.string_at(t.data_ptr, t.nbytes)


def readonly_tensor() -> dlbridge.Tensor:
    a = np.arange(6, dtype=np.int16)
    a.flags.writeable = False
    return dlbridge.asarray(a)


def check_round_trip(run):
    """`run(function, tensor)` runs `function(tensor)` in another process
    and returns its result; checks what went and what came back."""
    for t in (dlbridge.asarray(np.arange(1000, dtype=np.float32)), bfloat16_tensor()):
        (dtype, shape, _, _, data), source, out = run(engine_tasks.doubled, t)
        assert (dtype, shape, data) == (t.dtype, t.shape, raw(t))
        assert source == "rust"  # the worker built a Rust-owned tensor ...
        assert (out.dtype, out.shape) == ("float32", t.shape)  # ... and it came back
        np.testing.assert_array_equal(np.asarray(out), 2 * t.numpy().astype(np.float32))
    dtype, shape, readonly, _, data = run(engine_tasks.received, readonly_tensor())
    assert (dtype, shape, readonly, data) == ("int16", (6,), True, raw(readonly_tensor()))


def test_multiprocessing_spawn():
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        check_round_trip(lambda function, t: pool.apply_async(function, (t,)).get(TIMEOUT))
        # What arrives over multiprocessing's pipe (pickle's default protocol,
        # in band) is a writable copy of a writable tensor.
        _, _, readonly, source, _ = pool.apply_async(engine_tasks.received, (dlbridge.zeros(3),)).get(TIMEOUT)
        assert (readonly, source) == (False, "buffer")


def test_dask_local_cluster_of_processes():
    with distributed.LocalCluster(processes=True, n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        check_round_trip(lambda function, t: client.submit(function, t, pure=False).result(TIMEOUT))
        # Dask pickles with protocol 5 and sends the buffer as a frame of its
        # own: the frame is the tensor's memory, not a copy.
        t = dlbridge.asarray(np.arange(1 << 20, dtype=np.float32))
        header, (description, frame) = distributed.protocol.serialize(t)
        assert header["serializer"] == "pickle" and len(description) < 200
        assert np.frombuffer(frame, np.uint8).ctypes.data == t.data_ptr
        future = client.scatter(t)
        dtype, shape, readonly, source, data = client.submit(engine_tasks.received, future).result(TIMEOUT)
        assert (dtype, shape, readonly, source, data) == ("float32", t.shape, False, "buffer", raw(t))


@pytest.fixture(scope="module")
def ray_session():
    # Ray's workers do not share the driver's sys.path: send the tasks by value.
    ray.cloudpickle.register_pickle_by_value(engine_tasks)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    ray.cloudpickle.unregister_pickle_by_value(engine_tasks)


def mapping_of(address: int) -> list[str]:
    """The /proc/self/maps fields (address range, permissions, offset, device,
    inode, path) of the mapping that holds `address`."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if low <= address < high:
                return fields
    raise AssertionError(f"{address:#x} is in no mapping")


def test_ray_get_views_the_object_store(ray_session):
    t = dlbridge.asarray(np.arange(1 << 21, dtype=np.float32))  # 8 MiB: stored in plasma, not inlined
    ref = ray.put(t)
    first, second = ray.get(ref, timeout=TIMEOUT), ray.get(ref, timeout=TIMEOUT)
    assert first.readonly and first.source == "buffer"
    assert raw(first) == raw(t) and first.data_ptr != t.data_ptr
    # No copy on the way out: both gets view the same bytes, inside the
    # object store's shared mapping (Ray 2.60: /dev/shm/plasma...).
    assert second.data_ptr == first.data_ptr
    mapping = mapping_of(first.data_ptr)
    assert mapping[1].endswith("s") and mapping[5].startswith("/dev/shm/plasma"), mapping
    del first, second


def test_ray_remote_task(ray_session):
    task = ray.remote(engine_tasks.doubled)
    check_round_trip(lambda function, t: ray.get(ray.remote(function).remote(t), timeout=TIMEOUT))
    # A large result lands in the object store: read-only, viewed in place.
    (_, _, readonly, _, _), source, out = ray.get(
        task.remote(dlbridge.asarray(np.ones(1 << 20, dtype=np.float32))), timeout=TIMEOUT)
    assert readonly and source == "rust"  # the task saw plasma's read-only memory, built a Rust tensor
    assert out.readonly and mapping_of(out.data_ptr)[5].startswith("/dev/shm/plasma")
    assert float(np.asarray(out).sum()) == 2.0 * (1 << 20)
