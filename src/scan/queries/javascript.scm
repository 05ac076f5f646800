; The JavaScript (and JSX) nodes the scanner lowers to facts (src/scan/extract/javascript.rs).
; Comments, strings and templates never hold a capture: commented-out code is never a finding.
; typescript.scm is the same list in the TypeScript grammar's node kinds.
(import_statement) @import
(export_statement source: (string)) @reexport
(call_expression) @call
(new_expression) @call
(variable_declarator) @declare
(assignment_expression) @assign
(field_definition) @field
(function_declaration) @function
(generator_function_declaration) @function
(method_definition) @function
(function_expression) @function
(generator_function) @function
(arrow_function) @function
(class_declaration) @class
(class) @class
