#[cfg(all(feature = "std", feature = "metadata-hash"))]
fn main() {
	// Symbol and decimals must match `openledger_primitives::currency`.
	substrate_wasm_builder::WasmBuilder::init_with_defaults()
		.enable_metadata_hash("OPEN", 18)
		.build();
}

#[cfg(all(feature = "std", not(feature = "metadata-hash")))]
fn main() {
	substrate_wasm_builder::WasmBuilder::build_using_defaults();
}

/// The Wasm builder is off when this crate itself is compiled to Wasm.
#[cfg(not(feature = "std"))]
fn main() {}
