//! The one file that uses wasmtime's hidden `component::__internal` API.
//!
//! Why: wasmtime's typed lowering writes a `list<event>` into the guest
//! field by field, about 190 ns per route event; a pre-lowered batch
//! (the `image` module) is copied in with one `memcpy`, which makes the FIB
//! plugin take events about twice as fast (`cargo xtask bench dispatch`).
//! Lowering our own bytes as a `list<event>` needs `ComponentType` and
//! `Lower` implemented by hand, and those name types wasmtime keeps in
//! `__internal` (`CanonicalAbiInfo`, `InstanceType`, `InterfaceType`,
//! `LowerContext`), with no stability promise.
//!
//! What pins it: the workspace depends on wasmtime `=48.0.8` exactly
//! (Cargo.toml), so no update reaches this file unseen.
//!
//! What catches a change: `image::image_lowering_equals_typed_lowering`
//! (tests/image.rs) delivers random batches both ways, through this file
//! and through wasmtime's typed lowering, into the `echo` fixture (0.1.0)
//! and the `echo2` fixture (0.2.0) and compares what the guest received
//! field by field;
//! `event_layout_matches_wasmtime` below checks the size and alignment.
//! Run both after any wasmtime update before trusting this file.

use std::marker::PhantomData;
use std::mem::MaybeUninit;

use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentType, Func, Lower, TypedFunc};
use wasmtime::{AsContextMut, ValRaw};

use crate::wit;

/// A version's `event`, as images lay it out.
pub trait Layout: Copy + Send + Sync + 'static {
    /// The version's `event` type, whose `list` an image stands for.
    type Event: ComponentType;
    /// Size of one `event` in guest memory (canonical ABI).
    const EVENT_SIZE: usize;
    /// Alignment of one `event` in guest memory (canonical ABI).
    const EVENT_ALIGN: u32 = 8;
}

/// 0.1.0's `event`.
#[derive(Clone, Copy, Debug)]
pub struct V0_1;

impl Layout for V0_1 {
    type Event = wit::v0_1::dataplane::handler::types::Event;
    const EVENT_SIZE: usize = 136;
}

/// 0.2.0's `event`: 0.1.0's route, then its `nhid` and `position`.
#[derive(Clone, Copy, Debug)]
pub struct V0_2;

impl Layout for V0_2 {
    type Event = wit::Event;
    const EVENT_SIZE: usize = 152;
}

/// A run of an [`Image`], lowered as a `list<event>` of layout `L`: one
/// `realloc` in the guest and one copy.
#[derive(Clone, Copy)]
pub struct ImageArg<'a, L> {
    bytes: &'a [u8],
    layout: PhantomData<L>,
}

impl<'a, L: Layout> ImageArg<'a, L> {
    /// Whole `event`s in their canonical-ABI layout (what
    /// `Image` builds).
    pub fn new(bytes: &'a [u8]) -> ImageArg<'a, L> {
        debug_assert_eq!(bytes.len() % L::EVENT_SIZE, 0);
        ImageArg {
            bytes,
            layout: PhantomData,
        }
    }

    fn store<T>(&self, cx: &mut LowerContext<'_, T>) -> wasmtime::Result<(usize, usize)> {
        let ptr = cx.realloc(0, 0, L::EVENT_ALIGN, self.bytes.len())?;
        let memory = cx.as_slice_mut();
        let Some(dst) = memory.get_mut(ptr..ptr + self.bytes.len()) else {
            wasmtime::bail!("realloc returned memory out of bounds");
        };
        dst.copy_from_slice(self.bytes);
        Ok((ptr, self.bytes.len() / L::EVENT_SIZE))
    }
}

// SAFETY: the type check is exactly that of `list<event>`, and the image is
// that type's canonical-ABI layout, lowered as (pointer, length) like any
// list. The layout is checked against wasmtime's own lowering by
// `image::image_lowering_equals_typed_lowering` (tests/image.rs) and
// `event_layout_matches_wasmtime` below.
unsafe impl<L: Layout> ComponentType for ImageArg<'_, L> {
    type Lower = [ValRaw; 2];

    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <[L::Event] as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: see `ComponentType` above; memory is written only through the
// bounds-checked slice of the guest's memory.
unsafe impl<L: Layout> Lower for ImageArg<'_, L> {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        dst: &mut MaybeUninit<[ValRaw; 2]>,
    ) -> wasmtime::Result<()> {
        let (ptr, len) = self.store(cx)?;
        dst.write([ValRaw::i64(ptr as i64), ValRaw::i64(len as i64)]);
        Ok(())
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        let (ptr, len) = self.store(cx)?;
        *cx.get::<4>(offset) = (ptr as u32).to_le_bytes();
        *cx.get::<4>(offset + 4) = (len as u32).to_le_bytes();
        Ok(())
    }
}

/// A plugin's `handle` export, type-checked once for [`ImageArg`] of
/// layout `L`, so each call skips the check.
#[derive(Clone, Copy)]
pub struct ImageHandle<L> {
    func: Func,
    layout: PhantomData<L>,
}

impl<L: Layout> ImageHandle<L> {
    /// Checks `handle` takes a `list<event>` of layout `L` and returns
    /// nothing.
    pub fn check(func: Func, store: impl wasmtime::AsContext) -> wasmtime::Result<ImageHandle<L>> {
        func.typed::<(ImageArg<'_, L>,), ()>(store)?;
        Ok(ImageHandle {
            func,
            layout: PhantomData,
        })
    }

    /// Calls `handle` with a pre-lowered batch.
    pub fn call(&self, store: impl AsContextMut, arg: ImageArg<'_, L>) -> wasmtime::Result<()> {
        // SAFETY: `check` type-checked this function for exactly these
        // parameter and result types when the instance was made; the
        // lowering itself is what the tests named in the module doc check.
        let typed = unsafe { TypedFunc::<(ImageArg<'_, L>,), ()>::new_unchecked(self.func) };
        typed.call(store, (arg,))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout constants are wasmtime's own for `event`, in both
    /// versions.
    #[test]
    fn event_layout_matches_wasmtime() {
        fn check<L: Layout>() {
            assert_eq!(<L::Event as ComponentType>::SIZE32, L::EVENT_SIZE);
            assert_eq!(<L::Event as ComponentType>::ALIGN32, L::EVENT_ALIGN);
        }
        check::<V0_1>();
        check::<V0_2>();
    }

    /// 0.2.0's `event` is its route case and the tag, no more: a rule or a
    /// nexthop (rare) must not make every event of a batch larger.
    #[test]
    fn no_case_is_larger_than_a_route() {
        use crate::wit;
        let route = <wit::Route as ComponentType>::SIZE32;
        assert_eq!(<wit::Event as ComponentType>::SIZE32, route + 8);
        assert!(<wit::Rule as ComponentType>::SIZE32 < route);
        assert!(<wit::Nexthop as ComponentType>::SIZE32 < route);
    }
}
