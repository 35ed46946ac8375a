//! DLPack spoke (core, no Python): managed tensors in and out, on dlpark.
//!
//! Import takes ownership of a `Managed` tensor, validates it once into a
//! [`Tensor`], and keeps the `Managed` itself as the owner, so the
//! producer's deleter runs exactly once, when the last view is gone (or
//! immediately, if validation refuses it). Export builds a fresh managed
//! tensor per call whose `manager_ctx` is a clone of the tensor's owner.

use std::sync::Arc;

use dlpark::metadata::Dynamic;
use dlpark::{DlpackFlags, Managed, ManagedTensorBase, legacy, versioned};

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layout::{Layout, MAX_NDIM};
use crate::owner::Owner;
use crate::tensor::{Source, Tensor};

/// The parts of a validated DLPack descriptor, before the owner moves in.
struct Parsed {
    data: *mut u8,
    layout: Layout,
    dtype: DType,
    device: Device,
    readonly: bool,
}

fn parse<M: ManagedTensorBase>(managed: &Managed<M>) -> Result<Parsed> {
    let view = managed
        .validate()
        .map_err(|e| Error::value(format!("malformed DLPack tensor: {e}")))?;
    let dtype = DType::from_dlpack(view.dtype())?;
    let device = Device::from_dlpack(view.device());
    let itemsize = dtype.itemsize();
    if view.ndim() > MAX_NDIM {
        return Err(Error::value(format!(
            "DLPack tensor has ndim {}, more than the maximum of {MAX_NDIM}",
            view.ndim()
        )));
    }
    let strides = view
        .strides_or_compact()
        .map_err(|e| Error::value(format!("malformed DLPack tensor: {e}")))?;
    let mut byte_strides = [0i64; MAX_NDIM];
    for (axis, (&stride, out)) in strides.iter().zip(byte_strides.iter_mut()).enumerate() {
        *out = stride.checked_mul(itemsize as i64).ok_or_else(|| {
            Error::value(format!(
                "DLPack stride {stride} on axis {axis} overflows in bytes"
            ))
        })?;
    }
    let layout = Layout::from_signed(view.shape(), Some(&byte_strides[..view.ndim()]), itemsize)?;
    let base = view.data_ptr() as *mut u8;
    if base.is_null() && layout.size() > 0 {
        return Err(Error::buffer(format!(
            "DLPack tensor of shape {:?} has a NULL data pointer",
            layout.shape()
        )));
    }
    let offset = usize::try_from(view.byte_offset())
        .map_err(|_| Error::value(format!("byte_offset {} overflows", view.byte_offset())))?;
    // `data + byte_offset` is the first logical element (DLPack C-15). The
    // address is computed, never dereferenced, so wrapping arithmetic is
    // exact; non-CPU "pointers" may be handles, but dlbridge only hands them
    // back to DLPack, where `data` and `byte_offset` are summed all the same.
    let data = base.wrapping_add(offset);
    if device.is_cpu() && layout.size() > 0 {
        let (low, high) = layout.span();
        let first = data as usize;
        if first.checked_add_signed(low).is_none() || first.checked_add_signed(high).is_none() {
            return Err(Error::value(format!(
                "DLPack tensor at {first:#x} with strides {:?} wraps around the address space",
                layout.strides()
            )));
        }
    }
    Ok(Parsed {
        data,
        layout,
        dtype,
        device,
        readonly: managed.flags().contains(DlpackFlags::READ_ONLY),
    })
}

fn import<M: ManagedTensorBase>(
    managed: Managed<M>,
    owner: impl FnOnce(Managed<M>) -> Owner,
) -> Result<Tensor> {
    // On refusal `managed` drops here and the producer's deleter runs once.
    let parsed = parse(&managed)?;
    // SAFETY: the producer guarantees the described memory stays valid until
    // its deleter runs, and the deleter runs only when this owner drops.
    Ok(unsafe {
        Tensor::from_parts(
            parsed.data,
            parsed.layout,
            parsed.dtype,
            parsed.device,
            parsed.readonly,
            Source::Dlpack,
            owner(managed),
        )
    })
}

impl TryFrom<versioned::Dlpack> for Tensor {
    type Error = Error;

    /// Takes ownership of a versioned managed tensor; `READ_ONLY` makes the
    /// tensor readonly. A refused tensor is released before returning.
    fn try_from(managed: versioned::Dlpack) -> Result<Self> {
        import(managed, Owner::DlpackVersioned)
    }
}

