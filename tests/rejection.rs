//! Files that are not plugins are refused with a message that says what is
//! wrong: a text file, a truncated component, a core module, a component of
//! another world, and a plugin whose init refuses its config.

use crate::util::*;
use dphost::plugin::{Limits, LoadError};

fn compile_err(bytes: &[u8]) -> LoadError {
    let dir = Scratch::new("reject");
    let path = dir.join("plugin.wasm");
    std::fs::write(&path, bytes).unwrap();
    runtime().compile(&path).unwrap_err()
}

/// A text file is not WebAssembly.
#[test]
fn text_file() {
    let err = compile_err(b"hello, I am a text file\n");
    assert!(matches!(err, LoadError::NotWasm { .. }), "{err}");
    assert!(err.to_string().contains("not a WebAssembly file"), "{err}");
}

/// A component cut short does not parse, and the message says why.
#[test]
fn truncated_component() {
    let bytes = std::fs::read(plugin("fib")).unwrap();
    let err = compile_err(&bytes[..bytes.len() / 2]);
    assert!(matches!(err, LoadError::Invalid { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("not a valid WebAssembly component"),
        "{err}"
    );
}

/// A core module (here the smallest valid one) is told to become a component.
#[test]
fn core_module() {
    let err = compile_err(b"\0asm\x01\0\0\0");
    assert!(matches!(err, LoadError::CoreModule { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("core WebAssembly module, not a component"),
        "{err}"
    );
}

/// A valid component of another world names the missing export.
#[test]
fn component_of_another_world() {
    let err = runtime().compile(&fixture("otherworld")).unwrap_err();
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(
            "does not export `dataplane:handler/handler@0.2.0` or `dataplane:handler/handler@0.1.0`"
        ),
        "{msg}"
    );
    assert!(msg.contains("wasi:cli/run"), "{msg}");
}

/// A plugin whose init returns an error is refused with its message.
#[test]
fn init_refusal() {
    let rt = runtime();
    let compiled = rt.compile(&fixture("trap")).unwrap();
    let err = rt
        .instantiate(&compiled, None, "not-a-number", &Limits::default())
        .err()
        .expect("init must refuse");
    assert!(matches!(err, LoadError::InitRefused { .. }), "{err}");
    assert!(
        err.to_string().contains("trap fixture refuses config"),
        "{err}"
    );
}

/// The second compile of the same file comes from the on-disk code cache.
#[test]
fn second_load_comes_from_the_code_cache() {
    let dir = Scratch::new("cache");
    let rt = dphost::plugin::Runtime::new(Some(&*dir)).unwrap();
    let first = rt.compile(&plugin("logger")).unwrap();
    let second = rt.compile(&plugin("logger")).unwrap();
    assert!(!first.from_cache);
    assert!(second.from_cache);
    assert_eq!(first.sha256, second.sha256);
    rt.instantiate(&second, None, "", &Limits::default())
        .expect("cached code instantiates");
}
