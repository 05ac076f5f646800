; The TypeScript (and TSX) nodes the scanner lowers to facts (src/scan/extract/javascript.rs).
; javascript.scm's list, in this grammar's kinds: class fields are `public_field_definition`,
; and abstract classes and enums exist. Enum members are bound like class fields.
(import_statement) @import
(export_statement source: (string)) @reexport
(call_expression) @call
(new_expression) @call
(variable_declarator) @declare
(assignment_expression) @assign
(public_field_definition) @field
(enum_assignment) @field
(function_declaration) @function
(generator_function_declaration) @function
(method_definition) @function
(function_expression) @function
(generator_function) @function
(arrow_function) @function
(class_declaration) @class
(abstract_class_declaration) @class
(class) @class
