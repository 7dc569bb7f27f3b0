//! One live plugin instance: its `Store`, its typed exports, and calls with
//! a CPU deadline. A call that traps, runs out of time or memory, or
//! overflows its stack poisons the instance; [`CallError`] says which.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Func;
use wasmtime::{Store, Trap};

use super::image::Image;
use super::limits;
use super::lowering::{ImageArg, ImageHandle};
use super::sandbox::{MemoryCapHit, Sandbox};
use crate::wit::{Event, KindSet, Plugin, PluginInfo};

/// How a call into a plugin failed. After any of these the instance is
/// unusable and must be replaced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The call ran past its CPU deadline and was interrupted.
    #[error("call exceeded its CPU deadline of {0:?}")]
    Deadline(Duration),
    /// The plugin tried to grow its memory past its cap.
    #[error("plugin exceeded its memory cap of {0} bytes")]
    MemoryCap(usize),
    /// The plugin recursed past the WebAssembly stack limit.
    #[error("plugin overflowed its stack")]
    StackOverflow,
    /// Any other trap (a Rust panic is `unreachable`), with wasmtime's message.
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The instance already failed earlier and cannot be entered.
    #[error("plugin instance is poisoned by an earlier failure")]
    Poisoned,
}

/// An error a plugin itself returned (the error of a WIT
/// `result<_, string>`): it refused a query or a previous version's state.
/// The instance is unharmed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// The kinds of failure counted per plugin, as metrics label them.
pub const FAILURE_KINDS: [&str; 4] = ["trap", "deadline", "memory-cap", "stack-overflow"];

impl CallError {
    /// Which of [`FAILURE_KINDS`] this is; `None` for a poisoned instance
    /// (the failure that poisoned it was counted).
    pub fn kind_index(&self) -> Option<usize> {
        match self {
            CallError::Trap(_) => Some(0),
            CallError::Deadline(_) => Some(1),
            CallError::MemoryCap(_) => Some(2),
            CallError::StackOverflow => Some(3),
            CallError::Poisoned => None,
        }
    }

    /// Classifies the error of a failed call.
    pub(super) fn classify(
        store: &mut Store<Sandbox>,
        error: wasmtime::Error,
        deadline: Duration,
    ) -> CallError {
        if let Some(hit) = error.downcast_ref::<MemoryCapHit>() {
            return CallError::MemoryCap(hit.cap);
        }
        if store.data().limiter.cap_hit {
            return CallError::MemoryCap(store.data().limiter.memory_cap);
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => CallError::Deadline(deadline),
            Some(Trap::StackOverflow) => CallError::StackOverflow,
            Some(Trap::CannotEnterComponent) => CallError::Poisoned,
            // The trap's own words; the wasm backtrace stays out of the
            // status line (a Rust guest's panic message is on its stderr).
            Some(trap) => CallError::Trap(trap.to_string()),
            None => CallError::Trap(error.root_cause().to_string()),
        }
    }
}

/// The optional `state` export's functions.
#[derive(Clone, Copy)]
pub(super) struct StateFuncs {
    pub snapshot: Func,
    pub restore: Func,
}

/// A plugin instance: what it said of itself, and its store.
pub struct Instance {
    name: Arc<str>,
    info: PluginInfo,
    kinds: KindSet,
    store: Store<Sandbox>,
    bindings: Plugin,
    /// `handle`, already type-checked for [`ImageArg`].
    handle: ImageHandle,
    /// `snapshot` and `restore`, type-checked, when the plugin exports them.
    state: Option<StateFuncs>,
    call_deadline: Duration,
    deadline_ticks: u64,
    poisoned: bool,
}

impl Instance {
    pub(super) fn new(
        name: Arc<str>,
        info: PluginInfo,
        kinds: KindSet,
        store: Store<Sandbox>,
        (bindings, handle, state): (Plugin, ImageHandle, Option<StateFuncs>),
        call_deadline: Duration,
    ) -> Instance {
        Instance {
            name,
            info,
            kinds,
            store,
            bindings,
            handle,
            state,
            call_deadline,
            deadline_ticks: limits::ticks(call_deadline),
            poisoned: false,
        }
    }

    /// The plugin's name: from configuration, else what `describe` said.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// What `describe` returned.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn mp_safe(&self) -> bool {
        self.info.mp_safe
    }

    /// The object kinds the plugin subscribed to.
    pub fn kinds(&self) -> KindSet {
        self.kinds
    }

    /// Bytes of linear memory the instance holds now.
    pub fn memory_bytes(&mut self) -> usize {
        self.store.data().limiter.memory_in_use
    }

    /// Delivers one batch of events: pre-lowered when the batch allows
    /// it ([`Image`]), else through the typed bindings.
    pub fn handle(&mut self, events: &[Event]) -> Result<(), CallError> {
        match Image::encode(events) {
            Some(image) => self.handle_image(image.arg(0, events.len())),
            None => self.handle_typed(events),
        }
    }

    /// Delivers a batch through wasmtime's typed lowering.
    pub fn handle_typed(&mut self, events: &[Event]) -> Result<(), CallError> {
        self.call(|bindings, store| {
            bindings
                .dataplane_handler_handler()
                .call_handle(store, events)
        })
    }

    /// Delivers a pre-lowered batch.
    pub fn handle_image(&mut self, arg: ImageArg<'_>) -> Result<(), CallError> {
        let handle = self.handle;
        self.call(|_, store| handle.call(&mut *store, arg))
    }

    /// True when the plugin exports `snapshot` and `restore`.
    pub fn stateful(&self) -> bool {
        self.state.is_some()
    }

    /// The plugin's state, to hand to its next version; empty when it does
    /// not export `snapshot`.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, CallError> {
        let Some(state) = self.state else {
            return Ok(Vec::new());
        };
        self.call(|_, store| {
            let typed = state.snapshot.typed::<(), (Vec<u8>,)>(&*store)?;
            Ok(typed.call(&mut *store, ())?.0)
        })
    }

    /// Hands the previous version's state to this instance; the inner
    /// result is the plugin's own answer. A plugin without `restore`
    /// accepts nothing but an empty state.
    pub fn restore(&mut self, state: &[u8]) -> Result<Result<(), Refusal>, CallError> {
        let Some(funcs) = self.state else {
            return Ok(if state.is_empty() {
                Ok(())
            } else {
                Err(Refusal("it does not export `restore`".to_string()))
            });
        };
        self.call(|_, store| {
            let typed = funcs
                .restore
                .typed::<(&[u8],), (Result<(), String>,)>(&*store)?;
            Ok(typed.call(&mut *store, (state,))?.0.map_err(Refusal))
        })
    }

    /// Asks the plugin a query; the inner result is the plugin's own answer.
    pub fn query(&mut self, request: &str) -> Result<Result<String, Refusal>, CallError> {
        self.call(|bindings, store| {
            let answer = bindings
                .dataplane_handler_handler()
                .call_query(store, request)?;
            Ok(answer.map_err(Refusal))
        })
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&Plugin, &mut Store<Sandbox>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        if self.poisoned {
            return Err(CallError::Poisoned);
        }
        self.store.set_epoch_deadline(self.deadline_ticks);
        f(&self.bindings, &mut self.store).map_err(|e| {
            self.poisoned = true;
            CallError::classify(&mut self.store, e, self.call_deadline)
        })
    }
}
