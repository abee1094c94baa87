//! Host-side bindings for the released contract `bosun:reconciler@0.1.0`,
//! generated from its frozen copy in `wit/versions/0.1.0/`, with the same
//! settings as the current ones (see `super`), so the two differ only where
//! the contracts do.

wasmtime::component::bindgen!({
    world: "reconciler",
    path: "../wit/versions/0.1.0",
    additional_derives: [PartialEq],
    imports: { default: trappable },
    exports: { default: async },
});
