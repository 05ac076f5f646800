; The Rust nodes the scanner lowers to facts (src/scan/extract/rust.rs).
; Comments never hold a capture, and macro arguments are token trees, not calls:
; neither commented-out code nor `println!("{}", x.y())` is a finding.
(use_declaration) @import
(extern_crate_declaration) @import
(call_expression) @call
(struct_expression) @construct
(let_declaration) @bind
(const_item) @bind
(static_item) @bind
(function_item) @function
(impl_item) @class
(struct_item) @class
(enum_item) @class
