//! Compiling an upload: a component of a `hooks` world (0.2.0 or 0.1.0), importing only what the host gives.

use super::*;

/// Whether a component embeds StarlingMonkey, the JavaScript engine
/// componentize-js builds hooks with (its sources' paths are in the binary).
pub(super) fn embeds_javascript_engine(bytes: &[u8]) -> bool {
    const MARK: &[u8] = b"StarlingMonkey";
    bytes.windows(MARK.len()).any(|w| w == MARK)
}

/// Whether a hook may import `name` (`package:namespace/interface@version`):
/// the `hooks` world's own interfaces, and the WASI interfaces a component
/// built with a language's standard library imports, each given a sandbox
/// (no environment variables or arguments, an empty stdin, stdout and
/// stderr captured for the request's log, no preopened directory, clocks
/// and randomness). Whatever
/// reaches outside the host (`wasi:sockets`, `wasi:http`) or any other
/// package is refused at upload, so a component never finds out at its
/// first request that an import it counts on does nothing.
pub(super) fn is_provided_import(name: &str) -> bool {
    let Some((package, rest)) = name.split_once('/') else {
        return false;
    };
    let interface = rest
        .split_once('@')
        .map_or(rest, |(interface, _)| interface);
    match package {
        "edge:hooks" => matches!(
            interface,
            "types" | "kv" | "config" | "log" | "fetch" | "secrets"
        ),
        "wasi:io" => matches!(interface, "error" | "poll" | "streams"),
        "wasi:clocks" => matches!(interface, "wall-clock" | "monotonic-clock"),
        "wasi:random" => matches!(interface, "random" | "insecure" | "insecure-seed"),
        "wasi:cli" => matches!(
            interface,
            "environment"
                | "exit"
                | "stdin"
                | "stdout"
                | "stderr"
                | "terminal-input"
                | "terminal-output"
                | "terminal-stdin"
                | "terminal-stdout"
                | "terminal-stderr"
        ),
        "wasi:filesystem" => matches!(interface, "types" | "preopens"),
        _ => false,
    }
}

/// `sha256:<hex>` of a component's bytes.
pub fn version_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", crate::ids::hex(&sha2::Sha256::digest(bytes)))
}

impl HookRuntime {
    /// Compiles `bytes` and checks it against the `hooks` world. CPU-heavy on a
    /// first compile; call it off the request path.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<CompiledHook, InvalidHook> {
        // A core module (version 1, layer 0) is what a build for
        // wasm32-unknown-unknown or wasm32-wasip1 makes.
        if bytes.starts_with(b"\0asm\x01\0\0\0") {
            return Err(InvalidHook(
                "this is a core WebAssembly module, not a component: build the hook for wasm32-wasip2 (`edge hook build`, or `cargo build --release --target wasm32-wasip2`)".into(),
            ));
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| InvalidHook(format!("not a valid WebAssembly component: {e:#}")))?;
        let imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let refused: Vec<&str> = imports
            .iter()
            .map(String::as_str)
            .filter(|name| !is_provided_import(name))
            .collect();
        if !refused.is_empty() {
            return Err(InvalidHook(format!(
                "imports what hooks are not given: {} (a hook may import the hooks world and WASI's io, clocks, random, cli and filesystem interfaces; no sockets, no outbound HTTP)",
                refused.join(", ")
            )));
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| InvalidHook(format!("imports something hooks cannot use: {e:#}")))?;
        // Checks every export's presence and type once, here, so an
        // invocation only looks up the one it calls. The current world
        // first, as `wasmtime serve` tries its newest proxy world first.
        let (world, parent) = match bindings::v0_2::HooksPre::new(pre.clone()) {
            Ok(_) => {
                let events = component
                    .get_export_index(None, bindings::EVENTS_EXPORT)
                    .ok_or_else(|| {
                        InvalidHook(format!("does not export {}", bindings::EVENTS_EXPORT))
                    })?;
                (World::V0_2, Some(events))
            }
            Err(current) => match bindings::v0_1::HooksPre::new(pre.clone()) {
                Ok(_) => (World::V0_1, None),
                Err(old) => {
                    return Err(InvalidHook(format!(
                        "does not export the hooks world: neither `{}` (edge:hooks@0.2.0: {current:#}) nor the four events of edge:hooks@0.1.0 ({old:#}); build it with the current SDK",
                        bindings::EVENTS_EXPORT
                    )));
                }
            },
        };
        let other_world: Vec<&str> = imports
            .iter()
            .map(String::as_str)
            .filter(|name| name.starts_with("edge:hooks/") && !name.ends_with(world.suffix()))
            .collect();
        if !other_world.is_empty() {
            return Err(InvalidHook(format!(
                "exports the events of edge:hooks{} but imports {}: a component is built for one world",
                world.suffix(),
                other_world.join(", ")
            )));
        }
        let export = |name: &str| {
            component
                .get_export_index(parent.as_ref(), name)
                .ok_or_else(|| InvalidHook(format!("does not export {name}")))
        };
        let exports = [
            export(EXPORT_NAMES[0])?,
            export(EXPORT_NAMES[1])?,
            export(EXPORT_NAMES[2])?,
            export(EXPORT_NAMES[3])?,
        ];
        let stats = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(HookStats::new(name)))
            .clone();
        Ok(CompiledHook {
            name: name.into(),
            version: version_of(bytes),
            pre,
            world,
            exports,
            stats,
            javascript: embeds_javascript_engine(bytes),
            demoted: Default::default(),
        })
    }
}

