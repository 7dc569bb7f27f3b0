//! One live plugin instance: its `Store`, its typed exports, and calls with
//! a CPU deadline. A call that traps, runs out of time or memory, or
//! overflows its stack poisons the instance; [`CallError`] says which.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Func;
use wasmtime::{Store, Trap};

use super::image::Image;
use super::lowering::{ImageHandle, V0_1, V0_2};
use super::sandbox::{DeadlineHit, MemoryCapHit, Sandbox};
use crate::wit::filter::{self, Subscription};
use crate::wit::{Answer, ApiVersion, Event, Filter, KindSet, Plugin, PluginInfo, v0_1};

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
        if error.downcast_ref::<DeadlineHit>().is_some() {
            return CallError::Deadline(deadline);
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

/// A plugin's typed exports, in the version of the API it was built for.
pub enum Bindings {
    V0_1(v0_1::Plugin),
    V0_2(Plugin),
}

impl Bindings {
    pub fn version(&self) -> ApiVersion {
        match self {
            Bindings::V0_1(_) => ApiVersion::V0_1,
            Bindings::V0_2(_) => ApiVersion::V0_2,
        }
    }

    /// `describe`, in 0.2.0's terms.
    pub(super) fn describe(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<PluginInfo> {
        match self {
            Bindings::V0_1(b) => b
                .dataplane_handler_handler()
                .call_describe(store)
                .map(v0_1::upgrade_info),
            Bindings::V0_2(b) => b.dataplane_handler_handler().call_describe(store),
        }
    }

    /// `init`, and the filter it returned (0.1.0: everything).
    pub(super) fn init(
        &self,
        store: &mut Store<Sandbox>,
        config: &str,
    ) -> wasmtime::Result<Result<Filter, String>> {
        match self {
            Bindings::V0_1(b) => Ok(b
                .dataplane_handler_handler()
                .call_init(store, config)?
                .map(|()| filter::everything())),
            Bindings::V0_2(b) => b.dataplane_handler_handler().call_init(store, config),
        }
    }

    /// `handle` through wasmtime's typed lowering; a 0.1.0 plugin is given
    /// the events in its own types.
    fn handle(&self, store: &mut Store<Sandbox>, events: &[Event]) -> wasmtime::Result<()> {
        match self {
            Bindings::V0_1(b) => {
                let old: Vec<_> = events.iter().filter_map(v0_1::downgrade).collect();
                b.dataplane_handler_handler().call_handle(store, &old)
            }
            Bindings::V0_2(b) => b.dataplane_handler_handler().call_handle(store, events),
        }
    }

    /// A 0.1.0 plugin answers whole, and only the first call: it is
    /// never given a cursor.
    fn query(
        &self,
        store: &mut Store<Sandbox>,
        request: &str,
        cursor: Option<&str>,
    ) -> wasmtime::Result<Result<Answer, String>> {
        match self {
            Bindings::V0_1(b) => Ok(b
                .dataplane_handler_handler()
                .call_query(store, request)?
                .map(Answer::Whole)),
            Bindings::V0_2(b) => b
                .dataplane_handler_handler()
                .call_query(store, request, cursor),
        }
    }
}

/// A plugin's `handle`, type-checked for pre-lowered batches of its
/// version.
#[derive(Clone, Copy)]
pub enum ImageHandles {
    V0_1(ImageHandle<V0_1>),
    V0_2(ImageHandle<V0_2>),
}

/// A plugin instance: what it said of itself, and its store.
pub struct Instance {
    name: Arc<str>,
    info: PluginInfo,
    kinds: KindSet,
    filter: Filter,
    store: Store<Sandbox>,
    bindings: Bindings,
    /// `handle`, already type-checked for pre-lowered batches.
    handle: ImageHandles,
    /// `snapshot` and `restore`, type-checked, when the plugin exports them.
    state: Option<StateFuncs>,
    /// CPU time per call: `handle` (and the state calls), `query`.
    call_deadline: Duration,
    query_deadline: Duration,
    poisoned: bool,
}

impl Instance {
    pub(super) fn new(
        name: Arc<str>,
        (info, kinds, filter): (PluginInfo, KindSet, Filter),
        store: Store<Sandbox>,
        (bindings, handle, state): (Bindings, ImageHandles, Option<StateFuncs>),
        (call_deadline, query_deadline): (Duration, Duration),
    ) -> Instance {
        Instance {
            name,
            info,
            kinds,
            filter,
            store,
            bindings,
            handle,
            state,
            call_deadline,
            query_deadline,
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

    /// Which objects of those kinds it wants.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Its kinds and filter: what it is given.
    pub fn subscription(&self) -> Subscription {
        Subscription {
            kinds: self.kinds,
            filter: self.filter.clone(),
            waiting: self.version() == ApiVersion::V0_2,
        }
    }

    /// The version of the plugin API it was built for.
    pub fn version(&self) -> ApiVersion {
        self.bindings.version()
    }

    /// Bytes of linear memory the instance holds now.
    pub fn memory_bytes(&mut self) -> usize {
        self.store.data().limiter.memory_in_use
    }

    /// Delivers one batch of events: pre-lowered when the batch allows it
    /// ([`Image`]), else through the typed bindings.
    pub fn handle(&mut self, events: &[Event]) -> Result<(), CallError> {
        match Image::encode(events, self.version()) {
            Some(image) => self.handle_image(&image),
            None => self.handle_typed(events),
        }
    }

    /// Delivers a batch through wasmtime's typed lowering.
    pub fn handle_typed(&mut self, events: &[Event]) -> Result<(), CallError> {
        self.call(|bindings, store| bindings.handle(store, events))
    }

    /// Delivers a pre-lowered batch, which must be in the plugin's
    /// version's layout.
    pub fn handle_image(&mut self, image: &Image) -> Result<(), CallError> {
        assert_eq!(
            image.version(),
            self.version(),
            "an image of another version"
        );
        let handle = self.handle;
        self.call(|_, store| match handle {
            ImageHandles::V0_1(h) => h.call(&mut *store, image.arg(0, image.len())),
            ImageHandles::V0_2(h) => h.call(&mut *store, image.arg(0, image.len())),
        })
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

    /// Asks the plugin a query, or its next page; the inner result is the
    /// plugin's own answer.
    pub fn query(
        &mut self,
        request: &str,
        cursor: Option<&str>,
    ) -> Result<Result<Answer, Refusal>, CallError> {
        let deadline = self.query_deadline;
        self.call_within(deadline, |bindings, store| {
            Ok(bindings.query(store, request, cursor)?.map_err(Refusal))
        })
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&Bindings, &mut Store<Sandbox>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.call_within(self.call_deadline, f)
    }

    /// A call of at most `deadline` of CPU time (checked at every epoch
    /// tick: [`super::sandbox::Budget`]).
    fn call_within<R>(
        &mut self,
        deadline: Duration,
        f: impl FnOnce(&Bindings, &mut Store<Sandbox>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        if self.poisoned {
            return Err(CallError::Poisoned);
        }
        self.store.data_mut().budget.start(deadline);
        self.store.set_epoch_deadline(1);
        f(&self.bindings, &mut self.store).map_err(|e| {
            self.poisoned = true;
            CallError::classify(&mut self.store, e, deadline)
        })
    }
}
