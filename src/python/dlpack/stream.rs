//! `__dlpack__(stream=...)` for CUDA memory: the producer (dlbridge) makes
//! the consumer's stream wait for the tensor's work (see `crate::cuda`:
//! every CUDA tensor dlbridge holds is ready on the legacy default stream).

use pyo3::prelude::*;
use pyo3::types::PyInt;

use crate::cuda::{Stream, driver};
use crate::error::{Cause, Error};
use crate::python::names::shown;
use crate::tensor::Tensor;

/// Orders the consumer's `stream` after the tensor's work: nothing for
/// `None` and `1` (the legacy default stream, where the tensor is ready)
/// and `-1` ("do not synchronise"); an event and `cuStreamWaitEvent`
/// otherwise, which needs the CUDA driver.
pub(crate) fn order_for_consumer(
    tensor: &Tensor,
    stream: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let Some(stream) = stream.filter(|s| !s.is_none()) else {
        return Ok(());
    };
    if !stream.is_instance_of::<PyInt>() {
        return Err(Error::type_error(
            Cause::Stream,
            format!(
                "__dlpack__ stream must be None or an int, got {}",
                shown(stream)
            ),
        )
        .into());
    }
    let value: i128 = stream.extract().map_err(|_| {
        PyErr::from(Error::value(
            Cause::Stream,
            format!(
                "__dlpack__ stream {} does not fit in 128 bits, so it is no CUDA stream handle",
                shown(stream)
            ),
        ))
    })?;
    if let Some(consumer) = Stream::from_dlpack(value)? {
        let device = tensor.device();
        stream
            .py()
            .detach(|| driver::make_wait(device, consumer, Stream::LEGACY))?;
    }
    Ok(())
}