impl TryFrom<legacy::Dlpack> for Tensor {
    type Error = Error;

    /// Takes ownership of a legacy managed tensor (which has no flags, so it
    /// imports writable). A refused tensor is released before returning.
    fn try_from(managed: legacy::Dlpack) -> Result<Self> {
        import(managed, Owner::DlpackLegacy)
    }
}

impl Tensor {
    fn export<M: ManagedTensorBase>(&self, flags: DlpackFlags) -> Result<Managed<M>> {
        let ndim = self.ndim();
        let mut strides = [0i64; MAX_NDIM];
        self.layout().element_strides_into(&mut strides[..ndim])?;
        let mut init = Dynamic::new(self.shape(), &strides[..ndim])
            .initialize_as::<M>(Arc::clone(self.owner()))
            .map_err(|e| Error::buffer(format!("cannot build a DLPack tensor: {e}")))?;
        init.set_data(self.data_ptr().cast())
            .set_dtype(self.dtype().to_dlpack())
            .set_device(self.device().to_dlpack());
        // SAFETY: READ_ONLY mirrors this tensor's own flag, and IS_COPIED is
        // only passed by `export_copy`, whose memory is a fresh private copy.
        unsafe { init.set_flags_unchecked(flags) };
        // SAFETY: data, shape and strides describe this tensor's validated
        // layout; the owner clone in `manager_ctx` keeps the memory alive
        // until the consumer calls the deleter.
        Ok(unsafe { init.finish() })
    }

    fn readonly_flags(&self) -> DlpackFlags {
        if self.readonly() {
            DlpackFlags::READ_ONLY
        } else {
            DlpackFlags::empty()
        }
    }

    /// A fresh versioned (DLPack 1.3) managed tensor viewing this memory;
    /// `READ_ONLY` is set when the tensor is readonly.
    ///
    /// Fails (`BufferError`) when a byte stride is not a multiple of the itemsize.
    pub fn to_dlpack_versioned(&self) -> Result<versioned::Dlpack> {
        self.export(self.readonly_flags())
    }

    /// Like [`Tensor::to_dlpack_versioned`], consuming the tensor.
    pub fn into_dlpack(self) -> Result<versioned::Dlpack> {
        self.to_dlpack_versioned()
    }

    /// A fresh legacy managed tensor viewing this memory. The legacy ABI
    /// cannot say "read-only", so a readonly tensor is a `BufferError`.
    pub fn to_dlpack_legacy(&self) -> Result<legacy::Dlpack> {
        if self.readonly() {
            return Err(Error::buffer(
                "cannot export a readonly tensor over legacy DLPack, which cannot signal \
                 read-only; ask for max_version >= (1, 0)",
            ));
        }
        self.export(DlpackFlags::empty())
    }

    /// A fresh private copy as a versioned managed tensor flagged `IS_COPIED`.
    pub fn to_dlpack_copy(&self) -> Result<versioned::Dlpack> {
        self.copy()?.export(DlpackFlags::IS_COPIED)
    }

    /// A fresh private copy over legacy DLPack.
    pub fn to_dlpack_legacy_copy(&self) -> Result<legacy::Dlpack> {
        self.copy()?.export(DlpackFlags::empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn versioned_round_trip_shares_memory_and_owner() {
        let t = Tensor::zeros(&[2, 3], DType::INT32).unwrap();
        let back = Tensor::try_from(t.to_dlpack_versioned().unwrap()).unwrap();
        assert_eq!(back.data_ptr(), t.data_ptr());
        assert_eq!(back.strides(), t.strides());
        assert_eq!(back.dtype(), DType::INT32);
        assert!(!back.readonly());
        let ro = Tensor::try_from(t.to_readonly().to_dlpack_versioned().unwrap()).unwrap();
        assert!(ro.readonly());
        assert_eq!(
            t.to_readonly().to_dlpack_legacy().err().map(|e| e.kind()),
            Some(ErrorKind::Buffer)
        );
        let copied = t.to_dlpack_copy().unwrap();
        assert!(copied.flags().contains(DlpackFlags::IS_COPIED));
        assert_ne!(Tensor::try_from(copied).unwrap().data_ptr(), t.data_ptr());
    }
}
