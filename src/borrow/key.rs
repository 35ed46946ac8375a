//! What a borrow covers: a byte range, refined by the lattice of addresses
//! its elements can start at (rust-numpy's interleaving test, made exact for
//! elements wider than one byte).

use crate::layout::Layout;

/// The memory one borrow covers, as the registry's C ABI carries it
/// (`#[repr(C)]`, field for field; see [`super::abi`]).
///
/// Every element starts at `data + Σ iₖ·sₖ` (`0 ≤ iₖ < nₖ`, byte strides
/// `sₖ`) and covers `itemsize` bytes, so all of them lie in
/// `[start, end)`, and every element address is `data` plus a multiple of
/// `gcd`, the greatest common divisor of the strides of the axes with more
/// than one element (0 when there are none: a single element).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BorrowKey {
    /// Lowest byte address covered.
    pub(crate) start: usize,
    /// One past the highest byte address covered (`start == end`: nothing).
    pub(crate) end: usize,
    /// Address of the element at index `[0, 0, ...]`.
    pub(crate) data: usize,
    /// Bytes per element.
    pub(crate) itemsize: usize,
    /// gcd of the absolute byte strides of the axes of extent > 1 (0: none).
    pub(crate) gcd: usize,
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl BorrowKey {
    /// The key of a strided layout whose element `[0, ..., 0]` is at
    /// address `data` (an address, not a pointer: a key is never
    /// dereferenced). `shape` and byte `strides` must be a layout dlbridge
    /// validated (its byte span fits in `isize`, so none of the sums below
    /// overflow).
    pub(crate) fn new(data: usize, shape: &[usize], strides: &[isize], itemsize: usize) -> Self {
        if shape.contains(&0) || itemsize == 0 {
            return Self::empty(data, itemsize);
        }
        let (mut low, mut high, mut g) = (0isize, 0isize, 0usize);
        for (&extent, &stride) in shape.iter().zip(strides) {
            if extent <= 1 {
                // Never applied (NumPy may leave any value there).
                continue;
            }
            let reach = stride * (extent as isize - 1);
            if reach < 0 {
                low += reach;
            } else {
                high += reach;
            }
            // gcd(0, s) = s without a division (a 1-d key takes none).
            g = if g == 0 {
                stride.unsigned_abs()
            } else {
                gcd(g, stride.unsigned_abs())
            };
        }
        Self {
            start: data.wrapping_add_signed(low),
            end: data.wrapping_add_signed(high).wrapping_add(itemsize),
            data,
            itemsize,
            gcd: g,
        }
    }

    /// The key of a validated layout whose first logical element is at
    /// address `data`: [`BorrowKey::new`]'s key, from what the layout
    /// already proved. Its span is the key's range; a contiguous layout's
    /// axes of extent > 1 step by multiples of the itemsize, the innermost
    /// by the itemsize itself, so their gcd is the itemsize. Only another
    /// layout walks its strides, for the gcd alone.
    pub(crate) fn of_layout(data: usize, layout: &Layout) -> Self {
        let (itemsize, size) = (layout.itemsize(), layout.size());
        if size == 0 || itemsize == 0 {
            return Self::empty(data, itemsize);
        }
        let gcd = if size == 1 {
            0
        } else if layout.is_c_contiguous() || layout.is_f_contiguous() {
            itemsize
        } else {
            let axes = layout.shape().iter().zip(layout.strides());
            axes.filter(|&(&extent, _)| extent > 1)
                .fold(0, |g, (_, &stride)| gcd(g, stride.unsigned_abs()))
        };
        let (low, high) = layout.span();
        Self {
            start: data.wrapping_add_signed(low),
            end: data.wrapping_add_signed(high),
            data,
            itemsize,
            gcd,
        }
    }

    /// The key of no element at `data`.
    fn empty(data: usize, itemsize: usize) -> Self {
        Self {
            start: data,
            end: data,
            data,
            itemsize,
            gcd: 0,
        }
    }

    /// Covers no byte (an empty array): never registered, never in conflict.
    pub(crate) fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// Whether some byte may belong to an element of both (a sufficient
    /// test for "no shared byte", so `false` is a proof and `true` may be a
    /// false alarm).
    ///
    /// Disjoint byte ranges share nothing. Otherwise an element of `self`
    /// starting at `self.data + a·g` and one of `other` at
    /// `other.data + b·g` (`g` the gcd of both keys' gcds) share a byte only
    /// if `other.data - self.data + (b - a)·g` lies in
    /// `(-other.itemsize, self.itemsize)`, which needs a multiple of `g` in
    /// `[δ - self.itemsize + 1, δ + other.itemsize - 1]` (`δ = other.data -
    /// self.data`, up to sign). rust-numpy asks whether `g` divides `δ`,
    /// which is this test for one-byte elements only: it would pass a
    /// `uint8` view at byte 1 of a `float64` element.
    pub(crate) fn conflicts(&self, other: &Self) -> bool {
        if self.is_empty() || other.is_empty() {
            return false;
        }
        if other.start >= self.end || self.start >= other.end {
            return false;
        }
        let g = gcd(self.gcd, other.gcd) as i128;
        if g == 0 {
            // One element each, and their byte ranges overlap.
            return true;
        }
        // Elements of `self` start at self.data + x·g, of `other` at
        // other.data + y·g; they share a byte iff
        // self.data + x·g + i = other.data + y·g + j for some
        // 0 ≤ i < self.itemsize, 0 ≤ j < other.itemsize, i.e. iff
        // (x - y)·g = δ + j - i, δ = other.data - self.data.
        let delta = other.data as i128 - self.data as i128;
        let low = delta - self.itemsize as i128 + 1;
        let high = delta + other.itemsize as i128 - 1;
        high.div_euclid(g) * g >= low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: usize = 0x1000;

    /// `a[offset::step]` of a float64 array of `n` elements, as a key.
    fn slice(n: usize, offset: usize, step: isize) -> BorrowKey {
        let count = if step > 0 {
            (n - offset).div_ceil(step as usize)
        } else {
            offset / step.unsigned_abs() + 1
        };
        BorrowKey::new(BASE + 8 * offset, &[count], &[8 * step], 8)
    }

    /// `of_layout` gives `new`'s key for every layout: contiguous either
    /// way, with extent-1 axes of any stride, strided, reversed,
    /// broadcast, single-element and empty.
    #[test]
    fn a_layout_gives_the_same_key() {
        let cases: &[(&[usize], &[isize], usize)] = &[
            (&[16], &[8], 8),
            (&[4, 6], &[48, 8], 8),
            (&[4, 6], &[8, 32], 8),
            (&[4, 1, 6], &[48, 12345, 8], 8),
            (&[6, 1], &[-8, 12345], 8),
            (&[3, 5], &[40, -8], 8),
            (&[10, 4], &[80, 24], 8),
            (&[4, 4], &[48, 12], 4),
            (&[5, 3], &[0, 2], 2),
            (&[1, 1], &[7, 9], 8),
            (&[], &[], 8),
            (&[3, 0], &[8, 8], 8),
            (&[7], &[3], 1),
        ];
        for &(shape, strides, itemsize) in cases {
            let layout = Layout::new(shape, Some(strides), itemsize).unwrap();
            let (low, _) = layout.span();
            // `data` is the first logical element, above every byte reached.
            let data = BASE + low.unsigned_abs();
            assert_eq!(
                BorrowKey::of_layout(data, &layout),
                BorrowKey::new(data, shape, strides, itemsize),
                "shape {shape:?} strides {strides:?} itemsize {itemsize}"
            );
        }
    }

    #[test]
    fn range_and_gcd() {
        let k = BorrowKey::new(BASE, &[4, 6], &[48, 8], 8);
        assert_eq!((k.start, k.end, k.gcd), (BASE, BASE + 192, 8));
        // Negative strides reach below the data pointer; extent-1 strides are ignored.
        let k = BorrowKey::new(BASE + 40, &[6, 1], &[-8, 12345], 8);
        assert_eq!((k.start, k.end, k.gcd), (BASE, BASE + 48, 8));
        let empty = BorrowKey::new(BASE, &[3, 0], &[8, 8], 8);
        assert!(empty.is_empty());
        assert!(!empty.conflicts(&empty));
        let scalar = BorrowKey::new(BASE, &[], &[], 8);
        assert_eq!((scalar.start, scalar.end, scalar.gcd), (BASE, BASE + 8, 0));
        assert!(scalar.conflicts(&scalar));
    }

    #[test]
    fn overlapping_and_disjoint_slices() {
        let whole = slice(10, 0, 1);
        assert!(whole.conflicts(&whole));
        assert!(slice(10, 0, 1).conflicts(&slice(10, 4, 1)));
        let (head, tail) = (
            BorrowKey::new(BASE, &[5], &[8], 8),
            BorrowKey::new(BASE + 40, &[5], &[8], 8),
        );
        assert!(!head.conflicts(&tail) && !tail.conflicts(&head));
        let (head, tail) = (
            BorrowKey::new(BASE, &[6], &[8], 8),
            BorrowKey::new(BASE + 40, &[5], &[8], 8),
        );
        assert!(head.conflicts(&tail) && tail.conflicts(&head));
    }

    #[test]
    fn interleaved_slices() {
        let (even, odd) = (slice(10, 0, 2), slice(10, 1, 2));
        assert!(!even.conflicts(&odd) && !odd.conflicts(&even));
        assert!(even.conflicts(&slice(10, 2, 2)));
        assert!(even.conflicts(&slice(10, 0, 1)));
        // Reversed: a[::-2] starts at a[9] (odd elements).
        let reversed_odd = slice(10, 9, -2);
        assert!(!reversed_odd.conflicts(&even));
        assert!(reversed_odd.conflicts(&odd));
        // Colour channels of an RGB image of float32 (rust-numpy's example).
        let channel = |c: usize| BorrowKey::new(BASE + 4 * c, &[4, 4], &[48, 12], 4);
        assert!(!channel(0).conflicts(&channel(1)));
        assert!(!channel(1).conflicts(&channel(2)));
        assert!(channel(2).conflicts(&channel(2)));
    }

    #[test]
    fn element_width_counts() {
        // a.view(np.uint8)[1::8] touches byte 1 of every float64 of `a`:
        // the gcd (8) does not divide the pointer difference (1), yet the
        // bytes are shared. rust-numpy's test alone would let both through.
        let floats = slice(10, 0, 1);
        let second_bytes = BorrowKey::new(BASE + 1, &[10], &[8], 1);
        assert!(floats.conflicts(&second_bytes) && second_bytes.conflicts(&floats));
        // float32 halves of complex64: real parts and imaginary parts are disjoint.
        let real = BorrowKey::new(BASE, &[8], &[8], 4);
        let imag = BorrowKey::new(BASE + 4, &[8], &[8], 4);
        assert!(!real.conflicts(&imag));
        // ... but the complex64 elements themselves overlap both.
        let complex = BorrowKey::new(BASE, &[8], &[8], 8);
        assert!(complex.conflicts(&real) && complex.conflicts(&imag));
    }

    #[test]
    fn over_approximation_is_on_the_safe_side() {
        // a[:, ::3] and a[:, 1::3] of a 10x10 float64 array share no element,
        // but the lattice test cannot tell (rows are 80 bytes: gcd 8).
        let cols =
            |c: usize| BorrowKey::new(BASE + 8 * c, &[10, (10 - c).div_ceil(3)], &[80, 24], 8);
        assert!(cols(0).conflicts(&cols(1)));
    }
}