impl HookRuntime {
    /// Instantiates `compiled` once, in a store of its own, and looks up its
    /// four events with the types its world gives them. Upload checks only
    /// names; a component built from another draft of a world (the same
    /// names, other records) would otherwise pass and then fail every
    /// request that runs it.
    pub async fn check_exports(&self, compiled: &Arc<CompiledHook>) -> Result<(), InvalidHook> {
        let hook = BoundHook {
            compiled: compiled.clone(),
            event: Event::ViewerRequest,
            config: Arc::default(),
            budget: Duration::from_secs(1),
            memory_limit: MAX_MEMORY_LIMIT,
            body: None,
            fetch: None,
            secret_stores: Arc::from([]),
        };
        let mut store = new_store(&self.engine, &hook, "upload", Arc::default(), None);
        // A start function that does not end is stopped at the first tick
        // past a second.
        let _ticking = self.ticker.enter();
        store.set_epoch_deadline(
            u64::try_from(Duration::from_secs(1).as_millis() / EPOCH_TICK.as_millis().max(1))
                .unwrap_or(u64::MAX),
        );
        store.epoch_deadline_trap();
        let instance = compiled
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| InvalidHook(format!("cannot be instantiated: {e:#}")))?;
        let typed = match compiled.world {
            World::V0_2 => bindings::v0_2::Hooks::new(&mut store, &instance).map(drop),
            World::V0_1 => bindings::v0_1::Hooks::new(&mut store, &instance).map(drop),
        };
        typed.map_err(|e| {
            InvalidHook(format!(
                "exports the events of edge:hooks{} with other types than that world gives them ({e:#}): it was built from another version of the WIT; build it with the current SDK",
                compiled.world.suffix()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> HookRuntime {
        HookRuntime::new(&RuntimeOptions {
            cache_dir: None,
            function_cache_dir: None,
            parallel_compile: false,
            held_memory_mib: 1024,
            max_instances: 4,
            measure_cpu: false,
            threads: 0,
        })
        .expect("hook runtime")
    }

    #[test]
    fn a_component_built_for_0_1_0_is_taken_as_that_world() {
        let bytes = include_bytes!("../../../tests/fixtures/hooks-0.1.0/request_state.wasm");
        let compiled = runtime()
            .compile("state", bytes)
            .expect("a 0.1.0 component");
        assert_eq!(compiled.world, World::V0_1);
    }

    #[test]
    fn a_component_of_neither_world_is_refused_naming_both() {
        // The empty component: a preamble, no imports, no exports.
        let empty = b"\0asm\x0d\0\x01\0";
        let err = runtime().compile("empty", empty).expect_err("refused");
        assert!(err.0.contains(bindings::EVENTS_EXPORT), "{}", err.0);
        assert!(err.0.contains("edge:hooks@0.1.0"), "{}", err.0);
    }

    #[test]
    fn both_worlds_interfaces_are_provided_and_nothing_else_of_the_package() {
        assert!(is_provided_import("edge:hooks/kv@0.1.0"));
        assert!(is_provided_import("edge:hooks/kv@0.2.0"));
        assert!(is_provided_import("edge:hooks/fetch@0.2.0"));
        assert!(is_provided_import("edge:hooks/secrets@0.2.0"));
        assert!(!is_provided_import("edge:hooks/tail@0.2.0"));
        assert!(!is_provided_import("edge:other/kv@0.2.0"));
    }

    #[tokio::test]
    async fn a_component_built_from_a_draft_of_the_world_is_refused_at_upload() {
        let rt = runtime();
        let bytes = include_bytes!("../../../tests/fixtures/hooks-0.2.0-draft/bluegreen.wasm");
        // Its export names are the world's: compiling alone takes it.
        let compiled = Arc::new(rt.compile("draft", bytes).expect("the names match"));
        assert_eq!(compiled.world, World::V0_2);
        let err = rt
            .check_exports(&compiled)
            .await
            .expect_err("a draft's types are not the world's");
        assert!(err.0.contains("other types"), "{}", err.0);
        assert!(err.0.contains("edge:hooks@0.2.0"), "{}", err.0);
        // A component of the released 0.1.0 world passes.
        let frozen = include_bytes!("../../../tests/fixtures/hooks-0.1.0/request_state.wasm");
        let compiled = Arc::new(rt.compile("old", frozen).expect("a 0.1.0 component"));
        rt.check_exports(&compiled)
            .await
            .expect("its types are its world's");
    }
}
