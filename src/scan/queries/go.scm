; The Go nodes the scanner lowers to facts (src/scan/extract/go.rs).
; Comments and strings never hold a capture: commented-out code is never a finding.
(import_spec) @import
(call_expression) @call
(type_conversion_expression type: (generic_type)) @call
(composite_literal) @construct
(short_var_declaration) @bind
(assignment_statement) @bind
(var_spec) @bind
(const_spec) @bind
(function_declaration) @function
(method_declaration) @function
(type_spec type: [(struct_type) (interface_type)]) @class
