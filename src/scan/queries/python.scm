; The Python nodes the scanner lowers to facts (src/scan/extract/python.rs).
; Comments and strings never hold a capture: commented-out code is never a finding.
(import_statement) @import
(import_from_statement) @import
(call) @call
(assignment) @assign
(function_definition) @function
(class_definition) @class
